/**
 * The links list mail carries, and the limits on sending it:
 *   - confirm tokens: random, single use, 7 days; only their sha256 is stored (on the membership);
 *   - unsubscribe tokens: `<membership id>.<HMAC>` under a key kept in this service's database, so any
 *     list mail's link works for as long as the membership exists and cannot be forged or moved to
 *     another store, list or membership;
 *   - `confirm_url` checks: https (http on localhost) on an allowed origin;
 *   - fixed-window counters (per address, per IP) kept in this service's database.
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import { isDuplicateKey, type Collection } from "../../shared/storage/port";
import { ProfileListsErrors } from "./profile-lists.errors";
import type { LimitDoc, SecretDoc } from "./profile-lists.store";

export const CONFIRM_TOKEN_TTL_SECONDS = 7 * 24 * 60 * 60;

export function newConfirmToken(): { token: string; hash: string } {
  const token = randomBytes(32).toString("base64url");
  return { token, hash: hashToken(token) };
}

export function hashToken(token: string): string {
  return createHash("sha256").update(token, "utf8").digest("base64url");
}

/** The key that signs unsubscribe links: made by the first instance that needs it, read by the others. */
export async function linkSecret(secrets: Collection<SecretDoc>): Promise<string> {
  const found = await secrets.findOne({ _id: "unsubscribe-links" });
  if (found) return found.secret;
  try {
    await secrets.insertOne({ _id: "unsubscribe-links", secret: randomBytes(32).toString("base64url") });
  } catch (err) {
    if (!isDuplicateKey(err)) throw err;
  }
  const made = await secrets.findOne({ _id: "unsubscribe-links" });
  if (!made) throw new Error("unsubscribe link key missing");
  return made.secret;
}

export class UnsubscribeLinks {
  constructor(private readonly secret: string) {}

  private mac(storeId: string, listId: string, membershipId: string): string {
    return createHmac("sha256", this.secret).update(`unsubscribe\n${storeId}\n${listId}\n${membershipId}`).digest("base64url");
  }

  token(storeId: string, listId: string, membershipId: string): string {
    return `${membershipId}.${this.mac(storeId, listId, membershipId)}`;
  }

  /** The membership id a token names, when it was made for this store and list; null otherwise. */
  membershipOf(token: string, storeId: string, listId: string): string | null {
    const [membershipId, mac, extra] = token.split(".");
    if (!membershipId || !mac || extra !== undefined) return null;
    const expected = Buffer.from(this.mac(storeId, listId, membershipId));
    const given = Buffer.from(mac);
    return expected.length === given.length && timingSafeEqual(expected, given) ? membershipId : null;
  }
}

/** The origins `confirm_url` may point at: LINK_ORIGINS, else PUBLIC_URL's origin plus CORS_ORIGINS. */
export function allowedOrigins(settings: { PUBLIC_URL?: string; LINK_ORIGINS?: string; CORS_ORIGINS?: string; PORT: number }): Set<string> {
  const list = (text: string | undefined) =>
    (text ?? "")
      .split(",")
      .map((s) => s.trim())
      .filter(Boolean);
  const origins = settings.LINK_ORIGINS ? list(settings.LINK_ORIGINS) : [publicUrlOf(settings), ...list(settings.CORS_ORIGINS)];
  const out = new Set<string>();
  for (const origin of origins) {
    try {
      out.add(new URL(origin).origin);
    } catch {
      // not a URL (e.g. "*"): never an allowed link origin
    }
  }
  return out;
}

export function publicUrlOf(settings: { PUBLIC_URL?: string; PORT: number }): string {
  return (settings.PUBLIC_URL ?? `http://localhost:${settings.PORT}`).replace(/\/+$/, "");
}

const LOCAL_HOSTS = new Set(["localhost", "127.0.0.1", "[::1]"]);

/** The URL when it is https (http on localhost) on an allowed origin; a 400 naming `field` otherwise. */
export function checkLink(url: string, origins: Set<string>, field: string): URL {
  // The URL parser drops tabs and line breaks without a word: a link that held them is not what was meant.
  // biome-ignore lint/suspicious/noControlCharactersInRegex: it looks for control characters
  if (/[\u0000-\u001f\u007f]/.test(url)) throw ProfileListsErrors.linkHasControlCharacters(field);
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw ProfileListsErrors.linkNotAllowed(field);
  }
  const secure = parsed.protocol === "https:" || (parsed.protocol === "http:" && LOCAL_HOSTS.has(parsed.hostname));
  if (!secure || parsed.username || parsed.password || !origins.has(parsed.origin)) throw ProfileListsErrors.linkNotAllowed(field);
  return parsed;
}

/** `confirm_url` with `token` and `profile_list_id` added to its query. */
export function confirmLink(base: URL, token: string, listId: string): string {
  const url = new URL(base.href);
  url.searchParams.set("token", token);
  url.searchParams.set("profile_list_id", listId);
  return url.href;
}

export interface WindowRule {
  limit: number;
  windowSeconds: number;
}

export const MAIL_LIMITS = {
  /** Confirmation mails to one address (per store). */
  perAddress: { limit: 5, windowSeconds: 60 * 60 },
  /** Confirmation mails asked for from one client IP (per store). */
  perIp: { limit: 30, windowSeconds: 60 * 60 },
  /** A pending membership's mail is re-sent at most this often. */
  resendSeconds: 60,
};

/** Fixed-window counters on the storage port (`$inc` upsert on a key per window): they hold across instances. */
export class MailLimiter {
  constructor(
    private readonly limits: Collection<LimitDoc>,
    private readonly now: () => number,
  ) {}

  /** Counts one mail for `subject`; throws 429 (retryAfter = end of window) past the limit. */
  async hit(storeId: string, bucket: "address" | "ip", subject: string, rule: WindowRule): Promise<void> {
    const now = this.now();
    const start = now - (now % rule.windowSeconds);
    const end = start + rule.windowSeconds;
    const key = createHash("sha256").update(`${storeId}\n${subject.toLowerCase()}`).digest("base64url").slice(0, 27);
    const _id = `${bucket}:${key}:${start}`;
    let count = 1;
    for (let attempt = 0; ; attempt++) {
      try {
        const doc = await this.limits.findOneAndUpdate(
          { _id, store_id: storeId },
          { $inc: { count: 1 }, $setOnInsert: { window_start: start, expires_at: end } },
          { upsert: true, returnDocument: "after" },
        );
        count = doc?.count ?? 1;
        break;
      } catch (err) {
        if (attempt === 0 && isDuplicateKey(err)) continue; // two instances opened the same window
        throw err;
      }
    }
    if (count > rule.limit) throw ProfileListsErrors.rateLimited(end - now);
  }
}
