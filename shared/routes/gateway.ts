/** The gateway's own routes: health checks and the OpenAPI document. */
import { z } from "zod";
import type { RouteDef } from "./types";

/** A service's readiness: `not_configured` (billing without Stripe keys) does not fail it. */
const ServiceState = z.enum(["ok", "not_configured", "unavailable"]);

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
];
