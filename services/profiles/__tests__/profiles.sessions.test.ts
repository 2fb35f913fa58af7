/**
 * The public profile flows: initialize (guest), connect, auth/code, auth/verify (guest upgrade),
 * auth/refresh, me, and the unverified-session guard. Calls carry `ctx.meta` as the gateway sets it (`auth`, and
 * for `me` the bearer token).
 */
import type { AuthToken, DescribedSessionPrincipal } from "../../../shared/contracts/auth";
import type { ConnectResult, OrderLink, Profile } from "../../../shared/contracts/profiles";
import { crmError } from "../../../shared/errors";
import { publishEvent } from "../../../shared/events/durable";
import { errorOf, eventually, loginCode, metaFor, newStoreId, startProfiles, type ProfilesEnv } from "./helpers";

let env: ProfilesEnv;
beforeAll(async () => {
  env = await startProfiles();
});
afterAll(() => env?.stop());

const call = <T>(action: string, params: object, meta?: object) => env.broker.call(`profiles.${action}`, params, meta ? { meta } : undefined) as Promise<T>;
/** GET /profiles/me as the gateway calls it: the bearer token passed on unread. */
const getMe = (store: string, token: AuthToken) => call<Profile>("me", { store_id: store }, { accessToken: token.access_token });
const authenticate = (store: string, token: AuthToken) => env.broker.call("auth.authenticate", { store_id: store, access_token: token.access_token });

/** What an unverified session sees of private data. */
const REDACTED = { taxonomies: [], promo_usage: [], auth_tokens: [], verification_codes: [] };

async function verifiedProfile(store: string, email: string): Promise<{ token: AuthToken; profile: Profile }> {
  const code = await loginCode(env, store, email);
  const token = await call<AuthToken>("verify", { store_id: store, email, code });
  const profile = await call<Profile>("get", { store_id: store, id: token.profile_id });
  return { token, profile };
}

async function linkOrder(store: string, profileId: string, orderId: string): Promise<void> {
  await publishEvent(env.broker, "order.created", { store_id: store, order_id: orderId, profile_id: profileId, total: 10, currency: "EUR" });
  await eventually(async () => {
    const page = await call<{ items: OrderLink[] }>("listOrders", { store_id: store, id: profileId });
    return page.items.some((o) => o.order_id === orderId);
  });
}

describe("profiles.initialize", () => {
  it("creates a guest profile without e-mail and answers an unverified session for it", async () => {
    const store = newStoreId();
    const token = await call<AuthToken>("initialize", { store_id: store });
    expect(token).toMatchObject({ token_type: "Bearer", is_verified: false, access_token: expect.any(String), refresh_token: expect.any(String) });
    const guest = await call<Profile>("get", { store_id: store, id: token.profile_id });
    expect(guest).toMatchObject({ email: null, verified: false, status: "active" });
    await expect(authenticate(store, token)).resolves.toMatchObject({ profile_id: guest.id, is_verified: false });
  });
});

describe("profiles.me", () => {
  it("answers the session's profile, redacted for an unverified session", async () => {
    const store = newStoreId();
    const token = await call<AuthToken>("initialize", { store_id: store });
    const me = await getMe(store, token);
    expect(me).toMatchObject({ id: token.profile_id, email: null, ...REDACTED });
  });

  it("never shows an unverified session the private data of a profile whose owner never logged in", async () => {
    const store = newStoreId();
    const taxonomies = [{ taxonomy_id: "secret", fields: [{ key: "note", type: "text", value: "vip" }] }];
    const byAdmin = await call<Profile>("create", { store_id: store, email: "never@example.com", taxonomies });
    await call("recordPromoUse", { store_id: store, id: byAdmin.id, promo_code_id: "WELCOME" });
    await publishEvent(env.broker, "order.created", { store_id: store, order_id: "o-by-order", email: "buyer-only@example.com" });
    const byOrder = await eventually(async () => (await call<{ items: Profile[] }>("find", { store_id: store, query: "buyer-only@" })).items[0]);
    await call("update", { store_id: store, id: byOrder.id, taxonomies });
    expect(byAdmin.verified).toBe(false);

    for (const email of ["never@example.com", "buyer-only@example.com"]) {
      const stranger = await call<ConnectResult>("connect", { store_id: store, email });
      expect(stranger).toMatchObject({ email, verified: false, ...REDACTED, token: { is_verified: false } });
      const me = await getMe(store, stranger.token);
      expect(me).toMatchObject({ id: stranger.id, ...REDACTED });
    }
    // the admin view still has everything
    expect((await call<Profile>("get", { store_id: store, id: byAdmin.id })).promo_usage).toEqual([{ promo_code_id: "WELCOME", uses: 1 }]);
  });

  it("gives a verified session the full view of its profile", async () => {
    const store = newStoreId();
    const { token, profile } = await verifiedProfile(store, "full@example.com");
    await call("recordPromoUse", { store_id: store, id: profile.id, promo_code_id: "VIP" });
    const me = await getMe(store, token);
    expect(me.promo_usage).toEqual([{ promo_code_id: "VIP", uses: 1 }]);
    expect(me.auth_tokens.map((t) => t.id)).toContain(token.id);
    expect(me.verification_codes).toHaveLength(1);
  });

  /** GET /profiles/me with spies on the auth port: what auth.authenticate answered, and whether describeProfiles was asked. */
  async function meWithSpies(store: string, token: AuthToken) {
    const auth = env.service.profiles.deps.auth;
    const authenticate = jest.spyOn(auth, "authenticate");
    const describeProfiles = jest.spyOn(auth, "describeProfiles");
    try {
      const profile = await getMe(store, token);
      expect(authenticate).toHaveBeenCalledTimes(1);
      expect(authenticate).toHaveBeenCalledWith({ store_id: store, access_token: token.access_token, describe: true });
      const principal = (await authenticate.mock.results[0].value) as DescribedSessionPrincipal;
      return { profile, described: principal.described_profile, askedAgain: describeProfiles.mock.calls.length > 0 };
    } finally {
      authenticate.mockRestore();
      describeProfiles.mockRestore();
    }
  }

  it("answers a verified session from the profile auth described with it, without asking auth again", async () => {
    const store = newStoreId();
    const { token, profile } = await verifiedProfile(store, "Described@Example.com");
    const { profile: me, described, askedAgain } = await meWithSpies(store, token);
    expect(described).toMatchObject({ email: "described@example.com" });
    expect(askedAgain).toBe(false);
    expect(me.auth_tokens.map((t) => t.id)).toEqual([token.id]);
    expect(me.verification_codes).toEqual([expect.objectContaining({ used: true, attempts: 1 })]);
    expect(me).toEqual(await call<Profile>("get", { store_id: store, id: profile.id }));
  });

  it("asks auth for the sessions and codes of a session issued without its e-mail (before sessions kept it)", async () => {
    const store = newStoreId();
    const { token, profile } = await verifiedProfile(store, "older@example.com");
    const older = (await env.broker.call("auth.issueSession", { store_id: store, profile_id: profile.id, is_verified: true })) as AuthToken;
    const { profile: me, described, askedAgain } = await meWithSpies(store, older);
    expect(described).toBeUndefined();
    expect(askedAgain).toBe(true);
    expect(me.auth_tokens.map((t) => t.id).sort()).toEqual([token.id, older.id].sort());
    expect(me.verification_codes).toHaveLength(1);
    expect(me).toEqual(await call<Profile>("get", { store_id: store, id: profile.id }));
  });

  it("asks auth again when the profile's e-mail is not the one its session was issued for (a merge gave it one)", async () => {
    const store = newStoreId();
    const guest = await call<AuthToken>("initialize", { store_id: store });
    // A verified session of a profile without an e-mail: no public flow makes one, a caller on the bus can.
    const session = (await env.broker.call("auth.issueSession", { store_id: store, profile_id: guest.profile_id, is_verified: true, email: null })) as AuthToken;
    const source = await call<Profile>("create", { store_id: store, email: "merged-in@example.com" });
    await call("merge", { store_id: store, id: guest.profile_id, source_id: source.id });
    await loginCode(env, store, "merged-in@example.com");

    const { profile: me, described, askedAgain } = await meWithSpies(store, session);
    expect(described).toMatchObject({ email: null, codes: [] });
    expect(askedAgain).toBe(true);
    expect(me).toMatchObject({ id: guest.profile_id, email: "merged-in@example.com", verification_codes: [expect.objectContaining({ used: false })] });
    expect(me).toEqual(await call<Profile>("get", { store_id: store, id: guest.profile_id }));
  });

  it("is 401 without an access token (an admin principal is not one), for a bad token, and for a token of another store", async () => {
    const store = newStoreId();
    const token = await call<AuthToken>("initialize", { store_id: store });
    expect(await errorOf(call("me", { store_id: store }))).toMatchObject({ type: "UNAUTHENTICATED", code: 401 });
    expect(await errorOf(call("me", { store_id: store }, { auth: { kind: "admin", store_id: "*", key_id: "k" } }))).toMatchObject({ type: "UNAUTHENTICATED" });
    expect(await errorOf(call("me", { store_id: store }, { accessToken: "not-a-token" }))).toMatchObject({ type: "UNAUTHENTICATED" });
    expect(await errorOf(getMe(newStoreId(), token))).toMatchObject({ type: "UNAUTHENTICATED" });
    await expect(getMe(store, token)).resolves.toMatchObject({ id: token.profile_id });
  });

  it("is 503, not 401, while auth cannot answer (a client told 401 would log its user out)", async () => {
    const store = newStoreId();
    const token = await call<AuthToken>("initialize", { store_id: store });
    const authenticate = jest.spyOn(env.service.profiles.deps.auth, "authenticate").mockRejectedValue(crmError("SERVICE_UNAVAILABLE", "auth storage down"));
    try {
      expect(await errorOf(getMe(store, token))).toMatchObject({ type: "SERVICE_UNAVAILABLE", code: 503 });
    } finally {
      authenticate.mockRestore();
    }
  });
});

describe("profiles.connect", () => {
  it("without a session finds or creates the profile of the e-mail and answers it with an unverified session", async () => {
    const store = newStoreId();
    const result = await call<ConnectResult>("connect", { store_id: store, email: "Shopper@Example.com" });
    expect(result).toMatchObject({ email: "Shopper@Example.com", verified: false, token: { profile_id: result.id, is_verified: false } });
    const again = await call<ConnectResult>("connect", { store_id: store, email: "shopper@example.com" });
    expect(again.id).toBe(result.id);
    expect(again.token.id).not.toBe(result.token.id);
  });

  it("gives a guest session's profile the e-mail when no profile has it", async () => {
    const store = newStoreId();
    const guest = await call<AuthToken>("initialize", { store_id: store });
    const result = await call<ConnectResult>("connect", { store_id: store, email: "new@example.com" }, await metaFor(env.broker, store, guest));
    expect(result).toMatchObject({ id: guest.profile_id, email: "new@example.com", verified: false });
    expect(result.token).toMatchObject({ profile_id: guest.profile_id, is_verified: false });
    expect(result.token.id).not.toBe(guest.id);
  });

  it("never merges: a guest giving the e-mail of an existing profile gets that profile, redacted, and the guest stays as it was", async () => {
    const store = newStoreId();
    const existing = await call<Profile>("create", { store_id: store, email: "known@example.com" });
    const guest = await call<AuthToken>("initialize", { store_id: store });
    await linkOrder(store, guest.profile_id, "order-guest-1");
    await call("recordPromoUse", { store_id: store, id: guest.profile_id, promo_code_id: "GUEST" });

    const result = await call<ConnectResult>("connect", { store_id: store, email: "KNOWN@example.com" }, await metaFor(env.broker, store, guest));
    expect(result).toMatchObject({ id: existing.id, email: "known@example.com", ...REDACTED });
    expect(result.token).toMatchObject({ profile_id: existing.id, is_verified: false });

    // nothing of the guest reached the existing profile
    const target = await call<Profile>("get", { store_id: store, id: existing.id });
    expect(target.promo_usage).toEqual([]);
    expect((await call<{ items: OrderLink[] }>("listOrders", { store_id: store, id: existing.id })).items).toEqual([]);
    // the guest is untouched and its session still works
    const kept = await call<Profile>("get", { store_id: store, id: guest.profile_id });
    expect(kept).toMatchObject({ email: null, promo_usage: [{ promo_code_id: "GUEST", uses: 1 }] });
    expect((await call<{ items: OrderLink[] }>("listOrders", { store_id: store, id: guest.profile_id })).items.map((o) => o.order_id)).toEqual(["order-guest-1"]);
    await expect(authenticate(store, guest)).resolves.toMatchObject({ profile_id: guest.profile_id });
  });

  it("with the e-mail of a verified profile gives no access to that profile's private data", async () => {
    const store = newStoreId();
    const { profile } = await verifiedProfile(store, "owner@example.com");
    await call("update", { store_id: store, id: profile.id, taxonomies: [{ taxonomy_id: "secret", fields: [{ key: "note", type: "text", value: "vip" }] }] });
    await call("recordPromoUse", { store_id: store, id: profile.id, promo_code_id: "WELCOME" });

    const stranger = await call<ConnectResult>("connect", { store_id: store, email: "owner@example.com" });
    expect(stranger).toMatchObject({
      id: profile.id,
      email: "owner@example.com",
      verified: true,
      taxonomies: [],
      promo_usage: [],
      auth_tokens: [],
      verification_codes: [],
    });
    expect(stranger.token.is_verified).toBe(false);

    const me = await getMe(store, stranger.token);
    expect(me).toMatchObject({ id: profile.id, taxonomies: [], promo_usage: [], auth_tokens: [], verification_codes: [] });

    // the admin view still has everything
    const full = await call<Profile>("get", { store_id: store, id: profile.id });
    expect(full.taxonomies).toHaveLength(1);
    expect(full.promo_usage).toEqual([{ promo_code_id: "WELCOME", uses: 1 }]);
    expect(full.auth_tokens.length).toBeGreaterThanOrEqual(2);
  });

  it("is 401 with a session of another store, and 400 for a bad e-mail", async () => {
    const store = newStoreId();
    const guest = await call<AuthToken>("initialize", { store_id: store });
    const meta = await metaFor(env.broker, store, guest);
    expect(await errorOf(call("connect", { store_id: newStoreId(), email: "x@example.com" }, meta))).toMatchObject({ type: "UNAUTHENTICATED" });
    expect((await errorOf(call("connect", { store_id: store, email: { $ne: null } }))).type).toBe("VALIDATION_ERROR");
  });
});

describe("auth.requestCode (served to HTTP directly)", () => {
  it("answers sent: true for a known or unknown e-mail and mails a 6-digit code", async () => {
    const store = newStoreId();
    expect(await env.broker.call("auth.requestCode", { store_id: store, email: "nobody@example.com" })).toEqual({ sent: true });
    const mail = await env.smtp.waitForMessage((m) => m.to.includes("nobody@example.com"));
    expect(mail.text).toMatch(/\b\d{6}\b/);
    expect((await errorOf(env.broker.call("auth.requestCode", { store_id: store, email: ["a@b.co"] }))).type).toBe("VALIDATION_ERROR");
  });
});

describe("profiles.verify", () => {
  it("without a session creates the profile, marks it verified and answers a verified session", async () => {
    const store = newStoreId();
    const { token, profile } = await verifiedProfile(store, "fresh@example.com");
    expect(token).toMatchObject({ is_verified: true, profile_id: profile.id });
    expect(profile).toMatchObject({ email: "fresh@example.com", verified: true });
    const me = await getMe(store, token);
    expect(me.auth_tokens.map((t) => t.id)).toContain(token.id);
    expect(me.verification_codes).toEqual([expect.objectContaining({ used: true })]);
  });

  it("upgrades a guest session: orders move, the guest is removed, a new session id is issued", async () => {
    const store = newStoreId();
    const account = await call<Profile>("create", { store_id: store, email: "buyer@example.com" });
    const guest = await call<AuthToken>("initialize", { store_id: store });
    const guestMeta = await metaFor(env.broker, store, guest);
    await linkOrder(store, guest.profile_id, "order-1");
    await linkOrder(store, guest.profile_id, "order-2");

    const code = await loginCode(env, store, "buyer@example.com", guestMeta);
    const token = await call<AuthToken>("verify", { store_id: store, email: "buyer@example.com", code }, guestMeta);
    expect(token).toMatchObject({ profile_id: account.id, is_verified: true });
    expect(token.id).not.toBe(guest.id);

    expect(await errorOf(call("get", { store_id: store, id: guest.profile_id }))).toMatchObject({ type: "NOT_FOUND" });
    expect(await errorOf(authenticate(store, guest))).toMatchObject({ type: "UNAUTHENTICATED", code: 401 });
    expect(await errorOf(getMe(store, guest))).toMatchObject({ type: "UNAUTHENTICATED", code: 401 });
    const orders = await call<{ items: OrderLink[] }>("listOrders", { store_id: store, id: account.id });
    expect(orders.items.map((o) => o.order_id).sort()).toEqual(["order-1", "order-2"]);
    const me = await getMe(store, token);
    expect(me).toMatchObject({ id: account.id, email: "buyer@example.com", verified: true });
  });

  it("upgrades a guest whose e-mail is new: the guest's orders land on the new verified profile", async () => {
    const store = newStoreId();
    const guest = await call<AuthToken>("initialize", { store_id: store });
    const guestMeta = await metaFor(env.broker, store, guest);
    await linkOrder(store, guest.profile_id, "order-new");
    const code = await loginCode(env, store, "first@example.com", guestMeta);
    const token = await call<AuthToken>("verify", { store_id: store, email: "first@example.com", code }, guestMeta);
    expect(token.id).not.toBe(guest.id);
    const profile = await call<Profile>("get", { store_id: store, id: token.profile_id });
    expect(profile).toMatchObject({ email: "first@example.com", verified: true });
    expect(await errorOf(call("get", { store_id: store, id: guest.profile_id }))).toMatchObject({ type: "NOT_FOUND" });
    const orders = await call<{ items: OrderLink[] }>("listOrders", { store_id: store, id: token.profile_id });
    expect(orders.items.map((o) => o.order_id)).toEqual(["order-new"]);
  });

  it("still answers a verified session for the e-mail's profile when the guest cannot be merged now; the guest stays separate", async () => {
    const store = newStoreId();
    const account = await call<Profile>("create", { store_id: store, email: "busy@example.com" });
    const guest = await call<AuthToken>("initialize", { store_id: store });
    const guestMeta = await metaFor(env.broker, store, guest);
    await linkOrder(store, guest.profile_id, "order-busy");
    // the guest is held by another merge: merging it now is a 409
    await env.service.profiles.store.profiles.updateOne({ _id: guest.profile_id, store_id: store }, { $set: { merge_lock: "another-merge" } });

    const code = await loginCode(env, store, "busy@example.com", guestMeta);
    const token = await call<AuthToken>("verify", { store_id: store, email: "busy@example.com", code }, guestMeta);
    expect(token).toMatchObject({ profile_id: account.id, is_verified: true });
    const me = await getMe(store, token);
    expect(me).toMatchObject({ id: account.id, email: "busy@example.com", verified: true });

    expect(await call<Profile>("get", { store_id: store, id: guest.profile_id })).toMatchObject({ email: null });
    expect((await call<{ items: OrderLink[] }>("listOrders", { store_id: store, id: guest.profile_id })).items.map((o) => o.order_id)).toEqual(["order-busy"]);
    await expect(authenticate(store, guest)).resolves.toMatchObject({ profile_id: guest.profile_id });
  });

  it("revokes the caller's old session when it verifies a connected profile", async () => {
    const store = newStoreId();
    const connected = await call<ConnectResult>("connect", { store_id: store, email: "conn@example.com" });
    const meta = await metaFor(env.broker, store, connected.token);
    const code = await loginCode(env, store, "conn@example.com", meta);
    const token = await call<AuthToken>("verify", { store_id: store, email: "conn@example.com", code }, meta);
    expect(token).toMatchObject({ profile_id: connected.id, is_verified: true });
    expect(await errorOf(authenticate(store, connected.token))).toMatchObject({ type: "UNAUTHENTICATED" });
    const me = await getMe(store, token);
    expect(me.verified).toBe(true);
  });

  it("is 401 for a wrong code and changes nothing", async () => {
    const store = newStoreId();
    const guest = await call<AuthToken>("initialize", { store_id: store });
    const meta = await metaFor(env.broker, store, guest);
    const code = await loginCode(env, store, "wrong@example.com", meta);
    const wrong = code === "000000" ? "111111" : "000000";
    expect(await errorOf(call("verify", { store_id: store, email: "wrong@example.com", code: wrong }, meta))).toMatchObject({ type: "UNAUTHENTICATED", code: 401 });
    await expect(authenticate(store, guest)).resolves.toBeTruthy();
    const page = await call<{ items: Profile[] }>("find", { store_id: store, query: "wrong@example.com" });
    expect(page.items).toEqual([]);
    expect((await errorOf(call("verify", { store_id: store, email: "wrong@example.com", code: 123456 }))).type).toBe("VALIDATION_ERROR");
  });
});

describe("auth.refreshSession (served to HTTP directly)", () => {
  it("rotates the refresh token of a guest session from profiles.initialize, only for its own store", async () => {
    const store = newStoreId();
    const token = await call<AuthToken>("initialize", { store_id: store });
    const next = (await env.broker.call("auth.refreshSession", { store_id: store, refresh_token: token.refresh_token })) as AuthToken;
    expect(next).toMatchObject({ id: token.id, profile_id: token.profile_id });
    expect(next.refresh_token).not.toBe(token.refresh_token);
    expect(await errorOf(env.broker.call("auth.refreshSession", { store_id: newStoreId(), refresh_token: next.refresh_token }))).toMatchObject({
      type: "UNAUTHENTICATED",
    });
    expect(await errorOf(env.broker.call("auth.refreshSession", { store_id: store, refresh_token: "nonsense" }))).toMatchObject({ type: "UNAUTHENTICATED" });
  });
});
