/**
 * The MongoDB storage adapter (official driver): production storage, one database per service, one
 * MongoClient per process and URL (opened lazily, closed with its last database handle). It behaves
 * like the embedded adapter, proven by the same contract suite whenever a server is available:
 *   - filters and updates pass the same port rules (embedded/rules.ts) before reaching the driver;
 *   - `_id` strings; upserts without an `_id` get a uuidv7 through `$setOnInsert`;
 *   - duplicate keys (11000) -> StorageError("DUPLICATE_KEY", msg, indexName); connection trouble ->
 *     "UNAVAILABLE"; malformed queries the server refuses -> "INVALID_QUERY";
 *   - an upsert that loses a race on a unique index is retried once (it then matches the winner);
 *   - findPage is a keyset query `{ $or: [{ f: { $gt: v } }, { f: v, _id: { $gt: id } }] }` (mirrored
 *     for descending), with null/missing values placed first as MongoDB sorts them;
 *   - bulkWrite is unordered; per-op matched/modified/deleted come from the batch totals, so they are
 *     exact whenever the totals determine them (all or none of a kind) and left out otherwise.
 */
import { MongoClient, type AnyBulkWriteOperation, type Collection as MongoCollection, type Db, type Document, type Filter as MongoFilter, type Sort as MongoSort } from "mongodb";
import type { BulkItemResult, BulkOp, Collection, Database, Doc, Filter, FindOneAndUpdateOptions, FindOptions, IndexSpec, Page, PageRequest, SortDirection, StreamOptions, Update, UpdateOptions, UpdateResult } from "./port";
import { StorageError } from "./port";
import { uuidv7 } from "../ids";
import { invalidQuery, normalizeUpdate, upsertSeed, validateFilter } from "./embedded/rules";
import { isPlainObject } from "./embedded/values";

const MAX_FIND_LIMIT = 1000;
const SERVER_SELECTION_TIMEOUT_MS = 3000;

const UNAVAILABLE_ERRORS = new Set([
  "MongoNetworkError",
  "MongoNetworkTimeoutError",
  "MongoServerSelectionError",
  "MongoTopologyClosedError",
  "MongoNotConnectedError",
  "MongoClientClosedError",
  "MongoPoolClearedError",
  "MongoServerClosedError",
  "MongoSystemError",
  "MongoParseError",
]);
// HostUnreachable, HostNotFound, Unauthorized, AuthenticationFailed, NetworkTimeout, ShutdownInProgress,
// PrimarySteppedDown, SocketException, NotWritablePrimary, InterruptedAtShutdown, NotPrimaryNoSecondaryOk...
const UNAVAILABLE_CODES = new Set([6, 7, 13, 18, 89, 91, 189, 262, 9001, 10107, 11600, 11602, 13435, 13436]);
// BadValue, FailedToParse, TypeMismatch, PathNotViable, ConflictingUpdateOperators, DollarPrefixedFieldName,
// EmptyFieldName, DottedFieldName, ImmutableField, CannotCreateIndex, IndexOptionsConflict,
// IndexKeySpecsConflict, InvalidIndexSpecificationOption, BSONObjectTooLarge, invalid regex...
const INVALID_CODES = new Set([2, 9, 14, 17, 28, 40, 52, 55, 56, 57, 66, 67, 85, 86, 197, 10334, 16755, 17280, 51091]);

/** A driver error as the port's StorageError (unexpected errors pass through unchanged). */
export function toStorageError(err: unknown): unknown {
  if (err instanceof StorageError) return err;
  const e = err as { name?: string; code?: unknown; message?: string; errmsg?: string } | undefined;
  if (!e || typeof e !== "object") return err;
  const message = e.message ?? e.errmsg ?? "MongoDB error";
  if (e.code === 11000 || e.code === 11001) return new StorageError("DUPLICATE_KEY", message, duplicateIndexName(message));
  if (UNAVAILABLE_ERRORS.has(e.name ?? "") || (typeof e.code === "number" && UNAVAILABLE_CODES.has(e.code))) {
    return new StorageError("UNAVAILABLE", `MongoDB is unavailable: ${message}`);
  }
  if (typeof e.code === "number" && INVALID_CODES.has(e.code)) return new StorageError("INVALID_QUERY", message);
  return err;
}

/** The index named in an E11000 message: "... index: email_unique dup key: { ... }". */
export function duplicateIndexName(message: string): string | undefined {
  return /index: (\S+) dup key/.exec(message)?.[1];
}

async function guard<R>(op: () => Promise<R>): Promise<R> {
  try {
    return await op();
  } catch (err) {
    throw toStorageError(err);
  }
}

/** The keyset condition "strictly after (value, id)" in the order `field` then `_id`, both `direction`. */
export function keysetFilter(field: string, direction: SortDirection, after: { value: unknown; id: string }): Filter {
  const idAfter = { _id: direction === 1 ? { $gt: after.id } : { $lt: after.id } };
  if (field === "_id") return idAfter;
  const value = after.value === undefined ? null : after.value;
  // MongoDB sorts null/missing before every other type, and `$gt`/`$lt` compare within one type only.
  if (value === null) {
    return direction === 1 ? { $or: [{ [field]: { $ne: null } }, { [field]: null, ...idAfter }] } : { [field]: null, ...idAfter };
  }
  const beyond = { [field]: direction === 1 ? { $gt: value } : { $lt: value } };
  const tie = { [field]: { $eq: value }, ...idAfter };
  return direction === 1 ? { $or: [beyond, tie] } : { $or: [beyond, tie, { [field]: null }] };
}

/** Adds a uuidv7 `_id` to an upsert unless the filter or `$setOnInsert` sets one. */
function withUpsertId(filter: Filter, update: Update): Update {
  if (upsertSeed(filter)._id !== undefined || update.$setOnInsert?._id !== undefined) return update;
  return { ...update, $setOnInsert: { ...update.$setOnInsert, _id: uuidv7() } };
}

function checkDoc(doc: unknown): asserts doc is Doc {
  if (!isPlainObject(doc)) throw invalidQuery("a document must be a plain object");
  if (typeof doc._id !== "string" || doc._id.length === 0) throw invalidQuery("a document needs a string _id");
}

function checkLimit(limit: unknown, what: string): number {
  if (typeof limit !== "number" || !Number.isInteger(limit) || limit < 1) throw invalidQuery(`${what} must be a positive integer`);
  return Math.min(limit, MAX_FIND_LIMIT);
}

function checkIndexSpec(spec: IndexSpec): void {
  if (!spec || typeof spec.name !== "string" || spec.name.length === 0) throw invalidQuery("an index needs a name");
  const fields = Object.keys(spec.keys ?? {});
  if (fields.length === 0 || fields.some((f) => spec.keys[f] !== 1 && spec.keys[f] !== -1)) throw invalidQuery(`index ${spec.name}: keys must map fields to 1 or -1`);
  if (spec.partial !== undefined) validateFilter(spec.partial, true);
}

// ------------------------------------------------------------------ clients

interface ClientEntry {
  client: MongoClient;
  connected: Promise<void>;
  handles: number;
}

const clients = new Map<string, ClientEntry>();

/** Opens database `dbName` on the process's shared client for `url`; UNAVAILABLE when unreachable. */
export async function openMongoDatabase(url: string, dbName: string): Promise<Database> {
  let entry = clients.get(url);
  if (!entry) {
    let client: MongoClient;
    try {
      client = new MongoClient(url, { serverSelectionTimeoutMS: SERVER_SELECTION_TIMEOUT_MS, ignoreUndefined: true, appName: "store-crm" });
    } catch (err) {
      throw new StorageError("UNAVAILABLE", `invalid MONGO_URL: ${(err as Error).message}`);
    }
    const created: ClientEntry = { client, handles: 0, connected: Promise.resolve() };
    created.connected = guard(async () => {
      await client.connect();
    }).catch((err) => {
      if (clients.get(url) === created) clients.delete(url);
      void client.close().catch(() => undefined);
      throw err;
    });
    clients.set(url, created);
    entry = created;
  }
  entry.handles++;
  try {
    await entry.connected;
  } catch (err) {
    entry.handles--;
    throw err;
  }
  return new MongoDatabase(dbName, entry, url);
}

/** Closes every MongoDB client of this process (tests, shutdown). */
export async function closeAllMongoDatabases(): Promise<void> {
  const all = [...clients.values()];
  clients.clear();
  await Promise.allSettled(all.map((e) => e.client.close()));
}

class MongoDatabase implements Database {
  private closed = false;
  private readonly db: Db;

  constructor(
    readonly name: string,
    private readonly entry: ClientEntry,
    private readonly url: string,
  ) {
    this.db = entry.client.db(name);
  }

  /** The driver database; throws UNAVAILABLE once this handle is closed. */
  live(): Db {
    if (this.closed) throw new StorageError("UNAVAILABLE", `database ${this.name} is closed`);
    return this.db;
  }

  collection<T extends Doc>(name: string): Collection<T> {
    return new MongoCollectionAdapter<T>(name, this);
  }

  async ping(): Promise<void> {
    const db = this.live();
    await guard(() => db.command({ ping: 1 }));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (--this.entry.handles <= 0 && clients.get(this.url) === this.entry) {
      clients.delete(this.url);
      await this.entry.client.close();
    }
  }

  async drop(): Promise<void> {
    const db = this.live();
    await guard(() => db.dropDatabase());
  }
}

class MongoCollectionAdapter<T extends Doc> implements Collection<T> {
  constructor(
    readonly name: string,
    private readonly database: MongoDatabase,
  ) {}

  private get coll(): MongoCollection<Document> {
    return this.database.live().collection(this.name);
  }

  private filter(filter: Filter): MongoFilter<Document> {
    validateFilter(filter);
    return filter as MongoFilter<Document>;
  }

  async createIndexes(specs: IndexSpec[]): Promise<void> {
    if (specs.length === 0) return;
    specs.forEach(checkIndexSpec);
    const coll = this.coll;
    await guard(() =>
      coll.createIndexes(
        specs.map((s) => ({
          name: s.name,
          key: s.keys,
          ...(s.unique ? { unique: true } : {}),
          ...(s.partial ? { partialFilterExpression: s.partial } : {}),
        })),
      ),
    );
  }

  async insertOne(doc: T): Promise<void> {
    checkDoc(doc);
    const coll = this.coll;
    await guard(() => coll.insertOne({ ...doc } as Document));
  }

  async findOne(filter: Filter): Promise<T | null> {
    const f = this.filter(filter);
    const coll = this.coll;
    return (await guard(() => coll.findOne(f))) as T | null;
  }

  async find(filter: Filter, options: FindOptions = {}): Promise<T[]> {
    const f = this.filter(filter);
    const limit = options.limit === undefined || options.limit === 0 ? MAX_FIND_LIMIT : checkLimit(options.limit, "limit");
    let sort: MongoSort | undefined;
    if (options.sort && Object.keys(options.sort).length > 0) {
      const entries = Object.entries(options.sort);
      if (entries.some(([, d]) => d !== 1 && d !== -1)) throw invalidQuery("sort directions are 1 or -1");
      const s: Record<string, SortDirection> = Object.fromEntries(entries);
      // The same `_id` tiebreak as the embedded adapter, so ties come back in one order everywhere.
      if (!("_id" in s)) s._id = entries[entries.length - 1][1];
      sort = s;
    }
    const coll = this.coll;
    return (await guard(() => coll.find(f, { ...(sort ? { sort } : {}), limit }).toArray())) as unknown as T[];
  }

  async findPage(request: PageRequest): Promise<Page<T>> {
    const limit = checkLimit(request.limit, "limit");
    const { field, direction } = request.sort ?? ({} as PageRequest["sort"]);
    if (typeof field !== "string" || (direction !== 1 && direction !== -1)) throw invalidQuery("findPage needs sort { field, direction }");
    if (request.after !== undefined && typeof request.after?.id !== "string") throw invalidQuery("after.id must be a string");
    validateFilter(request.filter);
    const filter = request.after ? { $and: [request.filter, keysetFilter(field, direction, request.after)] } : request.filter;
    const sort: MongoSort = field === "_id" ? { _id: direction } : { [field]: direction, _id: direction };
    const coll = this.coll;
    const docs = (await guard(() => coll.find(filter as MongoFilter<Document>, { sort, limit: limit + 1 }).toArray())) as unknown as T[];
    const hasMore = docs.length > limit;
    if (hasMore) docs.length = limit;
    return { items: docs, hasMore };
  }

  async *stream(filter: Filter, options: StreamOptions = {}): AsyncIterable<T> {
    validateFilter(filter);
    const batchSize = options.batchSize === undefined ? 500 : checkLimit(options.batchSize, "batchSize");
    let after: string | undefined;
    for (;;) {
      const page = after === undefined ? filter : { $and: [filter, { _id: { $gt: after } }] };
      const coll = this.coll;
      const batch = (await guard(() => coll.find(page as MongoFilter<Document>, { sort: { _id: 1 }, limit: batchSize }).toArray())) as unknown as T[];
      for (const doc of batch) yield doc;
      if (batch.length < batchSize) return;
      after = batch[batch.length - 1]._id;
    }
  }

  async count(filter: Filter): Promise<number> {
    const f = this.filter(filter);
    const coll = this.coll;
    return guard(() => coll.countDocuments(f));
  }

  async updateOne(filter: Filter, update: Update, options: UpdateOptions = {}): Promise<UpdateResult> {
    const f = this.filter(filter);
    const upsert = options.upsert === true;
    const u = upsert ? withUpsertId(filter, normalizeUpdate(update)) : normalizeUpdate(update);
    const run = async (): Promise<UpdateResult> => {
      const coll = this.coll;
      const r = await guard(() => coll.updateOne(f, u as Document, { upsert }));
      return { matched: r.matchedCount, modified: r.modifiedCount, ...(r.upsertedId != null ? { upsertedId: String(r.upsertedId) } : {}) };
    };
    return upsert ? retryUpsertRace(run) : run();
  }

  async updateMany(filter: Filter, update: Update): Promise<UpdateResult> {
    const f = this.filter(filter);
    const u = normalizeUpdate(update);
    const coll = this.coll;
    const r = await guard(() => coll.updateMany(f, u as Document));
    return { matched: r.matchedCount, modified: r.modifiedCount };
  }

  async findOneAndUpdate(filter: Filter, update: Update, options: FindOneAndUpdateOptions = {}): Promise<T | null> {
    const f = this.filter(filter);
    const upsert = options.upsert === true;
    const u = upsert ? withUpsertId(filter, normalizeUpdate(update)) : normalizeUpdate(update);
    const run = async (): Promise<T | null> => {
      const coll = this.coll;
      const doc = await guard(() => coll.findOneAndUpdate(f, u as Document, { upsert, returnDocument: options.returnDocument ?? "after" }));
      return doc as T | null;
    };
    return upsert ? retryUpsertRace(run) : run();
  }

  async deleteOne(filter: Filter): Promise<number> {
    const f = this.filter(filter);
    const coll = this.coll;
    return (await guard(() => coll.deleteOne(f))).deletedCount;
  }

  async deleteMany(filter: Filter): Promise<number> {
    const f = this.filter(filter);
    const coll = this.coll;
    return (await guard(() => coll.deleteMany(f))).deletedCount;
  }

  async bulkWrite(ops: BulkOp<T>[]): Promise<BulkItemResult[]> {
    if (!Array.isArray(ops)) throw invalidQuery("bulkWrite takes an array of operations");
    const results: (BulkItemResult | undefined)[] = new Array(ops.length);
    const models: AnyBulkWriteOperation<Document>[] = [];
    const origin: number[] = [];
    const kinds: ("insert" | "update" | "upsert" | "delete")[] = [];
    ops.forEach((op, i) => {
      try {
        if (op && "insertOne" in op) {
          checkDoc(op.insertOne.document);
          models.push({ insertOne: { document: { ...op.insertOne.document } as Document } });
          kinds.push("insert");
        } else if (op && "updateOne" in op) {
          const { filter, update, upsert } = op.updateOne;
          validateFilter(filter);
          const u = upsert ? withUpsertId(filter, normalizeUpdate(update)) : normalizeUpdate(update);
          models.push({ updateOne: { filter: filter as MongoFilter<Document>, update: u as Document, upsert: upsert === true } });
          kinds.push(upsert ? "upsert" : "update");
        } else if (op && "deleteOne" in op) {
          validateFilter(op.deleteOne.filter);
          models.push({ deleteOne: { filter: op.deleteOne.filter as MongoFilter<Document> } });
          kinds.push("delete");
        } else {
          throw invalidQuery("unknown bulk operation");
        }
        origin.push(i);
      } catch (err) {
        results[i] = failure(err);
      }
    });
    if (models.length === 0) return results as BulkItemResult[];

    let totals: { matchedCount: number; modifiedCount: number; deletedCount: number; upsertedIds: Record<number, unknown> };
    let writeErrors: { index: number; code: number; errmsg?: string }[] = [];
    const coll = this.coll;
    try {
      totals = await coll.bulkWrite(models, { ordered: false });
    } catch (err) {
      const e = err as { name?: string; result?: typeof totals; writeErrors?: typeof writeErrors | (typeof writeErrors)[number] };
      if (e?.name !== "MongoBulkWriteError" || !e.result) throw toStorageError(err);
      totals = e.result;
      writeErrors = Array.isArray(e.writeErrors) ? e.writeErrors : e.writeErrors ? [e.writeErrors] : [];
    }

    const failed = new Map(writeErrors.map((w) => [w.index, w]));
    const retries: Promise<void>[] = [];
    const count = { update: 0, matchedUpserts: 0, delete: 0 };
    models.forEach((_, j) => {
      if (failed.has(j)) return;
      if (kinds[j] === "update") count.update++;
      if (kinds[j] === "upsert" && totals.upsertedIds[j] === undefined) count.matchedUpserts++;
      if (kinds[j] === "delete") count.delete++;
    });
    const plainMatched = totals.matchedCount - count.matchedUpserts;
    const allOrNone = (total: number, of: number): number | undefined => (total === 0 ? 0 : total === of ? 1 : undefined);
    const plainEach = allOrNone(plainMatched, count.update);
    const matchedTotal = totals.matchedCount;
    const modifiedEach = allOrNone(totals.modifiedCount, matchedTotal);
    const deletedEach = allOrNone(totals.deletedCount, count.delete);

    models.forEach((model, j) => {
      const i = origin[j];
      const error = failed.get(j);
      if (error) {
        const mapped = toStorageError(Object.assign(new Error(error.errmsg ?? `write error ${error.code}`), { code: error.code }));
        // An upsert that lost a race on a unique index is retried alone: it now matches the winner.
        if (kinds[j] === "upsert" && (mapped as StorageError).code === "DUPLICATE_KEY" && "updateOne" in model) {
          const { filter, update } = model.updateOne;
          retries.push(
            this.updateOne(filter as Filter, update as Update, { upsert: true }).then(
              (r) => void (results[i] = { ok: true, ...r }),
              (err) => void (results[i] = failure(err)),
            ),
          );
          return;
        }
        results[i] = failure(mapped);
        return;
      }
      switch (kinds[j]) {
        case "insert":
          results[i] = { ok: true, inserted: true };
          break;
        case "delete":
          results[i] = { ok: true, ...(deletedEach !== undefined ? { deleted: deletedEach } : {}) };
          break;
        case "upsert":
          if (totals.upsertedIds[j] !== undefined) {
            results[i] = { ok: true, matched: 0, modified: 0, upsertedId: String(totals.upsertedIds[j]) };
            break;
          }
          results[i] = { ok: true, matched: 1, ...(modifiedEach !== undefined ? { modified: modifiedEach } : {}) };
          break;
        case "update": {
          const matched = plainEach;
          const modified = matched === 0 ? 0 : matched === 1 ? modifiedEach : undefined;
          results[i] = { ok: true, ...(matched !== undefined ? { matched } : {}), ...(modified !== undefined ? { modified } : {}) };
          break;
        }
      }
    });
    await Promise.all(retries);
    return results as BulkItemResult[];
  }
}

function failure(err: unknown): BulkItemResult {
  const e = toStorageError(err) as StorageError;
  if (!(e instanceof StorageError) || e.code === "UNAVAILABLE") throw e;
  return { ok: false, error: { code: e.code, message: e.message, ...(e.index ? { index: e.index } : {}) } };
}

/** Runs an upsert; when it loses a race on a unique index (E11000), runs it once more. */
async function retryUpsertRace<R>(run: () => Promise<R>): Promise<R> {
  try {
    return await run();
  } catch (err) {
    if ((err as StorageError)?.code !== "DUPLICATE_KEY") throw err;
    return run();
  }
}
