/**
 * One line of the route table: method + documented path -> action, who may call it and what body it
 * takes (then its documentation). The gateway builds its moleculer-web aliases and the OpenAPI document
 * from these, so the docs cannot drift from the routes; the order of lines does not matter.
 *
 * Paths are written as the spec writes them (`/v1/stores/{storeId}/profiles/{id}`); the gateway hands
 * path parameters to the action under snake_case names (`storeId` -> `store_id`, `profileId` ->
 * `profile_id`, `tokenId` -> `token_id`, `id` -> `id`), merged with the query string and JSON body.
 */
import type { z } from "zod";

export type RouteAuth =
  /** `Authorization: Bearer <admin API key>` for this store (or the platform key). */
  | "admin"
  /** `Authorization: Bearer <access_token>` of a profile session of this store. */
  | "profile"
  /** A profile session if a bearer token is sent (a bad one is 401), anonymous otherwise. */
  | "optional-profile"
  /** No authentication. */
  | "public";

export interface RouteDef {
  method: "GET" | "POST" | "PUT" | "DELETE";
  path: string;
  action: string;
  auth: RouteAuth;
  /** "raw": the action gets the exact body text and the signature header (signed webhooks). Default: JSON. */
  body?: "json" | "raw";
  /**
   * "html": the action answers an HTML page (its result is the page's text), sent as `text/html; charset=utf-8`,
   * never cached (`Cache-Control: no-store`) and never framed; errors stay the contract's JSON body. Default: JSON.
   */
  answers?: "json" | "html";
  /**
   * Fields of `params` a POST/PUT also documents as query parameters (`?token=` of a mail's link,
   * `?email_column=` beside a `text/csv` body). The gateway merges the query string into every route's
   * params (the path wins over the query, the query over the body); these are the ones meant to travel there.
   */
  query?: string[];
  summary: string;
  /** The SDK method the spec names for it, e.g. "sdk.crm.create()". */
  sdk?: string;
  /** OpenAPI tag (area). */
  tag: string;
  /** The action's params schema (the same one it validates with). */
  params?: z.ZodType;
  /** The success body. */
  response?: z.ZodType;
  /** Success status (default 200). */
  status?: 200 | 201 | 202 | 204;
  /**
   * Error statuses the action itself answers beyond those every route of its kind gets in the OpenAPI
   * document (400, 404, 429, 500, 503; 401 unless public; 403 for admin; 413/415 with a body).
   */
  errors?: Array<401 | 403 | 409>;
  /** How long the call may take when that is longer than the broker's REQUEST_TIMEOUT_MS (imports). */
  timeoutMs?: number;
  /** Not rate limited (load balancers poll it): no 429. */
  unlimited?: true;
  /** The 503 body when it is not the contract's error body (readiness names the failing services). */
  unavailableResponse?: z.ZodType;
  /**
   * A profile route whose action checks the caller's access token itself, in the same call: the gateway
   * checks only that a bearer token is there and passes it on unread (`ctx.meta.accessToken`), where it would
   * otherwise ask `auth.authenticate` first. For an action that needs more of auth's answer than the principal
   * (GET /profiles/me shows the session's profile with its sessions and codes): the gateway makes one call
   * instead of two, and where auth runs beside the action that call is the only one that crosses the bus.
   */
  tokenCheckedByAction?: true;
}

/** What a route line says after its method, path, action and auth: its body kind and documentation. */
export type RouteDoc = Omit<RouteDef, "method" | "path" | "action" | "auth" | "tag">;

/** A route-line maker for one area (the OpenAPI tag): `route("GET", path, "profiles.get", "admin", { ... })`. */
export function routesOf(tag: string) {
  return (method: RouteDef["method"], path: string, action: string, auth: RouteAuth, doc: RouteDoc): RouteDef => ({ method, path, action, auth, tag, ...doc });
}
