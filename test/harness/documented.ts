/**
 * Checks the HTTP answers a suite received against the route table and the OpenAPI document built from
 * it: each status is documented for its route, each body has exactly the documented fields, and every
 * route of an area answered successfully at least once.
 */
import { isDeepStrictEqual } from "node:util";
import { ErrorBodySchema } from "../../gateway/errors";
import { bySpecificity } from "../../gateway/gateway.service";
import { buildOpenApi } from "../../gateway/openapi";
import { jsonRoutes, rawBodyRoutes } from "../../gateway/routes";
import type { RouteDef } from "../../shared/routes/types";
import type { ObservedExchange } from "./gateway";

/** The routes most specific first, as the gateway tries them (`/profiles/import` before `/profiles/{profileId}`). */
const bySpecificityFirst = [...jsonRoutes, ...rawBodyRoutes].sort((a, b) => bySpecificity(a.path, b.path));

/** The documented route an HTTP request landed on. */
export function routeOf(method: string, path: string): RouteDef | undefined {
  return bySpecificityFirst.find((r) => r.method === method && new RegExp(`^${r.path.replace(/\{\w+\}/g, "[^/]+")}$`).test(path));
}

/** One line per answer that is not as documented (an empty list when all are). */
export function undocumentedAnswers(exchanges: readonly ObservedExchange[]): string[] {
  const documented = buildOpenApi([...jsonRoutes, ...rawBodyRoutes], { rawBody: new Set(rawBodyRoutes) }) as unknown as {
    paths: Record<string, Record<string, { responses: Record<string, unknown> }>>;
  };
  return exchanges.flatMap(({ method, path, response }) => {
    const route = routeOf(method, path);
    if (route && !documented.paths[route.path][method.toLowerCase()].responses[String(response.status)]) {
      return [`${method} ${route.path}: status ${response.status} is not in the OpenAPI document`];
    }
    const ok = response.status < 400;
    const schema = ok ? route?.response : ErrorBodySchema;
    if (ok && !route) return [`${method} ${path}: ${response.status} from no documented route`];
    if (!schema) return [];
    const parsed = schema.safeParse(response.body);
    if (!parsed.success) return [`${method} ${path} ${response.status}: ${parsed.error.issues.map((i) => `${i.path.join(".")} ${i.message}`).join("; ")}`];
    // Parsing drops undocumented fields: equal means the answer has exactly the documented ones.
    if (!isDeepStrictEqual(parsed.data, response.body)) return [`${method} ${path} ${response.status}: fields beyond the documented ones`];
    return [];
  });
}

/** The routes of `routes` that never answered successfully in `exchanges`. */
export function routesNeverAnswered(exchanges: readonly ObservedExchange[], routes: readonly RouteDef[]): string[] {
  const succeeded = new Set(exchanges.filter((x) => x.response.status < 400).map((x) => routeOf(x.method, x.path)));
  return routes.filter((r) => !succeeded.has(r)).map((r) => `${r.method} ${r.path}`);
}
