/**
 * The HTTP route table: every route the gateway serves, one line each (method + documented path ->
 * action, auth). Nothing outside these lists is reachable over HTTP. Each area keeps its lines in its
 * own file; add an area by importing its list into `jsonRoutes`.
 */
import { z } from "zod";
import type { RouteDef } from "./types";
import { profileRoutes } from "./profiles";

/** Served by the gateway itself. */
export const operationRoutes: RouteDef[] = [
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
    response: z.object({ status: z.literal("ok"), services: z.record(z.string(), z.enum(["ok", "unavailable"])) }),
    unlimited: true,
    unavailableResponse: z.object({
      statusCode: z.literal(503),
      error: z.literal("SERVICE_UNAVAILABLE"),
      message: z.string(),
      status: z.literal("unavailable"),
      services: z.record(z.string(), z.enum(["ok", "unavailable"])),
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

/**
 * Routes whose body reaches the action as the exact raw text (`{ payload, signature }`), not parsed.
 * `POST /v1/webhooks/stripe` lands here with the billing work: until billing handles it, the route would
 * only answer 503 to Stripe (which retries for days), so it is not served yet.
 */
export const rawBodyRoutes: RouteDef[] = [];

/** JSON routes: body, query string and path parameters merged into the action's params. */
export const jsonRoutes: RouteDef[] = [...profileRoutes, ...operationRoutes];

export interface RouteTable {
  json: readonly RouteDef[];
  raw: readonly RouteDef[];
}

export const routeTable: RouteTable = { json: jsonRoutes, raw: rawBodyRoutes };
