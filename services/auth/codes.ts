/**
 * Magic login codes: six digits mailed to an address, stored only as an HMAC, single use, short-lived,
 * burnt after a few wrong tries, superseded by a newer code, and guarded by cooldowns and rate limits
 * (per e-mail, per IP, per store) that hold across instances.
 */
import { createHmac, randomInt, timingSafeEqual } from "node:crypto";
import type { VerificationCodeInfo } from "../../shared/contracts/auth";
import { normalizeEmail } from "../../shared/contracts/common";
import { isRecipientRefused } from "../../shared/contracts/mailer";
import { rateLimitSubject } from "../../shared/net";
import { uuidv7 } from "../../shared/ids";
import { everyMatching, type AuthStore, type CodeDoc } from "./auth.store";
import { AuthErrors } from "./auth.errors";
import type { KeyRing } from "./keys";
import type { AuthLimits, RateLimiter } from "./limits";

export interface CodeDeps {
  store: AuthStore;
  keys: KeyRing;
  limits: AuthLimits;
  limiter: RateLimiter;
  now: () => number;
}

/** How the code reaches its owner (the mailer service's `sendMagicCode`). */
export type MagicCodeMailer = (message: { store_id: string; to: string; code: string; expires_in_minutes: number }) => Promise<unknown>;

export function toCodeInfo(doc: CodeDoc): VerificationCodeInfo {
  return { id: doc._id, created_at: doc.created_at, expires_at: doc.expires_at, used: doc.used_at !== null, attempts: doc.attempts };
}

/** Six digits, uniformly drawn, leading zeros kept. */
export function newCode(): string {
  return String(randomInt(0, 1_000_000)).padStart(6, "0");
}

export class MagicCodes {
  constructor(private readonly deps: CodeDeps) {}

  private hash(kid: string, storeId: string, email: string, code: string): Buffer | null {
    const key = this.deps.keys.byKid.get(kid);
    if (!key) return null;
    return createHmac("sha256", key.codes).update(`${storeId}\n${email}\n${code}`, "utf8").digest();
  }

  /**
   * Issues a code for an e-mail and mails it. Answers `{ sent: true }` for any address. If the mail
   * cannot be sent the code is deleted and the error is 503 (400 on the `email` field when the mail
   * server refuses the address for good).
   */
  async request(input: { store_id: string; email: string; ip?: string }, mail: MagicCodeMailer): Promise<{ sent: true }> {
    const { store, limits, limiter } = this.deps;
    const storeId = input.store_id;
    const email = normalizeEmail(input.email);
    if (input.ip) await limiter.hit(storeId, "send-ip", rateLimitSubject(input.ip), limits.sendsPerIp);
    await limiter.hit(storeId, "send-store", "*", limits.sendsPerStore);
    const claimedAt = await limiter.claimCooldown(storeId, email, limits.codeCooldownSeconds);

    const now = this.deps.now();
    const code = newCode();
    const kid = this.deps.keys.current.kid;
    const doc: CodeDoc = {
      _id: uuidv7(),
      store_id: storeId,
      email,
      code_hash: this.hash(kid, storeId, email, code)!.toString("base64url"),
      kid,
      created_at: now,
      expires_at: now + limits.codeTtlSeconds,
      used_at: null,
      attempts: 0,
    };
    await store.codes.insertOne(doc);
    try {
      await mail({ store_id: storeId, to: input.email, code, expires_in_minutes: Math.max(1, Math.ceil(limits.codeTtlSeconds / 60)) });
    } catch (err) {
      // Not left usable-but-unsent; and the caller may ask again at once.
      await store.codes.deleteOne({ _id: doc._id, store_id: storeId });
      await limiter.releaseCooldown(storeId, email, claimedAt);
      // The mail server refusing the address for good is the caller's to fix (400); anything else is ours.
      throw isRecipientRefused(err) ? AuthErrors.recipientRefused() : AuthErrors.mailUnavailable();
    }
    // The new code supersedes every older unused one.
    await store.codes.deleteMany({ store_id: storeId, email, used_at: null, _id: { $ne: doc._id } });
    return { sent: true };
  }

  /**
   * Checks a code: right -> `{ verified: true }` and the code is used up; wrong, expired, used, burnt
   * or unknown -> 401; too many failures for the e-mail or verifications from the IP -> 429.
   */
  async verify(input: { store_id: string; email: string; code: string; ip?: string }): Promise<{ verified: true }> {
    const { store, limits, limiter } = this.deps;
    const storeId = input.store_id;
    const email = normalizeEmail(input.email);
    const client = input.ip ? rateLimitSubject(input.ip) : "-";
    const emailFromIp = `${email}\n${client}`;
    if (input.ip) await limiter.hit(storeId, "verify-ip", client, limits.verifiesPerIp);
    await limiter.hit(storeId, "verify-store", "*", limits.verifiesPerStore);
    await limiter.check(storeId, "verify-fail-ip", emailFromIp, limits.verifyFailuresPerEmailIp);
    await limiter.check(storeId, "verify-fail", email, limits.verifyFailuresPerEmail);

    const now = this.deps.now();
    const fail = async () => {
      await limiter.increment(storeId, "verify-fail-ip", emailFromIp, limits.verifyFailuresPerEmailIp);
      await limiter.increment(storeId, "verify-fail", email, limits.verifyFailuresPerEmail);
      return AuthErrors.invalidCode();
    };
    const [latest] = await store.codes.find({ store_id: storeId, email, used_at: null }, { sort: { created_at: -1, _id: -1 }, limit: 1 });
    if (!latest || latest.expires_at <= now || latest.attempts >= limits.codeMaxAttempts) throw await fail();
    // Claim a try before comparing, so parallel guesses cannot exceed the limit.
    const claimed = await store.codes.findOneAndUpdate(
      { _id: latest._id, store_id: storeId, used_at: null, attempts: { $lt: limits.codeMaxAttempts } },
      { $inc: { attempts: 1 } },
    );
    if (!claimed) throw await fail();
    const given = this.hash(claimed.kid, storeId, email, input.code);
    const expected = Buffer.from(claimed.code_hash, "base64url");
    if (!given || given.length !== expected.length || !timingSafeEqual(given, expected)) throw await fail();
    const used = await store.codes.updateOne({ _id: claimed._id, store_id: storeId, used_at: null }, { $set: { used_at: now } });
    if (used.modified !== 1) throw await fail();
    return { verified: true };
  }

  /** Metadata of the codes of an e-mail (never a code value), newest first. */
  async list(input: { store_id: string; email: string }): Promise<VerificationCodeInfo[]> {
    const docs = await this.deps.store.codes.find({ store_id: input.store_id, email: normalizeEmail(input.email) }, { sort: { created_at: -1, _id: -1 }, limit: 100 });
    return docs.map(toCodeInfo);
  }

  /** Code metadata of several e-mails of one store, by normalized e-mail (newest first). */
  async listForEmails(storeId: string, emails: string[]): Promise<Map<string, VerificationCodeInfo[]>> {
    const normalized = [...new Set(emails.map(normalizeEmail))];
    const byEmail = new Map<string, VerificationCodeInfo[]>(normalized.map((e) => [e, []]));
    if (normalized.length === 0) return byEmail;
    for (const doc of await everyMatching(this.deps.store.codes, { store_id: storeId, email: { $in: normalized } })) {
      byEmail.get(doc.email)?.push(toCodeInfo(doc));
    }
    for (const list of byEmail.values()) list.sort((a, b) => b.created_at - a.created_at || (a.id < b.id ? 1 : -1));
    return byEmail;
  }

  async deleteAll(input: { store_id: string; email: string }): Promise<{ deleted: number }> {
    const deleted = await this.deps.store.codes.deleteMany({ store_id: input.store_id, email: normalizeEmail(input.email) });
    return { deleted };
  }

  /** Maintenance: forgets codes a day after they expired. */
  async purgeExpired(): Promise<void> {
    await this.deps.store.codes.deleteMany({ expires_at: { $lt: this.deps.now() - 24 * 60 * 60 } });
  }
}
