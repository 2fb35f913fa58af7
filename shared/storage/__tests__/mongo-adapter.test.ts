/**
 * The MongoDB adapter without a server: the storage contract over a driver double (mongo-double.ts: the
 * few driver methods the adapter calls, in memory, answering with the driver's real error classes and
 * the server's refusals), once as MongoDB 8 (client-level bulkWrite) and once as MongoDB 7 (collection
 * bulk writes); then what the adapter sends — index definitions, bulk round trips, refused `$regex`
 * patterns — and its pure parts, checked against mingo, which compares and type-brackets like MongoDB.
 * What only a real server can prove (query plans, the server's own refusals) is in mongo-server.test.ts,
 * which runs only where a MongoDB server does.
 */
import {
  BSON,
  MongoBulkWriteError,
  MongoClientBulkWriteError,
  MongoInvalidArgumentError,
  MongoNetworkError,
  MongoServerError,
  type ClientBulkWriteResult,
  type Document,
} from "mongodb";
import { bulkRounds, findQuery, keysetFilter, mongoCollection, mongoIndex, mongoUpdate, pageQuery, portableFilter, toStorageError, type ClientBulk } from "../mongo";
import { mingoPredicate } from "../query/update";
import { compareValues } from "../query/values";
import type { BulkItemResult, BulkOp, Doc, Filter, IndexSpec } from "../port";
import { escapeRegex } from "../port";
import { isUuid } from "../../ids";
import { profileFilter, profileSort } from "../../../services/profiles/profiles.search";
import { describeStorageContract } from "./contract";
import { DriverDouble, refuseFilter, type Calls } from "./mongo-double";

describeStorageContract("mongodb adapter over a driver double (MongoDB 8: client bulkWrite)", async () => new DriverDouble().database(8));
describeStorageContract("mongodb adapter over a driver double (MongoDB 7: collection bulk writes)", async () => new DriverDouble().database(7));

const methods = (calls: Calls) => calls.map((c) => c.method);

describe("mongodb adapter: errors", () => {
  it("maps E11000 from updates, findAndModify and index builds to DUPLICATE_KEY with the index name", () => {
    const messages = [
      'E11000 duplicate key error collection: crm_profiles.profiles index: email_unique dup key: { store_id: "s", email_lower: "a@x.io" }',
      'Plan executor error during findAndModify :: caused by :: E11000 duplicate key error collection: crm.p index: email_unique dup key: { email_lower: "a" }',
      'Index build failed: 4f1c: Collection crm.p ( 4f1c ) :: caused by :: E11000 duplicate key error collection: crm.p index: email_unique dup key: { name: "x" }',
      'E11000 duplicate key error collection: crm.p index: email_unique collation: { locale: "en" } dup key: { email: "a" }',
    ];
    for (const message of messages) {
      expect(toStorageError(new MongoServerError({ message, code: 11000 }))).toMatchObject({ code: "DUPLICATE_KEY", index: "email_unique" });
    }
  });

  it("maps a network failure the driver wraps in a MongoBulkWriteError or MongoClientBulkWriteError to UNAVAILABLE", () => {
    const wrapped = new MongoBulkWriteError(new MongoNetworkError("connection 3 to 10.0.0.5:27017 closed") as never, { insertedCount: 0 } as never);
    expect(wrapped.name).toBe("MongoBulkWriteError");
    expect(toStorageError(wrapped)).toMatchObject({ code: "UNAVAILABLE" });
    const clientWrapped = new MongoClientBulkWriteError({ message: "Mongo client bulk write encountered an error during execution" });
    clientWrapped.cause = new MongoServerError({ message: "interrupted at shutdown", code: 11600 });
    expect(toStorageError(clientWrapped)).toMatchObject({ code: "UNAVAILABLE" });
  });

  it("maps index conflicts and refused arguments to INVALID_QUERY, retryable failures to UNAVAILABLE", () => {
    expect(toStorageError(new MongoServerError({ message: "An existing index has the same name", code: 86 }))).toMatchObject({ code: "INVALID_QUERY" });
    expect(toStorageError(new MongoServerError({ message: "Index already exists with different options", code: 85 }))).toMatchObject({ code: "INVALID_QUERY" });
    expect(toStorageError(new MongoInvalidArgumentError("Update document requires atomic operators"))).toMatchObject({ code: "INVALID_QUERY" });
    expect(toStorageError(new MongoServerError({ message: "write concern timed out", code: 64 }))).toMatchObject({ code: "UNAVAILABLE" });
    const labelled = new MongoServerError({ message: "stepping down", code: 999_999, errorLabels: ["RetryableWriteError"] });
    expect(toStorageError(labelled)).toMatchObject({ code: "UNAVAILABLE" });
  });

  it("maps the server's and BSON's refusals of a regular expression to INVALID_QUERY", () => {
    expect(toStorageError(new MongoServerError({ message: "Regular expression cannot contain an embedded null byte", code: 2 }))).toMatchObject({
      code: "INVALID_QUERY",
    });
    expect(toStorageError(new MongoServerError({ message: "Regular expression is invalid: missing closing parenthesis", code: 51091 }))).toMatchObject({
      code: "INVALID_QUERY",
    });
    expect(toStorageError(new BSON.BSONError("BSON Regex patterns cannot contain null bytes"))).toMatchObject({ code: "INVALID_QUERY" });
  });
});

describe("mongodb adapter: keyset filter", () => {
  it("pages over mixed types in MongoDB's cross-type order without skipping or repeating", () => {
    const values: unknown[] = [null, undefined, 3, -1, 3, "b", "a", "b", true, false, new Date(10), new Date(5), { x: 1 }, { x: 0 }, 2.5, "", 0];
    const docs = values.map((v, i) => (v === undefined ? { _id: `d${String(i).padStart(2, "0")}` } : { _id: `d${String(i).padStart(2, "0")}`, v }));
    for (const direction of [1, -1] as const) {
      const order = (a: Doc, b: Doc) => (compareValues(a.v, b.v) || (a._id < b._id ? -1 : 1)) * direction;
      const expected = [...docs].sort(order).map((d) => d._id);
      for (const size of [1, 2, 5]) {
        const seen: string[] = [];
        let after: { value: unknown; id: string } | undefined;
        for (let guard = 0; guard < 100; guard++) {
          const test = after ? mingoPredicate(keysetFilter("v", direction, after)) : () => true;
          const page = docs
            .filter((d) => test(d))
            .sort(order)
            .slice(0, size);
          if (page.length === 0) break;
          seen.push(...page.map((d) => d._id));
          const last = page[page.length - 1] as Doc & { v?: unknown };
          after = { value: last.v, id: last._id };
        }
        expect(seen).toEqual(expected);
      }
    }
  });

  it("sends pages and sorted finds sorted by their field then _id, asking one document more than the page", () => {
    const first = pageQuery({ filter: { store_id: "s" }, sort: { field: "created_at", direction: -1 }, limit: 20 });
    expect(first).toEqual({ filter: { store_id: "s" }, sort: { created_at: -1, _id: -1 }, limit: 21, pageSize: 20 });
    const next = pageQuery({ filter: { store_id: "s" }, sort: { field: "created_at", direction: 1 }, limit: 5, after: { value: 7, id: "p7" } });
    expect(next.filter).toEqual({ $and: [{ store_id: "s" }, keysetFilter("created_at", 1, { value: 7, id: "p7" })] });
    expect(pageQuery({ filter: {}, sort: { field: "_id", direction: 1 }, limit: 3 }).sort).toEqual({ _id: 1 });
    expect(findQuery({ store_id: "s" }, { sort: { rank: -1 }, limit: 3 })).toEqual({ filter: { store_id: "s" }, sort: { rank: -1, _id: -1 }, limit: 3 });
    expect(findQuery({ store_id: "s" })).toEqual({ filter: { store_id: "s" }, limit: 1000 });
  });
});

describe("mongodb adapter: filters and updates sent to the server", () => {
  const docs: Doc[] = [
    { _id: "a", email: "a@x.io", items: [{ sku: "k1" }] },
    { _id: "b", email: { $ne: null } },
    { _id: "c", email: null },
    { _id: "d", items: [{ sku: { $gt: "" } }] },
    { _id: "e", email: "e@x.io", status: "active" },
  ];
  const matching = (filter: Filter) => docs.filter((d) => mingoPredicate(filter)(d)).map((d) => d._id);

  it("turns operator-shaped values inside $in/$nin into $eq/$ne clauses that match the same documents", () => {
    const hostile = { $ne: null };
    const filters: Filter[] = [
      { email: { $in: [hostile, "a@x.io"] } },
      { email: { $in: [hostile] } },
      { email: { $nin: [hostile, "a@x.io"] } },
      { email: { $in: [hostile, "e@x.io"], $ne: "a@x.io" }, status: "active" },
      { $or: [{ email: { $in: [hostile] } }, { _id: "c" }], $and: [{ _id: { $ne: "z" } }] },
      { items: { $elemMatch: { sku: { $in: [{ $gt: "" }, "k1"] } } } },
    ];
    for (const filter of filters) {
      const sent = portableFilter(filter);
      expect(() => refuseFilter(sent)).not.toThrow();
      expect(matching(sent)).toEqual(matching(filter));
    }
    expect(() => refuseFilter(filters[0])).toThrow("cannot nest $ under $in");
    const plain = { store_id: "s", email: { $in: ["a", "b"] } };
    expect(portableFilter(plain)).toBe(plain);
  });

  it("drops operators left empty by undefined fields and gives upserts a uuidv7 _id unless one is set", () => {
    expect(mongoUpdate({ _id: "a" }, { $set: { name: "N", gone: undefined }, $unset: { x: undefined } }, false)).toEqual({ $set: { name: "N" } });
    expect(mongoUpdate({ _id: "a" }, { $set: { name: undefined } }, false)).toEqual({ $set: {} });
    const seeded = mongoUpdate({ store_id: "s" }, { $set: { name: undefined } }, true) as { $setOnInsert: { _id: string } };
    expect(Object.keys(seeded)).toEqual(["$setOnInsert"]);
    expect(isUuid(seeded.$setOnInsert._id)).toBe(true);
    expect(mongoUpdate({ _id: "given" }, { $inc: { n: 1 } }, true)).toEqual({ $inc: { n: 1 } });
    expect(mongoUpdate({ store_id: "s" }, { $setOnInsert: { _id: "mine" } }, true)).toEqual({ $setOnInsert: { _id: "mine" } });
  });

  it("refuses partial index filters MongoDB cannot index, before asking the server", async () => {
    const d = new DriverDouble();
    const c = d.database(8).collection("people");
    for (const partial of [{ email: { $exists: false } }, { status: { $ne: "gone" } }, { $or: [{ email: { $regex: "x" } }] }]) {
      await expect(c.createIndexes([{ name: "p", keys: { email: 1 }, partial }])).rejects.toMatchObject({ code: "INVALID_QUERY" });
    }
    expect(d.calls).toEqual([]);
    await c.createIndexes([{ name: "p", keys: { email: 1 }, unique: true, partial: { email: { $type: "string", $exists: true } } }]);
    expect(methods(d.calls)).toEqual(["listIndexes", "createIndexes"]);
  });
});

describe("mongodb adapter: a $regex the server refuses", () => {
  const NUL = "\u0000";
  // Where search input reaches `$regex` (profiles' text and "contains" searches), and the other positions.
  const filters: Filter[] = [
    { name: { $regex: `a${NUL}b` } },
    { store_id: "s", $and: [{ $or: [{ email_lower: { $regex: `^${escapeRegex(`ann${NUL}`)}` } }, { search_values: { $eq: `ann${NUL}` } }] }] },
    { taxonomies: { $elemMatch: { taxonomy_id: { $eq: "t" }, fields: { $elemMatch: { key: { $eq: "k" }, value: { $regex: escapeRegex(NUL) } } } } } },
    { name: { $not: { $regex: NUL, $options: "i" } } },
    { tags: { $elemMatch: { $regex: NUL } } },
    profileFilter("s", { query: `x${NUL}y`, sort_field: "created_at", sort_direction: "desc" }),
  ];

  it("is INVALID_QUERY before anything is sent, on every read and write that takes a filter", async () => {
    const d = new DriverDouble();
    const c = d.database(8).collection("people");
    for (const filter of filters) {
      await expect(c.find(filter)).rejects.toMatchObject({ code: "INVALID_QUERY", message: expect.stringContaining("U+0000") });
      await expect(c.findOne(filter)).rejects.toMatchObject({ code: "INVALID_QUERY" });
      await expect(c.findPage({ filter, sort: profileSort({ sort_field: "email", sort_direction: "asc" }), limit: 20 })).rejects.toMatchObject({ code: "INVALID_QUERY" });
      await expect(c.count(filter)).rejects.toMatchObject({ code: "INVALID_QUERY" });
      await expect(c.updateOne(filter, { $set: { n: 1 } }, { upsert: true })).rejects.toMatchObject({ code: "INVALID_QUERY" });
      await expect(c.updateMany(filter, { $set: { n: 1 } })).rejects.toMatchObject({ code: "INVALID_QUERY" });
      await expect(c.findOneAndUpdate(filter, { $set: { n: 1 } })).rejects.toMatchObject({ code: "INVALID_QUERY" });
      await expect(c.deleteOne(filter)).rejects.toMatchObject({ code: "INVALID_QUERY" });
      await expect(c.deleteMany(filter)).rejects.toMatchObject({ code: "INVALID_QUERY" });
      await expect(
        (async () => {
          for await (const _ of c.stream(filter)) break;
        })(),
      ).rejects.toMatchObject({ code: "INVALID_QUERY" });
    }
    await expect(c.updateOne({ _id: "a" }, { $pull: { tags: { $regex: NUL } } })).rejects.toMatchObject({ code: "INVALID_QUERY" });
    await expect(c.updateOne({ _id: "a" }, { $pull: { items: { sku: { $regex: NUL } } } })).rejects.toMatchObject({ code: "INVALID_QUERY" });
    expect(d.calls).toEqual([]);
  });

  it("is that op's INVALID_QUERY in a bulkWrite, the others written", async () => {
    const d = new DriverDouble();
    const c = d.database(8).collection("people");
    const results = await c.bulkWrite([
      { updateOne: { filter: filters[0], update: { $set: { n: 1 } } } },
      { insertOne: { document: { _id: "a", name: `a${NUL}b` } } },
      { deleteOne: { filter: filters[1] } },
    ]);
    expect(results).toEqual([
      { ok: false, error: { code: "INVALID_QUERY", message: expect.stringContaining("U+0000") } },
      { ok: true, inserted: true },
      { ok: false, error: { code: "INVALID_QUERY", message: expect.stringContaining("U+0000") } },
    ]);
    // U+0000 in a value (not a pattern) is data MongoDB stores and matches.
    expect(await c.findOne({ name: `a${NUL}b` })).toEqual({ _id: "a", name: `a${NUL}b` });
  });

  it("a pattern the adapter lets through but the server refuses is still INVALID_QUERY, not an unexpected error", async () => {
    const d = new DriverDouble();
    const inner = d.collection("people");
    const refusing = Object.assign(Object.create(inner), {
      find: () => ({
        toArray: async () => {
          throw new MongoServerError({ message: "Regular expression is invalid: nothing to repeat", code: 51091 });
        },
      }),
    });
    const c = mongoCollection("people", () => refusing);
    await expect(c.find({ name: { $regex: escapeRegex("anything") } })).rejects.toMatchObject({ code: "INVALID_QUERY" });
  });
});

describe("mongodb adapter: indexes", () => {
  const partial = { email_lower: { $type: "string" } };

  it("creates every non-unique index with _id last (as <name>__id), and unique ones exactly as declared", async () => {
    const d = new DriverDouble();
    const logs: string[] = [];
    const c = d.database(8, (m) => logs.push(m)).collection("profiles");
    const specs: IndexSpec[] = [
      { name: "store_created", keys: { store_id: 1, created_at: -1 } },
      { name: "expires_at", keys: { expires_at: 1 } },
      { name: "email_unique", keys: { store_id: 1, email_lower: 1 }, unique: true, partial },
      { name: "store_by_id", keys: { store_id: 1, _id: 1 } },
    ];
    await c.createIndexes(specs);
    expect(methods(d.calls)).toEqual(["listIndexes", "createIndexes"]);
    expect(d.calls[1].args[0]).toEqual([
      { name: "store_created__id", key: { store_id: 1, created_at: -1, _id: -1 } },
      { name: "expires_at__id", key: { expires_at: 1, _id: 1 } },
      { name: "email_unique", key: { store_id: 1, email_lower: 1 }, unique: true, partialFilterExpression: partial },
      { name: "store_by_id", key: { store_id: 1, _id: 1 } },
    ]);
    expect(Object.keys((d.calls[1].args[0] as { key: object }[])[0].key)).toEqual(["store_id", "created_at", "_id"]);
    // Idempotent: a restart asks again and changes nothing.
    d.calls.length = 0;
    await c.createIndexes(specs);
    expect(methods(d.calls)).toEqual(["listIndexes", "createIndexes"]);
    expect([...d.state("profiles").indexes.keys()].sort()).toEqual(["email_unique", "expires_at__id", "store_by_id", "store_created__id"]);
    expect(logs).toEqual([]);
    // The unique index still refuses a duplicate, naming itself.
    await c.insertOne({ _id: "p1", store_id: "s", email_lower: "a@x.io" });
    await expect(c.insertOne({ _id: "p2", store_id: "s", email_lower: "a@x.io" })).rejects.toMatchObject({ code: "DUPLICATE_KEY", index: "email_unique" });
  });

  it("replaces an index an older version made (same name, no _id): the new one is built first, then the old one dropped, and the log says so", async () => {
    const d = new DriverDouble();
    d.seedIndexes("profiles", [
      { name: "store_created", key: { store_id: 1, created_at: 1 } },
      { name: "email_unique", key: { store_id: 1, email_lower: 1 }, unique: true, partialFilterExpression: partial },
    ]);
    const logs: string[] = [];
    const c = d.database(8, (m) => logs.push(m)).collection("profiles");
    const specs: IndexSpec[] = [
      { name: "store_created", keys: { store_id: 1, created_at: 1 } },
      { name: "email_unique", keys: { store_id: 1, email_lower: 1 }, unique: true, partial },
    ];
    await c.createIndexes(specs);
    expect(methods(d.calls)).toEqual(["listIndexes", "createIndexes", "dropIndex"]);
    expect(d.calls[2].args).toEqual(["store_created"]);
    expect([...d.state("profiles").indexes.keys()].sort()).toEqual(["email_unique", "store_created__id"]);
    expect(logs).toHaveLength(1);
    expect(logs[0]).toMatch(
      /crm_test\.profiles: index store_created \{"store_id":1,"created_at":1\} replaced by store_created__id \{"store_id":1,"created_at":1,"_id":1\}/,
    );
    d.calls.length = 0;
    await c.createIndexes(specs);
    expect(methods(d.calls)).toEqual(["listIndexes", "createIndexes"]);
    expect(logs).toHaveLength(1);
  });

  it("copes with another process replacing the same index at the same time (IndexNotFound on drop)", async () => {
    const d = new DriverDouble();
    d.seedIndexes("profiles", [{ name: "store_created", key: { store_id: 1, created_at: 1 } }]);
    const inner = d.collection("profiles");
    const racing = Object.assign(Object.create(inner), {
      dropIndex: async (name: string) => {
        await inner.dropIndex(name);
        throw new MongoServerError({ message: `index not found with name [${name}]`, code: 27 });
      },
    });
    const logs: string[] = [];
    const c = mongoCollection("profiles", () => racing, { log: (m) => logs.push(m) });
    await c.createIndexes([{ name: "store_created", keys: { store_id: 1, created_at: 1 } }]);
    expect([...d.state("profiles").indexes.keys()]).toEqual(["store_created__id"]);
    expect(logs).toHaveLength(1);
  });

  it("leaves an index of a spec's name that it did not make (other keys) in place, and says so", async () => {
    const d = new DriverDouble();
    d.seedIndexes("profiles", [{ name: "store_created", key: { store_id: 1, updated_at: 1 } }]);
    const logs: string[] = [];
    const c = d.database(8, (m) => logs.push(m)).collection("profiles");
    await c.createIndexes([{ name: "store_created", keys: { store_id: 1, created_at: 1 } }]);
    expect(methods(d.calls)).toEqual(["listIndexes", "createIndexes"]);
    expect([...d.state("profiles").indexes.keys()].sort()).toEqual(["store_created", "store_created__id"]);
    expect(logs).toEqual([expect.stringMatching(/index store_created \{"store_id":1,"updated_at":1\} is not one this adapter made .* left in place/)]);
  });

  it("refuses a changed definition under the same name before asking the server to build anything", async () => {
    const d = new DriverDouble();
    const c = d.database(8).collection("people");
    await c.createIndexes([{ name: "by_rank", keys: { store_id: 1, rank: 1 } }]);
    d.calls.length = 0;
    await expect(c.createIndexes([{ name: "by_rank", keys: { store_id: 1, name: 1 } }])).rejects.toMatchObject({
      code: "INVALID_QUERY",
      message: expect.stringContaining("index by_rank__id on people exists as"),
    });
    await expect(c.createIndexes([{ name: "by_rank", keys: { store_id: 1, rank: 1 }, partial: { rank: { $gt: 0 } } }])).rejects.toMatchObject({ code: "INVALID_QUERY" });
    expect(methods(d.calls)).toEqual(["listIndexes", "listIndexes"]);
  });

  it("names and keys: mongoIndex", () => {
    expect(mongoIndex({ name: "a", keys: { x: -1, y: 1 } })).toEqual({ name: "a__id", key: { x: -1, y: 1, _id: 1 } });
    expect(mongoIndex({ name: "u", keys: { x: 1 }, unique: true })).toEqual({ name: "u", key: { x: 1 }, unique: true });
    expect(mongoIndex({ name: "i", keys: { _id: 1, x: 1 } })).toEqual({ name: "i", key: { _id: 1, x: 1 } });
  });
});

describe("mongodb adapter: bulkWrite", () => {
  interface Person extends Doc {
    email?: string;
    n?: number;
  }

  function start(server: 7 | 8) {
    const d = new DriverDouble();
    // Partial: documents without an e-mail would all hold the key null, and collide, in MongoDB too.
    d.seedIndexes("people", [{ name: "email_unique", key: { email: 1 }, unique: true, partialFilterExpression: { email: { $type: "string" } } }]);
    d.seed("people", [
      { _id: "old", email: "old@x.io", n: 0 },
      { _id: "gone", n: 1 },
      { _id: "also-gone", n: 2 },
    ]);
    return { d, c: d.database(server).collection<Person>("people") };
  }

  // Totals cannot say which update matched or which delete deleted: 2 of 3 plain updates match, 1 of 2 deletes hits.
  const batch: BulkOp<Person>[] = [
    { updateOne: { filter: { _id: "nope" }, update: { $set: { n: 5 } } } },
    { insertOne: { document: { _id: "a", email: "a@x.io" } } },
    { insertOne: { document: { _id: "b", email: "old@x.io" } } },
    { updateOne: { filter: { _id: "old" }, update: { $set: { n: 1 } } } },
    { updateOne: { filter: { _id: "gone" }, update: { $set: { n: 1 } } } },
    { updateOne: { filter: { email: "new@x.io" }, update: { $set: { n: 1 } }, upsert: true } },
    { deleteOne: { filter: { _id: "nope" } } },
    { deleteOne: { filter: { _id: "also-gone" } } },
    { insertOne: { document: { _id: "" } } },
    { updateOne: { filter: { _id: "old" }, update: { $rename: { n: "m" } } as never } },
    { updateOne: { filter: { _id: "old" }, update: { $inc: { email: 1 } } as never } },
  ];
  const expected: BulkItemResult[] = [
    { ok: true, matched: 0, modified: 0 },
    { ok: true, inserted: true },
    { ok: false, error: { code: "DUPLICATE_KEY", message: expect.stringContaining("E11000"), index: "email_unique" } },
    { ok: true, matched: 1, modified: 1 },
    { ok: true, matched: 1, modified: 0 },
    { ok: true, matched: 0, modified: 0, upsertedId: expect.any(String) },
    { ok: true, deleted: 0 },
    { ok: true, deleted: 1 },
    { ok: false, error: { code: "INVALID_QUERY", message: "a document needs a string _id" } },
    { ok: false, error: { code: "INVALID_QUERY", message: "unsupported update operator $rename" } },
    { ok: false, error: { code: "INVALID_QUERY", message: expect.stringContaining("$inc") } },
  ];

  it("MongoDB 8: the batch is one client bulkWrite round trip and every op has its own exact counts", async () => {
    const { d, c } = start(8);
    const results = await c.bulkWrite(batch);
    expect(results).toEqual(expected);
    expect(isUuid(results[5].upsertedId)).toBe(true);
    expect(methods(d.calls)).toEqual(["client.bulkWrite"]);
    const [models, options] = d.calls[0].args as [{ namespace: string; name: string }[], object];
    expect(options).toEqual({ ordered: false, verboseResults: true });
    // Ops refused by the port's rules are not sent.
    expect(models.map((m) => m.name)).toEqual(["updateOne", "insertOne", "insertOne", "updateOne", "updateOne", "updateOne", "deleteOne", "deleteOne", "updateOne"]);
    expect(new Set(models.map((m) => m.namespace))).toEqual(new Set(["crm_test.people"]));
    expect(await c.find({}, { sort: { _id: 1 } })).toEqual(
      [
        { _id: "a", email: "a@x.io" },
        { _id: "gone", n: 1 },
        { _id: "old", email: "old@x.io", n: 1 },
        { _id: results[5].upsertedId, email: "new@x.io", n: 1 },
      ].sort((x, y) => (x._id! < y._id! ? -1 : 1)),
    );
  });

  it("MongoDB 7: the same per-op results, with inserts sharing one round trip and one update and one delete per round", async () => {
    const { d, c } = start(7);
    const results = await c.bulkWrite(batch);
    expect(results).toEqual(expected);
    // 5 updates reach the server ($rename is refused before), so 5 rounds; round 1 carries both inserts,
    // the first update and the first delete, round 2 the next update and delete.
    expect(methods(d.calls)).toEqual(["bulkWrite", "bulkWrite", "bulkWrite", "bulkWrite", "bulkWrite"]);
    const kinds = d.calls.map((call) => (call.args[0] as object[]).map((m) => Object.keys(m)[0]));
    expect(kinds).toEqual([["insertOne", "insertOne", "updateOne", "deleteOne"], ["updateOne", "deleteOne"], ["updateOne"], ["updateOne"], ["updateOne"]]);
    expect(d.calls.every((call) => (call.args[1] as { ordered: boolean }).ordered === false)).toBe(true);
  });

  it("MongoDB 7: 2,000 inserts are one round trip; rounds never hold two updates or two deletes", async () => {
    const { d, c } = start(7);
    const results = await c.bulkWrite(Array.from({ length: 2000 }, (_, i) => ({ insertOne: { document: { _id: `p${i}`, n: i } } })));
    expect(results.every((r) => r.ok && r.inserted)).toBe(true);
    expect(methods(d.calls)).toEqual(["bulkWrite"]);
    const kinds = ["insert", "update", "delete", "update", "insert", "delete", "delete", "update", "update"] as const;
    const rounds = bulkRounds(kinds.map((kind, i) => ({ kind, i })));
    expect(rounds.map((r) => r.map((op) => op.i))).toEqual([[0, 4, 1, 2], [3, 5], [7, 6], [8]]);
    for (const round of rounds) {
      expect(round.filter((op) => op.kind === "update").length).toBeLessThanOrEqual(1);
      expect(round.filter((op) => op.kind === "delete").length).toBeLessThanOrEqual(1);
    }
    expect(bulkRounds([])).toEqual([]);
  });

  it("falls back to collection bulk writes when the server refuses client bulkWrite, having written nothing, and does not try it again", async () => {
    const d = new DriverDouble();
    let refused = false;
    let attempts = 0;
    const bulk: ClientBulk = {
      supported: async () => !refused,
      refused: () => {
        refused = true;
      },
      write: async () => {
        attempts++;
        const error = new MongoClientBulkWriteError({ message: "Mongo client bulk write encountered an error during execution" });
        error.cause = new MongoServerError({ message: "no such command: 'bulkWrite'", code: 59 });
        throw error;
      },
    };
    const c = mongoCollection<Person>("people", () => d.collection("people"), { clientBulk: bulk });
    const ops: BulkOp<Person>[] = [{ insertOne: { document: { _id: "a" } } }, { updateOne: { filter: { _id: "a" }, update: { $set: { n: 1 } } } }];
    expect(await c.bulkWrite(ops)).toEqual([
      { ok: true, inserted: true },
      { ok: true, matched: 1, modified: 1 },
    ]);
    expect(await c.bulkWrite([{ deleteOne: { filter: { _id: "a" } } }])).toEqual([{ ok: true, deleted: 1 }]);
    expect(attempts).toBe(1);
    expect(methods(d.calls)).toEqual(["bulkWrite", "bulkWrite"]);
  });

  it("leaves undefined fields out of what the client bulkWrite sends (its BSON would store them as null)", async () => {
    const d = new DriverDouble();
    const sent: unknown[] = [];
    const real = d.clientBulk(8);
    const spy: ClientBulk = {
      ...real,
      write: async (models, options) => {
        sent.push(...models);
        return real.write(models, options);
      },
    };
    const c = mongoCollection("people", () => d.collection("people"), { clientBulk: spy });
    await c.bulkWrite([
      { insertOne: { document: { _id: "a", gone: undefined, meta: { x: undefined, y: 1 }, list: [1, undefined] } } },
      { updateOne: { filter: { _id: "a" }, update: { $set: { deep: { x: undefined, z: 2 }, when: new Date(5) } } } },
    ]);
    expect(sent[0]).toEqual({ namespace: "crm_test.people", name: "insertOne", document: { _id: "a", meta: { y: 1 }, list: [1, null] } });
    expect(Object.keys((sent[0] as { document: object }).document)).toEqual(["_id", "meta", "list"]);
    expect(Object.keys((sent[1] as { update: { $set: { deep: object } } }).update.$set.deep)).toEqual(["z"]);
    expect((sent[1] as { update: { $set: { when: unknown } } }).update.$set.when).toEqual(new Date(5));
  });

  it("reports a document the server refuses (validation, 121) as that op's INVALID_QUERY and keeps the others, on both paths", async () => {
    const validation = { code: 121, message: "Document failed validation" };
    // MongoDB 8
    const d8 = new DriverDouble();
    const real = d8.clientBulk(8);
    const bulk: ClientBulk = {
      ...real,
      write: async (models, options) => {
        const result = await real.write([models[0]], options);
        const error = new MongoClientBulkWriteError({ message: "Mongo client bulk write encountered errors during execution." });
        error.writeErrors = new Map([[1, validation]]);
        error.partialResult = result;
        throw error;
      },
    };
    const c8 = mongoCollection("people", () => d8.collection("people"), { clientBulk: bulk });
    expect(await c8.bulkWrite([{ insertOne: { document: { _id: "a" } } }, { insertOne: { document: { _id: "b" } } }])).toEqual([
      { ok: true, inserted: true },
      { ok: false, error: { code: "INVALID_QUERY", message: "Document failed validation" } },
    ]);
    // MongoDB 7
    const d7 = new DriverDouble();
    const inner = d7.collection("people");
    const driver = Object.assign(Object.create(inner), {
      bulkWrite: async (models: Document[]) => {
        await inner.insertOne(models[0].insertOne.document);
        const writeErrors = [{ index: 1, code: 121, errmsg: validation.message }];
        throw new MongoBulkWriteError({ message: validation.message, code: 121, writeErrors: writeErrors as never }, {
          insertedCount: 1,
          matchedCount: 0,
          modifiedCount: 0,
          deletedCount: 0,
          upsertedIds: {},
        } as never);
      },
    });
    const c7 = mongoCollection("people", () => driver);
    expect(await c7.bulkWrite([{ insertOne: { document: { _id: "a" } } }, { insertOne: { document: { _id: "b" } } }])).toEqual([
      { ok: true, inserted: true },
      { ok: false, error: { code: "INVALID_QUERY", message: "Document failed validation" } },
    ]);
  });

  describe("fails as a whole with UNAVAILABLE when the failure is not one op's own (some ops may be applied)", () => {
    const ops: BulkOp<Doc>[] = [{ insertOne: { document: { _id: "a" } } }, { updateOne: { filter: { _id: "b" }, update: { $set: { n: 1 } } } }];

    const throwing = (error: unknown): ClientBulk => ({
      supported: async () => true,
      refused: () => undefined,
      write: async () => {
        throw error;
      },
    });

    it("MongoDB 8: a dropped connection, a command the server fails, a write concern it does not confirm", async () => {
      const d = new DriverDouble();
      const shutdown = new MongoClientBulkWriteError({ message: "Mongo client bulk write encountered an error during execution" });
      shutdown.cause = new MongoServerError({ message: "interrupted at shutdown", code: 11600 });
      const concern = new MongoClientBulkWriteError({ message: "Mongo client bulk write encountered errors during execution." });
      concern.writeConcernErrors = [{ code: 64, message: "waiting for replication timed out" }];
      concern.partialResult = { acknowledged: true, insertedCount: 1, upsertedCount: 0, matchedCount: 0, modifiedCount: 0, deletedCount: 0 } as ClientBulkWriteResult;
      for (const error of [new MongoNetworkError("connection closed"), shutdown, concern]) {
        const c = mongoCollection("people", () => d.collection("people"), { clientBulk: throwing(error) });
        await expect(c.bulkWrite(ops)).rejects.toMatchObject({ code: "UNAVAILABLE" });
      }
    });

    it("MongoDB 7: a dropped connection, a write concern the server does not confirm next to a write error", async () => {
      const d = new DriverDouble();
      const inner = d.collection("people");
      const failing = (error: unknown) =>
        Object.assign(Object.create(inner), {
          bulkWrite: async () => {
            throw error;
          },
        });
      const network = new MongoBulkWriteError(new MongoNetworkError("connection closed") as never, { insertedCount: 0 } as never);
      const concernResult = {
        insertedCount: 0,
        matchedCount: 0,
        modifiedCount: 0,
        deletedCount: 0,
        upsertedIds: {},
        getWriteConcernError: () => ({ code: 64, errmsg: "waiting for replication timed out" }),
      };
      const concern = new MongoBulkWriteError(
        {
          message: "E11000",
          code: 11000,
          writeErrors: [{ index: 0, code: 11000, errmsg: "E11000 duplicate key error collection: crm_test.people index: _id_ dup key: { }" }] as never,
        },
        concernResult as never,
      );
      for (const error of [network, concern, new MongoNetworkError("connection closed")]) {
        const c = mongoCollection("people", () => failing(error));
        await expect(c.bulkWrite(ops)).rejects.toMatchObject({ code: "UNAVAILABLE" });
      }
    });
  });

  it("retries an upsert that lost a race on a unique index once, alone, and then reports the match (both paths)", async () => {
    const duplicate = "E11000 duplicate key error collection: crm_test.people index: email_unique dup key: { }";
    for (const server of [7, 8] as const) {
      const d = new DriverDouble();
      d.seedIndexes("people", [{ name: "email_unique", key: { email: 1 }, unique: true }]);
      const inner = d.collection("people");
      // The winner's insert lands between the server's search for a match and its insert of the upsert.
      const lose = () => d.seed("people", [{ _id: "winner", email: "race@x.io" }]);
      const racing = Object.assign(Object.create(inner), {
        bulkWrite: async () => {
          lose();
          const writeErrors = [{ index: 0, code: 11000, errmsg: duplicate }];
          throw new MongoBulkWriteError({ message: duplicate, code: 11000, writeErrors: writeErrors as never }, {
            matchedCount: 0,
            modifiedCount: 0,
            deletedCount: 0,
            upsertedIds: {},
          } as never);
        },
      });
      const bulk: ClientBulk = {
        supported: async () => true,
        refused: () => undefined,
        write: async () => {
          lose();
          const error = new MongoClientBulkWriteError({ message: "Mongo client bulk write encountered errors during execution." });
          error.writeErrors = new Map([[0, { code: 11000, message: duplicate }]]);
          error.partialResult = {
            acknowledged: true,
            insertedCount: 0,
            upsertedCount: 0,
            matchedCount: 0,
            modifiedCount: 0,
            deletedCount: 0,
            updateResults: new Map(),
          } as ClientBulkWriteResult;
          throw error;
        },
      };
      d.calls.length = 0;
      const c = mongoCollection("people", () => racing, server === 8 ? { clientBulk: bulk } : {});
      const [result] = await c.bulkWrite([{ updateOne: { filter: { email: "race@x.io" }, update: { $set: { n: 1 } }, upsert: true } }]);
      expect(result).toEqual({ ok: true, matched: 1, modified: 1 });
      expect(methods(d.calls)).toEqual(["updateOne"]);
      expect(await c.findOne({ email: "race@x.io" })).toEqual({ _id: "winner", email: "race@x.io", n: 1 });
    }
  });
});

describe("mongodb adapter: findOneAndUpdate", () => {
  it("asks the driver for the document itself, before or after the update", async () => {
    const d = new DriverDouble();
    d.seed("people", [{ _id: "p1", n: 1 }]);
    const c = d.database(8).collection("people");
    expect(await c.findOneAndUpdate({ _id: "p1" }, { $inc: { n: 1 } }, { returnDocument: "before" })).toEqual({ _id: "p1", n: 1 });
    expect(await c.findOneAndUpdate({ _id: "p1" }, { $inc: { n: 1 } })).toEqual({ _id: "p1", n: 3 });
    expect(d.calls.map((x) => x.args[2])).toEqual([
      { upsert: false, returnDocument: "before" },
      { upsert: false, returnDocument: "after" },
    ]);
  });
});
