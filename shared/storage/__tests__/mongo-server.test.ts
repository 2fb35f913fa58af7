/**
 * What only a real MongoDB server can show, run only where one does (MONGO_URL, or a local mongod; see
 * mongo-env.ts) and reported as skipped elsewhere:
 *   - query plans: every page (findPage over an index on { store_id, field }) and every search query
 *     the profiles service sends is answered by an index scan (IXSCAN) with no in-memory SORT stage, and a
 *     page deep in a store examines about a page of keys, not the store (`explain("executionStats")` of
 *     the exact query the adapter sends: pageQuery / findQuery);
 *   - the index replacement at start-up against the server's own index catalogue;
 *   - bulkWrite's per-op results against the server's replies, on both bulk paths;
 *   - the server's own refusal of a `$regex` holding U+0000, which the adapter answers before sending.
 */
import { MongoClient, type Collection as DriverCollection, type Document } from "mongodb";
import { closeAllMongoDatabases, findQuery, mongoClientBulk, mongoCollection, openMongoDatabase, pageQuery, toStorageError, type DriverQuery } from "../mongo";
import type { BulkOp, Collection, Database, Doc, Filter } from "../port";
import { emailFields, MAX_CANDIDATES, profileFilter, profileSort, type ProfileSearch } from "../../../services/profiles/profiles.search";
import { ProfilesStore, type ProfileDoc } from "../../../services/profiles/profiles.store";
import { SKIP_NOTE, describeIfMongo, mongoAvailable, mongoLabel, mongoServerUrl, stopMongo } from "./mongo-env";

if (!mongoAvailable) console.info(SKIP_NOTE);

interface Plan {
  stages: string[];
  indexes: string[];
  keysExamined: number;
  docsExamined: number;
  returned: number;
}

/** Every stage name and index name in a plan tree (classic or SBE `queryPlan`, sharded or not). */
function walk(node: unknown, plan: Pick<Plan, "stages" | "indexes">): void {
  if (Array.isArray(node)) {
    for (const n of node) walk(n, plan);
    return;
  }
  if (node === null || typeof node !== "object") return;
  const n = node as Record<string, unknown>;
  if (typeof n.stage === "string") plan.stages.push(n.stage);
  if (typeof n.indexName === "string") plan.indexes.push(n.indexName);
  for (const key of ["inputStage", "inputStages", "queryPlan", "shards", "winningPlan"]) walk(n[key], plan);
}

async function explain(coll: DriverCollection<Document>, q: DriverQuery): Promise<Plan> {
  const explained = (await coll.find(q.filter, { ...(q.sort ? { sort: q.sort } : {}), limit: q.limit }).explain("executionStats")) as Document;
  const plan: Plan = { stages: [], indexes: [], keysExamined: 0, docsExamined: 0, returned: 0 };
  walk(explained.queryPlanner?.winningPlan, plan);
  plan.keysExamined = explained.executionStats?.totalKeysExamined ?? NaN;
  plan.docsExamined = explained.executionStats?.totalDocsExamined ?? NaN;
  plan.returned = explained.executionStats?.nReturned ?? NaN;
  return plan;
}

const isIndexScan = (stage: string) => stage.endsWith("IXSCAN") || stage === "IDHACK";

/** The plan walks `index` (any index when undefined) and sorts nothing in memory; the stages show on failure. */
function expectIndexWalk(plan: Plan, index?: string): void {
  expect({
    indexScan: plan.stages.some(isIndexScan),
    index: index === undefined || plan.indexes.includes(index),
    inMemorySort: plan.stages.includes("SORT"),
    collectionScan: plan.stages.includes("COLLSCAN"),
    stages: plan.stages,
    indexes: plan.indexes,
  }).toEqual({ indexScan: true, index: true, inMemorySort: false, collectionScan: false, stages: plan.stages, indexes: plan.indexes });
}

const STORE_SIZE = 3000;
const LIMIT = 20;
const pad = (i: number) => String(i).padStart(6, "0");

function profile(i: number, store: string): ProfileDoc {
  const guest = i % 10 === 9;
  const email = guest ? null : i % 7 === 0 ? `mary.jane${i}@x.com` : `user${i}@example.org`;
  return {
    _id: `${store}-${pad(i)}`,
    store_id: store,
    ...emailFields(email),
    verified: false,
    status: i % 3 === 0 ? "archived" : "active",
    taxonomies: [],
    promo_usage: [],
    // Every 4th profile holds "vip": more than MAX_CANDIDATES, so a "vip" search walks the sort index.
    search_values: i % 4 === 0 ? ["vip", `v${i}`] : [`v${i}`],
    created_at: Math.floor(i / 3),
    updated_at: (i * 7919) % 1009,
  } as ProfileDoc;
}

describeIfMongo(`mongodb server (${mongoLabel}): plans, indexes, bulk writes`, () => {
  const dbName = `crm_plans_${process.pid}`;
  let url: string;
  let db: Database;
  let raw: MongoClient;
  const logs: string[] = [];
  let profiles: Collection<ProfileDoc>;
  let rawProfiles: DriverCollection<Document>;

  beforeAll(async () => {
    url = await mongoServerUrl();
    db = await openMongoDatabase(url, dbName, { log: (m) => logs.push(m) });
    await db.drop();
    raw = new MongoClient(url);
    await raw.connect();
    const store = new ProfilesStore(db);
    await store.ensureIndexes();
    profiles = store.profiles;
    rawProfiles = raw.db(dbName).collection("profiles");
    const docs = [...Array.from({ length: STORE_SIZE }, (_, i) => profile(i, "s1")), ...Array.from({ length: 500 }, (_, i) => profile(i, "s2"))];
    const results = await profiles.bulkWrite(docs.map((document) => ({ insertOne: { document } })));
    expect(results.every((r) => r.ok && r.inserted)).toBe(true);
    const links = Array.from({ length: 300 }, (_, i) => ({
      _id: `l${pad(i)}`,
      store_id: "s1",
      order_id: `o${i}`,
      profile_id: i % 2 ? "s1-000001" : "s1-000002",
      total: null,
      currency: null,
      created_at: Math.floor(i / 2),
      linked_at: i,
    }));
    expect((await store.orderLinks.bulkWrite(links.map((document) => ({ insertOne: { document } })))).every((r) => r.ok)).toBe(true);
  }, 120_000);

  afterAll(async () => {
    await db?.drop();
    await raw?.close();
    await closeAllMongoDatabases();
    await stopMongo();
  });

  const sorts: Pick<ProfileSearch, "sort_field" | "sort_direction">[] = (["created_at", "updated_at", "email"] as const).flatMap((sort_field) =>
    (["asc", "desc"] as const).map((sort_direction) => ({ sort_field, sort_direction })),
  );
  const indexOf = { created_at: "profiles_store_created__id", updated_at: "profiles_store_updated__id", email: "profiles_store_email_sort__id" } as const;

  it("created every non-unique index with _id last and left the unique one as declared", async () => {
    const indexes = await rawProfiles.listIndexes().toArray();
    const byName = Object.fromEntries(indexes.map((i) => [i.name, i.key]));
    expect(byName.profiles_store_created__id).toEqual({ store_id: 1, created_at: 1, _id: 1 });
    expect(byName.profiles_store_email_words__id).toEqual({ store_id: 1, email_words: 1, _id: 1 });
    expect(byName.profiles_store_email_unique).toEqual({ store_id: 1, email_lower: 1 });
    expect(logs).toEqual([]);
  });

  it.each(sorts)("a listing page sorted by $sort_field $sort_direction walks its index from the start and from deep in the store, sorting nothing", async (search) => {
    const sort = profileSort(search);
    const filter = profileFilter("s1", { ...search });
    const first = await explain(rawProfiles, pageQuery({ filter, sort, limit: LIMIT }));
    expectIndexWalk(first, indexOf[search.sort_field]);
    expect(first.keysExamined).toBeLessThanOrEqual(LIMIT + 2);
    // The cursor of a page at 90% depth: the next page reads about a page of keys, not the 2,700 before it.
    const [deep] = await rawProfiles
      .find({ store_id: "s1" }, { sort: { [sort.field]: sort.direction, _id: sort.direction }, skip: Math.floor(STORE_SIZE * 0.9), limit: 1 })
      .toArray();
    const after = { value: deep[sort.field], id: String(deep._id) };
    const next = await explain(rawProfiles, pageQuery({ filter, sort, limit: LIMIT, after }));
    expectIndexWalk(next, indexOf[search.sort_field]);
    expect(next.returned).toBe(LIMIT + 1);
    expect(next.keysExamined).toBeLessThanOrEqual(5 * (LIMIT + 2));
    expect(next.docsExamined).toBeLessThanOrEqual(5 * (LIMIT + 2));
    // The adapter's own page agrees with the server's order.
    const page = await profiles.findPage({ filter, sort, limit: LIMIT, after });
    const expected = await rawProfiles
      .find(
        { store_id: "s1" },
        { sort: { [sort.field]: sort.direction, _id: sort.direction }, skip: Math.floor(STORE_SIZE * 0.9) + 1, limit: LIMIT, projection: { _id: 1 } },
      )
      .toArray();
    expect(page.items.map((d) => d._id)).toEqual(expected.map((d) => d._id));
  });

  it("a page with a status filter walks the sort index, the status checked on the documents it fetches", async () => {
    const search = { status: "active" as const, sort_field: "updated_at" as const, sort_direction: "desc" as const };
    const plan = await explain(rawProfiles, pageQuery({ filter: profileFilter("s1", search), sort: profileSort(search), limit: LIMIT }));
    expectIndexWalk(plan, "profiles_store_updated__id");
    expect(plan.docsExamined).toBeLessThanOrEqual(3 * (LIMIT + 1));
  });

  it("a profile's orders page walks { store_id, profile_id, created_at, _id } backwards", async () => {
    const coll = raw.db(dbName).collection("order_links");
    const request = { filter: { store_id: "s1", profile_id: "s1-000001" }, sort: { field: "created_at", direction: -1 as const }, limit: LIMIT };
    expectIndexWalk(await explain(coll, pageQuery(request)), "order_links_store_profile_created__id");
    expectIndexWalk(await explain(coll, pageQuery({ ...request, after: { value: 100, id: "l000201" } })), "order_links_store_profile_created__id");
  });

  describe("search queries", () => {
    const text = (query: string): ProfileSearch => ({ query, sort_field: "created_at", sort_direction: "desc" });

    it("an indexed taxonomy value or text: search_values through its index", async () => {
      const plan = await explain(rawProfiles, findQuery({ store_id: "s1", search_values: "v77" }, { limit: MAX_CANDIDATES + 1 }));
      expectIndexWalk(plan, "profiles_store_search__id");
      expect(plan.keysExamined).toBeLessThanOrEqual(2);
      expectIndexWalk(
        await explain(rawProfiles, findQuery({ store_id: "s1", search_values: { $in: ["v1", "v2"] } }, { limit: MAX_CANDIDATES + 1 })),
        "profiles_store_search__id",
      );
    });

    it("an e-mail prefix from any word: email_words read as a prefix range", async () => {
      const filter = profileFilter("s1", text("jane7")).$and as Filter[];
      const words = (filter[0].$or as Filter[])[0];
      const plan = await explain(rawProfiles, findQuery({ store_id: "s1", ...words }, { limit: MAX_CANDIDATES + 1 }));
      expectIndexWalk(plan, "profiles_store_email_words__id");
      // Only "jane7…@x.com" words (of multiples of 7 written with a leading 7) are in the range: one key each.
      expect(plan.keysExamined).toBeLessThanOrEqual(plan.returned + 2);
    });

    it("the selective search's candidates, fetched by id", async () => {
      const ids = ["s1-000007", "s1-000070", "s1-000077"];
      expectIndexWalk(await explain(rawProfiles, findQuery({ ...profileFilter("s1", text("jane7")), _id: { $in: ids } }, { limit: MAX_CANDIDATES })));
    });

    it("an unselective search (more matches than MAX_CANDIDATES) walks the sort index, first page and deep", async () => {
      const search = text("vip");
      const filter = profileFilter("s1", search);
      const sort = profileSort(search);
      expectIndexWalk(await explain(rawProfiles, pageQuery({ filter, sort, limit: LIMIT })), "profiles_store_created__id");
      const deep = { value: 100, id: "s1-000300" };
      const plan = await explain(rawProfiles, pageQuery({ filter, sort, limit: LIMIT, after: deep }));
      expect(plan.stages).not.toContain("SORT");
      expect(plan.stages.some(isIndexScan)).toBe(true);
    });
  });

  describe("indexes at start-up", () => {
    it("replaces an index an older version made (same name, no _id) on the server, and logs it once", async () => {
      const coll = raw.db(dbName).collection("legacy");
      await coll.insertOne({ _id: "x" as never, store_id: "s", created_at: 1 });
      await coll.createIndex({ store_id: 1, created_at: 1 }, { name: "store_created" });
      const seen: string[] = [];
      const c = mongoCollection("legacy", () => coll, { log: (m) => seen.push(m) });
      await c.createIndexes([{ name: "store_created", keys: { store_id: 1, created_at: 1 } }]);
      const names = (await coll.listIndexes().toArray()).map((i) => i.name).sort();
      expect(names).toEqual(["_id_", "store_created__id"]);
      expect(seen).toEqual([expect.stringContaining("index store_created")]);
      await c.createIndexes([{ name: "store_created", keys: { store_id: 1, created_at: 1 } }]);
      expect(seen).toHaveLength(1);
      await expect(c.createIndexes([{ name: "store_created", keys: { store_id: 1, updated_at: 1 } }])).rejects.toMatchObject({ code: "INVALID_QUERY" });
    });
  });

  describe("bulkWrite", () => {
    const batch: BulkOp<Doc>[] = [
      { updateOne: { filter: { _id: "nope" }, update: { $set: { n: 5 } } } },
      { insertOne: { document: { _id: "a", email: "a@x.io" } } },
      { insertOne: { document: { _id: "b", email: "old@x.io" } } },
      { updateOne: { filter: { _id: "old" }, update: { $set: { n: 1 } } } },
      { updateOne: { filter: { _id: "gone" }, update: { $set: { n: 1 } } } },
      { updateOne: { filter: { email: "new@x.io" }, update: { $set: { n: 1 } }, upsert: true } },
      { deleteOne: { filter: { _id: "nope" } } },
      { deleteOne: { filter: { _id: "also-gone" } } },
      { updateOne: { filter: { _id: "old" }, update: { $inc: { email: 1 } } as never } },
    ];

    it("gives the same exact per-op results through the client bulkWrite (MongoDB >= 8) and the collection path", async () => {
      const clientBulk = mongoClientBulk(raw);
      const outcomes = [];
      for (const [name, options] of [
        ["bulk_client", { clientBulk }],
        ["bulk_collection", {}],
      ] as const) {
        const coll = raw.db(dbName).collection(name);
        const c = mongoCollection(name, () => coll, options);
        await c.createIndexes([{ name: "email_unique", keys: { email: 1 }, unique: true, partial: { email: { $type: "string" } } }]);
        await coll.insertMany([
          { _id: "old", email: "old@x.io", n: 0 },
          { _id: "gone", n: 1 },
          { _id: "also-gone", n: 2 },
        ] as never);
        outcomes.push(await c.bulkWrite(batch));
      }
      for (const results of outcomes) {
        expect(results).toEqual([
          { ok: true, matched: 0, modified: 0 },
          { ok: true, inserted: true },
          { ok: false, error: { code: "DUPLICATE_KEY", message: expect.stringContaining("E11000"), index: "email_unique" } },
          { ok: true, matched: 1, modified: 1 },
          { ok: true, matched: 1, modified: 0 },
          { ok: true, matched: 0, modified: 0, upsertedId: expect.any(String) },
          { ok: true, deleted: 0 },
          { ok: true, deleted: 1 },
          { ok: false, error: { code: "INVALID_QUERY", message: expect.any(String) } },
        ]);
      }
      console.info(`MongoDB client bulkWrite ${(await clientBulk.supported()) ? "used" : "not available (server < 8): collection path both times"}`);
    });
  });

  describe("a $regex holding U+0000", () => {
    it("the server refuses it (mapped to INVALID_QUERY), and the adapter refuses it before sending", async () => {
      const err = await rawProfiles
        .find({ email_words: { $regex: "^a\u0000" } })
        .toArray()
        .catch((e: unknown) => e);
      expect(toStorageError(err)).toMatchObject({ code: "INVALID_QUERY" });
      const search = profileFilter("s1", { query: "a\u0000", sort_field: "email", sort_direction: "asc" });
      await expect(profiles.findPage({ filter: search, sort: { field: "email_sort", direction: 1 }, limit: LIMIT })).rejects.toMatchObject({ code: "INVALID_QUERY" });
    });
  });
});
