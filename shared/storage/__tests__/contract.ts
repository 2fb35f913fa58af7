/**
 * The storage port's contract: one suite every adapter must pass (embedded memory, embedded file,
 * MongoDB). Each test works in its own collection, so the suite also runs against a shared server.
 */
import type { Collection, Database, Doc, Filter } from "../port";
import { escapeRegex, isDuplicateKey } from "../port";
import { isUuid } from "../../ids";

interface Person extends Doc {
  store_id: string;
  email?: string | null;
  email_lower?: string | null;
  name?: string;
  rank?: number;
  status?: string;
  n?: number;
  tags?: string[];
  items?: { sku: string; qty: number }[];
  meta?: Record<string, unknown>;
  created_at?: number;
}

const pad = (i: number) => String(i).padStart(5, "0");

async function expectCode(promise: Promise<unknown>, code: string, index?: string): Promise<void> {
  await expect(promise).rejects.toMatchObject(index === undefined ? { code } : { code, index });
}

async function drain<T>(iterable: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of iterable) out.push(item);
  return out;
}

/** Walks every page of a keyset query and returns the ids in order. */
async function allPages(c: Collection<Person>, filter: Filter, field: string, direction: 1 | -1, limit: number): Promise<string[]> {
  const ids: string[] = [];
  let after: { value: unknown; id: string } | undefined;
  for (let guard = 0; guard < 1000; guard++) {
    const page = await c.findPage({ filter, sort: { field, direction }, limit, after });
    expect(page.items.length).toBeLessThanOrEqual(limit);
    ids.push(...page.items.map((d) => d._id));
    if (!page.hasMore) return ids;
    expect(page.items.length).toBe(limit);
    const last = page.items[page.items.length - 1] as Record<string, unknown>;
    after = { value: last[field], id: last._id as string };
  }
  throw new Error("pagination did not end");
}

export function describeStorageContract(label: string, makeDatabase: () => Promise<Database>): void {
  describe(`storage contract: ${label}`, () => {
    let db: Database;
    let seq = 0;
    const fresh = () => db.collection<Person>(`contract_${++seq}`);

    beforeAll(async () => {
      db = await makeDatabase();
      await db.drop();
    });
    afterAll(async () => {
      await db?.drop();
      await db?.close();
    });

    describe("database", () => {
      it("answers ping", async () => {
        await expect(db.ping()).resolves.toBeUndefined();
      });

      it("drop removes every collection's documents", async () => {
        const c = fresh();
        await c.insertOne({ _id: "a", store_id: "s" });
        await db.drop();
        expect(await c.count({})).toBe(0);
        await c.insertOne({ _id: "a", store_id: "s" });
        expect(await c.count({})).toBe(1);
      });
    });

    describe("insertOne / findOne / find / count", () => {
      it("stores a document and finds it by _id and by field", async () => {
        const c = fresh();
        await c.insertOne({ _id: "p1", store_id: "s1", name: "Ann", meta: { city: "Oslo" }, tags: ["vip", "eu"] });
        expect(await c.findOne({ _id: "p1" })).toEqual({ _id: "p1", store_id: "s1", name: "Ann", meta: { city: "Oslo" }, tags: ["vip", "eu"] });
        expect(await c.findOne({ "meta.city": "Oslo" })).toMatchObject({ _id: "p1" });
        expect(await c.findOne({ tags: "eu" })).toMatchObject({ _id: "p1" });
        expect(await c.findOne({ _id: "nope" })).toBeNull();
      });

      it("refuses a second document with the same _id", async () => {
        const c = fresh();
        await c.insertOne({ _id: "p1", store_id: "s1" });
        await expectCode(c.insertOne({ _id: "p1", store_id: "s2" }), "DUPLICATE_KEY", "_id_");
        expect(await c.findOne({ _id: "p1" })).toMatchObject({ store_id: "s1" });
      });

      it("supports the port's filter operators", async () => {
        const c = fresh();
        for (let i = 0; i < 10; i++) {
          await c.insertOne({
            _id: `p${i}`,
            store_id: i < 5 ? "s1" : "s2",
            rank: i,
            name: `Name ${i}`,
            ...(i % 2 === 0 ? { status: "active" } : {}),
            items: [{ sku: `k${i}`, qty: i }],
            tags: i % 3 === 0 ? ["a", "b"] : ["c"],
          });
        }
        const ids = async (filter: Filter) => (await c.find(filter, { sort: { _id: 1 } })).map((d) => d._id);
        expect(await ids({ rank: { $eq: 3 } })).toEqual(["p3"]);
        expect(await ids({ store_id: "s1", rank: { $ne: 0 } })).toEqual(["p1", "p2", "p3", "p4"]);
        expect(await ids({ rank: { $gt: 7 } })).toEqual(["p8", "p9"]);
        expect(await ids({ rank: { $gte: 8 } })).toEqual(["p8", "p9"]);
        expect(await ids({ rank: { $lt: 2 } })).toEqual(["p0", "p1"]);
        expect(await ids({ rank: { $lte: 1 } })).toEqual(["p0", "p1"]);
        expect(await ids({ rank: { $in: [1, 5, 42] } })).toEqual(["p1", "p5"]);
        expect(await ids({ store_id: "s1", rank: { $nin: [0, 1, 2] } })).toEqual(["p3", "p4"]);
        expect(await ids({ store_id: "s1", status: { $exists: false } })).toEqual(["p1", "p3"]);
        expect(await ids({ $and: [{ store_id: "s2" }, { rank: { $lt: 7 } }] })).toEqual(["p5", "p6"]);
        expect(await ids({ $or: [{ rank: 0 }, { rank: 9 }] })).toEqual(["p0", "p9"]);
        expect(await ids({ store_id: "s1", rank: { $not: { $gt: 1 } } })).toEqual(["p0", "p1"]);
        expect(await ids({ items: { $elemMatch: { sku: "k4", qty: { $gte: 4 } } } })).toEqual(["p4"]);
        expect(await ids({ tags: "a" })).toEqual(["p0", "p3", "p6", "p9"]);
        expect(await ids({ "items.sku": "k7" })).toEqual(["p7"]);
        expect(await ids({ name: { $regex: `^${escapeRegex("name 1")}$`, $options: "i" } })).toEqual(["p1"]);
        expect(await c.count({ store_id: "s2" })).toBe(5);
        expect(await c.count({})).toBe(10);
      });

      it("sorts and limits find, and caps it at 1000 documents", async () => {
        const c = fresh();
        const ops = Array.from({ length: 1100 }, (_, i) => ({ insertOne: { document: { _id: `p${pad(i)}`, store_id: "s", rank: i % 7 } } }));
        const results = await c.bulkWrite(ops);
        expect(results.every((r) => r.ok)).toBe(true);
        const top = await c.find({ store_id: "s" }, { sort: { rank: -1, _id: 1 }, limit: 3 });
        expect(top.map((d) => [d.rank, d._id])).toEqual([
          [6, "p00006"],
          [6, "p00013"],
          [6, "p00020"],
        ]);
        expect((await c.find({ store_id: "s" })).length).toBe(1000);
        expect((await c.find({ store_id: "s" }, { limit: 5000 })).length).toBe(1000);
      });

      it("answers ranges and anchored prefixes on an indexed (array) field by MongoDB's rules, types bracketed", async () => {
        const c = fresh();
        await c.createIndexes([
          { name: "store_tags", keys: { store_id: 1, tags: 1 } },
          { name: "store_rank", keys: { store_id: 1, rank: 1 } },
        ]);
        const docs: Person[] = [
          { _id: "p1", store_id: "s", tags: ["mary.jane@x.com", "jane@x.com", "x.com", "com"], rank: 1 },
          { _id: "p2", store_id: "s", tags: ["janet@y.org", "y.org", "org"], rank: 2 },
          { _id: "p3", store_id: "s", tags: ["Jane@z.io"], rank: 3 },
          { _id: "p4", store_id: "s", tags: ["ja"], rank: "3" as unknown as number },
          { _id: "p5", store_id: "t", tags: ["jane@x.com"], rank: 2 },
          { _id: "p6", store_id: "s", tags: ["j\u{10FFFF}", "jb"], rank: 10 },
        ];
        for (const doc of docs) await c.insertOne(doc);
        const ids = async (filter: Filter) => (await c.find(filter, { sort: { _id: 1 } })).map((d) => d._id);
        expect(await ids({ store_id: "s", tags: { $regex: `^${escapeRegex("jane")}` } })).toEqual(["p1", "p2"]);
        expect(await ids({ store_id: "s", tags: { $regex: `^${escapeRegex("ja")}` } })).toEqual(["p1", "p2", "p4"]);
        expect(await ids({ store_id: "s", tags: { $regex: `^${escapeRegex("jane@x.")}` } })).toEqual(["p1"]);
        expect(await ids({ store_id: "s", tags: { $regex: `^${escapeRegex("jane")}`, $options: "i" } })).toEqual(["p1", "p2", "p3"]);
        expect(await ids({ store_id: "s", tags: { $regex: "^ja(ne|zz)" } })).toEqual(["p1", "p2"]);
        expect(await ids({ store_id: "s", tags: { $regex: "^jx?a" } })).toEqual(["p1", "p2", "p4"]);
        expect(await ids({ store_id: "s", tags: { $regex: "^x|org" } })).toEqual(["p1", "p2"]);
        expect(await ids({ store_id: "s", rank: { $gt: 1, $lte: 3 } })).toEqual(["p2", "p3"]);
        expect(await ids({ store_id: "s", rank: { $gte: "3" } })).toEqual(["p4"]);
        expect(await ids({ store_id: "s", rank: { $lt: 100 } })).toEqual(["p1", "p2", "p3", "p6"]);
        // On an array, each condition may be met by a different element (p2: "y.org" >= "x", "janet@y.org" < "y").
        expect(await ids({ store_id: "s", tags: { $gte: "x", $lt: "y" } })).toEqual(["p1", "p2"]);
        expect(await ids({ store_id: "s", tags: { $elemMatch: { $gte: "x", $lt: "y" } } })).toEqual(["p1"]);
      });

      it("rejects operators outside the port's subset and undefined values", async () => {
        const c = fresh();
        await c.insertOne({ _id: "p1", store_id: "s1" });
        await expectCode(c.find({ $where: "true" }), "INVALID_QUERY");
        await expectCode(c.find({ store_id: { $where: "true" } }), "INVALID_QUERY");
        await expectCode(c.find({ $expr: { $eq: [1, 1] } }), "INVALID_QUERY");
        await expectCode(c.findOne({ store_id: { $gt: "a", name: "x" } }), "INVALID_QUERY");
        await expectCode(c.findOne({ store_id: undefined }), "INVALID_QUERY");
        await expectCode(c.count({ store_id: /s/ as unknown as string }), "INVALID_QUERY");
        await expectCode(c.deleteMany({ "__proto__.polluted": 1 }), "INVALID_QUERY");
        expect(await c.count({})).toBe(1);
      });
    });

    describe("hostile values", () => {
      it("treats operator-shaped input as data when the caller wraps it in $eq / $in", async () => {
        const c = fresh();
        await c.insertOne({ _id: "p1", store_id: "s1", email: "a@x.io" });
        await c.insertOne({ _id: "p2", store_id: "s1", email: null });
        const hostile = { $ne: null } as unknown;
        expect(await c.find({ store_id: "s1", email: { $eq: hostile } })).toEqual([]);
        expect(await c.find({ store_id: "s1", email: { $in: [hostile, { $gt: "" }] } })).toEqual([]);
        expect(await c.count({ email: { $eq: "$ne" } })).toBe(0);
        // Unwrapped, it is an operator: exactly the bug validated inputs prevent.
        expect(await c.count({ email: hostile as Filter })).toBe(1);
      });

      it("escapeRegex makes search text literal", async () => {
        const c = fresh();
        await c.insertOne({ _id: "p1", store_id: "s", name: "a.b*(c) [x]" });
        await c.insertOne({ _id: "p2", store_id: "s", name: "aXbbbbc x" });
        const search = async (text: string) => (await c.find({ name: { $regex: escapeRegex(text), $options: "i" } })).map((d) => d._id);
        expect(await search("A.B*(C)")).toEqual(["p1"]);
        expect(await search("[x]")).toEqual(["p1"]);
        expect(await search(".*")).toEqual([]);
        expect(escapeRegex("(a+)+$")).toBe("\\(a\\+\\)\\+\\$");
      });
    });

    describe("deep copies", () => {
      it("never hands out or keeps a reference to a caller's object", async () => {
        const c = fresh();
        const doc: Person = { _id: "p1", store_id: "s", meta: { nested: { v: 1 } }, tags: ["a"] };
        await c.insertOne(doc);
        (doc.meta!.nested as { v: number }).v = 2;
        doc.tags!.push("mutated");
        const read = (await c.findOne({ _id: "p1" }))!;
        expect(read.meta).toEqual({ nested: { v: 1 } });
        expect(read.tags).toEqual(["a"]);
        read.tags!.push("again");
        (read.meta as { nested: { v: number } }).nested.v = 3;
        const value = { deep: { x: 1 } };
        await c.updateOne({ _id: "p1" }, { $set: { extra: value } });
        value.deep.x = 99;
        const after = (await c.findOne({ _id: "p1" })) as Person & { extra: unknown };
        expect(after.tags).toEqual(["a"]);
        expect(after.meta).toEqual({ nested: { v: 1 } });
        expect(after.extra).toEqual({ deep: { x: 1 } });
        const [listed] = await c.find({ _id: "p1" });
        listed.tags!.length = 0;
        expect((await c.findOne({ _id: "p1" }))!.tags).toEqual(["a"]);
      });
    });

    describe("indexes", () => {
      it("creates indexes idempotently by name and refuses a changed definition", async () => {
        const c = fresh();
        const spec = { name: "by_rank", keys: { store_id: 1, rank: 1 } as const };
        await c.createIndexes([spec]);
        await c.createIndexes([spec]);
        await expectCode(c.createIndexes([{ name: "by_rank", keys: { store_id: 1, name: 1 } }]), "INVALID_QUERY");
      });

      it("a unique partial index allows many missing/null emails and refuses the same email twice", async () => {
        const c = fresh();
        await c.createIndexes([{ name: "email_unique", keys: { store_id: 1, email_lower: 1 }, unique: true, partial: { email_lower: { $type: "string" } } }]);
        await c.insertOne({ _id: "p1", store_id: "s1", email_lower: null });
        await c.insertOne({ _id: "p2", store_id: "s1", email_lower: null });
        await c.insertOne({ _id: "p3", store_id: "s1" });
        await c.insertOne({ _id: "p4", store_id: "s1", email_lower: "ann@x.io" });
        await c.insertOne({ _id: "p5", store_id: "s2", email_lower: "ann@x.io" });
        const err = await c.insertOne({ _id: "p6", store_id: "s1", email_lower: "ann@x.io" }).catch((e: unknown) => e);
        expect(isDuplicateKey(err, "email_unique")).toBe(true);
        expect(await c.count({})).toBe(5);
      });

      it("case-insensitive uniqueness is the caller storing a lowercased field", async () => {
        const c = fresh();
        await c.createIndexes([{ name: "email_unique", keys: { store_id: 1, email_lower: 1 }, unique: true, partial: { email_lower: { $type: "string" } } }]);
        const add = (id: string, email: string) => c.insertOne({ _id: id, store_id: "s1", email, email_lower: email.toLowerCase() });
        await add("p1", "Ann@Example.COM");
        await expectCode(add("p2", "ann@example.com"), "DUPLICATE_KEY", "email_unique");
        expect(await c.findOne({ store_id: "s1", email_lower: "ANN@example.com".toLowerCase() })).toMatchObject({ _id: "p1", email: "Ann@Example.COM" });
      });

      it("refuses partial index filters MongoDB cannot take, on every adapter alike", async () => {
        const c = fresh();
        for (const partial of [{ email: { $exists: false } }, { status: { $ne: "gone" } }, { status: { $nin: ["a"] } }]) {
          await expectCode(c.createIndexes([{ name: "p", keys: { email: 1 }, partial }]), "INVALID_QUERY");
        }
        await c.createIndexes([{ name: "p", keys: { email: 1 }, partial: { email: { $type: "string", $exists: true } } }]);
      });

      it("an update that would break a unique index fails and changes nothing", async () => {
        const c = fresh();
        await c.createIndexes([{ name: "email_unique", keys: { store_id: 1, email_lower: 1 }, unique: true, partial: { email_lower: { $type: "string" } } }]);
        await c.insertOne({ _id: "p1", store_id: "s1", email_lower: "a@x.io", name: "A" });
        await c.insertOne({ _id: "p2", store_id: "s1", email_lower: "b@x.io", name: "B" });
        await expectCode(c.updateOne({ _id: "p2" }, { $set: { email_lower: "a@x.io", name: "changed" } }), "DUPLICATE_KEY", "email_unique");
        expect(await c.findOne({ _id: "p2" })).toMatchObject({ email_lower: "b@x.io", name: "B" });
        await expectCode(c.findOneAndUpdate({ _id: "p2" }, { $set: { email_lower: "a@x.io" } }), "DUPLICATE_KEY", "email_unique");
        // Freeing a value makes it available again.
        await c.updateOne({ _id: "p1" }, { $set: { email_lower: "c@x.io" } });
        await c.updateOne({ _id: "p2" }, { $set: { email_lower: "a@x.io" } });
        expect(await c.findOne({ store_id: "s1", email_lower: "a@x.io" })).toMatchObject({ _id: "p2" });
      });

      it("drops indexes by name, those that exist: a dropped unique index refuses nothing, the data stays", async () => {
        const c = fresh();
        await c.createIndexes([
          { name: "name_unique", keys: { name: 1 }, unique: true },
          { name: "by_rank", keys: { store_id: 1, rank: 1 } },
        ]);
        await c.insertOne({ _id: "p1", store_id: "s1", name: "x", rank: 1 });
        await expectCode(c.insertOne({ _id: "p2", store_id: "s1", name: "x", rank: 2 }), "DUPLICATE_KEY", "name_unique");
        await c.dropIndexes(["name_unique", "by_rank", "never_made"]);
        await c.dropIndexes(["name_unique"]);
        await c.insertOne({ _id: "p2", store_id: "s1", name: "x", rank: 2 });
        expect((await c.find({ store_id: "s1", rank: { $gte: 1 } }, { sort: { rank: 1 } })).map((d) => d._id)).toEqual(["p1", "p2"]);
        // The name is free again, for another definition.
        await c.createIndexes([{ name: "by_rank", keys: { rank: 1 } }]);
        expect(await c.count({ rank: 2 })).toBe(1);
        await expectCode(c.dropIndexes("by_rank" as unknown as string[]), "INVALID_QUERY");
      });

      it("creating a unique index over duplicate data fails with DUPLICATE_KEY", async () => {
        const c = fresh();
        await c.insertOne({ _id: "p1", store_id: "s1", name: "x" });
        await c.insertOne({ _id: "p2", store_id: "s1", name: "x" });
        await expectCode(c.createIndexes([{ name: "name_unique", keys: { name: 1 }, unique: true }]), "DUPLICATE_KEY");
        await c.insertOne({ _id: "p3", store_id: "s1", name: "x" });
        expect(await c.count({ name: "x" })).toBe(3);
      });
    });

    describe("updates", () => {
      it("applies $set $unset $inc $push $addToSet $pull and reports matched/modified", async () => {
        const c = fresh();
        await c.insertOne({
          _id: "p1",
          store_id: "s",
          name: "A",
          n: 1,
          tags: ["a"],
          meta: { x: 1, y: 2 },
          items: [
            { sku: "k1", qty: 1 },
            { sku: "k2", qty: 5 },
          ],
        });
        expect(
          await c.updateOne(
            { _id: "p1" },
            {
              $set: { name: "B", "meta.z": 3 },
              $unset: { "meta.y": "" },
              $inc: { n: 2, fresh: 1 },
              $push: { tags: { $each: ["b", "c"] } },
              $addToSet: { more: { $each: ["m", "m", "n"] } },
              $pull: { items: { qty: { $gte: 5 } } },
            },
          ),
        ).toEqual({ matched: 1, modified: 1 });
        expect(await c.findOne({ _id: "p1" })).toEqual({
          _id: "p1",
          store_id: "s",
          name: "B",
          n: 3,
          fresh: 1,
          tags: ["a", "b", "c"],
          more: ["m", "n"],
          meta: { x: 1, z: 3 },
          items: [{ sku: "k1", qty: 1 }],
        });
        expect(await c.updateOne({ _id: "p1" }, { $set: { name: "B" } })).toEqual({ matched: 1, modified: 0 });
        expect(await c.updateOne({ _id: "p1" }, { $addToSet: { tags: "a" } })).toEqual({ matched: 1, modified: 0 });
        expect(await c.updateOne({ _id: "nope" }, { $set: { name: "B" } })).toEqual({ matched: 0, modified: 0 });
        expect(await c.updateOne({ _id: "p1" }, { $pull: { tags: "b" } })).toEqual({ matched: 1, modified: 1 });
        expect((await c.findOne({ _id: "p1" }))!.tags).toEqual(["a", "c"]);
        // $push with $slice keeps the last (negative) or first (positive) n elements.
        expect(await c.updateOne({ _id: "p1" }, { $push: { tags: { $each: ["d", "e"], $slice: -3 } } })).toEqual({ matched: 1, modified: 1 });
        expect((await c.findOne({ _id: "p1" }))!.tags).toEqual(["c", "d", "e"]);
        await c.updateOne({ _id: "p1" }, { $push: { tags: { $each: ["f"], $slice: 2 }, fresh_list: { $each: ["x", "y"], $slice: -1 } } });
        expect(await c.findOne({ _id: "p1" })).toMatchObject({ tags: ["c", "d"], fresh_list: ["y"] });
        await expectCode(c.updateOne({ _id: "p1" }, { $push: { tags: { $each: ["g"], $slice: 1.5 } } }), "INVALID_QUERY");
        await expectCode(c.updateOne({ _id: "p1" }, { $addToSet: { tags: { $each: ["g"], $slice: -1 } } }), "INVALID_QUERY");
      });

      it("rejects unsupported or conflicting updates", async () => {
        const c = fresh();
        await c.insertOne({ _id: "p1", store_id: "s", name: "A", n: 1 });
        await expectCode(c.updateOne({ _id: "p1" }, { $rename: { name: "nom" } } as never), "INVALID_QUERY");
        await expectCode(c.updateOne({ _id: "p1" }, { name: "replacement" } as never), "INVALID_QUERY");
        await expectCode(c.updateOne({ _id: "p1" }, {}), "INVALID_QUERY");
        await expectCode(c.updateOne({ _id: "p1" }, { $set: { _id: "other" } }), "INVALID_QUERY");
        await expectCode(c.updateOne({ _id: "p1" }, { $set: { n: 1 }, $inc: { n: 1 } }), "INVALID_QUERY");
        await expectCode(c.updateOne({ _id: "p1" }, { $inc: { name: 1 } }), "INVALID_QUERY");
        await expectCode(c.updateOne({ _id: "p1" }, { $push: { name: "x" } }), "INVALID_QUERY");
        expect(await c.findOne({ _id: "p1" })).toEqual({ _id: "p1", store_id: "s", name: "A", n: 1 });
      });

      it("$inc is atomic under 100 concurrent updates", async () => {
        const c = fresh();
        await c.insertOne({ _id: "counter", store_id: "s", n: 0 });
        const results = await Promise.all(Array.from({ length: 100 }, () => c.updateOne({ _id: "counter" }, { $inc: { n: 1 } })));
        expect(results.every((r) => r.modified === 1)).toBe(true);
        expect((await c.findOne({ _id: "counter" }))!.n).toBe(100);
      });

      it("updateMany updates every match and deleteOne/deleteMany report counts", async () => {
        const c = fresh();
        for (let i = 0; i < 6; i++) await c.insertOne({ _id: `p${i}`, store_id: i < 4 ? "s1" : "s2", status: "new" });
        expect(await c.updateMany({ store_id: "s1" }, { $set: { status: "done" } })).toEqual({ matched: 4, modified: 4 });
        expect(await c.updateMany({ store_id: "s1" }, { $set: { status: "done" } })).toEqual({ matched: 4, modified: 0 });
        expect(await c.count({ status: "done" })).toBe(4);
        expect(await c.deleteOne({ store_id: "s1" })).toBe(1);
        expect(await c.deleteOne({ store_id: "nope" })).toBe(0);
        expect(await c.deleteMany({ store_id: "s1" })).toBe(3);
        expect(await c.count({})).toBe(2);
      });

      it("findOneAndUpdate returns the document after (default) or before the update", async () => {
        const c = fresh();
        await c.insertOne({ _id: "p1", store_id: "s", n: 1 });
        expect(await c.findOneAndUpdate({ _id: "p1" }, { $inc: { n: 1 } })).toEqual({ _id: "p1", store_id: "s", n: 2 });
        expect(await c.findOneAndUpdate({ _id: "p1" }, { $inc: { n: 1 } }, { returnDocument: "before" })).toEqual({ _id: "p1", store_id: "s", n: 2 });
        expect(await c.findOneAndUpdate({ _id: "nope" }, { $inc: { n: 1 } })).toBeNull();
        const created = await c.findOneAndUpdate({ store_id: "s", name: "new" }, { $inc: { n: 5 } }, { upsert: true });
        expect(created).toMatchObject({ store_id: "s", name: "new", n: 5 });
        expect(isUuid(created!._id)).toBe(true);
        expect(await c.findOneAndUpdate({ store_id: "s", name: "newer" }, { $inc: { n: 1 } }, { upsert: true, returnDocument: "before" })).toBeNull();
        expect(await c.count({ name: "newer" })).toBe(1);
      });
    });

    describe("upsert", () => {
      it("inserts the filter's equality fields + $setOnInsert + the update, with a fresh uuidv7 _id", async () => {
        const c = fresh();
        const r = await c.updateOne(
          { store_id: "s1", email_lower: { $eq: "a@x.io" }, rank: { $gt: 0 } },
          { $set: { name: "A" }, $setOnInsert: { created_at: 100 }, $inc: { n: 1 } },
          { upsert: true },
        );
        expect(r.matched).toBe(0);
        expect(isUuid(r.upsertedId)).toBe(true);
        expect(r.upsertedId![14]).toBe("7");
        expect(await c.findOne({ _id: r.upsertedId! })).toEqual({ _id: r.upsertedId, store_id: "s1", email_lower: "a@x.io", name: "A", created_at: 100, n: 1 });
        await c.updateOne({ _id: r.upsertedId! }, { $set: { rank: 1 } });
        const again = await c.updateOne(
          { store_id: "s1", email_lower: { $eq: "a@x.io" }, rank: { $gt: 0 } },
          { $set: { name: "B" }, $setOnInsert: { created_at: 200 }, $inc: { n: 1 } },
          { upsert: true },
        );
        expect(again).toEqual({ matched: 1, modified: 1 });
        expect(await c.findOne({ _id: r.upsertedId! })).toMatchObject({ name: "B", created_at: 100, n: 2 });
      });

      it("takes _id from the filter or from $setOnInsert", async () => {
        const c = fresh();
        expect((await c.updateOne({ _id: "given" }, { $set: { store_id: "s" } }, { upsert: true })).upsertedId).toBe("given");
        expect((await c.updateOne({ store_id: "s", name: "x" }, { $setOnInsert: { _id: "from-insert" } }, { upsert: true })).upsertedId).toBe("from-insert");
        expect(await c.findOne({ _id: "from-insert" })).toEqual({ _id: "from-insert", store_id: "s", name: "x" });
      });

      it("20 concurrent upserts on one unique key make exactly one document", async () => {
        const c = fresh();
        await c.createIndexes([{ name: "email_unique", keys: { store_id: 1, email_lower: 1 }, unique: true }]);
        const results = await Promise.all(
          Array.from({ length: 20 }, (_, i) =>
            c.updateOne({ store_id: "s1", email_lower: "race@x.io" }, { $set: { name: `writer ${i}` }, $setOnInsert: { created_at: 1 } }, { upsert: true }),
          ),
        );
        expect(results.filter((r) => r.upsertedId !== undefined)).toHaveLength(1);
        expect(await c.count({ store_id: "s1", email_lower: "race@x.io" })).toBe(1);
      });
    });

    describe("findPage (keyset)", () => {
      async function seedTies(c: Collection<Person>): Promise<void> {
        // 53 documents over 5 sort values, inserted out of order, plus another store's noise.
        const ops = Array.from({ length: 53 }, (_, i) => {
          const k = (i * 17) % 53;
          return { insertOne: { document: { _id: `p${pad(k)}`, store_id: "s1", rank: k % 5, status: k % 4 === 0 ? "archived" : "active" } } };
        });
        ops.push(...Array.from({ length: 10 }, (_, i) => ({ insertOne: { document: { _id: `q${pad(i)}`, store_id: "s2", rank: i % 5, status: "active" } } })));
        expect((await c.bulkWrite(ops)).every((r) => r.ok)).toBe(true);
      }

      function expected(direction: 1 | -1, status?: string): string[] {
        const docs = Array.from({ length: 53 }, (_, k) => ({ id: `p${pad(k)}`, rank: k % 5, status: k % 4 === 0 ? "archived" : "active" }))
          .filter((d) => !status || d.status === status)
          .sort((a, b) => a.rank - b.rank || (a.id < b.id ? -1 : 1));
        return (direction === 1 ? docs : docs.reverse()).map((d) => d.id);
      }

      for (const indexed of [false, true]) {
        const how = indexed ? "with a { store_id, rank } index" : "without an index";
        it(`walks ties in the sort field without skipping or repeating, ascending and descending (${how})`, async () => {
          const c = fresh();
          if (indexed) await c.createIndexes([{ name: "store_rank", keys: { store_id: 1, rank: 1 } }]);
          await seedTies(c);
          for (const limit of [1, 4, 7, 53, 100]) {
            expect(await allPages(c, { store_id: "s1" }, "rank", 1, limit)).toEqual(expected(1));
            expect(await allPages(c, { store_id: "s1" }, "rank", -1, limit)).toEqual(expected(-1));
          }
          expect(await allPages(c, { store_id: "s1", status: "active" }, "rank", -1, 6)).toEqual(expected(-1, "active"));
          expect(await allPages(c, { store_id: "s1", status: "archived" }, "rank", 1, 3)).toEqual(expected(1, "archived"));
        });
      }

      it("pages by _id and reports hasMore exactly", async () => {
        const c = fresh();
        await seedTies(c);
        const first = await c.findPage({ filter: { store_id: "s2" }, sort: { field: "_id", direction: 1 }, limit: 5 });
        expect(first.items.map((d) => d._id)).toEqual(["q00000", "q00001", "q00002", "q00003", "q00004"]);
        expect(first.hasMore).toBe(true);
        const second = await c.findPage({ filter: { store_id: "s2" }, sort: { field: "_id", direction: 1 }, limit: 5, after: { value: "q00004", id: "q00004" } });
        expect(second.items.map((d) => d._id)).toEqual(["q00005", "q00006", "q00007", "q00008", "q00009"]);
        expect(second.hasMore).toBe(false);
        const back = await c.findPage({ filter: { store_id: "s2" }, sort: { field: "_id", direction: -1 }, limit: 2, after: { value: "q00002", id: "q00002" } });
        expect(back).toEqual({ items: [expect.objectContaining({ _id: "q00001" }), expect.objectContaining({ _id: "q00000" })], hasMore: false });
        const none = await c.findPage({ filter: { store_id: "nope" }, sort: { field: "rank", direction: 1 }, limit: 5 });
        expect(none).toEqual({ items: [], hasMore: false });
      });

      it("resumes after a cursor whose document was deleted", async () => {
        const c = fresh();
        await c.createIndexes([{ name: "store_rank", keys: { store_id: 1, rank: 1 } }]);
        await seedTies(c);
        const page = await c.findPage({ filter: { store_id: "s1" }, sort: { field: "rank", direction: 1 }, limit: 10 });
        const last = page.items[9];
        await c.deleteOne({ _id: last._id });
        const next = await c.findPage({ filter: { store_id: "s1" }, sort: { field: "rank", direction: 1 }, limit: 5, after: { value: last.rank, id: last._id } });
        expect(next.items.map((d) => d._id)).toEqual(expected(1).slice(10, 15));
      });
    });

    describe("stream", () => {
      it("yields 2,500 documents in _id order in batches of 100, each once", async () => {
        const c = fresh();
        const ids = Array.from({ length: 2500 }, (_, i) => `p${pad(i)}`);
        const shuffled = [...ids].sort((a, b) => (a.split("").reverse().join("") < b.split("").reverse().join("") ? -1 : 1));
        const results = await c.bulkWrite(shuffled.map((id, i) => ({ insertOne: { document: { _id: id, store_id: i % 2 ? "s1" : "s2", rank: i } } })));
        expect(results.filter((r) => r.ok)).toHaveLength(2500);
        const streamed = await drain(c.stream({}, { batchSize: 100 }));
        expect(streamed.map((d) => d._id)).toEqual(ids);
        const filtered = await drain(c.stream({ store_id: "s1" }, { batchSize: 100 }));
        expect(filtered).toHaveLength(1250);
        expect(filtered.every((d) => d.store_id === "s1")).toBe(true);
        expect(new Set(filtered.map((d) => d._id)).size).toBe(1250);
        expect(await drain(c.stream({ store_id: "nope" }))).toEqual([]);
      });
    });

    describe("bulkWrite", () => {
      it("runs every op, unordered, with one result per op and the bad one in the middle reported", async () => {
        const c = fresh();
        await c.createIndexes([{ name: "email_unique", keys: { store_id: 1, email_lower: 1 }, unique: true }]);
        await c.insertOne({ _id: "existing", store_id: "s1", email_lower: "taken@x.io", n: 0 });
        await c.insertOne({ _id: "doomed", store_id: "s1", email_lower: "doomed@x.io" });
        const results = await c.bulkWrite([
          { insertOne: { document: { _id: "a", store_id: "s1", email_lower: "a@x.io" } } },
          { insertOne: { document: { _id: "dup", store_id: "s1", email_lower: "taken@x.io" } } },
          { insertOne: { document: { _id: "c", store_id: "s1", email_lower: "c@x.io" } } },
          { updateOne: { filter: { _id: "existing" }, update: { $inc: { n: 1 } } } },
          { updateOne: { filter: { store_id: "s1", email_lower: "new@x.io" }, update: { $set: { name: "N" } }, upsert: true } },
          { deleteOne: { filter: { _id: "doomed" } } },
        ]);
        expect(results).toHaveLength(6);
        expect(results[0]).toMatchObject({ ok: true, inserted: true });
        expect(results[1]).toMatchObject({ ok: false, error: { code: "DUPLICATE_KEY", index: "email_unique" } });
        expect(results[2]).toMatchObject({ ok: true, inserted: true });
        expect(results[3]).toMatchObject({ ok: true, matched: 1, modified: 1 });
        expect(results[4].ok).toBe(true);
        expect(isUuid(results[4].upsertedId)).toBe(true);
        expect(results[5]).toMatchObject({ ok: true, deleted: 1 });
        expect((await c.find({}, { sort: { _id: 1 } })).map((d) => d._id).sort()).toEqual(["a", "c", "existing", results[4].upsertedId].sort());
        expect((await c.findOne({ _id: "existing" }))!.n).toBe(1);
      });
    });
  });
}
