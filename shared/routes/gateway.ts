/** The gateway's own routes: health checks, the OpenAPI document and the page behind a list mail's unsubscribe link. */
import { z } from "zod";
import { StoreId, Uuid } from "../contracts/common";
import type { RouteDef } from "./types";

/** A service's readiness: `not_configured` (billing without Stripe keys) does not fail it. */
const ServiceState = z.enum(["ok", "not_configured", "unavailable"]);

/**
 * What a mail's link may carry as its token: the URL-safe characters list-mail tokens are made of (an
 * unsubscribe token is `<membership id>.<base64url MAC>`), 16 to 256 of them. Only its shape is checked here;
 * the POST that unsubscribes verifies it.
 */
export const LinkTokenShape = z
  .string()
  .regex(/^[A-Za-z0-9._~-]{16,256}$/, "must be the token of a list mail's link (copy the whole link from the e-mail)")
  .describe("the token of the mail's unsubscribe link");

/** `gateway.unsubscribePage`: the page a list mail's unsubscribe link opens (GET changes nothing). */
export const UnsubscribePageParams = z.object({ store_id: StoreId, id: Uuid, token: LinkTokenShape });

export const gatewayRoutes: RouteDef[] = [
  {
    method: "GET",
    path: "/health/live",
    action: "gateway.live",
    auth: "public",
    tag: "Operations",
    summary: "Liveness: the gateway process answers",
    response: z.object({ status: z.literal("ok") }),
    unlimited: true,
  },
  {
    method: "GET",
    path: "/health/ready",
    action: "gateway.ready",
    auth: "public",
    tag: "Operations",
    summary: "Readiness: every service answers its health check (503 naming the failing ones otherwise)",
    response: z.object({ status: z.literal("ok"), services: z.record(z.string(), ServiceState) }),
    unlimited: true,
    unavailableResponse: z.object({
      statusCode: z.literal(503),
      error: z.literal("SERVICE_UNAVAILABLE"),
      message: z.string(),
      status: z.literal("unavailable"),
      services: z.record(z.string(), ServiceState),
    }),
  },
  {
    method: "GET",
    path: "/openapi.json",
    action: "gateway.openapi",
    auth: "public",
    tag: "Operations",
    summary: "This OpenAPI 3.1 document",
    response: z.object({ openapi: z.string() }).loose(),
  },
  {
    method: "GET",
    path: "/v1/storefront/{storeId}/profile-lists/{id}/unsubscribe",
    action: "gateway.unsubscribePage",
    auth: "public",
    tag: "Profile lists",
    summary:
      "The page a list mail's unsubscribe link opens in a browser: changes nothing (mail scanners prefetch links) and shows a button that POSTs the token to the same URL",
    params: UnsubscribePageParams,
    answers: "html",
    response: z.string().describe("A self-contained HTML page (no script, no external assets)"),
  },
];
