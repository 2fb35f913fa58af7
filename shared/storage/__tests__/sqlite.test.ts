/**
 * What the SQLite adapter promises beyond the contract: reads walk real indexes (a deep page reads
 * about a page of rows, in one query; `$in` lists are read many values to a query), a query no index
 * serves stops at the examine budget, documents keep their Dates, data survives a reopen and a killed
 * process, two processes share one file, the file is in WAL mode (synchronous=FULL with fsync), and a
 * bulk write runs in chunks, the event loop free between two, with the results of its ops run one at a
 * time.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { DatabaseSync } from "node:sqlite";
import type { BulkItemResult, BulkOp, Collection, Database, Doc, IndexSpec, StorageError } from "../port";
import { EXAMINE_BUDGET, type SqliteCollection } from "../sqlite/collection";
import { closeAllSqliteDatabases, openSqliteDatabase } from "../sqlite/database";

interface Profile extends Doc {
  store_id: string;
  email_lower?: string | null;
  status?: string;
  created_at?: number;
  tags?: string[];
  seen_at?: Date;
}

const root = mkdtempSync(join(tmpdir(), "crm-sqlite-"));
let files = 0;
const freshFile = () => join(root, `db${++files}.sqlite`);
const pad = (i: number) => String(i).padStart(6, "0");
const examined = (c: Collection<Profile>) => (c as unknown as SqliteCollection<Profile>).lastExamined;
const queries = (c: Collection<Profile>) => (c as unknown as SqliteCollection<Profile>).lastQueries;

afterAll(async () => {
  await closeAllSqliteDatabases();
  rmSync(root, { recursive: true, force: true });
});

const INDEXES = [
  { name: "store_email", keys: { store_id: 1, email_lower: 1 }, unique: true, partial: { email_lower: { $type: "string" } } },
  { name: "store_created", keys: { store_id: 1, created_at: 1 } },
  { name: "store_tags", keys: { store_id: 1, tags: 1 } },
] as const;

async function seed(c: Collection<Profile>, n: number): Promise<void> {
  await c.createIndexes(INDEXES.map((spec) => ({ ...spec, keys: { ...spec.keys } })));
  for (let from = 0; from < n; from += 5000) {
    const ops = Array.from({ length: Math.min(5000, n - from) }, (_, k) => {
      const i = from + k;
      return {
        insertOne: {
          document: {
            _id: `p${pad(i)}`,
            store_id: `s${i % 2}`,
            email_lower: `u${i}@x.io`,
            status: i % 3 === 0 ? "archived" : "active",
            created_at: Math.floor(i / 10),
            tags: i % 1000 === 0 ? ["rare", "vip"] : ["common"],
          },
        },
      };
    });
    expect((await c.bulkWrite(ops)).every((r) => r.ok)).toBe(true);
  }
}

describe("sqlite adapter: index use", () => {
  const N = 60_000;
  let db: Database;
  let c: Collection<Profile>;

  beforeAll(async () => {
    db = await openSqliteDatabase("index_use");
    c = db.collection<Profile>("profiles");
    await seed(c, N);
  }, 60_000);
  afterAll(() => db.close());

  it("a page deep into a store walks the sort index from the cursor: it reads one page of rows", async () => {
    const filter = { store_id: "s1" };
    const sort = { field: "created_at", direction: -1 as const };
    const deep = await c.findPage({ filter, sort, limit: 20, after: { value: 300, id: "p003009" } });
    expect(deep.items.map((d) => d._id)).toEqual(
      Array.from({ length: 40 }, (_, k) => 3007 - k)
        .filter((i) => i % 2 === 1)
        .map((i) => `p${pad(i)}`),
    );
    expect(deep.hasMore).toBe(true);
    expect(examined(c)).toBe(21);
    const first = await c.findPage({ filter: { store_id: "s0", status: "active" }, sort: { field: "created_at", direction: 1 }, limit: 50 });
    expect(first.items).toHaveLength(50);
    expect(examined(c)).toBeLessThan(80);
  });

  it("an equality on a unique index reads one document; an array element is found through a multikey index", async () => {
    expect(await c.findOne({ store_id: "s1", email_lower: "u59999@x.io" })).toMatchObject({ _id: "p059999" });
    expect(examined(c)).toBe(1);
    const rare = await c.find({ store_id: "s0", tags: "rare" }, { sort: { created_at: -1 } });
    expect(rare.map((d) => d._id)).toEqual(Array.from({ length: 60 }, (_, k) => `p${pad((59 - k) * 1000)}`).filter((id) => Number(id.slice(1)) % 2 === 0));
    expect(examined(c)).toBe(rare.length);
  });

  it("reads `$in` lists through the index, many keys to a query, each document once", async () => {
    const ids = (docs: Doc[]) => docs.map((d) => d._id).sort();
    const expected = (keep: (i: number) => boolean) =>
      Array.from({ length: N }, (_, i) => i)
        .filter(keep)
        .map((i) => `p${pad(i)}`);
    // 150 keys of 5 documents each: three batches of keys, whose rows are too many to be read at once.
    const created = Array.from({ length: 150 }, (_, k) => k);
    expect(ids(await c.find({ store_id: "s0", created_at: { $in: created } }))).toEqual(expected((i) => i % 2 === 0 && i < 1500));
    // 40 keys: one query; 100 keys of fewer rows: two; then keys of several fields, and a range after them.
    expect(ids(await c.find({ store_id: "s1", created_at: { $in: created.slice(0, 40) } }))).toEqual(expected((i) => i % 2 === 1 && i < 400));
    expect(queries(c)).toBe(1);
    const rare = Array.from({ length: 100 }, (_, k) => k * 1000);
    expect(ids(await c.find({ store_id: "s0", created_at: { $in: rare } }))).toEqual(expected((i) => i % 2 === 0 && rare.includes(Math.floor(i / 10))));
    expect(queries(c)).toBe(2);
    const window = await c.find({ store_id: { $in: ["s0", "s1", "s9"] }, created_at: { $gte: 100, $lt: 102 } });
    expect(ids(window)).toEqual(expected((i) => i >= 1000 && i < 1020));
    // Documents under both keys of an array field come once.
    expect(ids(await c.find({ store_id: "s0", tags: { $in: ["rare", "vip"] } }))).toEqual(expected((i) => i % 1000 === 0));
    // A reader that needs five documents of two large keys reads five.
    expect(await c.find({ store_id: "s0", tags: { $in: ["common", "rare"] } }, { limit: 5 })).toHaveLength(5);
    expect(examined(c)).toBe(5);
  });

  it("a page of a store sorted by an index that starts with the store reads one page of rows, however small the store", async () => {
    const small = db.collection<Profile>("small_store");
    await small.createIndexes([{ name: "store_created", keys: { store_id: 1, created_at: 1 } }]);
    await small.bulkWrite(Array.from({ length: 500 }, (_, i) => ({ insertOne: { document: { _id: `p${pad(i)}`, store_id: "s", created_at: i } } })));
    const page = await small.findPage({ filter: { store_id: "s" }, sort: { field: "created_at", direction: -1 }, limit: 10 });
    expect(page.items.map((d) => d.created_at)).toEqual([499, 498, 497, 496, 495, 494, 493, 492, 491, 490]);
    expect(examined(small)).toBe(11);
    // A page of 100 (and the row that tells whether there is more) is one query.
    const hundred = await small.findPage({ filter: { store_id: "s" }, sort: { field: "created_at", direction: -1 }, limit: 100, after: { value: 450, id: "p000450" } });
    expect(hundred.items.map((d) => d.created_at)).toEqual(Array.from({ length: 100 }, (_, k) => 449 - k));
    expect(queries(small)).toBe(1);
  });

  it("reads only the index range of an anchored prefix or a comparison on the key after the equalities", async () => {
    expect(await c.count({ store_id: "s0", tags: { $regex: "^ra" } })).toBe(60);
    expect(examined(c)).toBe(60);
    const window = await c.find({ store_id: "s1", created_at: { $gte: 100, $lt: 102 } });
    expect(window.map((d) => d._id).sort()).toEqual(["p001001", "p001003", "p001005", "p001007", "p001009", "p001011", "p001013", "p001015", "p001017", "p001019"]);
    expect(examined(c)).toBe(10);
  });

  it("counts and updates through an index, and keeps the index right after the update", async () => {
    expect(await c.count({ store_id: "s0", tags: "vip" })).toBe(60);
    expect(examined(c)).toBe(60);
    expect(await c.updateMany({ store_id: "s0", tags: "vip" }, { $set: { tags: ["gone"] } })).toEqual({ matched: 60, modified: 60 });
    expect(await c.count({ store_id: "s0", tags: "vip" })).toBe(0);
    expect(await c.count({ store_id: "s0", tags: "gone" })).toBe(60);
    expect(examined(c)).toBe(60);
  });

  it("a query no index serves fails with SCAN_LIMIT instead of reading the whole collection", async () => {
    await expect(c.findOne({ status: "nope" })).rejects.toMatchObject({ code: "SCAN_LIMIT" });
    await expect(c.findPage({ filter: { store_id: "s1", status: "nope" }, sort: { field: "created_at", direction: 1 }, limit: 20 })).rejects.toMatchObject({
      code: "SCAN_LIMIT",
    });
    expect(examined(c)).toBeLessThanOrEqual(EXAMINE_BUDGET + 1);
    // An unindexed filter that matches soon is fine: the budget counts documents read and not returned.
    expect(await c.findOne({ status: "archived" })).toMatchObject({ status: "archived" });
  });

  it("reads a partial index of one type for a range bounded by a value of that type, and only then", async () => {
    const other = db.collection<Profile & { stamped_at?: number | string }>("stamped");
    await other.createIndexes([{ name: "stamped", keys: { stamped_at: 1 }, partial: { stamped_at: { $type: "number" } } }]);
    const unstamped = Array.from({ length: EXAMINE_BUDGET + 500 }, (_, i) => ({ insertOne: { document: { _id: `u${pad(i)}`, store_id: "s" } } }));
    await other.bulkWrite([
      ...unstamped,
      { insertOne: { document: { _id: "n1", store_id: "s", stamped_at: 1 } } },
      { insertOne: { document: { _id: "n9", store_id: "s", stamped_at: 9 } } },
      { insertOne: { document: { _id: "text", store_id: "s", stamped_at: "1" } } },
    ]);
    const ids = (docs: Doc[]) => docs.map((d) => d._id);
    expect(ids(await other.find({ stamped_at: { $lte: 5 } }))).toEqual(["n1"]);
    expect((other as unknown as SqliteCollection<Profile>).lastExamined).toBe(1);
    expect(ids(await other.find({ stamped_at: { $gt: 0 } }, { sort: { stamped_at: 1 } }))).toEqual(["n1", "n9"]);
    // A string bound matches strings only: the numbers' index does not hold them, and the table is read.
    await expect(other.find({ stamped_at: { $gte: "0" } })).rejects.toMatchObject({ code: "SCAN_LIMIT" });
  });

  it("a stream reads every match in batches without a budget, through the index range", async () => {
    let n = 0;
    for await (const doc of c.stream({ store_id: "s1", status: "archived" }, { batchSize: 1000 })) {
      expect(doc.status).toBe("archived");
      n++;
    }
    expect(n).toBe(Array.from({ length: N }, (_, i) => i).filter((i) => i % 2 === 1 && i % 3 === 0).length);
  });
});

describe("sqlite adapter: values and durability", () => {
  it("keeps Dates as Dates, also after a reopen, and finds them by equality and range", async () => {
    const file = freshFile();
    const when = new Date("2026-12-02T10:00:00.000Z");
    const db = await openSqliteDatabase("dates", { file });
    const c = db.collection<Profile>("profiles");
    await c.createIndexes([{ name: "seen", keys: { seen_at: 1 } }]);
    await c.insertOne({ _id: "a", store_id: "s", seen_at: when });
    await c.insertOne({ _id: "b", store_id: "s", seen_at: new Date(when.getTime() + 1000) });
    await db.close();
    const again = (await openSqliteDatabase("dates", { file })).collection<Profile>("profiles");
    const a = await again.findOne({ _id: "a" });
    expect(a!.seen_at).toBeInstanceOf(Date);
    expect(a!.seen_at!.toISOString()).toBe(when.toISOString());
    expect((await again.find({ seen_at: when })).map((d) => d._id)).toEqual(["a"]);
    expect((await again.find({ seen_at: { $gt: when } })).map((d) => d._id)).toEqual(["b"]);
  });

  it("uses WAL mode, and synchronous=FULL when asked to fsync", async () => {
    const plain = freshFile();
    const synced = freshFile();
    await (await openSqliteDatabase("wal", { file: plain })).collection("x").insertOne({ _id: "a" });
    await (await openSqliteDatabase("full", { file: synced, fsync: true })).collection("x").insertOne({ _id: "a" });
    const reader = new DatabaseSync(plain, { readOnly: true });
    expect(reader.prepare("PRAGMA journal_mode").get()).toEqual({ journal_mode: "wal" });
    reader.close();
    const handle = (await openSqliteDatabase("full", { file: synced })) as unknown as { live(): { db: DatabaseSync } };
    expect(handle.live().db.prepare("PRAGMA synchronous").get()).toEqual({ synchronous: 2 });
  });

  it("creates its files readable by their owner alone (they hold e-mails and hashed secrets)", async () => {
    const file = join(root, "private", "data.sqlite");
    const db = await openSqliteDatabase("private", { file });
    await db.collection("x").insertOne({ _id: "a" });
    const mode = (path: string) => statSync(path).mode & 0o777;
    expect(mode(join(root, "private"))).toBe(0o700);
    expect(mode(file)).toBe(0o600);
    expect(mode(`${file}-wal`)).toBe(0o600);
    await db.close();
  });

  it("answers UNAVAILABLE once closed", async () => {
    const db = await openSqliteDatabase("closed", { file: freshFile() });
    const c = db.collection("x");
    await db.close();
    await expect(c.insertOne({ _id: "a" })).rejects.toMatchObject({ code: "UNAVAILABLE" });
    await expect(db.ping()).rejects.toMatchObject({ code: "UNAVAILABLE" });
  });

  it("shares one file with another process: both read each other's writes, and a killed writer loses nothing it acknowledged", async () => {
    const file = freshFile();
    const db = await openSqliteDatabase("shared", { file });
    const c = db.collection<Profile>("items");
    await c.createIndexes([{ name: "store_created", keys: { store_id: 1, created_at: 1 } }]);
    await c.insertOne({ _id: "parent", store_id: "s", created_at: 0 });

    const child = runChild(`
      const db = await openSqliteDatabase("shared", { file: ${JSON.stringify(file)} });
      const c = db.collection("items");
      await c.createIndexes([{ name: "store_created", keys: { store_id: 1, created_at: 1 } }]);
      const parent = await c.findOne({ _id: "parent" });
      for (let i = 1; i <= 200; i++) await c.insertOne({ _id: "child" + i, store_id: "s", created_at: i });
      console.log("written " + (parent ? parent._id : "none"));
      setInterval(() => {}, 1000);
    `);
    await child.waitFor("written parent");
    // The parent writes while the child is alive, then the child is killed without closing anything.
    await c.insertOne({ _id: "parent2", store_id: "s", created_at: 1000 });
    await child.kill();
    const page = await c.findPage({ filter: { store_id: "s" }, sort: { field: "created_at", direction: 1 }, limit: 1000 });
    expect(page.items).toHaveLength(202);
    expect(page.items.map((d) => d._id).slice(0, 3)).toEqual(["parent", "child1", "child2"]);
    await db.close();
    const reopened = (await openSqliteDatabase("shared", { file })).collection<Profile>("items");
    expect(await reopened.count({ store_id: "s" })).toBe(202);
  });
});

describe("sqlite adapter: a bulk write in chunks, a transaction each (collection.ts bulkWrite)", () => {
  interface Item extends Doc {
    email?: string;
    n?: number;
    tags?: number[];
    seen_at?: Date;
  }
  const ITEM_INDEXES: IndexSpec[] = [
    { name: "email", keys: { email: 1 }, unique: true },
    { name: "tags", keys: { tags: 1 } },
    { name: "seen", keys: { seen_at: 1 } },
  ];
  let dbs = 0;

  async function items(chunk?: { ops: number; ms: number }): Promise<Collection<Item>> {
    const c = (await openSqliteDatabase(`bulk_${++dbs}`)).collection<Item>("items");
    await c.createIndexes(ITEM_INDEXES);
    await c.insertOne({ _id: "old", email: "taken" });
    if (chunk) (c as unknown as SqliteCollection<Item>).bulkChunkLimits = chunk;
    return c;
  }

  const insert = (i: number, fields: Partial<Item> = {}): BulkOp<Item> => ({ insertOne: { document: { _id: `d${pad(i)}`, email: `e${i}`, tags: [i % 7], ...fields } } });

  /**
   * 1200 ops in chunks of at most 250 (a chunk in which an op fails ends with it): inserts, with duplicates
   * in one chunk (20 of 10), across chunks (700 of 100, 1100 of 5's `_id`) and of a document stored
   * before (900); an upsert and a duplicate of it (501); a value no index can hold (800); updates and a
   * delete of documents inserted just before (301, 302, 401).
   */
  function scenario(): BulkOp<Item>[] {
    const ops = Array.from({ length: 1200 }, (_, i) => insert(i));
    ops[20] = insert(20, { email: "e10" });
    ops[700] = insert(700, { email: "e100" });
    ops[1100] = { insertOne: { document: { _id: `d${pad(5)}`, email: "again" } } };
    ops[900] = insert(900, { email: "taken" });
    ops[300] = insert(300, { n: 0 });
    ops[301] = { updateOne: { filter: { _id: `d${pad(300)}` }, update: { $inc: { n: 1 } } } };
    ops[302] = { updateOne: { filter: { email: "e300" }, update: { $inc: { n: 1 } } } };
    ops[401] = { deleteOne: { filter: { email: "e400" } } };
    ops[500] = { updateOne: { filter: { _id: "up", email: "up" }, update: { $set: { n: 5 } }, upsert: true } };
    ops[501] = insert(501, { email: "up" });
    ops[800] = insert(800, { seen_at: new Date(Number.NaN) });
    return ops;
  }

  /** What the ops give one at a time through the single-document calls. */
  async function oneByOne(c: Collection<Item>, ops: BulkOp<Item>[]): Promise<BulkItemResult[]> {
    const results: BulkItemResult[] = [];
    for (const op of ops) {
      try {
        if ("insertOne" in op) {
          await c.insertOne(op.insertOne.document);
          results.push({ ok: true, inserted: true });
        } else if ("updateOne" in op) {
          results.push({ ok: true, ...(await c.updateOne(op.updateOne.filter, op.updateOne.update, { upsert: op.updateOne.upsert })) });
        } else {
          results.push({ ok: true, deleted: await c.deleteOne(op.deleteOne.filter) });
        }
      } catch (err) {
        const e = err as StorageError;
        results.push({ ok: false, error: { code: e.code, message: e.message, ...(e.index ? { index: e.index } : {}) } });
      }
    }
    return results;
  }

  /** Every document, in `_id` order. */
  async function contents(c: Collection<Item>): Promise<Item[]> {
    const docs: Item[] = [];
    for await (const doc of c.stream({})) docs.push(doc);
    return docs;
  }

  it("gives, over several chunks, the results and documents of the ops run one at a time", async () => {
    const reference = await items();
    const expected = await oneByOne(reference, scenario());
    const c = await items({ ops: 250, ms: Number.POSITIVE_INFINITY });
    const results = await c.bulkWrite(scenario());
    expect(results).toEqual(expected);
    expect(await contents(c)).toEqual(await contents(reference));

    const failed = results.flatMap((r, i) => (r.ok ? [] : [[i, r.error!.code, r.error!.index]]));
    expect(failed).toEqual([
      [20, "DUPLICATE_KEY", "email"],
      [501, "DUPLICATE_KEY", "email"],
      [700, "DUPLICATE_KEY", "email"],
      [800, "INVALID_QUERY", undefined],
      [900, "DUPLICATE_KEY", "email"],
      [1100, "DUPLICATE_KEY", "_id_"],
    ]);
    expect(results[10]).toEqual({ ok: true, inserted: true });
    expect(results.slice(301, 303)).toEqual([
      { ok: true, matched: 1, modified: 1 },
      { ok: true, matched: 1, modified: 1 },
    ]);
    expect(results[401]).toEqual({ ok: true, deleted: 1 });
    expect(results[500]).toEqual({ ok: true, matched: 0, modified: 0, upsertedId: "up" });

    expect((await c.find({ email: "e10" })).map((d) => d._id)).toEqual([`d${pad(10)}`]);
    expect((await c.findOne({ _id: `d${pad(300)}` }))!.n).toBe(2);
    expect(await c.count({})).toBe(1 + (1200 - 4 - failed.length) + 1 - 1); // "old", the inserts that held, the upsert, less the deleted one
  });

  it("reads in a chunk see the chunk's earlier inserts, through their index rows too", async () => {
    const c = await items();
    const ops = Array.from({ length: 600 }, (_, i) => insert(i));
    ops[290] = insert(290, { tags: [1, 10] });
    ops[301] = { updateOne: { filter: { email: "e300" }, update: { $inc: { n: 1 } } } };
    ops[302] = { deleteOne: { filter: { email: "e250" } } };
    ops[303] = { updateOne: { filter: { tags: { $gt: 2, $lt: 8 }, email: "e290" }, update: { $set: { n: 7 } } } };
    ops[304] = { updateOne: { filter: { email: "e599" }, update: { $set: { n: 1 } } } };
    const results = await c.bulkWrite(ops);
    expect(results.every((r) => r.ok)).toBe(true);
    expect(results.slice(301, 305)).toEqual([
      { ok: true, matched: 1, modified: 1 },
      { ok: true, deleted: 1 },
      { ok: true, matched: 1, modified: 1 },
      { ok: true, matched: 0, modified: 0 },
    ]);
    expect(await c.count({ email: "e250" })).toBe(0);
    expect((await c.findOne({ email: "e300" }))!.n).toBe(1);
    // The array made `tags` multikey: it matches a range that no element lies in, each bound met by one, as in MongoDB.
    expect((await c.find({ tags: { $gt: 2, $lt: 8 } }, { limit: 1000 })).map((d) => d._id)).toContain(`d${pad(290)}`);
  });

  it("reports a duplicate among the rows a chunk writes one by one, and one in a statement of many rows", async () => {
    const c = await items();
    const ops = Array.from({ length: 40 }, (_, i) => insert(i));
    ops[5] = insert(5, { email: "e3" });
    ops[39] = insert(39, { email: "e38" });
    const results = await c.bulkWrite(ops);
    expect(results.flatMap((r, i) => (r.ok ? [] : [[i, r.error!.code, r.error!.index]]))).toEqual([
      [5, "DUPLICATE_KEY", "email"],
      [39, "DUPLICATE_KEY", "email"],
    ]);
    expect(await c.count({})).toBe(1 + 38);
  });

  it("gives the same results with the default chunks, and with chunks cut short by their time limit", async () => {
    const expected = await oneByOne(await items(), scenario());
    expect(await (await items()).bulkWrite(scenario())).toEqual(expected);
    expect(await (await items({ ops: 500, ms: 0 })).bulkWrite(scenario().slice(0, 320))).toEqual(expected.slice(0, 320));
  });

  it("lets the event loop run between two chunks of a batch larger than a chunk", async () => {
    const c = await items();
    let countBetween: Promise<number> | undefined;
    setImmediate(() => {
      countBetween = c.count({});
    });
    const results = await c.bulkWrite(Array.from({ length: 2500 }, (_, i) => insert(i)));
    await new Promise(setImmediate); // (had it not run yet)
    expect(results.every((r) => r.ok)).toBe(true);
    // The callback ran after the first chunk had committed, before the last one.
    const between = await countBetween!;
    expect(between).toBeGreaterThan(1);
    expect(between).toBeLessThan(2500);
  });

  it("is not atomic: another caller's write may land between two chunks, and the batch's later ops see it", async () => {
    const c = await items();
    let other: Promise<void> | undefined;
    setImmediate(() => {
      other = c.insertOne({ _id: "other", email: "e2400" });
    });
    // 2500 ops are three chunks at least (1000 ops a chunk at most): the other write lands after the first.
    const results = await c.bulkWrite(Array.from({ length: 2500 }, (_, i) => insert(i)));
    await new Promise(setImmediate); // (had it not run yet)
    await other;
    expect(results[2400]).toMatchObject({ ok: false, error: { code: "DUPLICATE_KEY", index: "email" } });
    expect(results.filter((r) => !r.ok)).toHaveLength(1);
  });
});

/** Runs a snippet in another Node process with `openSqliteDatabase` in scope (TypeScript through @swc/core). */
function runChild(body: string): { waitFor(text: string): Promise<void>; kill(): Promise<void> } {
  const module = resolve(__dirname, "../sqlite/database.ts");
  const hook = `
    const fs = require("node:fs");
    const { transformSync } = require("@swc/core");
    require.extensions[".ts"] = (m, filename) => {
      const { code } = transformSync(fs.readFileSync(filename, "utf8"), {
        filename, jsc: { target: "es2022", parser: { syntax: "typescript" } }, module: { type: "commonjs" },
      });
      m._compile(code, filename);
    };
    const { openSqliteDatabase } = require(${JSON.stringify(module)});
    (async () => { ${body} })().catch((e) => { console.log("error " + (e.code || "") + " " + e.message); process.exit(3); });
  `;
  const proc = spawn(process.execPath, ["-e", hook], { cwd: resolve(__dirname, "../../.."), stdio: ["ignore", "pipe", "inherit"] });
  let out = "";
  const waiters: (() => void)[] = [];
  proc.stdout!.on("data", (chunk: Buffer) => {
    out += chunk.toString();
    for (const w of waiters.splice(0)) w();
  });
  return {
    waitFor: (text) =>
      new Promise((resolvePromise, reject) => {
        const check = () => {
          if (out.includes(text)) return resolvePromise();
          if (out.includes("error ") || proc.exitCode !== null) return reject(new Error(`child: ${out}`));
          waiters.push(check);
        };
        proc.once("exit", check);
        check();
      }),
    kill: () =>
      new Promise((resolvePromise) => {
        if (proc.exitCode !== null || proc.signalCode !== null) return resolvePromise();
        proc.once("exit", () => resolvePromise());
        proc.kill("SIGKILL");
      }),
  };
}
