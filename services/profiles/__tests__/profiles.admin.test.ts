/** The admin actions of the profiles service, over a real broker with the real auth and mailer services. */
import type { AuthToken } from "../../../shared/contracts/auth";
import type { Profile } from "../../../shared/contracts/profiles";
import { toErrorBody } from "../../../shared/errors";
import { newProfileDoc, verify } from "../profiles.logic";
import { PROBE_CANDIDATES, searchProfiles, type ProfileSearch } from "../profiles.search";
import { errorOf, newStoreId, startProfiles, type ProfilesEnv } from "./helpers";

let env: ProfilesEnv;
beforeAll(async () => {
  env = await startProfiles();
});
afterAll(() => env?.stop());

const call = <T = Profile>(action: string, params: object) => env.broker.call(`profiles.${action}`, params) as Promise<T>;
const authenticate = (store: string, token: AuthToken) => env.broker.call("auth.authenticate", { store_id: store, access_token: token.access_token });
const codeIn = (mail: { text: string }) => /\b(\d{6})\b/.exec(mail.text)![1];

/** Logs in as `email` through the real code flow and answers the verified session. */
async function verifyAs(store: string, email: string): Promise<AuthToken> {
  await env.broker.call("auth.requestCode", { store_id: store, email });
  const code = codeIn(await env.smtp.waitForMessage((m) => m.to.includes(email)));
  return (await env.broker.call("profiles.verify", { store_id: store, email, code })) as AuthToken;
}
type Page = { items: Profile[]; cursor: string | null };

describe("profiles.create", () => {
  it("creates an active, unverified profile in the contract's shape", async () => {
    const store = newStoreId();
    const profile = await call("create", {
      store_id: store,
      email: "Ada@Example.com",
      taxonomies: [{ taxonomy_id: "tier", fields: [{ key: "level", type: "text", value: "Gold" }] }],
    });
    expect(profile).toEqual({
      id: expect.stringMatching(/^[0-9a-f-]{36}$/),
      store_id: store,
      email: "Ada@Example.com",
      verified: false,
      status: "active",
      taxonomies: [{ taxonomy_id: "tier", fields: [{ id: expect.any(String), key: "level", type: "text", value: "Gold" }] }],
      promo_usage: [],
      auth_tokens: [],
      verification_codes: [],
      created_at: expect.any(Number),
      updated_at: expect.any(Number),
    });
  });

  it("is idempotent by e-mail, case-insensitively, returning the existing profile unchanged", async () => {
    const store = newStoreId();
    const first = await call("create", { store_id: store, email: "grace@example.com" });
    const again = await call("create", { store_id: store, email: "  GRACE@Example.COM ", taxonomies: [{ taxonomy_id: "x", fields: [] }] });
    expect(again.id).toBe(first.id);
    expect(again.email).toBe("grace@example.com");
    expect(again.taxonomies).toEqual([]);
  });

  it("lists the codes asked for the e-mail before the profile existed", async () => {
    const store = newStoreId();
    await env.broker.call("auth.requestCode", { store_id: store, email: "early@example.com" });
    const profile = await call("create", { store_id: store, email: "Early@Example.com" });
    expect(profile.verification_codes).toEqual([expect.objectContaining({ used: false, attempts: 0 })]);
    expect(profile.auth_tokens).toEqual([]);
  });

  it("answers 503 and creates nothing while the auth service is down", async () => {
    const own = await startProfiles();
    try {
      const store = newStoreId();
      await own.broker.destroyService(own.broker.getLocalService("auth"));
      const err = await errorOf(own.broker.call("profiles.create", { store_id: store, email: "nobody-yet@example.com" }));
      expect(toErrorBody(err)).toMatchObject({ statusCode: 503, error: "SERVICE_UNAVAILABLE" }); // what HTTP gets
      expect(await own.service.profiles.store.profiles.findOne({ store_id: store })).toBeNull();
    } finally {
      await own.stop();
    }
  });

  it("gives one profile to concurrent creates of the same e-mail", async () => {
    const store = newStoreId();
    const results = await Promise.all(Array.from({ length: 10 }, () => call("create", { store_id: store, email: "race@example.com" })));
    expect(new Set(results.map((p) => p.id)).size).toBe(1);
  });

  it("rejects values of the wrong type before they reach a filter", async () => {
    const store = newStoreId();
    for (const email of [{ $ne: null }, ["a@b.co"], 42, "not-an-email", `${"x".repeat(65)}@example.com`]) {
      const err = await errorOf(call("create", { store_id: store, email }));
      expect(err.type).toBe("VALIDATION_ERROR");
    }
    expect((await errorOf(call("create", { store_id: "store-1", email: "a@b.co" }))).type).toBe("VALIDATION_ERROR");
    await expect(call("create", { store_id: store, email: `${"x".repeat(64)}@example.com` })).resolves.toMatchObject({ email: `${"x".repeat(64)}@example.com` });
  });
});

describe("profiles.get", () => {
  it("answers the profile with its sessions' metadata and no token value", async () => {
    const store = newStoreId();
    const created = await call("create", { store_id: store, email: "meta@example.com" });
    const token = (await env.broker.call("auth.issueSession", { store_id: store, profile_id: created.id, is_verified: true })) as AuthToken;
    const profile = await call("get", { store_id: store, id: created.id });
    expect(profile.auth_tokens).toEqual([{ id: token.id, created_at: expect.any(Number), expires_at: expect.any(Number), last_used_at: null, is_verified: true }]);
    expect(JSON.stringify(profile)).not.toContain(token.access_token);
    expect(JSON.stringify(profile)).not.toContain(token.refresh_token);
  });

  it("reads an upper-case id as the same profile (ids are lower-cased at the boundary)", async () => {
    const store = newStoreId();
    const created = await call("create", { store_id: store, email: "upper@example.com" });
    expect(await call("get", { store_id: store.toUpperCase(), id: created.id.toUpperCase() })).toMatchObject({ id: created.id, store_id: store });
    const updated = await call("update", { store_id: store, id: created.id.toUpperCase(), status: "archived" });
    expect(updated).toMatchObject({ id: created.id, status: "archived" });
  });

  it("is 404 for an unknown id and 400 for a malformed one", async () => {
    const store = newStoreId();
    expect(await errorOf(call("get", { store_id: store, id: newStoreId() }))).toMatchObject({ type: "NOT_FOUND", code: 404 });
    expect((await errorOf(call("get", { store_id: store, id: { $gt: "" } }))).type).toBe("VALIDATION_ERROR");
  });
});

describe("store isolation", () => {
  it("answers 404 in store B for a profile of store A, whatever the action", async () => {
    const storeA = newStoreId();
    const storeB = newStoreId();
    const a = await call("create", { store_id: storeA, email: "iso@example.com" });
    const b = await call("create", { store_id: storeB, email: "other@example.com" });
    const attempts: Array<[string, object]> = [
      ["get", { store_id: storeB, id: a.id }],
      ["update", { store_id: storeB, id: a.id, status: "archived" }],
      ["merge", { store_id: storeB, id: a.id, source_id: b.id }],
      ["merge", { store_id: storeB, id: b.id, source_id: a.id }],
      ["listOrders", { store_id: storeB, id: a.id }],
      ["revokeAllSessions", { store_id: storeB, id: a.id }],
      ["revokeSession", { store_id: storeB, id: a.id, token_id: newStoreId() }],
    ];
    for (const [action, params] of attempts) {
      expect(await errorOf(call(action, params))).toMatchObject({ type: "NOT_FOUND", code: 404 });
    }
    expect((await call("get", { store_id: storeA, id: a.id })).status).toBe("active");
  });

  it("keeps e-mails per store: the same address is two profiles in two stores", async () => {
    const a = await call("create", { store_id: newStoreId(), email: "same@example.com" });
    const b = await call("create", { store_id: newStoreId(), email: "same@example.com" });
    expect(a.id).not.toBe(b.id);
  });

  it("never lists another store's profiles", async () => {
    const storeA = newStoreId();
    const storeB = newStoreId();
    await call("create", { store_id: storeA, email: "list@example.com" });
    const page = await call<Page>("find", { store_id: storeB });
    expect(page).toEqual({ items: [], cursor: null });
  });
});

describe("profiles.update", () => {
  it("replaces taxonomies and status and keeps a verified e-mail verified when only its case changes", async () => {
    const store = newStoreId();
    const created = await call("create", { store_id: store, email: "upd@example.com" });
    const updated = await call("update", {
      store_id: store,
      id: created.id,
      email: "UPD@example.com",
      status: "archived",
      taxonomies: [{ taxonomy_id: "seg", fields: [{ key: "k", type: "boolean", value: true }] }],
    });
    expect(updated).toMatchObject({ email: "UPD@example.com", status: "archived", taxonomies: [{ taxonomy_id: "seg", fields: [{ key: "k", value: true }] }] });
  });

  it("makes a new e-mail unverified", async () => {
    const env2 = env;
    const store = newStoreId();
    const created = await call("create", { store_id: store, email: "old@example.com" });
    // verify the first address through the real code flow
    await env2.broker.call("auth.requestCode", { store_id: store, email: "old@example.com" });
    const mail = await env2.smtp.waitForMessage((m) => m.to.includes("old@example.com"));
    const code = /\b(\d{6})\b/.exec(mail.text)![1];
    await env2.broker.call("profiles.verify", { store_id: store, email: "old@example.com", code });
    expect((await call("get", { store_id: store, id: created.id })).verified).toBe(true);
    const updated = await call("update", { store_id: store, id: created.id, email: "new@example.com" });
    expect(updated).toMatchObject({ email: "new@example.com", verified: false });
  });

  it("revokes every session of the profile and deletes the old address's codes when the e-mail changes", async () => {
    const store = newStoreId();
    const created = await call("create", { store_id: store, email: "before@example.com" });
    const verified = await verifyAs(store, "before@example.com");
    const unverified = (await env.broker.call("auth.issueSession", { store_id: store, profile_id: created.id, is_verified: false })) as AuthToken;
    expect(await env.broker.call("auth.listCodes", { store_id: store, email: "before@example.com" })).not.toEqual([]);

    const updated = await call("update", { store_id: store, id: created.id, email: "after@example.com" });
    expect(updated).toMatchObject({ email: "after@example.com", verified: false, auth_tokens: [] });
    for (const token of [verified, unverified]) expect(await errorOf(authenticate(store, token))).toMatchObject({ type: "UNAUTHENTICATED", code: 401 });
    expect(await env.broker.call("auth.listCodes", { store_id: store, email: "before@example.com" })).toEqual([]);
  });

  it("keeps the sessions when the e-mail only changes case", async () => {
    const store = newStoreId();
    const created = await call("create", { store_id: store, email: "same@example.com" });
    const token = await verifyAs(store, "same@example.com");
    const updated = await call("update", { store_id: store, id: created.id, email: "Same@Example.com" });
    expect(updated).toMatchObject({ email: "Same@Example.com", verified: true });
    await expect(authenticate(store, token)).resolves.toMatchObject({ profile_id: created.id, is_verified: true });
  });

  it("never leaves a verified session on a profile whose e-mail changed while the code was being verified", async () => {
    const store = newStoreId();
    const created = await call("create", { store_id: store, email: "racing@example.com" });
    await env.broker.call("auth.requestCode", { store_id: store, email: "racing@example.com" });
    const code = codeIn(await env.smtp.waitForMessage((m) => m.to.includes("racing@example.com")));
    const deps = env.service.profiles.deps;
    // The admin changes the address just before the verified session is issued.
    const racing = {
      ...deps,
      auth: {
        ...deps.auth,
        issueSession: async (p: Parameters<typeof deps.auth.issueSession>[0]) => {
          await call("update", { store_id: store, id: created.id, email: "moved@example.com" });
          return deps.auth.issueSession(p);
        },
      },
    };
    expect(await errorOf(verify(racing, { store_id: store, email: "racing@example.com", code }, undefined))).toMatchObject({ type: "CONFLICT" });
    const profile = await call("get", { store_id: store, id: created.id });
    expect(profile).toMatchObject({ email: "moved@example.com", verified: false, auth_tokens: [] });
  });

  it("is 409 when the e-mail belongs to another profile of the store (any case)", async () => {
    const store = newStoreId();
    await call("create", { store_id: store, email: "taken@example.com" });
    const other = await call("create", { store_id: store, email: "free@example.com" });
    const err = await errorOf(call("update", { store_id: store, id: other.id, email: "Taken@Example.com" }));
    expect(err).toMatchObject({ type: "CONFLICT", code: 409 });
    expect((await call("get", { store_id: store, id: other.id })).email).toBe("free@example.com");
  });

  it("rejects bad types and unknown statuses", async () => {
    const store = newStoreId();
    const created = await call("create", { store_id: store, email: "types@example.com" });
    for (const patch of [
      { email: { $ne: null } },
      { status: "deleted" },
      { taxonomies: "gold" },
      { taxonomies: [{ taxonomy_id: "t", fields: [{ key: "k", type: "number", value: "1" }] }] },
    ]) {
      expect((await errorOf(call("update", { store_id: store, id: created.id, ...patch }))).type).toBe("VALIDATION_ERROR");
    }
  });

  it("refuses taxonomies over 64 KB in all, and leaves the profile as it was", async () => {
    const store = newStoreId();
    const created = await call("create", { store_id: store, email: "heavy@example.com" });
    const fields = Array.from({ length: 100 }, (_, i) => ({ key: `k${i}`, type: "text", value: "x".repeat(1000) }));
    const err = await errorOf(call("update", { store_id: store, id: created.id, taxonomies: [{ taxonomy_id: "big", fields }] }));
    expect(err).toMatchObject({ type: "VALIDATION_ERROR", data: [{ field: "taxonomies" }] });
    expect((await call("get", { store_id: store, id: created.id })).taxonomies).toEqual([]);
  });
});

describe("profiles.find", () => {
  const store = newStoreId();
  const emails = Array.from({ length: 25 }, (_, i) => `user${String(i).padStart(2, "0")}@shop.test`);
  const ids: Record<string, string> = {};

  beforeAll(async () => {
    for (const [i, email] of emails.entries()) {
      const taxonomies =
        i % 5 === 0
          ? [
              {
                taxonomy_id: "tier",
                fields: [
                  { key: "level", type: "text", value: "Gold" },
                  { key: "orders", type: "number", value: i },
                ],
              },
            ]
          : [
              {
                taxonomy_id: "tier",
                fields: [
                  { key: "level", type: "text", value: "Silver" },
                  { key: "orders", type: "number", value: i },
                ],
              },
            ];
      ids[email] = (await call("create", { store_id: store, email, taxonomies })).id;
    }
    await call("update", { store_id: store, id: ids[emails[3]], status: "archived" });
    await call("create", { store_id: store, email: "zed@elsewhere.test" });
  });

  async function allPages(params: object, limit: number): Promise<{ pages: Profile[][]; all: Profile[] }> {
    const pages: Profile[][] = [];
    let cursor: string | null | undefined;
    do {
      const page: Page = await call<Page>("find", { store_id: store, ...params, limit, ...(cursor ? { cursor } : {}) });
      pages.push(page.items);
      cursor = page.cursor;
    } while (cursor && pages.length < 50);
    return { pages, all: pages.flat() };
  }

  it("walks every profile over keyset pages, none repeated or skipped", async () => {
    const { pages, all } = await allPages({}, 10);
    expect(pages.map((p) => p.length)).toEqual([10, 10, 6]);
    expect(new Set(all.map((p) => p.id)).size).toBe(26);
    // default order: newest first (created_at desc, then id desc)
    const keys = all.map((p) => [p.created_at, p.id] as const);
    const sorted = [...keys].sort((a, b) => b[0] - a[0] || (a[1] < b[1] ? 1 : -1));
    expect(keys).toEqual(sorted);
  });

  it("sorts by e-mail in both directions, and by created_at through the createdAt alias", async () => {
    const asc = (await allPages({ sort_field: "email", sort_direction: "asc" }, 7)).all.map((p) => p.email);
    expect(asc).toEqual([...emails, "zed@elsewhere.test"].sort());
    const desc = (await allPages({ sort_field: "email", sort_direction: "desc" }, 100)).all.map((p) => p.email);
    expect(desc).toEqual([...asc].reverse());
    const byAlias = (await allPages({ sort_field: "createdAt", sort_direction: "asc" }, 9)).all.map((p) => p.id);
    expect(byAlias).toEqual((await allPages({ sort_field: "created_at", sort_direction: "asc" }, 100)).all.map((p) => p.id));
    expect(byAlias[0]).toBe(ids[emails[0]]);
  });

  it("sorts by updated_at", async () => {
    const all = (await allPages({ sort_field: "updated_at", sort_direction: "desc" }, 8)).all;
    expect(all).toHaveLength(26);
    const times = all.map((p) => p.updated_at);
    expect(times).toEqual([...times].sort((a, b) => b - a));
  });

  it("matches a query against the id, a prefix of the e-mail from any word on, or an exact taxonomy value", async () => {
    const byId = await call<Page>("find", { store_id: store, query: ids[emails[7]].toUpperCase() });
    expect(byId.items.map((p) => p.email)).toEqual([emails[7]]);
    const byPrefix = await call<Page>("find", { store_id: store, query: "USER1", limit: 100 });
    expect(byPrefix.items.map((p) => p.email).sort()).toEqual(emails.filter((e) => e.startsWith("user1")));
    const byValue = await call<Page>("find", { store_id: store, query: "gold", limit: 100 });
    expect(byValue.items).toHaveLength(5);
    const byDomain = await call<Page>("find", { store_id: store, query: "shop.test", limit: 100 });
    expect(byDomain.items.map((p) => p.email).sort()).toEqual(emails.filter((e) => e.endsWith("@shop.test")).sort());
    const byDomainWord = await call<Page>("find", { store_id: store, query: "Test", limit: 100 });
    expect(byDomainWord.items).toHaveLength(byDomain.items.length + 1); // and zed@elsewhere.test
    const notInfix = await call<Page>("find", { store_id: store, query: "hop.test" });
    expect(notInfix.items).toEqual([]);
  });

  it("treats regex syntax in a query as text", async () => {
    for (const query of ["(a+)+$", ".*", "user.*", "[", "\\"]) {
      const page = await call<Page>("find", { store_id: store, query });
      expect(page.items).toEqual([]);
    }
  });

  it("filters by status", async () => {
    const archived = await call<Page>("find", { store_id: store, status: "archived" });
    expect(archived.items.map((p) => p.email)).toEqual([emails[3]]);
    const active = await allPages({ status: "active" }, 100);
    expect(active.all).toHaveLength(25);
  });

  it("filters by taxonomy_query, given as JSON text the way a query string carries it", async () => {
    const tq = (query: object[]) => JSON.stringify([{ taxonomy_id: "tier", query }]);
    const gold = await call<Page>("find", { store_id: store, taxonomy_query: tq([{ key: "level", type: "text", value: "Gold" }]), limit: 100 });
    expect(gold.items.map((p) => p.email).sort()).toEqual(emails.filter((_, i) => i % 5 === 0));
    const range = await call<Page>("find", {
      store_id: store,
      taxonomy_query: tq([
        { key: "orders", type: "number", operation: "gte", value: 10 },
        { key: "orders", type: "number", operation: "lt", value: 13 },
      ]),
      limit: 100,
    });
    expect(range.items.map((p) => p.email).sort()).toEqual([emails[10], emails[11], emails[12]]);
    const inList = await call<Page>("find", { store_id: store, taxonomy_query: tq([{ key: "orders", type: "number", operation: "in", value: [1, 2] }]) });
    expect(inList.items).toHaveLength(2);
    const contains = await call<Page>("find", { store_id: store, taxonomy_query: tq([{ key: "level", type: "text", operation: "contains", value: "ilv" }]), limit: 100 });
    expect(contains.items).toHaveLength(20);
    const ne = await call<Page>("find", { store_id: store, taxonomy_query: tq([{ key: "level", type: "text", operation: "ne", value: "Silver" }]), limit: 100 });
    expect(ne.items).toHaveLength(5);
    const wrongType = await errorOf(call("find", { store_id: store, taxonomy_query: tq([{ key: "level", type: "text", value: { $ne: null } }]) }));
    expect(wrongType.type).toBe("VALIDATION_ERROR");
    expect((await errorOf(call("find", { store_id: store, taxonomy_query: "[not json" }))).type).toBe("VALIDATION_ERROR");
  });

  it("refuses an edited cursor, a cursor of another query and a cursor of another store with 400", async () => {
    const first = await call<Page>("find", { store_id: store, limit: 5 });
    const cursor = first.cursor!;
    expect(cursor).toEqual(expect.any(String));
    const edited = cursor.slice(0, 5) + (cursor[5] === "A" ? "B" : "A") + cursor.slice(6);
    const cases: object[] = [
      { store_id: store, limit: 5, cursor: edited },
      { store_id: store, limit: 5, cursor: "garbage" },
      { store_id: store, limit: 5, cursor, status: "active" },
      { store_id: store, limit: 5, cursor, sort_direction: "asc" },
      { store_id: newStoreId(), limit: 5, cursor },
    ];
    for (const params of cases) {
      expect(await errorOf(call("find", params))).toMatchObject({ type: "VALIDATION_ERROR", code: 400, data: { validationErrors: [{ field: "cursor" }] } });
    }
    // the same query with another page size is still the same query
    const next = await call<Page>("find", { store_id: store, limit: 3, cursor });
    expect(next.items).toHaveLength(3);
    expect(first.items.map((p) => p.id)).not.toContain(next.items[0].id);
  });
});

describe("profiles.revokeSession and profiles.revokeAllSessions", () => {
  it("revokes one session, then every session, each refused on its next use", async () => {
    const store = newStoreId();
    const profile = await call("create", { store_id: store, email: "sessions@example.com" });
    const issue = () => env.broker.call("auth.issueSession", { store_id: store, profile_id: profile.id, is_verified: true }) as Promise<AuthToken>;
    const [one, two, three] = [await issue(), await issue(), await issue()];
    const authenticate = (t: AuthToken) => env.broker.call("auth.authenticate", { store_id: store, access_token: t.access_token });

    expect(await call("revokeSession", { store_id: store, id: profile.id, token_id: one.id })).toEqual({ deleted: true });
    expect(await errorOf(authenticate(one))).toMatchObject({ type: "UNAUTHENTICATED", code: 401 });
    await expect(authenticate(two)).resolves.toMatchObject({ session_id: two.id });
    expect(await errorOf(call("revokeSession", { store_id: store, id: profile.id, token_id: one.id }))).toMatchObject({ type: "NOT_FOUND" });

    expect(await call("revokeAllSessions", { store_id: store, id: profile.id })).toEqual({ deleted: true, revoked: 2 });
    for (const t of [two, three]) expect(await errorOf(authenticate(t))).toMatchObject({ type: "UNAUTHENTICATED" });
    expect((await call("get", { store_id: store, id: profile.id })).auth_tokens).toEqual([]);
  });

  it("does not revoke another profile's session through a foreign profile id", async () => {
    const store = newStoreId();
    const owner = await call("create", { store_id: store, email: "owner@example.com" });
    const other = await call("create", { store_id: store, email: "intruder@example.com" });
    const token = (await env.broker.call("auth.issueSession", { store_id: store, profile_id: owner.id, is_verified: false })) as AuthToken;
    expect(await errorOf(call("revokeSession", { store_id: store, id: other.id, token_id: token.id }))).toMatchObject({ type: "NOT_FOUND" });
    await expect(env.broker.call("auth.authenticate", { store_id: store, access_token: token.access_token })).resolves.toBeTruthy();
  });
});

describe("profiles.find over many profiles", () => {
  const store = newStoreId();
  const total = PROBE_CANDIDATES + 100;

  beforeAll(async () => {
    const ops = Array.from({ length: total }, (_, i) => ({
      insertOne: {
        document: newProfileDoc(store, `bulk${String(i).padStart(4, "0")}@many.test`, 1_700_000_000 + (i % 7), [
          { taxonomy_id: "tier", fields: [{ key: "level", type: "text", value: i % 100 === 0 ? "Rare" : "Common" }] },
        ]),
      },
    }));
    await env.service.profiles.store.profiles.bulkWrite(ops);
  });

  async function walk(params: object, limit: number): Promise<string[]> {
    const seen: string[] = [];
    let cursor: string | null = null;
    for (let n = 0; n < 1000; n++) {
      const page: Page = await call<Page>("find", { store_id: store, ...params, limit, ...(cursor ? { cursor } : {}) });
      seen.push(...page.items.map((p) => p.email!));
      cursor = page.cursor;
      if (!cursor) break;
    }
    return seen;
  }

  it("pages an unselective search (more matches than the first read of its index) without repeats or gaps", async () => {
    const byPrefix = await walk({ query: "bulk", sort_field: "email", sort_direction: "asc" }, 100);
    expect(byPrefix).toHaveLength(total);
    expect(byPrefix).toEqual([...byPrefix].sort());
    const byValue = await walk({ query: "common", sort_field: "created_at" }, 100);
    expect(new Set(byValue).size).toBe(total - total / 100);
  });

  it("pages a selective search from its candidates, in the same order as the full listing", async () => {
    const rare = await walk({ taxonomy_query: [{ taxonomy_id: "tier", query: [{ key: "level", type: "text", value: "Rare" }] }] }, 2);
    expect(rare).toHaveLength(total / 100);
    const everything = await walk({}, 100);
    expect(rare).toEqual(everything.filter((e) => rare.includes(e)));
    const prefix = await walk({ query: "bulk01", sort_field: "updated_at", sort_direction: "asc" }, 7);
    expect(prefix.sort()).toEqual(Array.from({ length: 100 }, (_, i) => `bulk01${String(i).padStart(2, "0")}@many.test`));
    // a case-different exact value still finds them; a value matching no one finds none
    expect((await call<Page>("find", { store_id: store, query: "RARE", limit: 100 })).items).toHaveLength(total / 100);
    expect((await call<Page>("find", { store_id: store, query: "nobody-has-this" })).items).toEqual([]);
  });
});

describe("profiles.find when the matches are many and sparse", () => {
  const store = newStoreId();
  const needles = PROBE_CANDIDATES + 200;

  beforeAll(async () => {
    // Six thousand older profiles, then the needles: walking created_at upwards, a page of needles lies
    // behind more non-matching profiles than the storage walks before it stops (2,000 on SQLite).
    const profile = (email: string, createdAt: number) => ({ insertOne: { document: newProfileDoc(store, email, createdAt) } });
    await env.service.profiles.store.profiles.bulkWrite(Array.from({ length: 6000 }, (_, i) => profile(`filler${i}@hay.test`, 1_700_000_000)));
    await env.service.profiles.store.profiles.bulkWrite(Array.from({ length: needles }, (_, i) => profile(`needle${i}@hay.test`, 1_700_000_100 + i)));
  });

  it("answers every page from the matches read through the index, in sort order", async () => {
    const seen: string[] = [];
    let cursor: string | null = null;
    for (let n = 0; n < 100; n++) {
      const page: Page = await call<Page>("find", {
        store_id: store,
        query: "needle",
        sort_field: "created_at",
        sort_direction: "asc",
        limit: 100,
        ...(cursor ? { cursor } : {}),
      });
      seen.push(...page.items.map((p) => p.email!));
      cursor = page.cursor;
      if (!cursor) break;
    }
    expect(seen).toEqual(Array.from({ length: needles }, (_, i) => `needle${i}@hay.test`));
  });

  it("refuses such a search (SCAN_LIMIT) only when its matches are more than it reads at most", async () => {
    const search: ProfileSearch = { query: "needle", sort_field: "created_at", sort_direction: "asc" };
    const page = (max: number) => searchProfiles(env.service.profiles.store.profiles, { storeId: store, search, limit: 100, candidates: { probe: 100, max } });
    await expect(page(needles - 1)).rejects.toMatchObject({ code: "SCAN_LIMIT" });
    const first = await page(needles);
    expect(first.items.map((p) => p.email)).toEqual(Array.from({ length: 100 }, (_, i) => `needle${i}@hay.test`));
    expect(first.hasMore).toBe(true);
  });

  it("still narrows such a search by the rest of its conditions", async () => {
    const [first] = (await call<Page>("find", { store_id: store, query: "needle1", limit: 1, sort_direction: "asc" })).items;
    await call("update", { store_id: store, id: first.id, status: "archived" });
    const blocked = await call<Page>("find", { store_id: store, query: "needle", status: "archived", sort_field: "created_at", sort_direction: "asc", limit: 100 });
    expect(blocked.items.map((p) => p.email)).toEqual([first.email]);
    expect(blocked.cursor).toBeNull();
  });
});

describe("profiles.recordPromoUse", () => {
  it("counts every use, also under concurrency, and refuses a profile of another store", async () => {
    const store = newStoreId();
    const profile = await call("create", { store_id: store, email: "promo@example.com" });
    await Promise.all(Array.from({ length: 10 }, () => call("recordPromoUse", { store_id: store, id: profile.id, promo_code_id: "TEN" })));
    await call("recordPromoUse", { store_id: store, id: profile.id, promo_code_id: "BIG", uses: 5 });
    expect((await call("get", { store_id: store, id: profile.id })).promo_usage).toEqual([
      { promo_code_id: "TEN", uses: 10 },
      { promo_code_id: "BIG", uses: 5 },
    ]);
    expect(await errorOf(call("recordPromoUse", { store_id: newStoreId(), id: profile.id, promo_code_id: "TEN" }))).toMatchObject({ type: "NOT_FOUND" });
  });
});
