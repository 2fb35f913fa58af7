/**
 * The MongoDB storage adapter (official driver): production storage, one database per service, one
 * MongoClient per process and URL (opened lazily, closed with its last database handle). It behaves
 * like the embedded adapter, proven by the same contract suite whenever a server is available:
 *   - filters and updates pass the same port rules (query/rules.ts) before reaching the driver;
 *     operator-shaped values inside `$in`/`$nin` (data to the port, refused by the server) are sent
 *     as `$eq`/`$ne` clauses;
 *   - `_id` strings; upserts without an `_id` get a uuidv7 through `$setOnInsert`;
 *   - duplicate keys (11000) -> StorageError("DUPLICATE_KEY", msg, indexName); connection trouble ->
 *     "UNAVAILABLE"; malformed queries the server refuses -> "INVALID_QUERY";
 *   - an upsert that loses a race on a unique index is retried once (it then matches the winner);
 *   - findPage is a keyset query `{ $or: [{ f: { $gt: v } }, { f: v, _id: { $gt: id } }, ...] }`
 *     (mirrored for descending) that also takes the other BSON types and null/missing in MongoDB's
 *     cross-type sort order, since `$gt`/`$lt` compare within one type only;
 *   - bulkWrite runs in op order, like the embedded adapter: consecutive inserts as one unordered
 *     insertMany, each update/delete alone, so every result carries its own exact counts.
 * Needs MongoDB >= 5.0 for an update whose every field is undefined (sent as an empty `$set`), and a
 * server that takes `$or`/`$in` in partial index filters when a spec uses them.
 */
import { MongoClient, type Collection as MongoCollection, type Db, type Document, type Filter as MongoFilter, type Sort as MongoSort } from "mongodb";
import type { BulkItemResult, BulkOp, Collection, Database, Doc, Filter, FindOneAndUpdateOptions, FindOptions, IndexSpec, Page, PageRequest, SortDirection, StreamOptions, Update, UpdateOptions, UpdateResult } from "./port";
import { StorageError } from "./port";
import { uuidv7 } from "../ids";
import { invalidQuery, isOperatorObject, normalizeUpdate, upsertSeed, validateFilter, validatePartialFilter } from "./query/rules";
import { isPlainObject } from "./query/values";

const MAX_FIND_LIMIT = 1000;
const SERVER_SELECTION_TIMEOUT_MS = 3000;
const COLLECTION_NAME_RE = /^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,119}$/;

const UNAVAILABLE_ERRORS = new Set([
  "MongoNetworkError",
  "MongoNetworkTimeoutError",
  "MongoServerSelectionError",
  "MongoTopologyClosedError",
  "MongoNotConnectedError",
  "MongoClientClosedError",
  "MongoPoolClearedError",
  "MongoServerClosedError",
  "MongoOperationTimeoutError",
  "MongoStalePrimaryError",
  "MongoSystemError",
  "MongoParseError",
]);
const INVALID_ERRORS = new Set(["MongoInvalidArgumentError", "BSONError"]);
// HostUnreachable, HostNotFound, Unauthorized, AuthenticationFailed, WriteConcernTimeout, NetworkTimeout,
// ShutdownInProgress, FailedToSatisfyReadPreference, ReadConcernMajorityNotAvailableYet, PrimarySteppedDown,
// ExceededTimeLimit, SocketException, NotWritablePrimary, InterruptedAtShutdown, InterruptedDueToReplStateChange,
// NotPrimaryNoSecondaryOk, NotPrimaryOrSecondary.
const UNAVAILABLE_CODES = new Set([6, 7, 13, 18, 64, 89, 91, 133, 134, 189, 262, 9001, 10107, 11600, 11602, 13435, 13436]);
// BadValue, FailedToParse, TypeMismatch, PathNotViable, ConflictingUpdateOperators, DollarPrefixedFieldName,
// InvalidDBRef, EmptyFieldName, DottedFieldName, ImmutableField, CannotCreateIndex, IndexAlreadyExists,
// InvalidOptions, InvalidNamespace, IndexOptionsConflict, IndexKeySpecsConflict, DocumentValidationFailure,
// InvalidIndexSpecificationOption, BSONObjectTooLarge, KeyTooLong, invalid regex.
const INVALID_CODES = new Set([2, 9, 14, 28, 40, 52, 55, 56, 57, 66, 67, 68, 72, 73, 85, 86, 121, 197, 10334, 17280, 51091]);

interface ErrorShape {
  name?: string;
  code?: unknown;
  message?: string;
  errmsg?: string;
  writeErrors?: unknown;
  errorResponse?: unknown;
  hasErrorLabel?: (label: string) => boolean;
}

/** A driver error as the port's StorageError (unexpected errors pass through unchanged). */
export function toStorageError(err: unknown): unknown {
  if (err instanceof StorageError) return err;
  const e = err as ErrorShape | undefined;
  if (!e || typeof e !== "object") return err;
  // The driver wraps a failure that is not a document's own (network, selection) in a MongoBulkWriteError
  // with no write errors; the wrapped error is what it is about.
  if (e.name === "MongoBulkWriteError" && writeErrorsOf(e).length === 0 && e.errorResponse instanceof Error) {
    return toStorageError(e.errorResponse);
  }
  const message = e.message ?? e.errmsg ?? "MongoDB error";
  if (e.code === 11000 || e.code === 11001) return new StorageError("DUPLICATE_KEY", message, duplicateIndexName(message));
  const code = typeof e.code === "number" ? e.code : undefined;
  if (UNAVAILABLE_ERRORS.has(e.name ?? "") || (code !== undefined && UNAVAILABLE_CODES.has(code)) || e.hasErrorLabel?.("RetryableWriteError")) {
    return new StorageError("UNAVAILABLE", `MongoDB is unavailable: ${message}`);
  }
  if (INVALID_ERRORS.has(e.name ?? "") || (code !== undefined && INVALID_CODES.has(code))) return new StorageError("INVALID_QUERY", message);
  return err;
}

/** The index named in an E11000 message: "... index: email_unique dup key: { ... }" (or "... collation: ..."). */
export function duplicateIndexName(message: string): string | undefined {
  return / index: (\S+) (?:dup key|collation)/.exec(message)?.[1];
}

function writeErrorsOf(e: ErrorShape): { index: number; code: number; errmsg?: string }[] {
  const list = Array.isArray(e.writeErrors) ? e.writeErrors : e.writeErrors ? [e.writeErrors] : [];
  return list as { index: number; code: number; errmsg?: string }[];
}

async function guard<R>(op: () => Promise<R>): Promise<R> {
  try {
    return await op();
  } catch (err) {
    throw toStorageError(err);
  }
}

/** `$type` aliases of MongoDB's cross-type sort order, after MinKey and null/missing (one entry per bracket). */
const TYPE_ORDER = [["number"], ["string", "symbol"], ["object"], ["array"], ["binData"], ["objectId"], ["bool"], ["date"], ["timestamp"], ["regex"], ["maxKey"]];

/** The position in TYPE_ORDER of a (non-null) value's BSON type. */
function typeBracket(v: unknown): number {
  if (typeof v === "number" || typeof v === "bigint") return 0;
  if (typeof v === "string") return 1;
  if (typeof v === "boolean") return 6;
  if (Array.isArray(v)) return 3;
  if (v instanceof Date) return 7;
  if (v instanceof RegExp) return 9;
  if (v instanceof Uint8Array) return 4;
  switch ((v as { _bsontype?: string })._bsontype) {
    case "Int32":
    case "Long":
    case "Double":
    case "Decimal128":
      return 0;
    case "Binary":
      return 4;
    case "ObjectId":
      return 5;
    case "Timestamp":
      return 8;
    case "BSONRegExp":
      return 9;
    case "MaxKey":
      return 10;
    default:
      return 2;
  }
}

/** The keyset condition "strictly after (value, id)" in the order `field` then `_id`, both `direction`. */
export function keysetFilter(field: string, direction: SortDirection, after: { value: unknown; id: string }): Filter {
  const idAfter = { _id: direction === 1 ? { $gt: after.id } : { $lt: after.id } };
  if (field === "_id") return idAfter;
  const value = after.value === undefined ? null : after.value;
  // MongoDB sorts null/missing before every other type.
  if (value === null) {
    return direction === 1 ? { $or: [{ [field]: { $ne: null } }, { [field]: null, ...idAfter }] } : { [field]: null, ...idAfter };
  }
  // `$gt`/`$lt` compare within the value's own type; the other types sort wholly before or after it.
  const bracket = typeBracket(value);
  const others = (direction === 1 ? TYPE_ORDER.slice(bracket + 1) : TYPE_ORDER.slice(0, bracket)).flat();
  const clauses: Filter[] = [{ [field]: direction === 1 ? { $gt: value } : { $lt: value } }, { [field]: { $eq: value }, ...idAfter }];
  if (others.length > 0) clauses.push({ [field]: { $type: others } });
  if (direction === -1) clauses.push({ [field]: null });
  return { $or: clauses };
}

/**
 * A (validated) filter as the server takes it: MongoDB refuses an operator-shaped value inside `$in` /
 * `$nin` ("cannot nest $ under $in") where the port treats it as data, so such a value becomes an
 * `$eq` (or `$ne`) clause of its own. Returns the filter itself when nothing needs it.
 */
export function portableFilter(filter: Filter): Filter {
  let changed = false;
  const out: Filter = {};
  const and: Filter[] = [];
  for (const key of Object.keys(filter)) {
    const value = filter[key];
    if (key === "$and" || key === "$or") {
      const subs = value as Filter[];
      const mapped = subs.map(portableFilter);
      if (mapped.some((m, i) => m !== subs[i])) changed = true;
      out[key] = mapped;
      continue;
    }
    const rewritten = isOperatorObject(value) ? portableCondition(key, value) : undefined;
    if (!rewritten) {
      out[key] = value;
      continue;
    }
    changed = true;
    if (Object.keys(rewritten.rest).length > 0) out[key] = rewritten.rest;
    and.push(...rewritten.and);
  }
  if (!changed) return filter;
  if (and.length > 0) out.$and = [...((out.$and as Filter[] | undefined) ?? []), ...and];
  return out;
}

function portableCondition(path: string, condition: Record<string, unknown>): { rest: Record<string, unknown>; and: Filter[] } | undefined {
  let rest = condition;
  const and: Filter[] = [];
  for (const op of ["$in", "$nin"] as const) {
    const list = condition[op];
    if (!Array.isArray(list) || !list.some(isOperatorObject)) continue;
    const plain = list.filter((v) => !isOperatorObject(v));
    const literal = list.filter(isOperatorObject);
    rest = { ...rest };
    delete rest[op];
    if (op === "$in") and.push({ $or: [...(plain.length > 0 ? [{ [path]: { $in: plain } }] : []), ...literal.map((v) => ({ [path]: { $eq: v } }))] });
    else and.push(...(plain.length > 0 ? [{ [path]: { $nin: plain } }] : []), ...literal.map((v) => ({ [path]: { $ne: v } })));
  }
  // `$elemMatch` over documents holds a whole filter (over scalars it holds operators, left as they are).
  const inner = condition.$elemMatch;
  if (isPlainObject(inner) && Object.keys(inner).some((k) => !k.startsWith("$") || k === "$and" || k === "$or")) {
    const mapped = portableFilter(inner);
    if (mapped !== inner) rest = { ...rest, $elemMatch: mapped };
  }
  return rest === condition ? undefined : { rest, and };
}

/** Adds a uuidv7 `_id` to an upsert unless the filter or `$setOnInsert` sets one. */
function withUpsertId(filter: Filter, update: Update): Update {
  if (upsertSeed(filter)._id !== undefined || update.$setOnInsert?._id !== undefined) return update;
  return { ...update, $setOnInsert: { ...update.$setOnInsert, _id: uuidv7() } };
}

/** The update to send: checked by the port's rules, without operators that undefined fields left empty. */
export function mongoUpdate(filter: Filter, update: Update, upsert: boolean): Update {
  const normalized = normalizeUpdate(update);
  let u: Update = Object.fromEntries(Object.entries(normalized).filter(([, fields]) => Object.keys(fields as object).length > 0));
  if (upsert) u = withUpsertId(filter, u);
  // Nothing left at all: MongoDB >= 5.0 takes an empty operand as "change nothing", as the embedded adapter does.
  return Object.keys(u).length > 0 ? u : normalized;
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
  if (spec.partial !== undefined) validatePartialFilter(spec.partial, spec.name);
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
    created.connected = client.connect().then(
      () => undefined,
      (err: unknown) => {
        if (clients.get(url) === created) clients.delete(url);
        void client.close().catch(() => undefined);
        // Whatever stops the first connection (DNS, TLS, credentials) leaves the storage unavailable.
        const mapped = toStorageError(err) as Partial<StorageError> | undefined;
        throw mapped?.code === "UNAVAILABLE" ? mapped : new StorageError("UNAVAILABLE", `MongoDB is unavailable: ${(err as Error)?.message ?? String(err)}`);
      },
    );
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
  private live(): Db {
    if (this.closed) throw new StorageError("UNAVAILABLE", `database ${this.name} is closed`);
    return this.db;
  }

  collection<T extends Doc>(name: string): Collection<T> {
    if (typeof name !== "string" || !COLLECTION_NAME_RE.test(name)) throw invalidQuery(`invalid collection name "${name}"`);
    return mongoCollection<T>(name, () => this.live().collection(name));
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

/** The port's Collection over a driver collection (`driver` is asked for it on every operation). */
export function mongoCollection<T extends Doc>(name: string, driver: () => MongoCollection<Document>): Collection<T> {
  return new MongoCollectionAdapter<T>(name, driver);
}

class MongoCollectionAdapter<T extends Doc> implements Collection<T> {
  constructor(
    readonly name: string,
    private readonly driver: () => MongoCollection<Document>,
  ) {}

  private filter(filter: Filter): MongoFilter<Document> {
    validateFilter(filter);
    return portableFilter(filter) as MongoFilter<Document>;
  }

  async createIndexes(specs: IndexSpec[]): Promise<void> {
    if (specs.length === 0) return;
    specs.forEach(checkIndexSpec);
    const coll = this.driver();
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
    const coll = this.driver();
    await guard(() => coll.insertOne({ ...doc } as Document));
  }

  async findOne(filter: Filter): Promise<T | null> {
    const f = this.filter(filter);
    const coll = this.driver();
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
    const coll = this.driver();
    return (await guard(() => coll.find(f, { ...(sort ? { sort } : {}), limit }).toArray())) as unknown as T[];
  }

  async findPage(request: PageRequest): Promise<Page<T>> {
    const limit = checkLimit(request.limit, "limit");
    const { field, direction } = request.sort ?? ({} as PageRequest["sort"]);
    if (typeof field !== "string" || (direction !== 1 && direction !== -1)) throw invalidQuery("findPage needs sort { field, direction }");
    if (request.after !== undefined && typeof request.after?.id !== "string") throw invalidQuery("after.id must be a string");
    const base = this.filter(request.filter) as Filter;
    const filter = request.after ? { $and: [base, keysetFilter(field, direction, request.after)] } : base;
    const sort: MongoSort = field === "_id" ? { _id: direction } : { [field]: direction, _id: direction };
    const coll = this.driver();
    const docs = (await guard(() => coll.find(filter as MongoFilter<Document>, { sort, limit: limit + 1 }).toArray())) as unknown as T[];
    const hasMore = docs.length > limit;
    if (hasMore) docs.length = limit;
    return { items: docs, hasMore };
  }

  async *stream(filter: Filter, options: StreamOptions = {}): AsyncIterable<T> {
    const base = this.filter(filter) as Filter;
    const batchSize = options.batchSize === undefined ? 500 : checkLimit(options.batchSize, "batchSize");
    let after: string | undefined;
    for (;;) {
      const page = after === undefined ? base : { $and: [base, { _id: { $gt: after } }] };
      const coll = this.driver();
      const batch = (await guard(() => coll.find(page as MongoFilter<Document>, { sort: { _id: 1 }, limit: batchSize }).toArray())) as unknown as T[];
      for (const doc of batch) yield doc;
      if (batch.length < batchSize) return;
      after = batch[batch.length - 1]._id;
    }
  }

  async count(filter: Filter): Promise<number> {
    const f = this.filter(filter);
    const coll = this.driver();
    return guard(() => coll.countDocuments(f));
  }

  async updateOne(filter: Filter, update: Update, options: UpdateOptions = {}): Promise<UpdateResult> {
    const f = this.filter(filter);
    const upsert = options.upsert === true;
    const u = mongoUpdate(filter, update, upsert);
    const run = async (): Promise<UpdateResult> => {
      const coll = this.driver();
      const r = await guard(() => coll.updateOne(f, u as Document, { upsert }));
      return { matched: r.matchedCount, modified: r.modifiedCount, ...(r.upsertedId != null ? { upsertedId: String(r.upsertedId) } : {}) };
    };
    return upsert ? retryUpsertRace(run) : run();
  }

  async updateMany(filter: Filter, update: Update): Promise<UpdateResult> {
    const f = this.filter(filter);
    const u = mongoUpdate(filter, update, false);
    const coll = this.driver();
    const r = await guard(() => coll.updateMany(f, u as Document));
    return { matched: r.matchedCount, modified: r.modifiedCount };
  }

  async findOneAndUpdate(filter: Filter, update: Update, options: FindOneAndUpdateOptions = {}): Promise<T | null> {
    const f = this.filter(filter);
    const upsert = options.upsert === true;
    const u = mongoUpdate(filter, update, upsert);
    const returnDocument = options.returnDocument === "before" ? "before" : "after";
    const run = async (): Promise<T | null> => {
      const coll = this.driver();
      // Driver >= 6 resolves to the document itself (no `includeResultMetadata`).
      const doc = await guard(() => coll.findOneAndUpdate(f, u as Document, { upsert, returnDocument }));
      return doc as T | null;
    };
    return upsert ? retryUpsertRace(run) : run();
  }

  async deleteOne(filter: Filter): Promise<number> {
    const f = this.filter(filter);
    const coll = this.driver();
    return (await guard(() => coll.deleteOne(f))).deletedCount;
  }

  async deleteMany(filter: Filter): Promise<number> {
    const f = this.filter(filter);
    const coll = this.driver();
    return (await guard(() => coll.deleteMany(f))).deletedCount;
  }

  async bulkWrite(ops: BulkOp<T>[]): Promise<BulkItemResult[]> {
    if (!Array.isArray(ops)) throw invalidQuery("bulkWrite takes an array of operations");
    const results: BulkItemResult[] = new Array(ops.length);
    // A server batch reports only totals (and regroups an unordered batch by kind), so only runs of
    // inserts, whose result is "inserted or its own write error", share a round trip.
    let inserts: { i: number; doc: Document }[] = [];
    const flush = async () => {
      if (inserts.length > 0) await this.insertBatch(inserts, results);
      inserts = [];
    };
    for (let i = 0; i < ops.length; i++) {
      const op = ops[i];
      if (op && typeof op === "object" && "insertOne" in op) {
        try {
          checkDoc(op.insertOne?.document);
          inserts.push({ i, doc: { ...op.insertOne.document } });
        } catch (err) {
          results[i] = failure(err);
        }
        continue;
      }
      await flush();
      results[i] = await this.bulkItem(op).catch((err: unknown) => failure(itemError(err)));
    }
    await flush();
    return results;
  }

  private async bulkItem(op: BulkOp<T>): Promise<BulkItemResult> {
    if (op && typeof op === "object" && "updateOne" in op) {
      const { filter, update, upsert } = op.updateOne;
      return { ok: true, ...(await this.updateOne(filter, update, { upsert: upsert === true })) };
    }
    if (op && typeof op === "object" && "deleteOne" in op) return { ok: true, deleted: await this.deleteOne(op.deleteOne.filter) };
    throw invalidQuery("unknown bulk operation");
  }

  /** Inserts documents in one unordered round trip; each result is "inserted" or its own write error. */
  private async insertBatch(batch: { i: number; doc: Document }[], results: BulkItemResult[]): Promise<void> {
    const coll = this.driver();
    let failed = new Map<number, { code: number; errmsg?: string }>();
    try {
      await coll.insertMany(batch.map((b) => b.doc), { ordered: false });
    } catch (err) {
      const writeErrors = (err as ErrorShape)?.name === "MongoBulkWriteError" ? writeErrorsOf(err as ErrorShape) : [];
      // No per-document errors: the batch as a whole failed (network, write concern).
      if (writeErrors.length === 0) throw toStorageError(err);
      failed = new Map(writeErrors.map((w) => [w.index, w]));
    }
    batch.forEach((b, j) => {
      const w = failed.get(j);
      results[b.i] = w ? failure(itemError(Object.assign(new Error(w.errmsg ?? `write error ${w.code}`), { code: w.code }))) : { ok: true, inserted: true };
    });
  }
}

/** An op the server refused: its StorageError, or INVALID_QUERY for a server code the maps above do not know. */
function itemError(err: unknown): unknown {
  const mapped = toStorageError(err);
  if (mapped instanceof StorageError || typeof (err as ErrorShape)?.code !== "number") return mapped;
  return new StorageError("INVALID_QUERY", (err as ErrorShape).message ?? `write error ${(err as ErrorShape).code}`);
}

/** A bulk item's failure; UNAVAILABLE and unexpected errors abort the whole bulkWrite instead. */
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
