/** The list rules: create/get/find/update, the immutable type, paid-list validation, the template flag. */
import type { ProfileList } from "../../../shared/contracts/profile-lists";
import { publishEvent } from "../../../shared/events/durable";
import { uuidv7 } from "../../../shared/ids";
import { waitFor } from "../../../test/harness/wait";
import { errorOf, newStoreId, startLists, type ListsEnv } from "./helpers";

let env: ListsEnv;
beforeAll(async () => {
  env = await startLists();
});
afterAll(() => env?.stop());

const create = (params: Record<string, unknown>) => env.broker.call("profile-lists.create", params) as Promise<ProfileList>;

describe("profile-lists.create", () => {
  it("makes an active standard list whose name defaults to its key", async () => {
    const store = newStoreId();
    const list = await create({ store_id: store, key: "newsletter" });
    expect(list).toMatchObject({
      store_id: store,
      key: "newsletter",
      name: "newsletter",
      description: null,
      status: "active",
      type: { type: "standard" },
      member_count: 0,
      confirm_template_missing: false,
    });
  });

  it("refuses a key outside the pattern (400) and a key taken in the store (409), not in another store", async () => {
    const store = newStoreId();
    expect((await errorOf(create({ store_id: store, key: "has space" }))).type).toBe("VALIDATION_ERROR");
    expect((await errorOf(create({ store_id: store, key: "x".repeat(65) }))).type).toBe("VALIDATION_ERROR");
    await create({ store_id: store, key: "vip" });
    expect((await errorOf(create({ store_id: store, key: "vip" }))).type).toBe("CONFLICT");
    await expect(create({ store_id: newStoreId(), key: "vip" })).resolves.toMatchObject({ key: "vip" });
  });

  it("refuses a name with a line break or another control character (it goes into mail subjects), naming name", async () => {
    const store = newStoreId();
    for (const name of ["News\r\nBcc: x@example.com", "tab\there", "bell\u0007", "next\u0085line", "line\u2028separator", "para\u2029graph"]) {
      const err = await errorOf(create({ store_id: store, key: "named", name }));
      expect(err).toMatchObject({ type: "VALIDATION_ERROR", data: [{ field: "name", message: "must be one line without control characters" }] });
    }
    await expect(create({ store_id: store, key: "named", name: "Weekly News — été" })).resolves.toMatchObject({ name: "Weekly News — été" });
  });

  it("validates a paid list's prices: at least one, unique ids, and makes an id when absent", async () => {
    const store = newStoreId();
    const stripe = (id: string) => [{ type: "stripe", id }];
    expect((await errorOf(create({ store_id: store, key: "p0", type: { type: "paid", prices: [] } }))).type).toBe("VALIDATION_ERROR");
    const dup = await errorOf(
      create({
        store_id: store,
        key: "p1",
        type: {
          type: "paid",
          prices: [
            { id: "a", currency: "usd", amount: 1, providers: stripe("s1") },
            { id: "a", currency: "usd", amount: 2, providers: stripe("s2") },
          ],
        },
      }),
    );
    expect(dup.type).toBe("VALIDATION_ERROR");
    const list = await create({
      store_id: store,
      key: "p2",
      type: { type: "paid", prices: [{ currency: "EUR", amount: 500, interval: { period: "month", count: 1 }, providers: stripe("price_1") }] },
    });
    expect(list.type).toMatchObject({ type: "paid", prices: [{ currency: "eur", amount: 500, providers: [{ type: "stripe", id: "price_1" }] }] });
    expect((list.type as { prices: { id: string }[] }).prices[0].id).toEqual(expect.any(String));
  });
});

describe("profile-lists.update", () => {
  it("changes key, name, description and status, but never the type's kind (400 naming type)", async () => {
    const store = newStoreId();
    const list = await create({ store_id: store, key: "k1" });
    const updated = (await env.broker.call("profile-lists.update", {
      store_id: store,
      id: list.id,
      key: "k2",
      name: "Weekly",
      description: "d",
      status: "archived",
    })) as ProfileList;
    expect(updated).toMatchObject({ key: "k2", name: "Weekly", description: "d", status: "archived", type: { type: "standard" } });
    const err = await errorOf(env.broker.call("profile-lists.update", { store_id: store, id: list.id, type: { type: "confirmation", confirm_template_id: uuidv7() } }));
    expect(err.type).toBe("VALIDATION_ERROR");
    expect(err.data.validationErrors.map((e: { field: string }) => e.field)).toEqual(["type"]);
    await create({ store_id: store, key: "taken" });
    expect((await errorOf(env.broker.call("profile-lists.update", { store_id: store, id: list.id, key: "taken" }))).type).toBe("CONFLICT");
  });
});

describe("profile-lists.find", () => {
  it("filters by ids, status and a key/name prefix (from any word), 50 a page by default, with keyset cursors", async () => {
    const store = newStoreId();
    const a = await create({ store_id: store, key: "weekly-news", name: "Weekly Newsletter" });
    const b = await create({ store_id: store, key: "vip_club", name: "VIP Club" });
    const c = await create({ store_id: store, key: "course-1", name: "Photo course" });
    await env.broker.call("profile-lists.update", { store_id: store, id: c.id, status: "archived" });
    const ids = async (params: Record<string, unknown>) =>
      ((await env.broker.call("profile-lists.find", { store_id: store, ...params })) as { items: ProfileList[] }).items.map((l) => l.id);

    expect(await ids({})).toEqual([c.id, b.id, a.id]);
    expect(await ids({ ids: [a.id, c.id] })).toEqual([c.id, a.id]);
    expect(await ids({ status: "archived" })).toEqual([c.id]);
    expect(await ids({ query: "news" })).toEqual([a.id]); // a word of the key
    expect(await ids({ query: "CLUB" })).toEqual([b.id]); // a word of the name, any case
    expect(await ids({ query: "photo" })).toEqual([c.id]);
    expect(await ids({ query: "photo", status: "active" })).toEqual([]);
    expect(await ids({ query: "zzz" })).toEqual([]);
    expect(await ids({ query: "eekly" })).toEqual([]); // a prefix, not a substring

    for (let i = 0; i < 4; i++) await create({ store_id: store, key: `bulk-${i}` });
    const seen: string[] = [];
    let cursor: string | undefined;
    do {
      const page = (await env.broker.call("profile-lists.find", { store_id: store, limit: 3, cursor })) as { items: ProfileList[]; cursor: string | null };
      seen.push(...page.items.map((l) => l.id));
      cursor = page.cursor ?? undefined;
    } while (cursor);
    expect(seen).toHaveLength(7);
    expect(new Set(seen).size).toBe(7);
    const other = await errorOf(env.broker.call("profile-lists.find", { store_id: store, status: "active", cursor: "bogus.cursor" }));
    expect(other.type).toBe("VALIDATION_ERROR");
  });

  it("answers 50 lists a page by default", async () => {
    const store = newStoreId();
    for (let i = 0; i < 51; i++) await create({ store_id: store, key: `l-${i}` });
    const page = (await env.broker.call("profile-lists.find", { store_id: store })) as { items: ProfileList[]; cursor: string | null };
    expect(page.items).toHaveLength(50);
    expect(page.cursor).toEqual(expect.any(String));
  });

  it("serves `query` from the search-words index (no store scan)", async () => {
    const plans: unknown[] = [];
    const lists = env.service.profileLists.store.lists;
    const find = lists.find.bind(lists);
    const spy = jest.spyOn(lists, "find").mockImplementation((filter, options) => {
      plans.push(filter);
      return find(filter, options);
    });
    try {
      await env.broker.call("profile-lists.find", { store_id: newStoreId(), query: "abc" });
    } finally {
      spy.mockRestore();
    }
    expect(plans).toEqual([{ store_id: expect.any(String), search_words: { $regex: "^abc" } }]);
  });
});

describe("confirm_template_missing", () => {
  it("is true when the template is unset, unknown or of another store; false when the mailer has it", async () => {
    const store = newStoreId();
    const own = uuidv7();
    const foreign = uuidv7();
    env.mailer.templates.set(own, store);
    env.mailer.templates.set(foreign, newStoreId());
    const flag = async (key: string, template: string | null) =>
      (await create({ store_id: store, key, type: { type: "confirmation", confirm_template_id: template } })).confirm_template_missing;
    expect(await flag("unset", null)).toBe(true);
    expect(await flag("unknown", uuidv7())).toBe(true);
    expect(await flag("foreign", foreign)).toBe(true);
    expect(await flag("own", own)).toBe(false);
  });

  it("a mailer that does not answer: the list is created, its template assumed usable until a send says otherwise", async () => {
    env.mailer.down = true;
    try {
      const list = await create({ store_id: newStoreId(), key: "offline", type: { type: "confirmation", confirm_template_id: uuidv7() } });
      expect(list.confirm_template_missing).toBe(false);
    } finally {
      env.mailer.down = false;
    }
  });

  it("turns true on every list of the store using a template when email-template.deleted arrives (and only those)", async () => {
    const store = newStoreId();
    const template = uuidv7();
    env.mailer.templates.set(template, store);
    const one = await create({ store_id: store, key: "one", type: { type: "confirmation", confirm_template_id: template } });
    const two = await create({ store_id: store, key: "two", type: { type: "confirmation", confirm_template_id: template } });
    const kept = uuidv7();
    env.mailer.templates.set(kept, store);
    const other = await create({ store_id: store, key: "other", type: { type: "confirmation", confirm_template_id: kept } });
    env.mailer.templates.delete(template);
    await publishEvent(env.broker, "email-template.deleted", { store_id: store, template_id: template });
    const get = (l: ProfileList) => env.broker.call("profile-lists.get", { store_id: l.store_id, id: l.id }) as Promise<ProfileList>;
    await waitFor(async () => (await get(one)).confirm_template_missing && (await get(two)).confirm_template_missing, "both lists marked");
    expect((await get(other)).confirm_template_missing).toBe(false);
    // Applied again (redelivery): nothing changes.
    await publishEvent(env.broker, "email-template.deleted", { store_id: store, template_id: template }, { key: "again" });
    expect((await get(one)).confirm_template_missing).toBe(true);
  });
});

describe("confirm_template_missing and a deletion racing a save", () => {
  it("a template reported deleted is never taken as usable again, even when the mailer (stale) says it is", async () => {
    const store = newStoreId();
    const template = uuidv7();
    env.mailer.templates.set(template, store); // the mailer has not caught up
    await env.service.profileLists.markTemplateDeleted({ store_id: store, template_id: template });
    const list = await create({ store_id: store, key: "late", type: { type: "confirmation", confirm_template_id: template } });
    expect(list.confirm_template_missing).toBe(true);
    const fresh = uuidv7();
    env.mailer.templates.set(fresh, store);
    const updated = (await env.broker.call("profile-lists.update", {
      store_id: store,
      id: list.id,
      type: { type: "confirmation", confirm_template_id: fresh },
    })) as ProfileList;
    expect(updated.confirm_template_missing).toBe(false);
  });
});

describe("store isolation (lists)", () => {
  it("a list of store A is 404 from store B", async () => {
    const a = newStoreId();
    const list = await create({ store_id: a, key: "private" });
    const b = newStoreId();
    expect((await errorOf(env.broker.call("profile-lists.get", { store_id: b, id: list.id }))).type).toBe("NOT_FOUND");
    expect((await errorOf(env.broker.call("profile-lists.update", { store_id: b, id: list.id, name: "x" }))).type).toBe("NOT_FOUND");
    expect((await errorOf(env.broker.call("profile-lists.members", { store_id: b, id: list.id }))).type).toBe("NOT_FOUND");
    expect(((await env.broker.call("profile-lists.find", { store_id: b, ids: [list.id] })) as { items: unknown[] }).items).toEqual([]);
  });
});
