/**
 * The storage contract on a real MongoDB server, where one runs: MONGO_URL, or a local mongod binary
 * for mongodb-memory-server (see mongo-env.ts; it is never asked to download one). Without a server the
 * contract suite is declared skipped — jest counts its tests as skipped, never as passing — and the
 * adapter's server-free parts are still checked here and in mongo-adapter.test.ts (the same contract
 * over a driver double): error mapping, the keyset filter (against mingo, which compares like MongoDB),
 * and failing fast with UNAVAILABLE when the server cannot be reached.
 */
import { closeAllMongoDatabases, duplicateIndexName, keysetFilter, openMongoDatabase, toStorageError } from "../mongo";
import { mingoPredicate } from "../query/update";
import { compareValues } from "../query/values";
import { StorageError } from "../port";
import { describeStorageContract } from "./contract";
import { SKIP_NOTE, describeIfMongo, mongoAvailable, mongoLabel, mongoServerUrl, stopMongo } from "./mongo-env";

if (!mongoAvailable) console.info(SKIP_NOTE);

afterAll(async () => {
  await closeAllMongoDatabases();
  await stopMongo();
});

describeIfMongo(`mongodb server (${mongoLabel})`, () => {
  describeStorageContract("mongodb", async () => openMongoDatabase(await mongoServerUrl(), `crm_contract_${process.pid}`, { log: () => undefined }));
});

describe("mongodb adapter without a server", () => {
  it("maps E11000 to DUPLICATE_KEY with the index name", () => {
    const message = 'E11000 duplicate key error collection: crm_profiles.profiles index: email_unique dup key: { store_id: "s", email_lower: "a@x.io" }';
    expect(toStorageError(Object.assign(new Error(message), { code: 11000 }))).toMatchObject({ code: "DUPLICATE_KEY", index: "email_unique" });
    expect(duplicateIndexName('E11000 duplicate key error collection: db.c index: _id_ dup key: { _id: "a" }')).toBe("_id_");
  });

  it("maps connection failures to UNAVAILABLE and refused queries to INVALID_QUERY", () => {
    const selection = Object.assign(new Error("Server selection timed out after 3000 ms"), { name: "MongoServerSelectionError" });
    expect(toStorageError(selection)).toMatchObject({ code: "UNAVAILABLE" });
    expect(toStorageError(Object.assign(new Error("not primary"), { code: 10107 }))).toMatchObject({ code: "UNAVAILABLE" });
    expect(toStorageError(Object.assign(new Error("Cannot apply $inc to a value of non-numeric type"), { code: 14 }))).toMatchObject({ code: "INVALID_QUERY" });
    expect(toStorageError(Object.assign(new Error("index conflict"), { code: 85 }))).toMatchObject({ code: "INVALID_QUERY" });
    const unexpected = new Error("something else");
    expect(toStorageError(unexpected)).toBe(unexpected);
  });

  it("pages with the keyset filter without skipping or repeating, nulls and ties included", () => {
    const docs = Array.from({ length: 40 }, (_, i) => ({ _id: `d${String((i * 7) % 40).padStart(2, "0")}`, rank: i % 6 === 0 ? null : i % 4 }));
    docs.push({ _id: "d40", rank: undefined as unknown as number }); // missing sorts as null
    for (const direction of [1, -1] as const) {
      const order = (a: (typeof docs)[number], b: (typeof docs)[number]) => (compareValues(a.rank, b.rank) || (a._id < b._id ? -1 : 1)) * direction;
      const expected = [...docs].sort(order).map((d) => d._id);
      const seen: string[] = [];
      let after: { value: unknown; id: string } | undefined;
      for (;;) {
        const test = after ? mingoPredicate(keysetFilter("rank", direction, after)) : () => true;
        const page = docs
          .filter((d) => test(d))
          .sort(order)
          .slice(0, 3);
        if (page.length === 0) break;
        seen.push(...page.map((d) => d._id));
        const last = page[page.length - 1];
        after = { value: last.rank ?? null, id: last._id };
      }
      expect(seen).toEqual(expected);
    }
    expect(keysetFilter("_id", -1, { value: "x", id: "x" })).toEqual({ _id: { $lt: "x" } });
  });

  it("fails with UNAVAILABLE when the server cannot be reached (after the ~3 s selection timeout)", async () => {
    const err = await openMongoDatabase("mongodb://127.0.0.1:9/?directConnection=true", "crm_unreachable").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StorageError);
    expect(err).toMatchObject({ code: "UNAVAILABLE" });
  }, 15_000);

  it("refuses an invalid MONGO_URL with UNAVAILABLE", async () => {
    await expect(openMongoDatabase("not-a-mongo-url", "crm_x")).rejects.toMatchObject({ code: "UNAVAILABLE" });
  });
});
