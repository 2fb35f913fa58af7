/**
 * Who is calling: admin API keys (the platform key, or a store key checked by `auth.verifyApiKey`) and
 * profile access tokens (checked by `auth.authenticate`, shared/principal.ts), as the AuthPrincipal put in `ctx.meta.auth`.
 * The auth service is reached through the functions passed in, so this file holds no transport.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { z } from "zod";
import type { AuthPrincipal } from "../shared/contracts/common";
import { crmError } from "../shared/errors";
import { authFailure } from "../shared/principal";
import { GatewayMessages } from "./errors";

export type AdminPrincipal = Extract<AuthPrincipal, { kind: "admin" }>;

export const PLATFORM_KEY_ID = "platform";

/**
 * The token of an `Authorization: Bearer <token>` header: undefined when there is no header, null when
 * there is one that is not a usable bearer token (a 401 on every authenticated route).
 */
export function bearerToken(header: string | string[] | undefined): string | null | undefined {
  if (header === undefined || header === "") return undefined;
  if (typeof header !== "string") return null;
  const m = BEARER_RE.exec(header);
  return m && m[1].length <= MAX_TOKEN_LENGTH ? m[1] : null;
}

// The length is checked after the match: a counted `{1,4096}` made this regex twice as slow on every
// authenticated request (~1 µs for a 400-character token).
const BEARER_RE = /^Bearer[ \t]+(\S+)[ \t]*$/i;
const MAX_TOKEN_LENGTH = 4096;

const VerifiedKey = z.object({ key_id: z.string().min(1), store_id: z.string().min(1) });

const sha256 = (text: string) => createHash("sha256").update(text).digest();

/**
 * Admin keys. The platform key (CRM_ADMIN_API_KEY, or one generated for this run) is compared in
 * constant time; any other key is asked of the auth service, and a positive answer is kept a few
 * seconds (keyed by the key's hash) so a burst of admin calls does not cost one auth call each.
 * A revoked key therefore keeps working for at most `ttlMs`.
 */
export class AdminKeys {
  /** No platform key (production without CRM_ADMIN_API_KEY): only store keys are accepted. */
  private readonly platformHash: Buffer | null;
  private readonly cache = new Map<string, { principal: AdminPrincipal; expiresAt: number }>();

  constructor(
    platformKey: string | undefined,
    private readonly ttlMs = 5_000,
    private readonly maxEntries = 10_000,
    private readonly now: () => number = Date.now,
  ) {
    this.platformHash = platformKey ? sha256(platformKey) : null;
  }

  async principal(key: string, verifyRemote: (key: string) => Promise<unknown>): Promise<AdminPrincipal> {
    const hash = sha256(key);
    if (this.platformHash && timingSafeEqual(hash, this.platformHash)) return { kind: "admin", store_id: "*", key_id: PLATFORM_KEY_ID };

    const cacheKey = hash.toString("base64");
    const hit = this.cache.get(cacheKey);
    if (hit && hit.expiresAt > this.now()) return hit.principal;
    if (hit) this.cache.delete(cacheKey);

    let answer: unknown;
    try {
      answer = await verifyRemote(key);
    } catch (err) {
      throw authFailure(err, GatewayMessages.invalidApiKey);
    }
    const parsed = VerifiedKey.safeParse(answer);
    if (!parsed.success) throw crmError("INTERNAL", "auth.verifyApiKey answered an unexpected shape");
    const principal: AdminPrincipal = { kind: "admin", store_id: parsed.data.store_id, key_id: parsed.data.key_id };
    if (this.cache.size >= this.maxEntries) this.cache.clear();
    this.cache.set(cacheKey, { principal, expiresAt: this.now() + this.ttlMs });
    return principal;
  }
}

/** An admin key may act on its own store only; the platform key (`*`) on every store. */
export function assertStoreAccess(principal: AdminPrincipal, storeId: unknown): void {
  if (principal.store_id === "*") return;
  if (typeof storeId !== "string" || principal.store_id.toLowerCase() !== storeId.toLowerCase()) {
    throw crmError("FORBIDDEN", GatewayMessages.wrongStore);
  }
}
