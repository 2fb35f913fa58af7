/** Authentication per route: admin keys, profile sessions, optional sessions and public routes. */
import {
  AUTH_DOWN_KEY,
  PLATFORM_KEY,
  PROFILE_ID,
  SESSION_ID,
  STORE_A,
  STORE_A_KEY,
  STORE_A_TOKEN,
  STORE_B,
  bearer,
  expectErrorBody,
  request,
  startGateway,
  type TestGateway,
} from "./helpers";
import { AdminKeys, bearerToken } from "../auth";

let gw: TestGateway;
beforeAll(async () => {
  gw = await startGateway();
});
afterAll(() => gw.stop());

const profilesOf = (store: string) => `${gw.url}/v1/stores/${store}/profiles`;

describe("admin routes", () => {
  it("refuse a request without an Authorization header with 401", async () => {
    expectErrorBody(await request(profilesOf(STORE_A)), 401, "UNAUTHENTICATED");
  });

  it.each([["Basic dXNlcjpwYXNz"], ["Bearer"], ["Bearer "], ["Token abc"], [`Bearer ${PLATFORM_KEY} extra`]])(
    "refuse a malformed Authorization header (%s) with 401",
    async (authorization) => {
      expectErrorBody(await request(profilesOf(STORE_A), { headers: { authorization } }), 401, "UNAUTHENTICATED");
    },
  );

  it("refuse an unknown key with 401", async () => {
    expectErrorBody(await request(profilesOf(STORE_A), { headers: bearer("crm_sk_unknown") }), 401, "UNAUTHENTICATED");
  });

  it("accept the platform key for every store, as an admin principal with store_id *", async () => {
    for (const store of [STORE_A, STORE_B]) {
      const reply = await request(profilesOf(store), { headers: bearer(PLATFORM_KEY) });
      expect(reply.status).toBe(200);
      expect(reply.body.auth).toEqual({ kind: "admin", store_id: "*", key_id: "platform" });
    }
  });

  it("accept a store key on its own store, as verified by auth.verifyApiKey", async () => {
    const reply = await request(profilesOf(STORE_A), { headers: bearer(STORE_A_KEY) });
    expect(reply.status).toBe(200);
    expect(reply.body.auth).toEqual({ kind: "admin", store_id: STORE_A, key_id: "key-a" });
  });

  it("refuse a store key on another store with 403", async () => {
    expectErrorBody(await request(profilesOf(STORE_B), { headers: bearer(STORE_A_KEY) }), 403, "FORBIDDEN");
  });

  it("cache a positive key check briefly instead of asking auth on every request", async () => {
    const before = gw.state.verifyApiKeyCalls;
    for (let i = 0; i < 3; i++) expect((await request(profilesOf(STORE_A), { headers: bearer(STORE_A_KEY) })).status).toBe(200);
    expect(gw.state.verifyApiKeyCalls - before).toBeLessThanOrEqual(1);
  });

  it("do not cache a refusal", async () => {
    const before = gw.state.verifyApiKeyCalls;
    await request(profilesOf(STORE_A), { headers: bearer("crm_sk_wrong") });
    await request(profilesOf(STORE_A), { headers: bearer("crm_sk_wrong") });
    expect(gw.state.verifyApiKeyCalls - before).toBe(2);
  });

  it("answer 503 (not 401) when the auth service cannot check the key", async () => {
    const reply = await request(profilesOf(STORE_A), { headers: bearer(AUTH_DOWN_KEY) });
    expectErrorBody(reply, 503, "SERVICE_UNAVAILABLE");
    expect(reply.headers.get("retry-after")).toBeTruthy();
  });

  it("do not pass moleculer-web's ctx.meta.user on to the action", async () => {
    const reply = await request(profilesOf(STORE_A), { headers: bearer(PLATFORM_KEY) });
    expect(reply.body.metaKeys).not.toContain("user");
  });
});

describe("profile routes", () => {
  const me = (store: string) => `${profilesOf(store)}/me`;

  it("refuse a missing token with 401", async () => {
    expectErrorBody(await request(me(STORE_A)), 401, "UNAUTHENTICATED");
  });

  it("refuse an invalid token with 401", async () => {
    expectErrorBody(await request(me(STORE_A), { headers: bearer("nope") }), 401, "UNAUTHENTICATED");
  });

  it("refuse a token of another store with 401", async () => {
    expectErrorBody(await request(me(STORE_B), { headers: bearer(STORE_A_TOKEN) }), 401, "UNAUTHENTICATED");
  });

  it("refuse an admin key where a session is required with 401", async () => {
    expectErrorBody(await request(me(STORE_A), { headers: bearer(PLATFORM_KEY) }), 401, "UNAUTHENTICATED");
  });

  it("put the session principal from auth.authenticate in ctx.meta.auth", async () => {
    const reply = await request(me(STORE_A), { headers: bearer(STORE_A_TOKEN) });
    expect(reply.status).toBe(200);
    expect(reply.body.auth).toMatchObject({ kind: "profile", store_id: STORE_A, profile_id: PROFILE_ID, session_id: SESSION_ID, is_verified: true });
  });

  it("ask auth.authenticate for the principal alone", async () => {
    const reply = await request(`${profilesOf(STORE_A)}/connect`, { method: "POST", headers: bearer(STORE_A_TOKEN), json: {} });
    expect(gw.state.authenticateParams).toEqual({ store_id: STORE_A, access_token: STORE_A_TOKEN });
    expect(reply.body.auth).toEqual({ kind: "profile", store_id: STORE_A, profile_id: PROFILE_ID, session_id: SESSION_ID, is_verified: true });
  });
});

describe("profile routes whose action checks the token itself (tokenCheckedByAction)", () => {
  const whoami = () => `${profilesOf(STORE_A)}/whoami`;

  it("pass the bearer token on unread, and ask auth nothing themselves", async () => {
    const before = gw.state.authenticateCalls;
    const reply = await request(whoami(), { headers: bearer(STORE_A_TOKEN) });
    expect(reply.status).toBe(200);
    expect(reply.body).toMatchObject({ auth: null, accessToken: STORE_A_TOKEN, principal: { kind: "profile", store_id: STORE_A, profile_id: PROFILE_ID } });
    expect(gw.state.authenticateCalls - before).toBe(1); // the action's own call
  });

  it("answer the action's 401 as the token's (WWW-Authenticate: invalid_token)", async () => {
    const reply = await request(whoami(), { headers: bearer("nope") });
    expectErrorBody(reply, 401, "UNAUTHENTICATED");
    expect(reply.headers.get("www-authenticate")).toBe('Bearer realm="crm", error="invalid_token"');
  });

  it("refuse a missing token themselves, with the plain challenge, calling nothing", async () => {
    const before = gw.state.authenticateCalls;
    const reply = await request(whoami());
    expectErrorBody(reply, 401, "UNAUTHENTICATED");
    expect(reply.headers.get("www-authenticate")).toBe('Bearer realm="crm"');
    expect(gw.state.authenticateCalls).toBe(before);
  });
});

describe("optional-profile routes", () => {
  const connect = () => `${profilesOf(STORE_A)}/connect`;

  it("are anonymous without an Authorization header (no ctx.meta.auth)", async () => {
    const reply = await request(connect(), { method: "POST", json: { email: "ada@example.com" } });
    expect(reply.status).toBe(200);
    expect(reply.body.auth).toBeNull();
    expect(reply.body.metaKeys).not.toContain("auth");
  });

  it("use the session when a valid token is sent", async () => {
    const reply = await request(connect(), { method: "POST", headers: bearer(STORE_A_TOKEN), json: {} });
    expect(reply.body.auth).toMatchObject({ kind: "profile", session_id: SESSION_ID });
  });

  it("refuse a bad token with 401 rather than falling back to anonymous", async () => {
    expectErrorBody(await request(connect(), { method: "POST", headers: bearer("expired"), json: {} }), 401, "UNAUTHENTICATED");
    expectErrorBody(await request(connect(), { method: "POST", headers: { authorization: "Basic abc" }, json: {} }), 401, "UNAUTHENTICATED");
  });
});

describe("public routes", () => {
  it("need no credentials and ignore any that are sent", async () => {
    const reply = await request(`${profilesOf(STORE_A)}/initialize`, { method: "POST", headers: bearer("whatever") });
    expect(reply.status).toBe(200);
    expect(reply.body.auth).toBeNull();
  });

  it("still receive the client ip and the request id in ctx.meta", async () => {
    const reply = await request(`${profilesOf(STORE_A)}/initialize`, { method: "POST", headers: { "x-request-id": "req-123" } });
    expect(reply.body.ip).toBe("127.0.0.1");
    expect(reply.body.requestId).toBe("req-123");
  });
});

describe("bearerToken", () => {
  it("reads the token of a Bearer header, case-insensitively", () => {
    expect(bearerToken("Bearer abc.def")).toBe("abc.def");
    expect(bearerToken("bearer abc")).toBe("abc");
  });

  it("tells a missing header (undefined) from an unusable one (null)", () => {
    expect(bearerToken(undefined)).toBeUndefined();
    expect(bearerToken("Basic x")).toBeNull();
    expect(bearerToken("Bearer a b")).toBeNull();
    expect(bearerToken("Bearer")).toBeNull();
    expect(bearerToken("Bearer \t")).toBeNull();
  });

  it("allows spaces and tabs around the token and refuses a token over 4096 characters", () => {
    expect(bearerToken("Bearer \t abc \t")).toBe("abc");
    expect(bearerToken(`Bearer ${"a".repeat(4096)}`)).toHaveLength(4096);
    expect(bearerToken(`Bearer ${"a".repeat(4097)}`)).toBeNull();
    expect(bearerToken("Bearer abc\ndef")).toBeNull();
  });
});

describe("AdminKeys", () => {
  it("forgets a cached key after its TTL", async () => {
    let now = 1_000;
    const keys = new AdminKeys("platform", 5_000, 100, () => now);
    const verify = jest.fn(async () => ({ key_id: "k", store_id: STORE_A }));
    await keys.principal("store-key", verify);
    now += 4_000;
    await keys.principal("store-key", verify);
    expect(verify).toHaveBeenCalledTimes(1);
    now += 2_000;
    await keys.principal("store-key", verify);
    expect(verify).toHaveBeenCalledTimes(2);
  });

  it("never asks the auth service about the platform key", async () => {
    const keys = new AdminKeys("platform");
    const verify = jest.fn();
    await expect(keys.principal("platform", verify)).resolves.toEqual({ kind: "admin", store_id: "*", key_id: "platform" });
    expect(verify).not.toHaveBeenCalled();
  });
});

describe("the start banner", () => {
  it("prints the URL and a generated platform key when CRM_ADMIN_API_KEY is unset, and that key works", async () => {
    const log = jest.spyOn(console, "log").mockImplementation(() => undefined);
    let dev: TestGateway | undefined;
    try {
      dev = await startGateway({ env: { NODE_ENV: "development", CRM_ADMIN_API_KEY: undefined } });
      const printed = log.mock.calls.map((args) => args.join(" ")).join("\n");
      const port = new URL(dev.url).port;
      expect(printed).toContain(`http://localhost:${port}`);
      const key = /Admin API key for this run[^:]*: (crm_sk_\S+)/.exec(printed)?.[1];
      expect(key).toBeDefined();
      const reply = await request(`${dev.url}/v1/stores/${STORE_B}/profiles`, { headers: bearer(key!) });
      expect(reply.status).toBe(200);
      expect(reply.body.auth).toMatchObject({ store_id: "*" });
      expectErrorBody(await request(`${dev.url}/v1/stores/${STORE_B}/profiles`, { headers: bearer(PLATFORM_KEY) }), 401, "UNAUTHENTICATED");
    } finally {
      log.mockRestore();
      await dev?.stop();
    }
  });

  it("is not printed when NODE_ENV=test", async () => {
    const log = jest.spyOn(console, "log").mockImplementation(() => undefined);
    let quiet: TestGateway | undefined;
    try {
      quiet = await startGateway({ env: { NODE_ENV: "test", CRM_ADMIN_API_KEY: undefined } });
      expect(log).not.toHaveBeenCalled();
    } finally {
      log.mockRestore();
      await quiet?.stop();
    }
  });
});
