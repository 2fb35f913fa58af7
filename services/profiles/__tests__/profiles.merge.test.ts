/**
 * profiles.merge: the merge rules, its 4xx cases, the durable profile.merged event, and recovery of a
 * merge interrupted half-way (journal written in a mid state, service restarted on the same data).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import type { ServiceSchema } from "moleculer";
import type { AuthToken, VerificationCodeInfo } from "../../../shared/contracts/auth";
import type { DurableEventPayload } from "../../../shared/contracts/events";
import type { OrderLink, Profile } from "../../../shared/contracts/profiles";
import { durableChannel, publishEvent } from "../../../shared/events/durable";
import { storageMixin } from "../../../shared/mixins/storage.mixin";
import { loadService } from "../../../test/harness/broker";
import { startSmtpServer, type SmtpTestServer } from "../../../test/harness/smtp";
import { planMerge, PENDING_LEASE_SECONDS, recoverMerges } from "../profiles.merge";
import type { MergeDoc, ProfileDoc } from "../profiles.store";
import { errorOf, eventually, newStoreId, startProfiles, type ProfilesEnv } from "./helpers";

type Merged = DurableEventPayload<"profile.merged">;

/** A stand-in for a service that owns memberships: records the profile.merged events it is given. */
function mergeProbe(received: Merged[]): ServiceSchema {
  return {
    name: "merge-probe",
    mixins: [storageMixin("merge-probe")],
    channels: {
      "profile.merged": durableChannel("profile.merged", {
        group: "merge-probe",
        handler(payload) {
          received.push(payload);
        },
      }),
    },
  } as ServiceSchema;
}

const call = <T = Profile>(env: ProfilesEnv, action: string, params: object) => env.broker.call(`profiles.${action}`, params) as Promise<T>;

async function linkOrder(env: ProfilesEnv, store: string, profileId: string, orderId: string): Promise<void> {
  await publishEvent(env.broker, "order.created", { store_id: store, order_id: orderId, profile_id: profileId });
  await eventually(async () => (await env.service.profiles.store.orderLinks.findOne({ store_id: store, order_id: orderId })) !== null);
}

const orderIdsOf = async (env: ProfilesEnv, store: string, id: string) =>
  (await call<{ items: OrderLink[] }>(env, "listOrders", { store_id: store, id, limit: 100 })).items.map((o) => o.order_id).sort();

describe("profiles.merge", () => {
  let env: ProfilesEnv;
  const received: Merged[] = [];
  beforeAll(async () => {
    env = await startProfiles({ extra: [mergeProbe(received)] });
  });
  afterAll(() => env?.stop());

  it("keeps the target's id and e-mail, unites taxonomies (target wins) and sums promo usage", async () => {
    const store = newStoreId();
    const target = await call(env, "create", {
      store_id: store,
      email: "target@example.com",
      taxonomies: [{ taxonomy_id: "tier", fields: [{ key: "level", type: "text", value: "Gold" }] }],
    });
    const source = await call(env, "create", {
      store_id: store,
      email: "source@example.com",
      taxonomies: [
        {
          taxonomy_id: "tier",
          fields: [
            { key: "level", type: "text", value: "Silver" },
            { key: "since", type: "number", value: 2020 },
          ],
        },
        { taxonomy_id: "segment", fields: [{ key: "name", type: "text", value: "Newsletter" }] },
      ],
    });
    await call(env, "recordPromoUse", { store_id: store, id: target.id, promo_code_id: "SPRING" });
    await call(env, "recordPromoUse", { store_id: store, id: source.id, promo_code_id: "SPRING", uses: 2 });
    await call(env, "recordPromoUse", { store_id: store, id: source.id, promo_code_id: "SUMMER" });

    const merged = await call(env, "merge", { store_id: store, id: target.id, source_id: source.id });
    expect(merged).toMatchObject({ id: target.id, email: "target@example.com" });
    expect(merged.taxonomies).toEqual([
      {
        taxonomy_id: "tier",
        fields: [
          { id: expect.any(String), key: "level", type: "text", value: "Gold" },
          { id: expect.any(String), key: "since", type: "number", value: 2020 },
        ],
      },
      { taxonomy_id: "segment", fields: [{ id: expect.any(String), key: "name", type: "text", value: "Newsletter" }] },
    ]);
    expect(merged.promo_usage).toEqual([
      { promo_code_id: "SPRING", uses: 3 },
      { promo_code_id: "SUMMER", uses: 1 },
    ]);
    // the source's indexed values now find the target
    const found = await call<{ items: Profile[] }>(env, "find", { store_id: store, query: "newsletter" });
    expect(found.items.map((p) => p.id)).toEqual([target.id]);
  });

  it("takes the source's e-mail (and its verification) only when the target has none", async () => {
    const store = newStoreId();
    const guest = (await call<AuthToken>(env, "initialize", { store_id: store })).profile_id;
    const source = await call(env, "create", { store_id: store, email: "Mail@Example.com" });
    const merged = await call(env, "merge", { store_id: store, id: guest, source_id: source.id });
    expect(merged).toMatchObject({ id: guest, email: "Mail@Example.com", verified: false });
    // the e-mail now belongs to the target: creating it again answers the target
    expect((await call(env, "create", { store_id: store, email: "mail@example.com" })).id).toBe(guest);
  });

  it("moves orders, revokes the source's sessions, deletes its codes and deletes the source", async () => {
    const store = newStoreId();
    const target = await call(env, "create", { store_id: store, email: "keep@example.com" });
    const source = await call(env, "create", { store_id: store, email: "gone@example.com" });
    await linkOrder(env, store, source.id, "o-1");
    await linkOrder(env, store, source.id, "o-2");
    await linkOrder(env, store, target.id, "o-3");
    const session = (await env.broker.call("auth.issueSession", { store_id: store, profile_id: source.id, is_verified: true })) as AuthToken;
    await env.broker.call("auth.requestCode", { store_id: store, email: "gone@example.com" });
    await env.smtp.waitForMessage((m) => m.to.includes("gone@example.com"));
    expect(await env.broker.call("auth.listCodes", { store_id: store, email: "gone@example.com" })).toHaveLength(1);

    await call(env, "merge", { store_id: store, id: target.id, source_id: source.id });

    expect(await orderIdsOf(env, store, target.id)).toEqual(["o-1", "o-2", "o-3"]);
    expect(await errorOf(call(env, "get", { store_id: store, id: source.id }))).toMatchObject({ type: "NOT_FOUND" });
    expect(await errorOf(env.broker.call("auth.authenticate", { store_id: store, access_token: session.access_token }))).toMatchObject({
      type: "UNAUTHENTICATED",
      code: 401,
    });
    expect((await env.broker.call("auth.listCodes", { store_id: store, email: "gone@example.com" })) as VerificationCodeInfo[]).toEqual([]);
    // the source's e-mail is free again
    const reborn = await call(env, "create", { store_id: store, email: "gone@example.com" });
    expect(reborn.id).not.toBe(source.id);
    expect(await env.service.profiles.store.merges.findOne({ store_id: store, source_id: source.id })).toMatchObject({ state: "done" });
    const journal = await env.service.profiles.store.merges.findOne({ store_id: store, source_id: source.id });
    expect(journal?.snapshot).toBeUndefined(); // no personal data of the deleted profile is kept
  });

  it("publishes profile.merged durably for the services that own memberships", async () => {
    const store = newStoreId();
    const target = await call(env, "create", { store_id: store, email: "t-event@example.com" });
    const source = await call(env, "create", { store_id: store, email: "s-event@example.com" });
    await call(env, "merge", { store_id: store, id: target.id, source_id: source.id });
    await eventually(() => received.some((e) => e.source_id === source.id));
    expect(received.filter((e) => e.source_id === source.id)).toEqual([{ store_id: store, target_id: target.id, source_id: source.id }]);
  });

  it("links a late order for the merged-away profile to the target", async () => {
    const store = newStoreId();
    const target = await call(env, "create", { store_id: store, email: "late-t@example.com" });
    const source = await call(env, "create", { store_id: store, email: "late-s@example.com" });
    await call(env, "merge", { store_id: store, id: target.id, source_id: source.id });
    await linkOrder(env, store, source.id, "late-order");
    expect(await orderIdsOf(env, store, target.id)).toEqual(["late-order"]);
  });

  it("is a 400 into itself, a 404 across stores or for a source that no longer exists", async () => {
    const store = newStoreId();
    const otherStore = newStoreId();
    const target = await call(env, "create", { store_id: store, email: "t4xx@example.com" });
    const source = await call(env, "create", { store_id: store, email: "s4xx@example.com" });
    const foreign = await call(env, "create", { store_id: otherStore, email: "f4xx@example.com" });

    expect(await errorOf(call(env, "merge", { store_id: store, id: target.id, source_id: target.id }))).toMatchObject({
      type: "VALIDATION_ERROR",
      code: 400,
      data: { validationErrors: [{ field: "source_id" }] },
    });
    expect(await errorOf(call(env, "merge", { store_id: store, id: target.id, source_id: foreign.id }))).toMatchObject({ type: "NOT_FOUND", code: 404 });
    expect(await errorOf(call(env, "merge", { store_id: otherStore, id: foreign.id, source_id: source.id }))).toMatchObject({ type: "NOT_FOUND" });
    expect(await errorOf(call(env, "merge", { store_id: store, id: newStoreId(), source_id: source.id }))).toMatchObject({ type: "NOT_FOUND" });
    expect((await errorOf(call(env, "merge", { store_id: store, id: target.id, source_id: { $ne: null } }))).type).toBe("VALIDATION_ERROR");

    await call(env, "merge", { store_id: store, id: target.id, source_id: source.id });
    expect(await errorOf(call(env, "merge", { store_id: store, id: target.id, source_id: source.id }))).toMatchObject({
      type: "NOT_FOUND",
      data: { reason: "MERGE_SOURCE_NOT_FOUND" },
    });
    // nothing of the foreign store was touched
    expect(await call(env, "get", { store_id: otherStore, id: foreign.id })).toMatchObject({ email: "f4xx@example.com" });
  });

  it("is a 409 while one of the profiles is in another merge, and refuses updates to it meanwhile", async () => {
    const store = newStoreId();
    const a = await call(env, "create", { store_id: store, email: "a-lock@example.com" });
    const b = await call(env, "create", { store_id: store, email: "b-lock@example.com" });
    const c = await call(env, "create", { store_id: store, email: "c-lock@example.com" });
    await env.service.profiles.store.profiles.updateOne({ _id: a.id, store_id: store }, { $set: { merge_lock: "another-merge" } });
    expect(await errorOf(call(env, "merge", { store_id: store, id: b.id, source_id: a.id }))).toMatchObject({ type: "CONFLICT", code: 409 });
    expect(await errorOf(call(env, "merge", { store_id: store, id: a.id, source_id: c.id }))).toMatchObject({ type: "CONFLICT" });
    expect(await errorOf(call(env, "update", { store_id: store, id: a.id, status: "archived" }))).toMatchObject({ type: "CONFLICT" });
    await env.service.profiles.store.profiles.updateOne({ _id: a.id, store_id: store }, { $unset: { merge_lock: "" } });
    await expect(call(env, "merge", { store_id: store, id: b.id, source_id: a.id })).resolves.toMatchObject({ id: b.id });
  });

  /** A target (promo P x1) and a source (promo P x4, taxonomy "seg") of a new store. */
  async function pair(store: string, tag: string) {
    const target = await call(env, "create", { store_id: store, email: `t-${tag}@example.com` });
    const source = await call(env, "create", {
      store_id: store,
      email: `s-${tag}@example.com`,
      taxonomies: [{ taxonomy_id: "seg", fields: [{ key: "k", type: "text", value: "v" }] }],
    });
    await call(env, "recordPromoUse", { store_id: store, id: target.id, promo_code_id: "P", uses: 1 });
    await call(env, "recordPromoUse", { store_id: store, id: source.id, promo_code_id: "P", uses: 4 });
    return { target, source };
  }

  /** What an admin does to the merged target afterwards: these changes must survive any later recovery pass. */
  async function changeTarget(store: string, id: string) {
    await call(env, "update", { store_id: store, id, taxonomies: [{ taxonomy_id: "after", fields: [] }] });
    await call(env, "recordPromoUse", { store_id: store, id, promo_code_id: "P", uses: 10 });
  }

  async function expectChangesKept(store: string, id: string) {
    const target = await call(env, "get", { store_id: store, id });
    expect(target.taxonomies).toEqual([{ taxonomy_id: "after", fields: [] }]);
    expect(target.promo_usage).toEqual([{ promo_code_id: "P", uses: 15 }]);
    expect((await env.service.profiles.store.profiles.findOne({ _id: id }))?.merge_lock).toBeUndefined();
  }

  it("never re-applies a finished merge over later changes when recovery works from a journal read mid-merge", async () => {
    const store = newStoreId();
    const { target, source } = await pair(store, "stale");
    const merges = env.service.profiles.store.merges;
    // Keep the journal as a recovery pass listing `running` merges would have read it while the live merge ran.
    const transition = merges.findOneAndUpdate.bind(merges);
    let midMerge: MergeDoc | undefined;
    const spy = jest.spyOn(merges, "findOneAndUpdate").mockImplementation((async (...args: Parameters<typeof transition>) => {
      const doc = await transition(...args);
      if (doc?.state === "running" && doc.source_id === source.id) midMerge = structuredClone(doc);
      return doc;
    }) as typeof merges.findOneAndUpdate);
    try {
      await call(env, "merge", { store_id: store, id: target.id, source_id: source.id });
    } finally {
      spy.mockRestore();
    }
    expect(midMerge).toMatchObject({ state: "running", steps: [] });
    await changeTarget(store, target.id);

    jest.spyOn(merges, "find").mockResolvedValueOnce([midMerge!]);
    await recoverMerges(env.service.profiles.deps);

    await expectChangesKept(store, target.id);
    expect(await merges.findOne({ _id: midMerge!._id })).toMatchObject({ state: "done" });
  });

  it("lets a recovery pass run alongside a live merge: the plan is applied once and never after the merge finished", async () => {
    const store = newStoreId();
    const deps = env.service.profiles.deps;
    for (let round = 0; round < 4; round++) {
      const { target, source } = await pair(store, `live-${round}`);
      const [merged] = await Promise.all([
        call(env, "merge", { store_id: store, id: target.id, source_id: source.id }),
        recoverMerges(deps),
        new Promise((resolve) => setImmediate(resolve)).then(() => recoverMerges(deps)),
      ]);
      expect(merged.promo_usage).toEqual([{ promo_code_id: "P", uses: 5 }]);
      await changeTarget(store, target.id);
      await recoverMerges(deps);
      await expectChangesKept(store, target.id);
      expect(await env.service.profiles.store.merges.findOne({ store_id: store, source_id: source.id })).toMatchObject({ state: "done" });
    }
  });

  it("lets exactly one of two concurrent merges of the same source win", async () => {
    const store = newStoreId();
    const t1 = await call(env, "create", { store_id: store, email: "t1-race@example.com" });
    const t2 = await call(env, "create", { store_id: store, email: "t2-race@example.com" });
    const source = await call(env, "create", { store_id: store, email: "s-race@example.com" });
    await linkOrder(env, store, source.id, "race-order");
    const results = await Promise.allSettled([
      call(env, "merge", { store_id: store, id: t1.id, source_id: source.id }),
      call(env, "merge", { store_id: store, id: t2.id, source_id: source.id }),
    ]);
    expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
    const failure = results.find((r) => r.status === "rejected") as PromiseRejectedResult;
    expect(["CONFLICT", "NOT_FOUND"]).toContain(failure.reason.type);
    const owners = [...(await orderIdsOf(env, store, t1.id)), ...(await orderIdsOf(env, store, t2.id))];
    expect(owners).toEqual(["race-order"]);
    for (const t of [t1, t2]) expect((await env.service.profiles.store.profiles.findOne({ _id: t.id }))?.merge_lock).toBeUndefined();
  });
});

describe("profiles.merge recovery", () => {
  let dataDir: string;
  let smtp: SmtpTestServer;
  beforeAll(async () => {
    smtp = await startSmtpServer();
  });
  afterAll(() => smtp?.close());
  beforeEach(() => {
    dataDir = mkdtempSync(path.join(tmpdir(), "profiles-merge-"));
  });
  afterEach(() => rmSync(dataDir, { recursive: true, force: true }));

  /** A target and a source with orders, a session and promo usage, on the file store under dataDir. */
  async function seed(env: ProfilesEnv, store: string) {
    const target = await call(env, "create", { store_id: store, email: "rt@example.com" });
    const source = await call(env, "create", {
      store_id: store,
      email: "rs@example.com",
      taxonomies: [{ taxonomy_id: "seg", fields: [{ key: "k", type: "text", value: "v" }] }],
    });
    await call(env, "recordPromoUse", { store_id: store, id: target.id, promo_code_id: "P", uses: 1 });
    await call(env, "recordPromoUse", { store_id: store, id: source.id, promo_code_id: "P", uses: 4 });
    await linkOrder(env, store, source.id, "r-1");
    const session = (await env.broker.call("auth.issueSession", { store_id: store, profile_id: source.id, is_verified: false })) as AuthToken;
    return { target, source, session };
  }

  /**
   * What a crash mid-merge leaves behind: both profiles locked, the journal `running` with `steps` done,
   * the source's e-mail released, and the target updated when that step is among them.
   */
  async function crashedMerge(env: ProfilesEnv, store: string, ids: { target: string; source: string; journal: string }, steps: string[]): Promise<MergeDoc> {
    const profiles = env.service.profiles.store.profiles;
    const t = (await profiles.findOne({ _id: ids.target })) as ProfileDoc;
    const s = (await profiles.findOne({ _id: ids.source })) as ProfileDoc;
    const journal: MergeDoc = {
      _id: ids.journal,
      store_id: store,
      target_id: ids.target,
      source_id: ids.source,
      state: "running",
      steps,
      snapshot: { ...s, merge_lock: ids.journal },
      plan: planMerge(t, s),
      created_at: 1,
      updated_at: 1,
    };
    await env.service.profiles.store.merges.insertOne(journal);
    await profiles.updateOne({ _id: ids.source }, { $set: { merge_lock: ids.journal, email: null, email_lower: null, email_sort: "", email_words: [] } });
    const targetSet = steps.includes("target_updated") ? { ...journal.plan, merge_lock: ids.journal } : { merge_lock: ids.journal };
    await profiles.updateOne({ _id: ids.target }, { $set: targetSet });
    return journal;
  }

  it("completes a merge interrupted after the target was updated when the service restarts", async () => {
    const store = newStoreId();
    const first = await startProfiles({ storage: { dataDir }, smtp });
    const { target, source, session } = await seed(first, store);
    const journalId = "0190c5d2-3333-7000-8000-000000000001";
    await crashedMerge(first, store, { target: target.id, source: source.id, journal: journalId }, ["source_email_released", "target_updated"]);
    await first.stop();

    const received: Merged[] = [];
    const second = await startProfiles({ storage: { dataDir }, smtp, extra: [mergeProbe(received)] });
    try {
      await eventually(async () => (await second.service.profiles.store.merges.findOne({ _id: journalId }))?.state === "done", 10_000);
      const merged = await call(second, "get", { store_id: store, id: target.id });
      expect(merged.promo_usage).toEqual([{ promo_code_id: "P", uses: 5 }]); // summed once, not twice
      expect(merged.taxonomies.map((e) => e.taxonomy_id)).toEqual(["seg"]);
      expect(await errorOf(call(second, "get", { store_id: store, id: source.id }))).toMatchObject({ type: "NOT_FOUND" });
      expect(await orderIdsOf(second, store, target.id)).toEqual(["r-1"]);
      expect(await errorOf(second.broker.call("auth.authenticate", { store_id: store, access_token: session.access_token }))).toMatchObject({
        type: "UNAUTHENTICATED",
      });
      expect((await second.service.profiles.store.profiles.findOne({ _id: target.id }))?.merge_lock).toBeUndefined();
      await eventually(() => received.length === 1);
      expect(received).toEqual([{ store_id: store, target_id: target.id, source_id: source.id }]);
      // the target can be updated and merged again
      await expect(call(second, "update", { store_id: store, id: target.id, status: "archived" })).resolves.toMatchObject({ status: "archived" });
    } finally {
      await second.stop();
    }
  });

  it("answers the target for the source's e-mail while a merge hands it over: no second profile takes it", async () => {
    const store = newStoreId();
    const env = await startProfiles({ storage: { dataDir }, smtp });
    try {
      const guest = await call<{ profile_id: string }>(env, "initialize", { store_id: store });
      const source = await call(env, "create", { store_id: store, email: "handover@example.com" });
      // A merge of the source into the guest, stopped between releasing the e-mail and the target taking it.
      const profiles = env.service.profiles.store.profiles;
      const journalId = "0190c5d2-3333-7000-8000-000000000003";
      const journal = await crashedMerge(env, store, { target: guest.profile_id, source: source.id, journal: journalId }, ["source_email_released"]);
      expect(journal.plan?.email_lower).toBe("handover@example.com");

      // Every way in by e-mail lands on the target, and none creates a profile.
      expect((await call(env, "create", { store_id: store, email: "Handover@example.com" })).id).toBe(guest.profile_id);
      expect((await call<{ id: string }>(env, "connect", { store_id: store, email: "handover@example.com" })).id).toBe(guest.profile_id);
      await publishEvent(env.broker, "order.created", { store_id: store, order_id: "h-1", email: "handover@example.com" });
      await eventually(async () => (await env.service.profiles.store.orderLinks.findOne({ store_id: store, order_id: "h-1" })) !== null);
      expect((await env.service.profiles.store.orderLinks.findOne({ store_id: store, order_id: "h-1" }))?.profile_id).toBe(guest.profile_id);

      await env.service.recover();
      expect(await env.service.profiles.store.merges.findOne({ _id: journalId })).toMatchObject({ state: "done" });
      expect(await profiles.count({ store_id: store, email_lower: "handover@example.com" })).toBe(1);
      expect(await call(env, "get", { store_id: store, id: guest.profile_id })).toMatchObject({ email: "handover@example.com" });
    } finally {
      await env.stop();
    }
  });

  it("undoes a merge that crashed before its point of no return", async () => {
    const store = newStoreId();
    const first = await startProfiles({ storage: { dataDir }, smtp });
    const { target, source } = await seed(first, store);
    const journalId = "0190c5d2-3333-7000-8000-000000000002";
    const long_ago = Math.floor(Date.now() / 1000) - PENDING_LEASE_SECONDS - 5;
    await first.service.profiles.store.merges.insertOne({
      _id: journalId,
      store_id: store,
      target_id: target.id,
      source_id: source.id,
      state: "pending",
      steps: [],
      created_at: long_ago,
      updated_at: long_ago,
    });
    await first.service.profiles.store.profiles.updateOne({ _id: source.id }, { $set: { merge_lock: journalId } });
    await first.stop();

    const second = await startProfiles({ storage: { dataDir }, smtp });
    try {
      await eventually(async () => (await second.service.profiles.store.merges.findOne({ _id: journalId })) === null, 10_000);
      const src = await call(second, "get", { store_id: store, id: source.id });
      expect(src).toMatchObject({ email: "rs@example.com", promo_usage: [{ promo_code_id: "P", uses: 4 }] });
      expect(await orderIdsOf(second, store, source.id)).toEqual(["r-1"]);
      expect((await second.service.profiles.store.profiles.findOne({ _id: source.id }))?.merge_lock).toBeUndefined();
      await expect(call(second, "merge", { store_id: store, id: target.id, source_id: source.id })).resolves.toMatchObject({ id: target.id });
    } finally {
      await second.stop();
    }
  });

  it("answers 503 when a step cannot run (auth down) and completes the merge once auth is back", async () => {
    const store = newStoreId();
    const env = await startProfiles({ storage: { dataDir }, smtp });
    try {
      const { target, source } = await seed(env, store);
      await env.broker.destroyService(env.broker.getLocalService("auth"));

      const err = await errorOf(call(env, "merge", { store_id: store, id: target.id, source_id: source.id }));
      expect(err).toMatchObject({ type: "SERVICE_UNAVAILABLE", code: 503 });
      const journal = await env.service.profiles.store.merges.findOne({ store_id: store, source_id: source.id });
      expect(journal).toMatchObject({ state: "running", steps: ["source_email_released", "target_updated", "orders_moved"] });
      // while unfinished the merge holds both profiles
      expect(await errorOf(call(env, "merge", { store_id: store, id: target.id, source_id: source.id }))).toMatchObject({ type: "CONFLICT" });

      await env.broker.createService(loadService("auth"));
      await env.broker.waitForServices(["auth"], 5000);
      await env.service.recover();
      expect(await env.service.profiles.store.merges.findOne({ _id: journal!._id })).toMatchObject({ state: "done" });
      expect(await errorOf(call(env, "get", { store_id: store, id: source.id }))).toMatchObject({ type: "NOT_FOUND" });
      expect((await call(env, "get", { store_id: store, id: target.id })).promo_usage).toEqual([{ promo_code_id: "P", uses: 5 }]);
    } finally {
      await env.stop();
    }
  });
});
