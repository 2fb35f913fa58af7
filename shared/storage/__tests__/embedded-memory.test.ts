/** The storage contract on the embedded adapter in memory, plus what only the embedded engine promises. */
import { closeAllEmbeddedDatabases, openEmbeddedDatabase } from "../embedded";
import type { CollectionEngine } from "../embedded/engine";
import type { Database, Doc } from "../port";
import { describeStorageContract } from "./contract";

describeStorageContract("embedded (memory)", () => openEmbeddedDatabase("contract_memory"));

interface Profile extends Doc {
  store_id: string;
  email_lower?: string | null;
  status?: string;
  created_at?: number;
  tags?: string[];
}

/** The engine behind a collection, to read how many documents a query examined. */
const engineOf = (db: Database, name: string) => (db as unknown as { engine(n: string): CollectionEngine }).engine(name);

afterAll(() => closeAllEmbeddedDatabases());

describe("embedded engine", () => {
  let db: Database;
  beforeEach(async () => {
    db = await openEmbeddedDatabase("engine");
  });
  afterEach(() => db.close());

  async function seed(n: number): Promise<void> {
    const c = db.collection<Profile>("profiles");
    await c.createIndexes([
      { name: "store_email", keys: { store_id: 1, email_lower: 1 }, unique: true, partial: { email_lower: { $type: "string" } } },
      { name: "store_created", keys: { store_id: 1, created_at: 1 } },
    ]);
    const ops = Array.from({ length: n }, (_, i) => ({
      insertOne: {
        document: { _id: `p${String(i).padStart(6, "0")}`, store_id: `s${i % 4}`, email_lower: `u${i}@x.io`, status: i % 3 === 0 ? "archived" : "active", created_at: Math.floor(i / 10) },
      },
    }));
    expect((await c.bulkWrite(ops)).every((r) => r.ok)).toBe(true);
  }

  it("walks a { store_id, created_at } index from the cursor: a page examines about limit + 1 documents, not the store", async () => {
    await seed(20_000);
    const c = db.collection<Profile>("profiles");
    const engine = engineOf(db, "profiles");
    const first = await c.findPage({ filter: { store_id: "s1", status: "active" }, sort: { field: "created_at", direction: -1 }, limit: 20 });
    expect(first.items).toHaveLength(20);
    expect(engine.lastExamined).toBeLessThanOrEqual(40);
    const last = first.items[19];
    const next = await c.findPage({ filter: { store_id: "s1", status: "active" }, sort: { field: "created_at", direction: -1 }, limit: 20, after: { value: last.created_at, id: last._id } });
    expect(next.items[0].created_at).toBeLessThanOrEqual(last.created_at!);
    expect(engine.lastExamined).toBeLessThanOrEqual(40);
    const sorted = [...first.items, ...next.items].map((d) => [d.created_at, d._id] as const);
    expect(sorted).toEqual([...sorted].sort((a, b) => b[0]! - a[0]! || (a[1] < b[1] ? 1 : -1)));
  });

  it("answers equality lookups on a compound unique index from its hash map (one document examined)", async () => {
    await seed(5_000);
    const c = db.collection<Profile>("profiles");
    expect(await c.findOne({ store_id: "s3", email_lower: "u4003@x.io" })).toMatchObject({ _id: "p004003" });
    expect(engineOf(db, "profiles").lastExamined).toBe(1);
    expect(await c.findOne({ store_id: "s2", email_lower: "u4003@x.io" })).toBeNull();
    expect(engineOf(db, "profiles").lastExamined).toBe(0);
    expect(await c.count({ _id: { $in: ["p000001", "p000002", "nope"] } })).toBe(2);
    expect(engineOf(db, "profiles").lastExamined).toBe(2);
  });

  it("answers $in on the key after an equality prefix with one walk per value (find and stream)", async () => {
    const c = db.collection<Profile>("sessions");
    await c.createIndexes([{ name: "store_profile_created", keys: { store_id: 1, email_lower: 1, created_at: -1 } }]);
    const ops = Array.from({ length: 10_000 }, (_, i) => ({
      insertOne: { document: { _id: `x${String(i).padStart(6, "0")}`, store_id: "s", email_lower: `p${i % 2_000}`, status: "active", created_at: i } },
    }));
    await c.bulkWrite(ops);
    const engine = engineOf(db, "sessions");
    const wanted = { store_id: "s", email_lower: { $in: ["p7", "p8", "p9"] } };
    expect(await c.find(wanted)).toHaveLength(15);
    expect(engine.lastExamined).toBe(15);
    const streamed: string[] = [];
    for await (const doc of c.stream(wanted, { batchSize: 4 })) streamed.push(doc._id);
    expect(streamed).toHaveLength(15);
    expect(streamed).toEqual([...streamed].sort());
    expect(engine.lastExamined).toBeLessThanOrEqual(15);
  });

  it("counts a store through the index range, not the whole collection", async () => {
    await seed(4_000);
    expect(await db.collection<Profile>("profiles").count({ store_id: "s0" })).toBe(1_000);
    expect(engineOf(db, "profiles").lastExamined).toBe(1_000);
  });

  it("updateMany that would break a unique index changes nothing", async () => {
    const c = db.collection<Profile>("profiles");
    await c.createIndexes([{ name: "store_email", keys: { store_id: 1, email_lower: 1 }, unique: true }]);
    await c.insertOne({ _id: "a", store_id: "s", email_lower: "a", status: "x" });
    await c.insertOne({ _id: "b", store_id: "s", email_lower: "b", status: "x" });
    await expect(c.updateMany({ store_id: "s" }, { $set: { email_lower: "same", status: "y" } })).rejects.toMatchObject({ code: "DUPLICATE_KEY", index: "store_email" });
    expect(await c.find({}, { sort: { _id: 1 } })).toEqual([
      { _id: "a", store_id: "s", email_lower: "a", status: "x" },
      { _id: "b", store_id: "s", email_lower: "b", status: "x" },
    ]);
    // Swapping two unique values in one updateMany is fine: neither value ends up twice.
    await c.insertOne({ _id: "c", store_id: "t", email_lower: "c" });
    expect(await c.updateMany({ store_id: "s" }, { $set: { status: "z" } })).toEqual({ matched: 2, modified: 2 });
  });

  it("indexes array fields per element (multikey) for lookups and uniqueness", async () => {
    const c = db.collection<Profile>("profiles");
    await c.createIndexes([{ name: "tags", keys: { tags: 1 }, unique: true }]);
    await c.insertOne({ _id: "a", store_id: "s", tags: ["x", "y", "x"] });
    await expect(c.insertOne({ _id: "b", store_id: "s", tags: ["z", "y"] })).rejects.toMatchObject({ code: "DUPLICATE_KEY", index: "tags" });
    await c.insertOne({ _id: "c", store_id: "s", tags: ["z"] });
    expect((await c.find({ tags: "y" })).map((d) => d._id)).toEqual(["a"]);
    expect(engineOf(db, "profiles").lastExamined).toBe(1);
    expect((await c.find({ store_id: "s" }, { sort: { tags: 1 } })).map((d) => d._id).sort()).toEqual(["a", "c"]);
  });

  it("shares a memory database between handles and forgets it when the last one closes", async () => {
    const other = await openEmbeddedDatabase("engine");
    await db.collection<Profile>("shared").insertOne({ _id: "a", store_id: "s" });
    expect(await other.collection<Profile>("shared").count({})).toBe(1);
    await other.close();
    await expect(other.collection<Profile>("shared").count({})).rejects.toMatchObject({ code: "UNAVAILABLE" });
    await db.close();
    db = await openEmbeddedDatabase("engine");
    expect(await db.collection<Profile>("shared").count({})).toBe(0);
  });

  it("refuses collection names that are not safe file names", () => {
    expect(() => db.collection("../escape")).toThrow(expect.objectContaining({ code: "INVALID_QUERY" }));
  });
});
