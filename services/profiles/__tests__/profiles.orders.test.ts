/** Order linking from the durable `order.created` event, and profiles.listOrders. */
import type { Profile, OrderLink } from "../../../shared/contracts/profiles";
import type { ChannelBroker } from "../../../shared/events/channels";
import { publishEvent } from "../../../shared/events/durable";
import { linkOrder } from "../profiles.orders";
import { errorOf, eventually, newStoreId, startProfiles, type ProfilesEnv } from "./helpers";

let env: ProfilesEnv;
beforeAll(async () => {
  env = await startProfiles();
});
afterAll(() => env?.stop());

const call = <T = Profile>(action: string, params: object) => env.broker.call(`profiles.${action}`, params) as Promise<T>;
type Orders = { items: OrderLink[]; cursor: string | null };
const linkOf = (store: string, orderId: string) => env.service.profiles.store.orderLinks.findOne({ store_id: store, order_id: orderId });

describe("order.created", () => {
  it("links the order to its profile_id", async () => {
    const store = newStoreId();
    const profile = await call("create", { store_id: store, email: "buyer@example.com" });
    await publishEvent(env.broker, "order.created", {
      store_id: store,
      order_id: "A-1",
      profile_id: profile.id,
      total: 42.5,
      currency: "EUR",
      created_at: 1_700_000_000,
    });
    await eventually(() => linkOf(store, "A-1"));
    const orders = await call<Orders>("listOrders", { store_id: store, id: profile.id });
    expect(orders).toEqual({
      items: [{ order_id: "A-1", profile_id: profile.id, total: 42.5, currency: "EUR", created_at: 1_700_000_000, linked_at: expect.any(Number) }],
      cursor: null,
    });
  });

  it("links by e-mail (any case) when there is no profile_id", async () => {
    const store = newStoreId();
    const profile = await call("create", { store_id: store, email: "mail@example.com" });
    await publishEvent(env.broker, "order.created", { store_id: store, order_id: "B-1", email: "MAIL@example.com" });
    expect((await eventually(() => linkOf(store, "B-1"))).profile_id).toBe(profile.id);
  });

  it("creates the profile of the e-mail when none exists", async () => {
    const store = newStoreId();
    await publishEvent(env.broker, "order.created", { store_id: store, order_id: "C-1", email: "newbuyer@example.com" });
    const link = await eventually(() => linkOf(store, "C-1"));
    const profile = await call("get", { store_id: store, id: link.profile_id });
    expect(profile).toMatchObject({ email: "newbuyer@example.com", verified: false, status: "active" });
  });

  it("falls back to the e-mail when profile_id is unknown in this store (another store's id included)", async () => {
    const store = newStoreId();
    const foreign = await call("create", { store_id: newStoreId(), email: "foreign@example.com" });
    await publishEvent(env.broker, "order.created", { store_id: store, order_id: "D-1", profile_id: foreign.id, email: "foreign@example.com" });
    const link = await eventually(() => linkOf(store, "D-1"));
    expect(link.profile_id).not.toBe(foreign.id);
    expect((await call("get", { store_id: store, id: link.profile_id })).email).toBe("foreign@example.com");
    expect(await call<Orders>("listOrders", { store_id: foreign.store_id, id: foreign.id })).toEqual({ items: [], cursor: null });
  });

  it("changes nothing when the same order_id arrives twice", async () => {
    const store = newStoreId();
    const first = await call("create", { store_id: store, email: "first@example.com" });
    const second = await call("create", { store_id: store, email: "second@example.com" });
    await publishEvent(env.broker, "order.created", { store_id: store, order_id: "E-1", profile_id: first.id, total: 1 });
    await eventually(() => linkOf(store, "E-1"));
    await publishEvent(env.broker, "order.created", { store_id: store, order_id: "E-1", profile_id: second.id, total: 2 });
    await publishEvent(env.broker, "order.created", { store_id: store, order_id: "E-2", profile_id: second.id });
    await eventually(() => linkOf(store, "E-2"));
    expect(await env.service.profiles.store.orderLinks.count({ store_id: store, order_id: "E-1" })).toBe(1);
    expect(await linkOf(store, "E-1")).toMatchObject({ profile_id: first.id, total: 1 });

    // the rule holds in the handler itself, even past the channel's processed-event record
    const again = await linkOrder(env.service.profiles.deps, { store_id: store, order_id: "E-1", profile_id: second.id, total: 3 });
    expect(again).toMatchObject({ profile_id: first.id, total: 1 });
    expect((await call<Orders>("listOrders", { store_id: store, id: second.id })).items.map((o) => o.order_id)).toEqual(["E-2"]);
  });

  it("refuses an invalid payload at publish and drops one that arrives anyway", async () => {
    const store = newStoreId();
    const err = await errorOf(publishEvent(env.broker, "order.created", { store_id: store, order_id: "F-1", email: { $ne: null } } as never));
    expect(err.type).toBe("VALIDATION_ERROR");
    const broker = env.broker as unknown as ChannelBroker;
    await broker.sendToChannel!("order.created", { store_id: store, order_id: "F-2", profile_id: { $ne: null } });
    await publishEvent(env.broker, "order.created", { store_id: store, order_id: "F-3", email: "after@example.com" });
    await eventually(() => linkOf(store, "F-3"));
    expect(await linkOf(store, "F-2")).toBeNull();
    expect(await env.service.profiles.store.profiles.count({ store_id: store })).toBe(1);
  });
});

describe("order.created that names an unknown profile and no e-mail", () => {
  it("links nothing, yet is not recorded as applied: the corrected event for the same order links", async () => {
    const store = newStoreId();
    await publishEvent(env.broker, "order.created", { store_id: store, order_id: "G-1", profile_id: newStoreId() });
    await publishEvent(env.broker, "order.created", { store_id: store, order_id: "G-0", email: "marker@example.com" });
    await eventually(() => linkOf(store, "G-0")); // a later event went through
    expect(await linkOf(store, "G-1")).toBeNull();

    await publishEvent(env.broker, "order.created", { store_id: store, order_id: "G-1", email: "late@example.com" });
    await eventually(() => linkOf(store, "G-1"));
    const late = await env.service.profiles.store.profiles.findOne({ store_id: store, email_lower: "late@example.com" });
    expect(await linkOf(store, "G-1")).toMatchObject({ profile_id: late?._id });
  });
});

describe("profiles.listOrders", () => {
  it("pages newest first with a cursor bound to the profile", async () => {
    const store = newStoreId();
    const profile = await call("create", { store_id: store, email: "pages@example.com" });
    const other = await call("create", { store_id: store, email: "other-pages@example.com" });
    for (let i = 1; i <= 5; i++) {
      await publishEvent(env.broker, "order.created", { store_id: store, order_id: `P-${i}`, profile_id: profile.id, created_at: 1_700_000_000 + i });
    }
    await eventually(() => linkOf(store, "P-5"));
    await eventually(async () => (await env.service.profiles.store.orderLinks.count({ store_id: store })) === 5);

    const seen: string[] = [];
    let cursor: string | null = null;
    let first: Orders | undefined;
    do {
      const page: Orders = await call<Orders>("listOrders", { store_id: store, id: profile.id, limit: 2, ...(cursor ? { cursor } : {}) });
      first ??= page;
      seen.push(...page.items.map((o) => o.order_id));
      cursor = page.cursor;
    } while (cursor);
    expect(seen).toEqual(["P-5", "P-4", "P-3", "P-2", "P-1"]);
    const err = await errorOf(call("listOrders", { store_id: store, id: other.id, cursor: first!.cursor }));
    expect(err).toMatchObject({ type: "VALIDATION_ERROR", code: 400 });
    expect(await errorOf(call("listOrders", { store_id: store, id: newStoreId() }))).toMatchObject({ type: "NOT_FOUND" });
  });
});
