/**
 * The MongoDB storage adapter (official driver): production storage, one database per service, one
 * MongoClient per process and URL (opened lazily, closed with its last database handle). It behaves
 * like the other adapters, proven by the same contract suite — over a real server only where one runs
 * (MONGO_URL, or a local mongod), otherwise over a driver double (__tests__/mongo-double.ts):
 *   - filters and updates pass the same port rules (query/rules.ts) before reaching the driver;
 *     operator-shaped values inside `$in`/`$nin` (data to the port, refused by the server) are sent
 *     as `$eq`/`$ne` clauses; a `$regex` holding U+0000 (the server refuses it) is INVALID_QUERY
 *     before it is sent;
 *   - `_id` strings; upserts without an `_id` get a uuidv7 through `$setOnInsert`;
 *   - duplicate keys (11000) -> StorageError("DUPLICATE_KEY", msg, indexName); connection trouble ->
 *     "UNAVAILABLE"; malformed queries the server refuses -> "INVALID_QUERY";
 *   - an upsert that loses a race on a unique index is retried once (it then matches the winner);
 *   - every non-unique index is created with `_id` as its last key (under the spec's name + "__id"),
 *     so a page sorted `{ field, _id }` walks it without an in-memory sort; an index of an older
 *     version (the spec's own name and keys, no `_id`) is replaced at start-up, and the log says so;
 *   - findPage is a keyset query `{ $or: [{ f: { $gt: v } }, { f: v, _id: { $gt: id } }, ...] }`
 *     (mirrored for descending) that also takes the other BSON types and null/missing in MongoDB's
 *     cross-type sort order, since `$gt`/`$lt` compare within one type only;
 *   - bulkWrite: on MongoDB >= 8 the whole batch is one unordered `bulkWrite` command (client-level,
 *     verbose results: the server reports every op's own counts); on older servers, whose bulk reply
 *     has only totals, see `bulkRounds` for what shares a round trip.
 * Needs MongoDB >= 5.0 for an update whose every field is undefined (sent as an empty `$set`), and a
 * server that takes `$or`/`$in` in partial index filters when a spec uses them.
 */
import {
  MongoClient,
  type AnyBulkWriteOperation,
  type AnyClientBulkWriteModel,
  type ClientBulkWriteOptions,
  type ClientBulkWriteResult,
  type Collection as MongoCollection,
  type Db,
  type Document,
  type Filter as MongoFilter,
  type Sort as MongoSort,
} from "mongodb";
import type {
  BulkItemResult,
  BulkOp,
  Collection,
  Database,
  Doc,
  Filter,
  FindOneAndUpdateOptions,
  FindOptions,
  IndexSpec,
  Page,
  PageRequest,
  SortDirection,
  StreamOptions,
  Update,
  UpdateOptions,
  UpdateResult,
} from "./port";
import { StorageError } from "./port";
import { uuidv7 } from "../ids";
import { checkIndexNames, invalidQuery, isOperatorObject, normalizeUpdate, upsertSeed, validateFilter, validatePartialFilter } from "./query/rules";
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
  // The client-level bulkWrite (MongoDB >= 8) wraps a command that failed as a whole the same way.
  if (e.name === "MongoClientBulkWriteError" && !(e.writeErrors instanceof Map && e.writeErrors.size > 0) && (e as { cause?: unknown }).cause instanceof Error) {
    return toStorageError((e as { cause?: unknown }).cause);
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
  for (const [path, condition] of Object.entries(normalized.$pull ?? {})) {
    if (isOperatorObject(condition)) checkConditionRegexes(path, condition);
    else if (isPlainObject(condition)) checkRegexes(condition);
  }
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

// ------------------------------------------------------------------ $regex the server refuses

/**
 * Throws INVALID_QUERY for a `$regex` MongoDB refuses: a pattern holding U+0000 (the server answers
 * BadValue, "Regular expression cannot contain an embedded null byte"; mingo and SQLite take it). Search
 * text reaches `$regex` through escapeRegex, which leaves U+0000 as it is. The server's own refusal of
 * a pattern (BadValue, 51091 "Regular expression is invalid") maps to INVALID_QUERY as well, so a
 * pattern this check does not foresee is still not an unexpected error. Takes a validated filter.
 */
export function checkRegexes(filter: Filter): void {
  for (const key of Object.keys(filter)) {
    const value = filter[key];
    if (key === "$and" || key === "$or") (value as Filter[]).forEach(checkRegexes);
    else if (!key.startsWith("$") && isOperatorObject(value)) checkConditionRegexes(key, value);
  }
}

function checkConditionRegexes(path: string, condition: Record<string, unknown>): void {
  const pattern = condition.$regex;
  if (typeof pattern === "string" && pattern.includes("\u0000")) {
    throw invalidQuery(`$regex on "${path}": MongoDB refuses a pattern containing U+0000`);
  }
  const not = condition.$not;
  if (isOperatorObject(not)) checkConditionRegexes(path, not);
  const inner = condition.$elemMatch;
  if (isPlainObject(inner)) {
    // `$elemMatch` holds operators (over scalars) or a whole filter (over documents).
    if (isOperatorObject(inner) && !Object.keys(inner).some((k) => k === "$and" || k === "$or")) checkConditionRegexes(path, inner);
    else checkRegexes(inner);
  }
}

// ------------------------------------------------------------------ indexes

/** Appended to the name of an index the adapter ends with `_id` (it tells that index from an older one). */
export const SORT_INDEX_SUFFIX = "__id";

/** An index as the adapter asks MongoDB for it. */
export interface MongoIndexModel {
  name: string;
  key: Record<string, SortDirection>;
  unique?: true;
  partialFilterExpression?: Filter;
}

/**
 * The MongoDB index for a spec. Pages sort `{ field, _id }`, so an index serves a page without an
 * in-memory sort only if `_id` follows the sort field in it: every non-unique spec gets `_id` as its
 * last key, in the direction of the spec's last key (MongoDB walks it backwards for the other
 * direction), under the name `<spec name>__id`. A new name, because an index cannot be renamed: the
 * new index is built while the old one (same name, no `_id`) still serves, then the old one is dropped.
 *
 * Unique specs stay exactly as declared: `_id` (unique by itself) would make every key unique and the
 * index would enforce nothing. None of them serves a sorted page today (profiles' e-mail pages walk the
 * non-unique `email_sort` index); a page that one day sorts by a unique index's fields gets its own
 * non-unique spec, which then ends with `_id` like the others. A spec whose keys already hold `_id`
 * is left as it is.
 */
export function mongoIndex(spec: IndexSpec): MongoIndexModel {
  const fields = Object.keys(spec.keys);
  const sortable = !spec.unique && !fields.includes("_id");
  return {
    name: sortable ? `${spec.name}${SORT_INDEX_SUFFIX}` : spec.name,
    key: sortable ? { ...spec.keys, _id: spec.keys[fields[fields.length - 1]] } : { ...spec.keys },
    ...(spec.unique ? { unique: true as const } : {}),
    ...(spec.partial ? { partialFilterExpression: spec.partial } : {}),
  };
}

/** Does an index the server lists have exactly these keys (in order) and options? */
function sameIndex(existing: Document, wanted: Pick<MongoIndexModel, "key" | "unique" | "partialFilterExpression">): boolean {
  const have = Object.entries((existing.key ?? {}) as Record<string, unknown>);
  const want = Object.entries(wanted.key);
  if (have.length !== want.length || have.some(([field, dir], i) => field !== want[i][0] || Number(dir) !== want[i][1])) return false;
  if ((existing.unique === true) !== (wanted.unique === true)) return false;
  // Options the adapter never sets make it another index.
  if (existing.sparse || existing.expireAfterSeconds !== undefined || existing.collation || existing.hidden) return false;
  return JSON.stringify(existing.partialFilterExpression ?? null) === JSON.stringify(wanted.partialFilterExpression ?? null);
}

function describeIndex(index: Document): string {
  const partial = index.partialFilterExpression ? ` partial ${JSON.stringify(index.partialFilterExpression)}` : "";
  return `${JSON.stringify(index.key)}${index.unique ? " unique" : ""}${partial}`;
}

/** The collection's indexes; none when the collection does not exist yet (NamespaceNotFound). */
async function listIndexes(coll: MongoCollection<Document>): Promise<Document[]> {
  try {
    return await coll.listIndexes().toArray();
  } catch (err) {
    if ((err as ErrorShape)?.code === 26) return [];
    throw toStorageError(err);
  }
}

// ------------------------------------------------------------------ queries

/** A query exactly as the adapter sends it (exported so the MongoDB-only tests can `explain()` it). */
export interface DriverQuery {
  filter: MongoFilter<Document>;
  sort?: MongoSort;
  limit: number;
}

/** A port filter as the server takes it, after the port's rules and the server's own refusals. */
function driverFilter(filter: Filter): MongoFilter<Document> {
  validateFilter(filter);
  checkRegexes(filter);
  return portableFilter(filter) as MongoFilter<Document>;
}

/** The query `find` sends. */
export function findQuery(filter: Filter, options: FindOptions = {}): DriverQuery {
  const f = driverFilter(filter);
  const limit = options.limit === undefined || options.limit === 0 ? MAX_FIND_LIMIT : checkLimit(options.limit, "limit");
  if (!options.sort || Object.keys(options.sort).length === 0) return { filter: f, limit };
  const entries = Object.entries(options.sort);
  if (entries.some(([, d]) => d !== 1 && d !== -1)) throw invalidQuery("sort directions are 1 or -1");
  const sort: Record<string, SortDirection> = Object.fromEntries(entries);
  // The same `_id` tiebreak as the other adapters, so ties come back in one order everywhere.
  if (!("_id" in sort)) sort._id = entries[entries.length - 1][1];
  return { filter: f, sort, limit };
}

/** The query `findPage` sends: one document more than the page, to tell `hasMore`. */
export function pageQuery(request: PageRequest): DriverQuery & { pageSize: number } {
  const pageSize = checkLimit(request.limit, "limit");
  const { field, direction } = request.sort ?? ({} as PageRequest["sort"]);
  if (typeof field !== "string" || (direction !== 1 && direction !== -1)) throw invalidQuery("findPage needs sort { field, direction }");
  if (request.after !== undefined && typeof request.after?.id !== "string") throw invalidQuery("after.id must be a string");
  const base = driverFilter(request.filter) as Filter;
  const filter = request.after ? { $and: [base, keysetFilter(field, direction, request.after)] } : base;
  const sort: MongoSort = field === "_id" ? { _id: direction } : { [field]: direction, _id: direction };
  return { filter: filter as MongoFilter<Document>, sort, limit: pageSize + 1, pageSize };
}

// ------------------------------------------------------------------ clients

/** MongoDB 8.0's wire version: the first with the client-level `bulkWrite` command. */
const CLIENT_BULK_WIRE_VERSION = 25;
/** CommandNotFound, CommandNotSupported: a server that does not take `bulkWrite` after all. */
const REFUSED_COMMAND_CODES = new Set([59, 115]);

/** MongoDB >= 8's client-level bulkWrite (one command for inserts, updates and deletes). */
export interface ClientBulk {
  /** Whether the server takes it: asked once per client (`hello`), then known. */
  supported(): Promise<boolean>;
  write(models: ClientBulkWriteModel[], options: ClientBulkWriteOptions): Promise<ClientBulkWriteResult>;
  /** The server refused the command (an older member, a lower feature compatibility version): not again. */
  refused(): void;
}

type ClientBulkWriteModel = AnyClientBulkWriteModel<Document> & { namespace: string };

export function mongoClientBulk(client: MongoClient): ClientBulk {
  let known: boolean | undefined;
  let asking: Promise<boolean> | undefined;
  return {
    async supported() {
      if (known !== undefined) return known;
      asking ??= client
        .db("admin")
        .command({ hello: 1 })
        .then(
          (reply) => (known = typeof reply.maxWireVersion === "number" && reply.maxWireVersion >= CLIENT_BULK_WIRE_VERSION),
          (err: unknown) => {
            asking = undefined;
            throw toStorageError(err);
          },
        );
      return asking;
    },
    write: (models, options) => client.bulkWrite(models, options),
    refused() {
      known = false;
    },
  };
}

/** What a collection adapter may be given besides its driver collection. */
export interface MongoAdapterOptions {
  /** The client's bulkWrite when it may be used (absent: per-collection bulk writes only). */
  clientBulk?: ClientBulk;
  /** Where the adapter says what it changed on the server (index replacements); console.warn by default. */
  log?: (message: string) => void;
}

export interface OpenMongoOptions {
  /** As MongoAdapterOptions.log. */
  log?: (message: string) => void;
}

interface ClientEntry {
  client: MongoClient;
  connected: Promise<void>;
  handles: number;
  bulk: ClientBulk;
}

const clients = new Map<string, ClientEntry>();

/** Opens database `dbName` on the process's shared client for `url`; UNAVAILABLE when unreachable. */
export async function openMongoDatabase(url: string, dbName: string, options: OpenMongoOptions = {}): Promise<Database> {
  let entry = clients.get(url);
  if (!entry) {
    let client: MongoClient;
    try {
      client = new MongoClient(url, { serverSelectionTimeoutMS: SERVER_SELECTION_TIMEOUT_MS, ignoreUndefined: true, appName: "store-crm" });
    } catch (err) {
      throw new StorageError("UNAVAILABLE", `invalid MONGO_URL: ${(err as Error).message}`);
    }
    const created: ClientEntry = { client, handles: 0, connected: Promise.resolve(), bulk: mongoClientBulk(client) };
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
  return new MongoDatabase(dbName, entry, url, options.log ?? defaultLog);
}

function defaultLog(message: string): void {
  console.warn(message);
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
    private readonly log: (message: string) => void,
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
    return mongoCollection<T>(name, () => this.live().collection(name), { clientBulk: this.entry.bulk, log: this.log });
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
export function mongoCollection<T extends Doc>(name: string, driver: () => MongoCollection<Document>, options: MongoAdapterOptions = {}): Collection<T> {
  return new MongoCollectionAdapter<T>(name, driver, options.clientBulk, options.log ?? defaultLog);
}

class MongoCollectionAdapter<T extends Doc> implements Collection<T> {
  constructor(
    readonly name: string,
    private readonly driver: () => MongoCollection<Document>,
    private readonly clientBulk: ClientBulk | undefined,
    private readonly log: (message: string) => void,
  ) {}

  async createIndexes(specs: IndexSpec[]): Promise<void> {
    if (!Array.isArray(specs)) throw invalidQuery("createIndexes takes an array of index specs");
    if (specs.length === 0) return;
    specs.forEach(checkIndexSpec);
    const wanted = specs.map((spec) => ({ spec, index: mongoIndex(spec) }));
    const coll = this.driver();
    const existing = new Map((await listIndexes(coll)).map((i) => [String(i.name), i]));
    const replaced: { old: Document; index: MongoIndexModel }[] = [];
    for (const { spec, index } of wanted) {
      const have = existing.get(index.name);
      if (have && !sameIndex(have, index)) {
        // The port's rule: a name stands for one definition (the server would refuse it too).
        throw invalidQuery(
          `index ${index.name} on ${this.name} exists as ${describeIndex(have)}, the spec asks for ${describeIndex(index)}: drop it or give the spec a new name`,
        );
      }
      const old = index.name === spec.name ? undefined : existing.get(spec.name);
      if (!old) continue;
      if (sameIndex(old, { key: spec.keys, unique: index.unique, partialFilterExpression: index.partialFilterExpression })) replaced.push({ old, index });
      else
        this.log(
          `storage: MongoDB ${coll.namespace}: index ${spec.name} ${describeIndex(old)} is not one this adapter made for the spec ${spec.name}; left in place (the spec's index is ${index.name})`,
        );
    }
    // The new indexes first: an index being replaced serves its queries until its successor is built.
    await guard(() => coll.createIndexes(wanted.map((w) => w.index)));
    for (const { old, index } of replaced) {
      try {
        await coll.dropIndex(String(old.name));
      } catch (err) {
        // IndexNotFound: another process of this service replaced it at the same time.
        if ((err as ErrorShape)?.code !== 27) throw toStorageError(err);
      }
      this.log(
        `storage: MongoDB ${coll.namespace}: index ${old.name} ${describeIndex(old)} replaced by ${index.name} ${describeIndex(index)} ` +
          `(pages sort by their field then _id; without _id in the index MongoDB sorted them in memory)`,
      );
    }
  }

  async dropIndexes(names: string[]): Promise<void> {
    checkIndexNames(names);
    const coll = this.driver();
    // A non-unique index is made as `<name>__id` (see mongoIndex); an older version made it under the name itself.
    const dropped = (await listIndexes(coll)).filter((i) => names.some((name) => i.name === name || i.name === `${name}${SORT_INDEX_SUFFIX}`));
    for (const index of dropped) {
      try {
        await coll.dropIndex(String(index.name));
      } catch (err) {
        // IndexNotFound: another process of this service dropped it at the same time.
        if ((err as ErrorShape)?.code !== 27) throw toStorageError(err);
      }
    }
  }

  async insertOne(doc: T): Promise<void> {
    checkDoc(doc);
    const coll = this.driver();
    await guard(() => coll.insertOne({ ...doc } as Document));
  }

  async findOne(filter: Filter): Promise<T | null> {
    const f = driverFilter(filter);
    const coll = this.driver();
    return (await guard(() => coll.findOne(f))) as T | null;
  }

  async find(filter: Filter, options: FindOptions = {}): Promise<T[]> {
    const q = findQuery(filter, options);
    const coll = this.driver();
    return (await guard(() => coll.find(q.filter, { ...(q.sort ? { sort: q.sort } : {}), limit: q.limit }).toArray())) as unknown as T[];
  }

  async findPage(request: PageRequest): Promise<Page<T>> {
    const q = pageQuery(request);
    const coll = this.driver();
    const docs = (await guard(() => coll.find(q.filter, { sort: q.sort, limit: q.limit }).toArray())) as unknown as T[];
    const hasMore = docs.length > q.pageSize;
    if (hasMore) docs.length = q.pageSize;
    return { items: docs, hasMore };
  }

  async *stream(filter: Filter, options: StreamOptions = {}): AsyncIterable<T> {
    const base = driverFilter(filter) as Filter;
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
    const f = driverFilter(filter);
    const coll = this.driver();
    return guard(() => coll.countDocuments(f));
  }

  async updateOne(filter: Filter, update: Update, options: UpdateOptions = {}): Promise<UpdateResult> {
    const f = driverFilter(filter);
    const upsert = options.upsert === true;
    const u = mongoUpdate(filter, update, upsert);
    const run = () => updateOnce(this.driver(), { filter: f, update: u as Document, upsert });
    return upsert ? retryUpsertRace(run) : run();
  }

  async updateMany(filter: Filter, update: Update): Promise<UpdateResult> {
    const f = driverFilter(filter);
    const u = mongoUpdate(filter, update, false);
    const coll = this.driver();
    const r = await guard(() => coll.updateMany(f, u as Document));
    return { matched: r.matchedCount, modified: r.modifiedCount };
  }

  async findOneAndUpdate(filter: Filter, update: Update, options: FindOneAndUpdateOptions = {}): Promise<T | null> {
    const f = driverFilter(filter);
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
    const f = driverFilter(filter);
    const coll = this.driver();
    return (await guard(() => coll.deleteOne(f))).deletedCount;
  }

  async deleteMany(filter: Filter): Promise<number> {
    const f = driverFilter(filter);
    const coll = this.driver();
    return (await guard(() => coll.deleteMany(f))).deletedCount;
  }

  /**
   * Every op checked first (a refused one is its own INVALID_QUERY result and is not sent), then the
   * rest in one unordered batch: one `bulkWrite` command on MongoDB >= 8, whose verbose reply gives each
   * op its own matched/modified/upserted/deleted; on older servers the rounds of `bulkRounds`. Ops of one
   * batch may run in any order (the port's unordered semantics). An upsert that lost a race on a unique
   * index is retried once on its own. A failure that is not one op's own (network, write concern)
   * fails the whole call, as UNAVAILABLE: some ops may have been applied.
   */
  async bulkWrite(ops: BulkOp<T>[]): Promise<BulkItemResult[]> {
    if (!Array.isArray(ops)) throw invalidQuery("bulkWrite takes an array of operations");
    const results: BulkItemResult[] = new Array(ops.length);
    const prepared: PreparedOp[] = [];
    for (let i = 0; i < ops.length; i++) {
      try {
        prepared.push(prepareOp(ops[i], i));
      } catch (err) {
        results[i] = failure(err);
      }
    }
    if (prepared.length === 0) return results;
    const coll = this.driver();
    const bulk = this.clientBulk;
    const sent = bulk !== undefined && (await bulk.supported()) && (await clientBulkWrite(bulk, coll.namespace, prepared, results));
    if (!sent) {
      for (const round of bulkRounds(prepared)) await collectionBulkWrite(coll, round, results);
    }
    for (const op of prepared) {
      if (op.kind !== "update" || !op.upsert || results[op.i].error?.code !== "DUPLICATE_KEY") continue;
      results[op.i] = await updateOnce(coll, op).then(
        (r): BulkItemResult => ({ ok: true, ...r }),
        (err: unknown) => failure(itemError(err)),
      );
    }
    return results;
  }
}

// ------------------------------------------------------------------ bulk writes

type PreparedOp =
  | { kind: "insert"; i: number; document: Document }
  | { kind: "update"; i: number; filter: MongoFilter<Document>; update: Document; upsert: boolean }
  | { kind: "delete"; i: number; filter: MongoFilter<Document> };

/** One port op, checked and in the form the server takes; throws INVALID_QUERY. */
function prepareOp(op: unknown, i: number): PreparedOp {
  if (!isPlainObject(op)) throw invalidQuery("unknown bulk operation");
  if ("insertOne" in op) {
    const spec = op.insertOne as { document?: unknown } | undefined;
    const document = isPlainObject(spec) ? spec.document : undefined;
    checkDoc(document);
    return { kind: "insert", i, document: { ...document } };
  }
  if ("updateOne" in op) {
    const spec = op.updateOne;
    if (!isPlainObject(spec)) throw invalidQuery("updateOne takes { filter, update, upsert? }");
    const upsert = spec.upsert === true;
    const filter = driverFilter(spec.filter as Filter);
    return { kind: "update", i, filter, update: mongoUpdate(spec.filter as Filter, spec.update as Update, upsert) as Document, upsert };
  }
  if ("deleteOne" in op) {
    const spec = op.deleteOne;
    if (!isPlainObject(spec)) throw invalidQuery("deleteOne takes { filter }");
    return { kind: "delete", i, filter: driverFilter(spec.filter as Filter) };
  }
  throw invalidQuery("unknown bulk operation");
}

/** One update, alone (a single op, or an upsert retried after a race). */
async function updateOnce(coll: MongoCollection<Document>, op: { filter: MongoFilter<Document>; update: Document; upsert: boolean }): Promise<UpdateResult> {
  const r = await guard(() => coll.updateOne(op.filter, op.update, { upsert: op.upsert }));
  return { matched: r.matchedCount, modified: r.modifiedCount, ...(r.upsertedId != null ? { upsertedId: String(r.upsertedId) } : {}) };
}

interface ClientBulkErrorShape extends ErrorShape {
  writeErrors?: ReadonlyMap<number, { code: number; message: string }>;
  writeConcernErrors?: { code?: number; message?: string; errmsg?: string }[];
  partialResult?: ClientBulkWriteResult;
  cause?: unknown;
}

/**
 * The batch as one client-level `bulkWrite` (MongoDB >= 8), unordered, with verbose results: the server
 * answers every op with its own n / nModified / upserted, so each result is exact. The driver splits a
 * batch only past the server's limits (100,000 ops or 48 MB a command). Returns false, having written
 * nothing, when the server refuses the command itself.
 */
async function clientBulkWrite(bulk: ClientBulk, namespace: string, prepared: PreparedOp[], results: BulkItemResult[]): Promise<boolean> {
  const models = prepared.map((op) => clientModel(namespace, op));
  let result: ClientBulkWriteResult | undefined;
  let writeErrors: ReadonlyMap<number, { code: number; message: string }> = new Map();
  try {
    result = await bulk.write(models, { ordered: false, verboseResults: true });
  } catch (err) {
    const e = err as ClientBulkErrorShape | undefined;
    if (e?.name !== "MongoClientBulkWriteError") throw toStorageError(err);
    if ((e.writeConcernErrors?.length ?? 0) > 0) throw writeConcernFailure(e.writeConcernErrors![0]);
    if (!e.writeErrors || e.writeErrors.size === 0) {
      const cause = e.cause as ErrorShape | undefined;
      if (REFUSED_COMMAND_CODES.has(Number(cause?.code)) && nothingWritten(e.partialResult)) {
        bulk.refused();
        return false;
      }
      throw toStorageError(cause ?? err);
    }
    result = e.partialResult;
    writeErrors = e.writeErrors;
  }
  prepared.forEach((op, j) => {
    results[op.i] = clientItemResult(op, j, result, writeErrors.get(j));
  });
  return true;
}

function nothingWritten(r: ClientBulkWriteResult | undefined): boolean {
  return !r || r.insertedCount + r.upsertedCount + r.matchedCount + r.modifiedCount + r.deletedCount === 0;
}

function clientModel(namespace: string, op: PreparedOp): ClientBulkWriteModel {
  // The client-level command serializes with BSON's defaults, where an undefined field becomes null;
  // the port (and this client's ignoreUndefined) leaves it out.
  switch (op.kind) {
    case "insert":
      return { namespace, name: "insertOne", document: withoutUndefined(op.document) };
    case "update":
      return { namespace, name: "updateOne", filter: op.filter, update: withoutUndefined(op.update), upsert: op.upsert };
    case "delete":
      return { namespace, name: "deleteOne", filter: op.filter };
  }
}

function clientItemResult(
  op: PreparedOp,
  j: number,
  result: ClientBulkWriteResult | undefined,
  writeError: { code: number; message: string } | undefined,
): BulkItemResult {
  if (writeError) return failure(itemError(Object.assign(new Error(writeError.message ?? `write error ${writeError.code}`), { code: writeError.code })));
  switch (op.kind) {
    case "insert":
      if (result?.insertResults?.has(j)) return { ok: true, inserted: true };
      break;
    case "update": {
      const r = result?.updateResults?.get(j);
      // The server counts an upserted document in n (the driver's matchedCount); the port reports 0 matched.
      if (r)
        return r.didUpsert ? { ok: true, matched: 0, modified: 0, upsertedId: String(r.upsertedId) } : { ok: true, matched: r.matchedCount, modified: r.modifiedCount };
      break;
    }
    case "delete": {
      const r = result?.deleteResults?.get(j);
      if (r) return { ok: true, deleted: r.deletedCount };
      break;
    }
  }
  throw new StorageError("UNAVAILABLE", `MongoDB reported no outcome for bulk operation ${op.i}`);
}

/**
 * How a batch goes to a server older than 8.0, with `collection.bulkWrite(ops, { ordered: false })`:
 * the driver sends one command per kind (insert, update, delete), and a command's reply counts
 * n / nModified for the command as a whole; only upserted ids come per op. So an insert's result
 * ("inserted" or its write error) is exact in any number, while an update's matched/modified or a
 * delete's count is its own only when it is the sole update or delete of its command. Round 1 holds
 * every insert, the first update and the first delete; each later round one update and one delete.
 * A batch of inserts is one round trip; updates and deletes cost one command each, as they did before
 * this adapter used bulk writes, never more. (Counting the totals after the fact would be exact only
 * when all updates matched or none did, which cannot be known before sending.)
 */
export function bulkRounds<P extends { kind: "insert" | "update" | "delete" }>(prepared: P[]): P[][] {
  const inserts = prepared.filter((op) => op.kind === "insert");
  const updates = prepared.filter((op) => op.kind === "update");
  const deletes = prepared.filter((op) => op.kind === "delete");
  const rounds: P[][] = [];
  for (let r = 0; r < Math.max(1, updates.length, deletes.length); r++) {
    const round = r === 0 ? [...inserts] : [];
    if (r < updates.length) round.push(updates[r]);
    if (r < deletes.length) round.push(deletes[r]);
    if (round.length > 0) rounds.push(round);
  }
  return rounds;
}

interface BulkResultShape {
  matchedCount: number;
  modifiedCount: number;
  deletedCount: number;
  upsertedIds?: Record<number, unknown>;
  getWriteConcernError?: () => { code?: number; errmsg?: string; message?: string } | undefined;
}

/** One round of `bulkRounds` as one `collection.bulkWrite`; each op's result from the reply. */
async function collectionBulkWrite(coll: MongoCollection<Document>, round: PreparedOp[], results: BulkItemResult[]): Promise<void> {
  const models: AnyBulkWriteOperation<Document>[] = round.map((op) =>
    op.kind === "insert"
      ? { insertOne: { document: op.document } }
      : op.kind === "update"
        ? { updateOne: { filter: op.filter, update: op.update, upsert: op.upsert } }
        : { deleteOne: { filter: op.filter } },
  );
  let result: BulkResultShape;
  let writeErrors = new Map<number, { index: number; code: number; errmsg?: string }>();
  try {
    result = (await coll.bulkWrite(models, { ordered: false })) as unknown as BulkResultShape;
  } catch (err) {
    const e = err as ErrorShape & { result?: BulkResultShape };
    const list = e?.name === "MongoBulkWriteError" ? writeErrorsOf(e) : [];
    // No per-op errors: the batch as a whole failed (network, write concern).
    if (list.length === 0 || !e.result) throw toStorageError(err);
    const concern = e.result.getWriteConcernError?.();
    if (concern) throw writeConcernFailure(concern);
    result = e.result;
    writeErrors = new Map(list.map((w) => [w.index, w]));
  }
  round.forEach((op, j) => {
    const w = writeErrors.get(j);
    if (w) {
      results[op.i] = failure(itemError(Object.assign(new Error(w.errmsg ?? `write error ${w.code}`), { code: w.code })));
      return;
    }
    if (op.kind === "insert") results[op.i] = { ok: true, inserted: true };
    else if (op.kind === "delete") results[op.i] = { ok: true, deleted: result.deletedCount };
    else {
      const upserted = result.upsertedIds?.[j];
      // The round's only update: the reply's totals are its own.
      results[op.i] =
        upserted != null
          ? { ok: true, matched: 0, modified: 0, upsertedId: String(upserted) }
          : { ok: true, matched: result.matchedCount, modified: result.modifiedCount };
    }
  });
}

function writeConcernFailure(concern: { code?: number; errmsg?: string; message?: string }): StorageError {
  return new StorageError(
    "UNAVAILABLE",
    `MongoDB did not confirm the write concern (some writes may be applied): ${concern.errmsg ?? concern.message ?? `code ${concern.code}`}`,
  );
}

/** A copy without undefined object fields (undefined array items become null), as ignoreUndefined sends it. */
function withoutUndefined<V>(value: V): V {
  if (Array.isArray(value)) {
    let out: unknown[] | undefined;
    value.forEach((item, i) => {
      const next = item === undefined ? null : withoutUndefined(item);
      if (next === item) return;
      out ??= [...value];
      out[i] = next;
    });
    return (out ?? value) as V;
  }
  if (value === null || typeof value !== "object") return value;
  const proto = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) return value; // Date, ObjectId, Binary, ...
  let out: Record<string, unknown> | undefined;
  for (const key of Object.keys(value)) {
    const item = (value as Record<string, unknown>)[key];
    const next = item === undefined ? undefined : withoutUndefined(item);
    if (item === undefined || next !== item) {
      out ??= { ...(value as Record<string, unknown>) };
      if (next === undefined) delete out[key];
      else out[key] = next;
    }
  }
  return (out ?? value) as V;
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
