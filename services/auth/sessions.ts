/**
 * Profile sessions: issuing a session (access + refresh token), rotating refresh tokens with a short
 * reuse grace for concurrent tabs, authenticating access tokens against the live session record (so a
 * revocation takes effect on the very next request), listing and revoking sessions.
 */
import type { AuthToken, SessionInfo, SessionPrincipal } from "../../shared/contracts/auth";
import { normalizeEmail } from "../../shared/contracts/common";
import { uuidv7 } from "../../shared/ids";
import { everyMatching, type AuthStore, type RefreshTokenDoc, type SessionDoc } from "./auth.store";
import { AuthErrors } from "./auth.errors";
import type { KeyRing } from "./keys";
import type { AuthLimits } from "./limits";
import { type AccessClaims, AccessTokenVerifier, newRefreshToken, seal, sha256, signAccessToken, unseal } from "./tokens";

/** How long an expired or revoked session record is kept before the purge deletes it. */
const SESSION_RETENTION_SECONDS = 24 * 60 * 60;
export interface SessionDeps {
  store: AuthStore;
  keys: KeyRing;
  limits: AuthLimits;
  now: () => number;
  accessTokenTtl: number;
  refreshTokenTtl: number;
}

export function toSessionInfo(doc: SessionDoc): SessionInfo {
  return { id: doc._id, created_at: doc.created_at, expires_at: doc.expires_at, last_used_at: doc.last_used_at, is_verified: doc.is_verified };
}

export function toPrincipal(doc: SessionDoc): SessionPrincipal {
  return { store_id: doc.store_id, profile_id: doc.profile_id, session_id: doc._id, is_verified: doc.is_verified };
}

/** Neither revoked nor expired. */
const isActive = (doc: SessionDoc, now: number) => doc.revoked_at === null && doc.expires_at > now;

const newestFirst = (a: SessionInfo, b: SessionInfo) => b.created_at - a.created_at || (a.id < b.id ? 1 : -1);

/** The session's e-mail field: set (normalized, or null) only when the issuer said it. */
const emailField = (email: string | null | undefined): Pick<SessionDoc, "email"> => (email === undefined ? {} : { email: email === null ? null : normalizeEmail(email) });

/** What binds a sealed grace pair to the token record it was stored on. */
const sealContext = (doc: RefreshTokenDoc) => `refresh-grace:${doc.store_id}:${doc.session_id}:${doc.hash}`;

export class Sessions {
  private readonly accessTokens: AccessTokenVerifier;

  constructor(private readonly deps: SessionDeps) {
    this.accessTokens = new AccessTokenVerifier(deps.keys);
  }

  /** A new session for a profile (and the e-mail it has now, when the issuer says it) -> its first token pair. */
  async issue(input: { store_id: string; profile_id: string; is_verified: boolean; email?: string | null }): Promise<AuthToken> {
    const now = this.deps.now();
    const session: SessionDoc = {
      _id: uuidv7(),
      store_id: input.store_id,
      profile_id: input.profile_id,
      is_verified: input.is_verified,
      ...emailField(input.email),
      created_at: now,
      expires_at: now + this.deps.refreshTokenTtl,
      last_used_at: null,
      revoked_at: null,
    };
    await this.deps.store.sessions.insertOne(session);
    const { token, doc } = await this.storeRefreshToken(session, now);
    if (!input.is_verified) await this.dropOldestUnverified(input.store_id, input.profile_id);
    return this.tokenPair(session, token, doc.expires_at, now);
  }

  /**
   * Deletes (not marks revoked: they would pile up in the profile's index range) the profile's unverified
   * sessions past the newest `unverifiedSessionsPerProfile`, with their refresh tokens.
   */
  private async dropOldestUnverified(storeId: string, profileId: string): Promise<void> {
    const kept = this.deps.limits.unverifiedSessionsPerProfile;
    const newest = await this.deps.store.sessions.find(
      { store_id: storeId, profile_id: profileId, is_verified: false, revoked_at: null },
      { sort: { created_at: -1, _id: -1 }, limit: kept + 10 },
    );
    const dropped = newest.slice(kept).map((s) => s._id);
    if (dropped.length === 0) return;
    await this.deps.store.refreshTokens.deleteMany({ store_id: storeId, session_id: { $in: dropped } });
    await this.deps.store.sessions.deleteMany({ _id: { $in: dropped }, store_id: storeId });
  }

  /**
   * Rotates a refresh token. A token used again within the grace answers the pair its first use
   * answered; used again after that, it revokes the whole session.
   */
  async refresh(input: { store_id: string; refresh_token: string }): Promise<AuthToken> {
    const { store } = this.deps;
    const now = this.deps.now();
    const hash = sha256(input.refresh_token);
    const doc = await store.refreshTokens.findOne({ hash, store_id: input.store_id });
    if (!doc) throw AuthErrors.invalidRefreshToken();
    const session = await this.liveSession(input.store_id, doc.session_id, now);
    if (!session) throw AuthErrors.invalidRefreshToken();

    if (doc.used_at === null) {
      if (doc.expires_at <= now) throw AuthErrors.invalidRefreshToken();
      // The successor exists before the old token is claimed, so whatever pair we answer is usable.
      const next = await this.storeRefreshToken(session, now);
      const pair = await this.tokenPair(session, next.token, next.doc.expires_at, now);
      const claimed = await store.refreshTokens.findOneAndUpdate(
        { _id: doc._id, store_id: input.store_id, used_at: null },
        { $set: { used_at: now, grace_until: now + this.deps.limits.refreshGraceSeconds, next: seal(this.deps.keys, pair, sealContext(doc)) } },
      );
      if (claimed) {
        await store.sessions.updateOne({ _id: session._id, store_id: session.store_id }, { $set: { expires_at: next.doc.expires_at, last_used_at: now } });
        return pair;
      }
      // A concurrent refresh won the claim: drop our successor and answer like a reuse.
      await store.refreshTokens.deleteOne({ _id: next.doc._id, store_id: input.store_id });
      const winner = await store.refreshTokens.findOne({ _id: doc._id, store_id: input.store_id });
      if (!winner) throw AuthErrors.invalidRefreshToken();
      return this.answerReuse(winner, now);
    }
    return this.answerReuse(doc, now);
  }

  private async answerReuse(doc: RefreshTokenDoc, now: number): Promise<AuthToken> {
    if (doc.grace_until !== null && now <= doc.grace_until && doc.next) {
      const pair = unseal<AuthToken>(this.deps.keys, doc.next, sealContext(doc));
      if (pair) return pair;
    }
    await this.revokeIds(doc.store_id, [doc.session_id], now);
    throw AuthErrors.invalidRefreshToken();
  }

  /** The live session of a valid access token of `store_id`, its last use noted; 401 otherwise. */
  async sessionOfToken(input: { store_id: string; access_token: string }): Promise<SessionDoc> {
    const now = this.deps.now();
    const claims = await this.claimsOf(input, now);
    const session = await this.deps.store.sessions.findOne({ _id: claims.session_id, store_id: input.store_id });
    return this.accept(session, claims, now);
  }

  /**
   * Like `sessionOfToken`, with the active sessions of its profile (newest first): both come from one read
   * of the profile's sessions, where reading the session and then the list took two.
   */
  async sessionOfTokenWithProfileSessions(input: { store_id: string; access_token: string }): Promise<{ session: SessionDoc; profileSessions: SessionInfo[] }> {
    const now = this.deps.now();
    const claims = await this.claimsOf(input, now);
    const docs = await everyMatching(this.deps.store.sessions, { store_id: input.store_id, profile_id: claims.profile_id });
    const session = await this.accept(docs.find((doc) => doc._id === claims.session_id) ?? null, claims, now);
    const profileSessions = docs.flatMap((doc) => (doc._id === session._id ? [session] : isActive(doc, now) ? [doc] : [])).map(toSessionInfo);
    return { session, profileSessions: profileSessions.sort(newestFirst) };
  }

  private async claimsOf(input: { store_id: string; access_token: string }, now: number): Promise<AccessClaims> {
    const claims = await this.accessTokens.verify(input.access_token, input.store_id, now);
    if (!claims) throw AuthErrors.invalidToken();
    return claims;
  }

  /** The token's session if it is live and of the token's profile (401 otherwise), with its last use noted. */
  private async accept(session: SessionDoc | null, claims: AccessClaims, now: number): Promise<SessionDoc> {
    if (!session || !isActive(session, now) || session.profile_id !== claims.profile_id) throw AuthErrors.invalidToken();
    const staleBefore = now - this.deps.limits.lastUsedResolutionSeconds;
    if (session.last_used_at !== null && session.last_used_at > staleBefore) return session;
    await this.deps.store.sessions.updateOne(
      { _id: session._id, store_id: session.store_id, $or: [{ last_used_at: null }, { last_used_at: { $lte: staleBefore } }] },
      { $set: { last_used_at: now } },
    );
    return { ...session, last_used_at: now };
  }

  /** The active (not revoked, not expired) sessions of a profile, newest first. */
  async list(input: { store_id: string; profile_id: string }): Promise<SessionInfo[]> {
    const docs = await this.deps.store.sessions.find(
      { store_id: input.store_id, profile_id: input.profile_id, revoked_at: null, expires_at: { $gt: this.deps.now() } },
      { sort: { created_at: -1, _id: -1 }, limit: 1000 },
    );
    return docs.map(toSessionInfo);
  }

  /**
   * The active sessions of several profiles of one store, by profile id (newest first). Read by the index
   * prefix alone and the dead ones left out here: with a range on `expires_at` in the filter, the embedded
   * store weighs that index's range (the live sessions of every store) on every call, which costs more than
   * reading a profile's few dead sessions.
   */
  async listForProfiles(storeId: string, profileIds: string[]): Promise<Map<string, SessionInfo[]>> {
    const byProfile = new Map<string, SessionInfo[]>(profileIds.map((id) => [id, []]));
    if (profileIds.length === 0) return byProfile;
    const now = this.deps.now();
    for (const doc of await everyMatching(this.deps.store.sessions, { store_id: storeId, profile_id: { $in: profileIds } })) {
      if (isActive(doc, now)) byProfile.get(doc.profile_id)?.push(toSessionInfo(doc));
    }
    for (const list of byProfile.values()) list.sort(newestFirst);
    return byProfile;
  }

  /** Revokes one active session of a profile; 404 when the profile has no such session. */
  async revoke(input: { store_id: string; profile_id: string; session_id: string }): Promise<{ deleted: true }> {
    const now = this.deps.now();
    const session = await this.deps.store.sessions.findOne({
      _id: input.session_id,
      store_id: input.store_id,
      profile_id: input.profile_id,
      revoked_at: null,
      expires_at: { $gt: now },
    });
    if (!session) throw AuthErrors.sessionNotFound();
    await this.revokeIds(input.store_id, [session._id], now);
    return { deleted: true };
  }

  /** Revokes every active session of a profile (logout everywhere, merge). */
  async revokeAll(input: { store_id: string; profile_id: string }): Promise<{ revoked: number }> {
    const now = this.deps.now();
    const active = await this.deps.store.sessions.count({ store_id: input.store_id, profile_id: input.profile_id, revoked_at: null, expires_at: { $gt: now } });
    await this.deps.store.sessions.updateMany({ store_id: input.store_id, profile_id: input.profile_id, revoked_at: null }, { $set: { revoked_at: now } });
    await this.deps.store.refreshTokens.deleteMany({ store_id: input.store_id, profile_id: input.profile_id });
    return { revoked: active };
  }

  private async revokeIds(storeId: string, sessionIds: string[], now: number): Promise<void> {
    // expires_at moves to now too, so the purge (which walks the expires_at index) forgets it in a day.
    await this.deps.store.sessions.updateMany({ _id: { $in: sessionIds }, store_id: storeId, revoked_at: null }, { $set: { revoked_at: now, expires_at: now } });
    // Its refresh tokens (and any sealed grace pair) are of no further use.
    await this.deps.store.refreshTokens.deleteMany({ store_id: storeId, session_id: { $in: sessionIds } });
  }

  private async liveSession(storeId: string, sessionId: string, now: number): Promise<SessionDoc | null> {
    const session = await this.deps.store.sessions.findOne({ _id: sessionId, store_id: storeId });
    return session && isActive(session, now) ? session : null;
  }

  private async storeRefreshToken(session: SessionDoc, now: number): Promise<{ token: string; doc: RefreshTokenDoc }> {
    const token = newRefreshToken();
    const doc: RefreshTokenDoc = {
      _id: uuidv7(),
      store_id: session.store_id,
      session_id: session._id,
      profile_id: session.profile_id,
      hash: sha256(token),
      created_at: now,
      expires_at: now + this.deps.refreshTokenTtl,
      used_at: null,
      grace_until: null,
      next: null,
    };
    await this.deps.store.refreshTokens.insertOne(doc);
    return { token, doc };
  }

  private async tokenPair(session: SessionDoc, refreshToken: string, refreshExpiresAt: number, now: number): Promise<AuthToken> {
    const accessExpiresAt = now + this.deps.accessTokenTtl;
    const accessToken = await signAccessToken(
      this.deps.keys,
      { store_id: session.store_id, profile_id: session.profile_id, session_id: session._id },
      now,
      accessExpiresAt,
    );
    return {
      id: session._id,
      profile_id: session.profile_id,
      access_token: accessToken,
      refresh_token: refreshToken,
      token_type: "Bearer",
      access_expires_at: accessExpiresAt,
      refresh_expires_at: refreshExpiresAt,
      created_at: session.created_at,
      is_verified: session.is_verified,
    };
  }

  /**
   * Maintenance: forgets sealed grace pairs past their grace, refresh tokens past their expiry, and
   * sessions a day after they expired or were revoked (kept that long for the admin's view).
   */
  async purgeExpired(): Promise<void> {
    const now = this.deps.now();
    await this.deps.store.sessions.deleteMany({ expires_at: { $lt: now - SESSION_RETENTION_SECONDS } });
    await this.deps.store.refreshTokens.updateMany({ grace_until: { $lt: now }, next: { $ne: null } }, { $set: { next: null } });
    await this.deps.store.refreshTokens.deleteMany({ expires_at: { $lt: now } });
  }
}
