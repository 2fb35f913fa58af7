/** auth admin API keys: createApiKey, listApiKeys, revokeApiKey, verifyApiKey. */
import type { ApiKeyCreated, ApiKeyInfo } from "../../../shared/contracts/auth";
import { uuidv7 } from "../../../shared/ids";
import { dumpAuthDb, rejection, startAuth, type AuthHarness } from "./support";

const PLATFORM_KEY = "platform-key-for-tests-0123456789";
let h: AuthHarness;
const call = <T>(action: string, params: unknown) => h.broker.call<T, unknown>(`auth.${action}`, params);

beforeAll(async () => {
  h = await startAuth({ mailer: false, env: { CRM_ADMIN_API_KEY: PLATFORM_KEY } });
});
afterAll(async () => {
  await h.broker.stop();
});

describe("auth.createApiKey", () => {
  it("answers a crm_sk_ key once, with its metadata", async () => {
    const storeId = uuidv7();
    const created = await call<ApiKeyCreated>("createApiKey", { store_id: storeId, name: "storefront backend" });
    expect(created).toEqual({
      id: expect.any(String),
      store_id: storeId,
      name: "storefront backend",
      prefix: created.key.slice(0, 13),
      created_at: h.clock.now(),
      last_used_at: null,
      revoked_at: null,
      key: expect.stringMatching(/^crm_sk_[A-Za-z0-9_-]{43}$/),
    });
    expect(await dumpAuthDb(h.db())).not.toContain(created.key);
  });
});

describe("auth.verifyApiKey", () => {
  it("answers the key's id and store, and records its use at most once a minute", async () => {
    const storeId = uuidv7();
    const created = await call<ApiKeyCreated>("createApiKey", { store_id: storeId });
    await expect(call("verifyApiKey", { key: created.key })).resolves.toEqual({ key_id: created.id, store_id: storeId });
    const used = async () => (await call<ApiKeyInfo[]>("listApiKeys", { store_id: storeId }))[0].last_used_at;
    const first = h.clock.now();
    expect(await used()).toBe(first);
    h.clock.advance(59);
    await call("verifyApiKey", { key: created.key });
    expect(await used()).toBe(first);
    h.clock.advance(2);
    await call("verifyApiKey", { key: created.key });
    expect(await used()).toBe(first + 61);
  });

  it("refuses unknown and malformed keys with 401", async () => {
    const created = await call<ApiKeyCreated>("createApiKey", { store_id: uuidv7() });
    const tampered = created.key.slice(0, -1) + (created.key.endsWith("A") ? "B" : "A");
    for (const key of [tampered, "crm_sk_short", "nonsense"]) {
      expect(await rejection(call("verifyApiKey", { key }))).toMatchObject({ type: "UNAUTHENTICATED", code: 401 });
    }
    expect(await rejection(call("verifyApiKey", { key: { $ne: null } }))).toMatchObject({ type: "VALIDATION_ERROR" });
  });

  it("accepts the platform key (CRM_ADMIN_API_KEY) for every store", async () => {
    await expect(call("verifyApiKey", { key: PLATFORM_KEY })).resolves.toEqual({ key_id: "platform", store_id: "*" });
  });
});

describe("auth.revokeApiKey", () => {
  it("revokes a key: verify answers 401 from then on, the list shows when, and revoking it again says it already was", async () => {
    const storeId = uuidv7();
    const created = await call<ApiKeyCreated>("createApiKey", { store_id: storeId });
    const revokedAt = h.clock.now();
    await expect(call("revokeApiKey", { id: created.id })).resolves.toEqual({ deleted: true, revoked_at: revokedAt, already_revoked: false });
    expect(await rejection(call("verifyApiKey", { key: created.key }))).toMatchObject({ type: "UNAUTHENTICATED" });
    const [info] = await call<ApiKeyInfo[]>("listApiKeys", { store_id: storeId });
    expect(info.revoked_at).toBe(revokedAt);
    h.clock.advance(60);
    // Again: the time it was revoked, not now.
    await expect(call("revokeApiKey", { id: created.id })).resolves.toEqual({ deleted: true, revoked_at: revokedAt, already_revoked: true });
  });

  it("answers 404 for an unknown key id", async () => {
    expect(await rejection(call("revokeApiKey", { id: uuidv7() }))).toMatchObject({ type: "NOT_FOUND", code: 404 });
  });
});

describe("auth.listApiKeys", () => {
  it("lists a store's keys (or all) as metadata, never the key or its hash", async () => {
    const storeA = uuidv7();
    const storeB = uuidv7();
    const a1 = await call<ApiKeyCreated>("createApiKey", { store_id: storeA, name: "one" });
    h.clock.advance(1);
    const a2 = await call<ApiKeyCreated>("createApiKey", { store_id: storeA });
    const b1 = await call<ApiKeyCreated>("createApiKey", { store_id: storeB });
    const listA = await call<ApiKeyInfo[]>("listApiKeys", { store_id: storeA });
    expect(listA.map((k) => k.id)).toEqual([a2.id, a1.id]);
    expect(Object.keys(listA[0]).sort()).toEqual(["created_at", "id", "last_used_at", "name", "prefix", "revoked_at", "store_id"]);
    expect(listA[0].name).toBeNull();
    const all = await call<ApiKeyInfo[]>("listApiKeys", {});
    expect(all.map((k) => k.id)).toEqual(expect.arrayContaining([a1.id, a2.id, b1.id]));
    const text = JSON.stringify(all);
    for (const k of [a1, a2, b1]) expect(text).not.toContain(k.key);
  });
});
