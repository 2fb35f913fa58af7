/**
 * The auth service's limits (all in one place) and the rate limiter that enforces them. Counters are
 * fixed windows kept in the auth database (`$inc` upsert on a key per window), so they hold across
 * instances; cooldowns are single documents claimed atomically.
 */
import { createHash } from "node:crypto";
import { isDuplicateKey, type Collection } from "../../shared/storage/port";
import type { LimitDoc } from "./auth.store";
import { AuthErrors } from "./auth.errors";

export interface WindowRule {
  limit: number;
  windowSeconds: number;
}

export interface AuthLimits {
  /** Magic codes live this long. */
  codeTtlSeconds: number;
  /** Wrong tries that burn a code. */
  codeMaxAttempts: number;
  /** A new code for the same e-mail no sooner than this after the last one. */
  codeCooldownSeconds: number;
  /**
   * Failed verifications per (store, e-mail, client IP): past this, that client may not try the e-mail
   * again this window. Keyed by IP too, so a stranger cannot lock a customer out of their own login.
   * A new code does not reset them.
   */
  verifyFailuresPerEmailIp: WindowRule;
  /**
   * Failed verifications per (store, e-mail) from anywhere: the ceiling on a distributed guessing attack
   * (each guess has a 1 in 1,000,000 chance). Past it, verification of that e-mail pauses for the window;
   * asking for codes does not.
   */
  verifyFailuresPerEmail: WindowRule;
  /** Code e-mails per client IP (per store). */
  sendsPerIp: WindowRule;
  /** Code e-mails per store. */
  sendsPerStore: WindowRule;
  /** Verification tries per client IP (per store). */
  verifiesPerIp: WindowRule;
  /** Verification tries per store (all clients): the ceiling of a guessing campaign against one store. */
  verifiesPerStore: WindowRule;
  /** A rotated refresh token used again within this many seconds answers the same new pair. */
  refreshGraceSeconds: number;
  /** `last_used_at` of sessions and API keys is written at most this often. */
  lastUsedResolutionSeconds: number;
  /**
   * Live unverified sessions a profile keeps (`connect` needs no proof, so anyone can open them): a new one
   * past this drops the oldest, and the profile's sessions stay few however often its address is connected.
   */
  unverifiedSessionsPerProfile: number;
}

export const DEFAULT_LIMITS: AuthLimits = {
  codeTtlSeconds: 10 * 60,
  codeMaxAttempts: 5,
  codeCooldownSeconds: 60,
  verifyFailuresPerEmailIp: { limit: 10, windowSeconds: 60 * 60 },
  verifyFailuresPerEmail: { limit: 50, windowSeconds: 60 * 60 },
  sendsPerIp: { limit: 20, windowSeconds: 60 * 60 },
  sendsPerStore: { limit: 1000, windowSeconds: 60 * 60 },
  verifiesPerIp: { limit: 60, windowSeconds: 60 * 60 },
  verifiesPerStore: { limit: 5000, windowSeconds: 60 * 60 },
  refreshGraceSeconds: 10,
  lastUsedResolutionSeconds: 60,
  unverifiedSessionsPerProfile: 20,
};

export type LimitBucket = "send-ip" | "send-store" | "verify-ip" | "verify-store" | "verify-fail" | "verify-fail-ip" | "cooldown";

/** A key that names the subject (an e-mail, an IP) without storing it in clear. */
function subjectKey(storeId: string, subject: string): string {
  return createHash("sha256").update(`${storeId}\n${subject}`, "utf8").digest("base64url").slice(0, 27);
}

export class RateLimiter {
  constructor(
    private readonly limits: Collection<LimitDoc>,
    private readonly now: () => number,
  ) {}

  private window(rule: WindowRule) {
    const now = this.now();
    const start = now - (now % rule.windowSeconds);
    return { now, start, end: start + rule.windowSeconds };
  }

  /** Counts one event; throws 429 (retryAfter = end of window) when the count goes over the limit. */
  async hit(storeId: string, bucket: LimitBucket, subject: string, rule: WindowRule): Promise<void> {
    const count = await this.increment(storeId, bucket, subject, rule);
    if (count > rule.limit) {
      const { now, end } = this.window(rule);
      throw AuthErrors.rateLimited(bucket, end - now);
    }
  }

  /** Counts one event without judging it (e.g. a failed verification). */
  async increment(storeId: string, bucket: LimitBucket, subject: string, rule: WindowRule): Promise<number> {
    const { start, end } = this.window(rule);
    const _id = `${bucket}:${subjectKey(storeId, subject)}:${start}`;
    for (let attempt = 0; ; attempt++) {
      try {
        const doc = await this.limits.findOneAndUpdate(
          { _id, store_id: storeId },
          { $inc: { count: 1 }, $setOnInsert: { window_start: start, expires_at: end } },
          { upsert: true, returnDocument: "after" },
        );
        return doc?.count ?? 1;
      } catch (err) {
        // Two instances upserting the same new window at once: the loser retries as an update.
        if (attempt === 0 && isDuplicateKey(err)) continue;
        throw err;
      }
    }
  }

  /** Throws 429 when the window's count has already reached the limit. */
  async check(storeId: string, bucket: LimitBucket, subject: string, rule: WindowRule): Promise<void> {
    const { now, start, end } = this.window(rule);
    const doc = await this.limits.findOne({ _id: `${bucket}:${subjectKey(storeId, subject)}:${start}`, store_id: storeId });
    if (doc && doc.count >= rule.limit) throw AuthErrors.rateLimited(bucket, end - now);
  }

  /**
   * Claims a cooldown for `subject`: succeeds when none is running, else throws 429 with the seconds
   * left. Answers the claim's timestamp, which `releaseCooldown` needs.
   */
  async claimCooldown(storeId: string, subject: string, seconds: number): Promise<number> {
    const now = this.now();
    const _id = `cooldown:${subjectKey(storeId, subject)}`;
    for (let attempt = 0; attempt < 3; attempt++) {
      const renewed = await this.limits.updateOne(
        { _id, store_id: storeId, expires_at: { $lte: now } },
        { $set: { window_start: now, expires_at: now + seconds, count: 1 } },
      );
      if (renewed.matched === 1) return now;
      try {
        await this.limits.insertOne({ _id, store_id: storeId, count: 1, window_start: now, expires_at: now + seconds });
        return now;
      } catch (err) {
        if (!isDuplicateKey(err)) throw err;
      }
      const running = await this.limits.findOne({ _id, store_id: storeId });
      if (running && running.expires_at > now) throw AuthErrors.rateLimited("cooldown", running.expires_at - now);
      // It expired between our update and insert: try again.
    }
    throw AuthErrors.rateLimited("cooldown", 1);
  }

  /** Gives back a cooldown claimed at `claimedAt` (when the action it guarded did not happen). */
  async releaseCooldown(storeId: string, subject: string, claimedAt: number): Promise<void> {
    await this.limits.deleteOne({ _id: `cooldown:${subjectKey(storeId, subject)}`, store_id: storeId, window_start: claimedAt });
  }
}
