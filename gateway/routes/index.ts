/**
 * The HTTP route table, from the service registry (shared/registry.ts): every route the gateway serves.
 * Nothing outside it is reachable over HTTP. A route with `body: "raw"` reaches its action as the exact
 * raw text (`{ payload, signature }`, for signed webhooks); every other route gets its JSON body, query
 * string and path parameters merged into the action's params.
 */
import { allRoutes } from "../../shared/registry";
import { gatewayRoutes } from "../../shared/routes/gateway";
import type { RouteDef } from "../../shared/routes/types";

export { gatewayRoutes as operationRoutes };

const routes = allRoutes();

/** Raw-body routes. `POST /v1/webhooks/stripe` lands here with the billing work. */
export const rawBodyRoutes: RouteDef[] = routes.filter((r) => r.body === "raw");

/** JSON routes. */
export const jsonRoutes: RouteDef[] = routes.filter((r) => r.body !== "raw");

export interface RouteTable {
  json: readonly RouteDef[];
  raw: readonly RouteDef[];
}

export const routeTable: RouteTable = { json: jsonRoutes, raw: rawBodyRoutes };
