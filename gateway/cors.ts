/**
 * CORS from CORS_ORIGINS (a comma list of origins, or `*`; unset = no CORS headers at all). Applied
 * before routing so errors (404, 413, 429) are readable by an allowed browser app too. Credentials
 * are bearer tokens, never cookies, so `Access-Control-Allow-Credentials` is not sent.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { corsOriginList } from "../shared/net";

const ALLOWED_METHODS = "GET, POST, PUT, DELETE";
const ALLOWED_HEADERS = "Authorization, Content-Type, X-Request-Id";
// WWW-Authenticate: the SDK reads `error="invalid_token"` from it to drop a refused session.
const EXPOSED_HEADERS = "X-Request-Id, Retry-After, WWW-Authenticate";
const MAX_AGE_SECONDS = "600";

export class CorsPolicy {
  private readonly any: boolean;
  private readonly origins: Set<string>;

  constructor(setting: string) {
    const list = corsOriginList(setting);
    this.any = list.includes("*");
    this.origins = new Set(list);
  }

  /** Returns null when CORS_ORIGINS is unset. */
  static from(setting: string | undefined): CorsPolicy | null {
    return setting ? new CorsPolicy(setting) : null;
  }

  allows(origin: string): boolean {
    return this.any || this.origins.has(origin.toLowerCase());
  }

  /**
   * Writes the CORS headers for this request. Returns "preflight" when the request was a preflight
   * from an allowed origin and has been answered, "denied" for a preflight from another origin.
   */
  apply(req: IncomingMessage, res: ServerResponse): "preflight" | "denied" | "continue" {
    // The answer depends on Origin for every request (with it, without it, refused): a shared cache
    // must not hand an answer without CORS headers to an allowed origin. With `*` it never depends on it.
    if (this.any) res.setHeader("Access-Control-Allow-Origin", "*");
    else res.setHeader("Vary", "Origin");
    const origin = req.headers.origin;
    if (!origin) return "continue";
    const preflight = req.method === "OPTIONS" && req.headers["access-control-request-method"] !== undefined;
    if (!this.allows(origin)) return preflight ? "denied" : "continue";

    res.setHeader("Access-Control-Allow-Origin", this.any ? "*" : origin);
    res.setHeader("Access-Control-Expose-Headers", EXPOSED_HEADERS);
    if (!preflight) return "continue";

    res.setHeader("Access-Control-Allow-Methods", ALLOWED_METHODS);
    res.setHeader("Access-Control-Allow-Headers", ALLOWED_HEADERS);
    res.setHeader("Access-Control-Max-Age", MAX_AGE_SECONDS);
    res.statusCode = 204;
    res.setHeader("Content-Length", "0");
    res.end();
    return "preflight";
  }
}
