/**
 * The MongoDB adapter without a server: the storage contract over a driver double (the embedded engine
 * behind the few driver methods the adapter calls, answering with the driver's real error classes and
 * the server's refusals the adapter must work around), plus its pure parts checked against mingo, which
 * compares and type-brackets like MongoDB. What only a real server can prove stays with mongo.test.ts.
 */
import { MongoBulkWriteError, MongoInvalidArgumentError, MongoNetworkError, MongoServerError, type Collection as DriverCollection, type Document } from "mongodb";
import { keysetFilter, mongoCollection, mongoUpdate, portableFilter, toStorageError } from "../mongo";
import { CollectionEngine } from "../embedded/engine";
import { isOperatorObject } from "../query/rules";
import { mingoPredicate } from "../query/update";
import { cloneValue, compareValues, getPath } from "../query/values";
import type { Database, Doc, Filter, Update } from "../port";
import { isUuid } from "../../ids";
import { describeStorageContract } from "./contract";

type Calls = { method: string; args: unknown[] }[];

/** The server's refusal of an operator-shaped value in `$in`/`$nin` (it reads only literals there). */
function refuseNestedIn(filter: unknown): void {
  if (Array.isArray(filter)) return filter.forEach(refuseNestedIn);
  if (filter === null || typeof filter !== "object") return;
  for (const [key, value] of Object.entries(filter)) {
    if ((key === "$in" || key === "$nin") && Array.isArray(value) && value.some(isOperatorObject)) {
      throw new MongoServerError({ message: `cannot nest $ under ${key}`, code: 2 });
    }
    if (key === "$and" || key === "$or" || key === "$elemMatch" || key === "$not" || !key.startsWith("$")) refuseNestedIn(value);
  }
}

/** An engine error as the server reports it. */
function serverError(err: unknown, collection: string): unknown {
  const e = err as { code?: string; message?: string; index?: string };
  if (e?.code === "DUPLICATE_KEY") {
    return new MongoServerError({ message: `E11000 duplicate key error collection: crm_test.${collection} index: ${e.index} dup key: { }`, code: 11000 });
  }
  if (e?.code === "INVALID_QUERY") return new MongoServerError({ message: e.message, code: /already exists/.test(e.message ?? "") ? 86 : 2 });
  return err;
}

function sortDocs(docs: Doc[], sort: Record<string, 1 | -1> = {}): Doc[] {
  return docs.sort((a, b) => {
    for (const [field, direction] of Object.entries(sort)) {
      const c = compareValues(getPath(a, field), getPath(b, field));
      if (c !== 0) return c * direction;
    }
    return 0;
  });
}

/** The driver methods the adapter uses, over an embedded engine; `calls` records each call. */
function driverDouble(engine: CollectionEngine, calls: Calls = []): DriverCollection<Document> {
  const select = (filter: Filter) => {
    refuseNestedIn(filter);
    const test = mingoPredicate(filter);
    return [...engine.docs.values()].filter((d) => test(d));
  };
  const run = async <R>(method: string, args: unknown[], op: () => R): Promise<R> => {
    calls.push({ method, args: cloneValue(args) });
    try {
      return cloneValue(op());
    } catch (err) {
      throw serverError(err, engine.name);
    }
  };
  const update = (filter: Filter, u: Update, upsert: boolean) => {
    refuseNestedIn(filter);
    return engine.updateOne(filter, u, upsert);
  };
  const double = {
    createIndexes: (specs: { name: string; key: Record<string, 1 | -1>; unique?: boolean; partialFilterExpression?: Filter }[]) =>
      run("createIndexes", [specs], () => engine.createIndexes(specs.map((s) => ({ name: s.name, keys: s.key, unique: s.unique, partial: s.partialFilterExpression })))),
    insertOne: (doc: Doc) => run("insertOne", [doc], () => engine.insertOne(cloneValue(doc))),
    insertMany: (docs: Doc[], options: { ordered: boolean }) =>
      run("insertMany", [docs, options], () => {
        const writeErrors: { index: number; code: number; errmsg: string }[] = [];
        docs.forEach((doc, index) => {
          try {
            engine.insertOne(cloneValue(doc));
          } catch (err) {
            const e = serverError(err, engine.name) as { code: number; message: string };
            writeErrors.push({ index, code: e.code, errmsg: e.message });
          }
        });
        if (writeErrors.length > 0) {
          const result = { insertedCount: docs.length - writeErrors.length } as never;
          throw new MongoBulkWriteError({ message: writeErrors[0].errmsg, code: writeErrors[0].code, writeErrors: writeErrors as never }, result);
        }
        return { insertedCount: docs.length };
      }),
    findOne: (filter: Filter) => run("findOne", [filter], () => select(filter)[0] ?? null),
    find: (filter: Filter, options: { sort?: Record<string, 1 | -1>; limit?: number } = {}) => ({
      toArray: () => run("find", [filter, options], () => sortDocs(select(filter), options.sort).slice(0, options.limit)),
    }),
    countDocuments: (filter: Filter) => run("countDocuments", [filter], () => select(filter).length),
    updateOne: (filter: Filter, u: Update, options: { upsert?: boolean } = {}) =>
      run("updateOne", [filter, u, options], () => {
        const r = update(filter, u, options.upsert === true);
        return { acknowledged: true, matchedCount: r.matched, modifiedCount: r.modified, upsertedCount: r.upsertedId ? 1 : 0, upsertedId: r.upsertedId ?? null };
      }),
    updateMany: (filter: Filter, u: Update) =>
      run("updateMany", [filter, u], () => {
        refuseNestedIn(filter);
        const r = engine.updateMany(filter, u);
        return { acknowledged: true, matchedCount: r.matched, modifiedCount: r.modified, upsertedCount: 0, upsertedId: null };
      }),
    findOneAndUpdate: (filter: Filter, u: Update, options: { upsert?: boolean; returnDocument: "before" | "after" }) =>
      run("findOneAndUpdate", [filter, u, options], () => {
        const r = update(filter, u, options.upsert === true);
        return (options.returnDocument === "before" ? r.before : r.after) ?? null;
      }),
    deleteOne: (filter: Filter) => run("deleteOne", [filter], () => (refuseNestedIn(filter), { deletedCount: engine.deleteOne(filter) })),
    deleteMany: (filter: Filter) => run("deleteMany", [filter], () => (refuseNestedIn(filter), { deletedCount: engine.deleteMany(filter) })),
  };
  return double as unknown as DriverCollection<Document>;
}

function doubleDatabase(): Database {
  const engines = new Map<string, CollectionEngine>();
  const engine = (name: string) => engines.get(name) ?? engines.set(name, new CollectionEngine(name)).get(name)!;
  return {
    name: "crm_test",
    collection: <T extends Doc>(name: string) => mongoCollection<T>(name, () => driverDouble(engine(name))),
    ping: async () => undefined,
    close: async () => undefined,
    drop: async () => engines.forEach((e) => e.clear()),
  };
}

describeStorageContract("mongodb adapter over a driver double", async () => doubleDatabase());

describe("mongodb adapter: errors", () => {
  it("maps E11000 from updates, findAndModify and index builds to DUPLICATE_KEY with the index name", () => {
    const messages = [
      'E11000 duplicate key error collection: crm_profiles.profiles index: email_unique dup key: { store_id: "s", email_lower: "a@x.io" }',
      "Plan executor error during findAndModify :: caused by :: E11000 duplicate key error collection: crm.p index: email_unique dup key: { email_lower: \"a\" }",
      "Index build failed: 4f1c: Collection crm.p ( 4f1c ) :: caused by :: E11000 duplicate key error collection: crm.p index: email_unique dup key: { name: \"x\" }",
      'E11000 duplicate key error collection: crm.p index: email_unique collation: { locale: "en" } dup key: { email: "a" }',
    ];
    for (const message of messages) {
      expect(toStorageError(new MongoServerError({ message, code: 11000 }))).toMatchObject({ code: "DUPLICATE_KEY", index: "email_unique" });
    }
  });

  it("maps a network failure the driver wraps in a MongoBulkWriteError to UNAVAILABLE", () => {
    const wrapped = new MongoBulkWriteError(new MongoNetworkError("connection 3 to 10.0.0.5:27017 closed") as never, { insertedCount: 0 } as never);
    expect(wrapped.name).toBe("MongoBulkWriteError");
    expect(toStorageError(wrapped)).toMatchObject({ code: "UNAVAILABLE" });
  });

  it("maps index conflicts and refused arguments to INVALID_QUERY, retryable failures to UNAVAILABLE", () => {
    expect(toStorageError(new MongoServerError({ message: "An existing index has the same name", code: 86 }))).toMatchObject({ code: "INVALID_QUERY" });
    expect(toStorageError(new MongoServerError({ message: "Index already exists with different options", code: 85 }))).toMatchObject({ code: "INVALID_QUERY" });
    expect(toStorageError(new MongoInvalidArgumentError("Update document requires atomic operators"))).toMatchObject({ code: "INVALID_QUERY" });
    expect(toStorageError(new MongoServerError({ message: "write concern timed out", code: 64 }))).toMatchObject({ code: "UNAVAILABLE" });
    const labelled = new MongoServerError({ message: "stepping down", code: 999_999, errorLabels: ["RetryableWriteError"] });
    expect(toStorageError(labelled)).toMatchObject({ code: "UNAVAILABLE" });
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
          const page = docs.filter((d) => test(d)).sort(order).slice(0, size);
          if (page.length === 0) break;
          seen.push(...page.map((d) => d._id));
          const last = page[page.length - 1] as Doc & { v?: unknown };
          after = { value: last.v, id: last._id };
        }
        expect(seen).toEqual(expected);
      }
    }
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
      expect(() => refuseNestedIn(sent)).not.toThrow();
      expect(matching(sent)).toEqual(matching(filter));
    }
    expect(() => refuseNestedIn(filters[0])).toThrow("cannot nest $ under $in");
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
    const calls: Calls = [];
    const c = mongoCollection("people", () => driverDouble(new CollectionEngine("people"), calls));
    for (const partial of [{ email: { $exists: false } }, { status: { $ne: "gone" } }, { $or: [{ email: { $regex: "x" } }] }]) {
      await expect(c.createIndexes([{ name: "p", keys: { email: 1 }, partial }])).rejects.toMatchObject({ code: "INVALID_QUERY" });
    }
    expect(calls).toEqual([]);
    await c.createIndexes([{ name: "p", keys: { email: 1 }, unique: true, partial: { email: { $type: "string", $exists: true } } }]);
    expect(calls.map((x) => x.method)).toEqual(["createIndexes"]);
  });
});

describe("mongodb adapter: bulkWrite", () => {
  it("runs ops in order, inserts batched, and gives every update and delete its own exact counts", async () => {
    const calls: Calls = [];
    const engine = new CollectionEngine("people");
    engine.createIndexes([{ name: "email_unique", keys: { email: 1 }, unique: true }]);
    engine.insertOne({ _id: "old", email: "old@x.io", n: 0 });
    const c = mongoCollection("people", () => driverDouble(engine, calls));
    const results = await c.bulkWrite([
      { updateOne: { filter: { _id: "a" }, update: { $set: { seen: true } } } },
      { insertOne: { document: { _id: "a", email: "a@x.io" } } },
      { insertOne: { document: { _id: "b", email: "old@x.io" } } },
      { insertOne: { document: { _id: "c" } } },
      { updateOne: { filter: { _id: "a" }, update: { $set: { seen: true } } } },
      { updateOne: { filter: { _id: "old" }, update: { $set: { n: 0 } } } },
      { updateOne: { filter: { email: "new@x.io" }, update: { $set: { n: 1 } }, upsert: true } },
      { deleteOne: { filter: { _id: "nope" } } },
      { deleteOne: { filter: { _id: "c" } } },
      { insertOne: { document: { _id: "" } } },
      { updateOne: { filter: { _id: "old" }, update: { $rename: { n: "m" } } as never } },
    ]);
    expect(results).toEqual([
      { ok: true, matched: 0, modified: 0 },
      { ok: true, inserted: true },
      { ok: false, error: { code: "DUPLICATE_KEY", message: expect.stringContaining("E11000"), index: "email_unique" } },
      { ok: true, inserted: true },
      { ok: true, matched: 1, modified: 1 },
      { ok: true, matched: 1, modified: 0 },
      { ok: true, matched: 0, modified: 0, upsertedId: expect.any(String) },
      { ok: true, deleted: 0 },
      { ok: true, deleted: 1 },
      { ok: false, error: { code: "INVALID_QUERY", message: "a document needs a string _id" } },
      { ok: false, error: { code: "INVALID_QUERY", message: "unsupported update operator $rename" } },
    ]);
    expect(isUuid(results[6].upsertedId)).toBe(true);
    expect(calls.map((x) => x.method)).toEqual(["updateOne", "insertMany", "updateOne", "updateOne", "updateOne", "deleteOne", "deleteOne"]);
    expect((calls[1].args[0] as Doc[]).map((d) => d._id)).toEqual(["a", "b", "c"]);
    expect(calls[1].args[1]).toEqual({ ordered: false });
  });

  it("reports a document or update the server refuses as that item's INVALID_QUERY and keeps the others", async () => {
    const engine = new CollectionEngine("people");
    const inner = driverDouble(engine);
    const driver = Object.assign(Object.create(inner), {
      insertMany: async (docs: Doc[]) => {
        engine.insertOne(docs[0]);
        const writeErrors = [{ index: 1, code: 121, errmsg: "Document failed validation" }];
        throw new MongoBulkWriteError({ message: "Document failed validation", code: 121, writeErrors: writeErrors as never }, { insertedCount: 1 } as never);
      },
      updateOne: async (filter: Filter, update: Document, options: { upsert: boolean }) => {
        if (filter._id === "b") throw new MongoServerError({ message: "Document failed validation", code: 121 });
        return inner.updateOne(filter, update, options);
      },
    });
    const c = mongoCollection("people", () => driver);
    expect(
      await c.bulkWrite([
        { insertOne: { document: { _id: "a" } } },
        { insertOne: { document: { _id: "b" } } },
        { updateOne: { filter: { _id: "b" }, update: { $set: { n: 1 } } } },
        { updateOne: { filter: { _id: "a" }, update: { $set: { n: 1 } } } },
      ]),
    ).toEqual([
      { ok: true, inserted: true },
      { ok: false, error: { code: "INVALID_QUERY", message: "Document failed validation" } },
      { ok: false, error: { code: "INVALID_QUERY", message: "Document failed validation" } },
      { ok: true, matched: 1, modified: 1 },
    ]);
  });

  it("fails as a whole with UNAVAILABLE when the connection drops mid-batch, never reporting unwritten inserts as done", async () => {
    const inner = driverDouble(new CollectionEngine("people"));
    const driver = Object.assign(Object.create(inner), {
      insertMany: async () => {
        throw new MongoBulkWriteError(new MongoNetworkError("connection closed") as never, { insertedCount: 0 } as never);
      },
    });
    const c = mongoCollection("people", () => driver);
    await expect(c.bulkWrite([{ insertOne: { document: { _id: "a" } } }])).rejects.toMatchObject({ code: "UNAVAILABLE" });
  });

  it("retries an upsert that lost a race on a unique index once, and then reports the match", async () => {
    const engine = new CollectionEngine("people");
    const inner = driverDouble(engine);
    let attempts = 0;
    const driver = Object.assign(Object.create(inner), {
      updateOne: async (filter: Filter, update: Document, options: { upsert: boolean }) => {
        if (++attempts === 1) {
          engine.insertOne({ _id: "winner", email: "race@x.io" });
          throw new MongoServerError({ message: "E11000 duplicate key error collection: crm.people index: email_unique dup key: { }", code: 11000 });
        }
        return inner.updateOne(filter, update, options);
      },
    });
    const c = mongoCollection("people", () => driver);
    const [result] = await c.bulkWrite([{ updateOne: { filter: { email: "race@x.io" }, update: { $set: { n: 1 } }, upsert: true } }]);
    expect(result).toEqual({ ok: true, matched: 1, modified: 1 });
    expect(attempts).toBe(2);
  });
});

describe("mongodb adapter: findOneAndUpdate", () => {
  it("asks the driver for the document itself, before or after the update", async () => {
    const calls: Calls = [];
    const engine = new CollectionEngine("people");
    engine.insertOne({ _id: "p1", n: 1 });
    const c = mongoCollection("people", () => driverDouble(engine, calls));
    expect(await c.findOneAndUpdate({ _id: "p1" }, { $inc: { n: 1 } }, { returnDocument: "before" })).toEqual({ _id: "p1", n: 1 });
    expect(await c.findOneAndUpdate({ _id: "p1" }, { $inc: { n: 1 } })).toEqual({ _id: "p1", n: 3 });
    expect(calls.map((x) => x.args[2])).toEqual([
      { upsert: false, returnDocument: "before" },
      { upsert: false, returnDocument: "after" },
    ]);
  });
});
