/** auth sessions: issueSession, authenticate, refreshSession (rotation, grace, reuse), list and revoke. */
import type { AuthToken, SessionInfo, SessionPrincipal } from "../../../shared/contracts/auth";
import { uuidv7 } from "../../../shared/ids";
import { dumpAuthDb, rejection, startAuth, type AuthHarness } from "./support";

let h: AuthHarness;
const call = <T>(action: string, params: unknown) => h.broker.call<T, unknown>(`auth.${action}`, params);

beforeAll(async () => {
  h = await startAuth({ mailer: false });
});
afterAll(async () => {
  await h.broker.stop();
});

function newSession(storeId = uuidv7(), profileId = uuidv7(), isVerified = true) {
  return call<AuthToken>("issueSession", { store_id: storeId, profile_id: profileId, is_verified: isVerified }).then((token) => ({ token, storeId, profileId }));
}

describe("auth.issueSession", () => {
  it("answers an AuthToken with a JWT access token and an opaque 256-bit refresh token", async () => {
    const now = h.clock.now();
    const { token, profileId } = await newSession(undefined, undefined, false);
    expect(token).toEqual({
      id: expect.any(String),
      profile_id: profileId,
      access_token: expect.stringMatching(/^[\w-]+\.[\w-]+\.[\w-]+$/),
      refresh_token: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/),
      token_type: "Bearer",
      access_expires_at: now + 900,
      refresh_expires_at: now + 2592000,
      created_at: now,
      is_verified: false,
    });
  });

  it("signs the access token with sub, sid, aud store:<id>, iss crm, exp and a kid header", async () => {
    const { token, storeId, profileId } = await newSession();
    const [header, payload] = token.access_token
      .split(".")
      .slice(0, 2)
      .map((part) => JSON.parse(Buffer.from(part, "base64url").toString()));
    expect(header).toMatchObject({ alg: "HS256", kid: "k1" });
    expect(payload).toMatchObject({ sub: profileId, sid: token.id, aud: `store:${storeId}`, iss: "crm", exp: token.access_expires_at });
  });

  it("stores no token value, only hashes", async () => {
    const { token } = await newSession();
    const stored = await dumpAuthDb(h.db());
    expect(stored).not.toContain(token.refresh_token);
    expect(stored).not.toContain(token.access_token);
  });
});

describe("auth.authenticate", () => {
  it("answers the session principal for a valid token of the store", async () => {
    const { token, storeId, profileId } = await newSession();
    const principal = await call<SessionPrincipal>("authenticate", { store_id: storeId, access_token: token.access_token });
    expect(principal).toEqual({ store_id: storeId, profile_id: profileId, session_id: token.id, is_verified: true });
  });

  it("refuses a token on another store with 401", async () => {
    const { token } = await newSession();
    const err = await rejection(call("authenticate", { store_id: uuidv7(), access_token: token.access_token }));
    expect(err).toMatchObject({ type: "UNAUTHENTICATED", code: 401 });
  });

  it("refuses an expired, tampered or foreign-key token with 401", async () => {
    const { token, storeId } = await newSession();
    const [head, body, sig] = token.access_token.split(".");
    const forgedBody = Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(body, "base64url").toString()), sub: uuidv7() })).toString("base64url");
    for (const bad of [`${head}.${forgedBody}.${sig}`, `${head}.${body}.${sig.slice(0, -2)}AA`, "not-a-jwt"]) {
      expect(await rejection(call("authenticate", { store_id: storeId, access_token: bad }))).toMatchObject({ type: "UNAUTHENTICATED" });
    }
    h.clock.advance(901);
    expect(await rejection(call("authenticate", { store_id: storeId, access_token: token.access_token }))).toMatchObject({ type: "UNAUTHENTICATED" });
  });

  it("refuses a revoked session on the very next request", async () => {
    const { token, storeId, profileId } = await newSession();
    await call("authenticate", { store_id: storeId, access_token: token.access_token });
    await expect(call("revokeSession", { store_id: storeId, profile_id: profileId, session_id: token.id })).resolves.toEqual({ deleted: true });
    expect(await rejection(call("authenticate", { store_id: storeId, access_token: token.access_token }))).toMatchObject({ type: "UNAUTHENTICATED" });
    expect(await rejection(call("refreshSession", { store_id: storeId, refresh_token: token.refresh_token }))).toMatchObject({ type: "UNAUTHENTICATED" });
  });

  it("writes last_used_at at most once a minute", async () => {
    const { token, storeId, profileId } = await newSession();
    const lastUsed = async () => (await call<SessionInfo[]>("listSessions", { store_id: storeId, profile_id: profileId }))[0].last_used_at;
    expect(await lastUsed()).toBeNull();
    const first = h.clock.now();
    await call("authenticate", { store_id: storeId, access_token: token.access_token });
    expect(await lastUsed()).toBe(first);
    h.clock.advance(30);
    await call("authenticate", { store_id: storeId, access_token: token.access_token });
    expect(await lastUsed()).toBe(first);
    h.clock.advance(31);
    await call("authenticate", { store_id: storeId, access_token: token.access_token });
    expect(await lastUsed()).toBe(first + 61);
  });
});

describe("auth.refreshSession", () => {
  it("rotates the refresh token and answers a new pair for the same session", async () => {
    const { token, storeId } = await newSession();
    h.clock.advance(100);
    const next = await call<AuthToken>("refreshSession", { store_id: storeId, refresh_token: token.refresh_token });
    expect(next.id).toBe(token.id);
    expect(next.refresh_token).not.toBe(token.refresh_token);
    expect(next.access_token).not.toBe(token.access_token);
    expect(next.refresh_expires_at).toBe(h.clock.now() + 2592000);
    await expect(call("authenticate", { store_id: storeId, access_token: next.access_token })).resolves.toMatchObject({ session_id: token.id });
    const again = await call<AuthToken>("refreshSession", { store_id: storeId, refresh_token: next.refresh_token });
    expect(again.id).toBe(token.id);
  });

  it("answers a different access token on a refresh in the same second (each has its own jti)", async () => {
    const { token, storeId } = await newSession();
    const next = await call<AuthToken>("refreshSession", { store_id: storeId, refresh_token: token.refresh_token });
    expect(next.access_expires_at).toBe(token.access_expires_at);
    expect(next.access_token).not.toBe(token.access_token);
  });

  it("answers the same new pair to concurrent refreshes with one token (tabs)", async () => {
    const { token, storeId } = await newSession();
    const pairs = await Promise.all([1, 2, 3].map(() => call<AuthToken>("refreshSession", { store_id: storeId, refresh_token: token.refresh_token })));
    expect(pairs[1]).toEqual(pairs[0]);
    expect(pairs[2]).toEqual(pairs[0]);
    // One successor was kept: the losers of the race dropped theirs.
    await expect(h.db().collection("refresh_tokens").count({ store_id: storeId, session_id: token.id })).resolves.toBe(2);
    await expect(call("refreshSession", { store_id: storeId, refresh_token: pairs[0].refresh_token })).resolves.toMatchObject({ id: token.id });
  });

  it("answers the same pair to a reuse within the 10 s grace, keeping it only sealed", async () => {
    const { token, storeId } = await newSession();
    const first = await call<AuthToken>("refreshSession", { store_id: storeId, refresh_token: token.refresh_token });
    h.clock.advance(9);
    await expect(call("refreshSession", { store_id: storeId, refresh_token: token.refresh_token })).resolves.toEqual(first);
    const stored = await dumpAuthDb(h.db());
    expect(stored).not.toContain(first.refresh_token);
    expect(stored).not.toContain(first.access_token);
  });

  it("revokes the whole session when a rotated token is reused after the grace", async () => {
    const { token, storeId, profileId } = await newSession();
    const first = await call<AuthToken>("refreshSession", { store_id: storeId, refresh_token: token.refresh_token });
    h.clock.advance(11);
    expect(await rejection(call("refreshSession", { store_id: storeId, refresh_token: token.refresh_token }))).toMatchObject({ type: "UNAUTHENTICATED", code: 401 });
    expect(await rejection(call("authenticate", { store_id: storeId, access_token: first.access_token }))).toMatchObject({ type: "UNAUTHENTICATED" });
    expect(await rejection(call("refreshSession", { store_id: storeId, refresh_token: first.refresh_token }))).toMatchObject({ type: "UNAUTHENTICATED" });
    await expect(call("listSessions", { store_id: storeId, profile_id: profileId })).resolves.toEqual([]);
  });

  it("forgets the sealed pair once the grace has passed", async () => {
    const { token, storeId } = await newSession();
    await call<AuthToken>("refreshSession", { store_id: storeId, refresh_token: token.refresh_token });
    h.clock.advance(11);
    const auth = h.broker.getLocalService("auth") as unknown as { auth: { purgeExpired(): Promise<void> } };
    await auth.auth.purgeExpired();
    const docs = await h
      .db()
      .collection("refresh_tokens")
      .find({ store_id: storeId, used_at: { $ne: null } });
    expect(docs).toHaveLength(1);
    expect(docs[0].next).toBeNull();
  });

  it("deletes session records a day after they were revoked, and keeps live ones", async () => {
    const revoked = await newSession();
    const live = await newSession(revoked.storeId);
    await call("revokeSession", { store_id: revoked.storeId, profile_id: revoked.profileId, session_id: revoked.token.id });
    const auth = h.broker.getLocalService("auth") as unknown as { auth: { purgeExpired(): Promise<void> } };
    h.clock.advance(24 * 60 * 60 + 1);
    await auth.auth.purgeExpired();
    const left = await h.db().collection("sessions").find({ store_id: revoked.storeId });
    expect(left.map((d) => d._id)).toEqual([live.token.id]);
  });

  it("refuses a refresh token on another store, an unknown one and an expired one with 401", async () => {
    const { token, storeId } = await newSession();
    expect(await rejection(call("refreshSession", { store_id: uuidv7(), refresh_token: token.refresh_token }))).toMatchObject({ type: "UNAUTHENTICATED" });
    expect(await rejection(call("refreshSession", { store_id: storeId, refresh_token: "x".repeat(43) }))).toMatchObject({ type: "UNAUTHENTICATED" });
    // The wrong-store attempt did not burn the token.
    const next = await call<AuthToken>("refreshSession", { store_id: storeId, refresh_token: token.refresh_token });
    h.clock.advance(2592001);
    expect(await rejection(call("refreshSession", { store_id: storeId, refresh_token: next.refresh_token }))).toMatchObject({ type: "UNAUTHENTICATED" });
  });

  it("rejects a value of the wrong type before it reaches storage", async () => {
    const err = await rejection(call("refreshSession", { store_id: uuidv7(), refresh_token: { $ne: null } }));
    expect(err).toMatchObject({ type: "VALIDATION_ERROR" });
  });
});

describe("auth.listSessions / revokeSession / revokeProfileSessions", () => {
  it("lists a profile's active sessions as metadata only, newest first", async () => {
    const storeId = uuidv7();
    const profileId = uuidv7();
    const a = await newSession(storeId, profileId, false);
    h.clock.advance(1);
    const b = await newSession(storeId, profileId, true);
    await newSession(storeId, uuidv7());
    await newSession(uuidv7(), profileId);
    const list = await call<SessionInfo[]>("listSessions", { store_id: storeId, profile_id: profileId });
    expect(list.map((s) => s.id)).toEqual([b.token.id, a.token.id]);
    expect(Object.keys(list[0]).sort()).toEqual(["created_at", "expires_at", "id", "is_verified", "last_used_at"]);
    expect(list[1]).toEqual({ id: a.token.id, created_at: a.token.created_at, expires_at: a.token.refresh_expires_at, last_used_at: null, is_verified: false });
  });

  it("keeps the newest 20 unverified sessions of a profile (anyone can connect an address), dropping older ones whole; verified ones are not counted", async () => {
    const storeId = uuidv7();
    const profileId = uuidv7();
    const verified = await newSession(storeId, profileId, true);
    const unverified: AuthToken[] = [];
    for (let i = 0; i < 23; i++) {
      h.clock.advance(1);
      unverified.push((await newSession(storeId, profileId, false)).token);
    }
    const list = await call<SessionInfo[]>("listSessions", { store_id: storeId, profile_id: profileId });
    expect(list.map((s) => s.id)).toEqual([
      ...unverified
        .slice(3)
        .reverse()
        .map((t) => t.id),
      verified.token.id,
    ]);
    for (const dropped of unverified.slice(0, 3)) {
      expect(await rejection(call("authenticate", { store_id: storeId, access_token: dropped.access_token }))).toMatchObject({ code: 401 });
      expect(await rejection(call("refreshSession", { store_id: storeId, refresh_token: dropped.refresh_token }))).toMatchObject({ code: 401 });
    }
    await expect(call("authenticate", { store_id: storeId, access_token: unverified[3].access_token })).resolves.toMatchObject({ session_id: unverified[3].id });
    // Dropped, not marked revoked: nothing of them is left to pile up.
    expect(await dumpAuthDb(h.db())).not.toContain(unverified[0].id);
  });

  it("answers 404 when the profile has no such active session", async () => {
    const { token, storeId, profileId } = await newSession();
    expect(await rejection(call("revokeSession", { store_id: storeId, profile_id: uuidv7(), session_id: token.id }))).toMatchObject({ type: "NOT_FOUND", code: 404 });
    expect(await rejection(call("revokeSession", { store_id: uuidv7(), profile_id: profileId, session_id: token.id }))).toMatchObject({ type: "NOT_FOUND" });
    await call("revokeSession", { store_id: storeId, profile_id: profileId, session_id: token.id });
    expect(await rejection(call("revokeSession", { store_id: storeId, profile_id: profileId, session_id: token.id }))).toMatchObject({ type: "NOT_FOUND" });
  });

  it("revokes every session of a profile at once, and only that profile's", async () => {
    const storeId = uuidv7();
    const profileId = uuidv7();
    const a = await newSession(storeId, profileId);
    const b = await newSession(storeId, profileId);
    const other = await newSession(storeId);
    await expect(call("revokeProfileSessions", { store_id: storeId, profile_id: profileId })).resolves.toEqual({ revoked: 2 });
    for (const s of [a, b]) {
      expect(await rejection(call("authenticate", { store_id: storeId, access_token: s.token.access_token }))).toMatchObject({ type: "UNAUTHENTICATED" });
      expect(await rejection(call("refreshSession", { store_id: storeId, refresh_token: s.token.refresh_token }))).toMatchObject({ type: "UNAUTHENTICATED" });
    }
    await expect(call("authenticate", { store_id: storeId, access_token: other.token.access_token })).resolves.toMatchObject({ profile_id: other.profileId });
  });

  it("no longer lists or authenticates a session past its expiry", async () => {
    const { token, storeId, profileId } = await newSession();
    h.clock.advance(2592001);
    await expect(call("listSessions", { store_id: storeId, profile_id: profileId })).resolves.toEqual([]);
    expect(await rejection(call("revokeSession", { store_id: storeId, profile_id: profileId, session_id: token.id }))).toMatchObject({ type: "NOT_FOUND" });
  });
});

describe("auth.describeProfiles", () => {
  it("answers the active sessions of each profile of a page in one call, and nothing of another store", async () => {
    const storeId = uuidv7();
    const first = await newSession(storeId);
    const second = await newSession(storeId, first.profileId);
    const other = await newSession(storeId);
    await call("revokeSession", { store_id: storeId, profile_id: other.profileId, session_id: other.token.id });
    const elsewhere = await newSession(uuidv7(), first.profileId);

    const info = await call<Record<string, { sessions: SessionInfo[]; codes: unknown[] }>>("describeProfiles", {
      store_id: storeId,
      profiles: [
        { profile_id: first.profileId, email: null },
        { profile_id: other.profileId, email: "nobody@example.com" },
      ],
    });
    expect(info[first.profileId].sessions.map((s) => s.id).sort()).toEqual([first.token.id, second.token.id].sort());
    expect(info[first.profileId].sessions.map((s) => s.id)).not.toContain(elsewhere.token.id);
    expect(info[other.profileId]).toEqual({ sessions: [], codes: [] });
  });

  it("lists every live session of a profile, newest first, beyond the 1000 documents one read answers", async () => {
    const storeId = uuidv7();
    const expired = await newSession(storeId);
    h.clock.advance(2592000 + 1);
    const live: AuthToken[] = [];
    for (let i = 0; i < 1002; i++) live.push((await newSession(storeId, expired.profileId)).token);
    const [revoked, ...rest] = live;
    await call("revokeSession", { store_id: storeId, profile_id: expired.profileId, session_id: revoked.id });

    const info = await call<Record<string, { sessions: SessionInfo[] }>>("describeProfiles", {
      store_id: storeId,
      profiles: [{ profile_id: expired.profileId, email: null }],
    });
    const newestFirst = [...rest].sort((a, b) => b.created_at - a.created_at || (a.id < b.id ? 1 : -1)).map((t) => t.id);
    expect(info[expired.profileId].sessions.map((s) => s.id)).toEqual(newestFirst);
  });

  it("refuses more than 100 profiles", async () => {
    const profiles = Array.from({ length: 101 }, () => ({ profile_id: uuidv7(), email: null }));
    await expect(call("describeProfiles", { store_id: uuidv7(), profiles })).rejects.toMatchObject({ type: "VALIDATION_ERROR" });
  });
});
