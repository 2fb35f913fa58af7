/**
 * The storage port: the one narrow interface every service stores its data through. Two adapters
 * implement it with the same behaviour, proven by one contract suite (storage/__tests__):
 *   - MongoDB (official driver), one database per service — production;
 *   - SQLite (`node:sqlite`), one file per service under DATA_DIR, or in memory — `npm start` and CI.
 *
 * Filters and updates use the MongoDB query language, restricted to the subset listed below so that
 * both adapters agree. Callers must build filters from validated values only (never pass a request
 * object through): `{ email: input }` with `input = {"$ne": null}` is exactly the bug this prevents.
 *
 * Filter operators: equality (incl. dotted paths and array membership), $eq $ne $gt $gte $lt $lte $in
 *   $nin $exists $and $or $not $elemMatch $regex (only with a pattern from `escapeRegex`).
 * Update operators: $set $unset $inc $push (with $each, and $slice) $addToSet (with $each) $pull $setOnInsert.
 */

/** Every stored document has a string `_id` (a UUIDv7 made by the caller). */
export interface Doc {
  _id: string;
  [field: string]: unknown;
}

export type Filter = Record<string, unknown>;

export interface Update {
  $set?: Record<string, unknown>;
  $unset?: Record<string, unknown>;
  $inc?: Record<string, number>;
  $push?: Record<string, unknown>;
  $addToSet?: Record<string, unknown>;
  $pull?: Record<string, unknown>;
  $setOnInsert?: Record<string, unknown>;
}

export type SortDirection = 1 | -1;
export type Sort = Record<string, SortDirection>;

export interface IndexSpec {
  /** Stable name; adapters create indexes idempotently by name. */
  name: string;
  keys: Record<string, SortDirection>;
  unique?: boolean;
  /** Only documents matching this filter are indexed (e.g. `{ email_lower: { $type: "string" } }`). */
  partial?: Filter;
}

export interface FindOptions {
  sort?: Sort;
  /** At most this many documents (adapters cap at 1000; use `stream` for more). */
  limit?: number;
}

/** Keyset pagination: ordered by `sort.field` then `_id`, resuming strictly after `after`. */
export interface PageRequest {
  filter: Filter;
  sort: { field: string; direction: SortDirection };
  limit: number;
  after?: { value: unknown; id: string };
}

export interface Page<T> {
  items: T[];
  /** True when more documents match after the last item. */
  hasMore: boolean;
}

export interface StreamOptions {
  /**
   * Documents read per round trip (default 500). A stream reads keyset batches in an order the caller
   * must not rely on (the embedded store walks `_id` order; MongoDB an index's); each document comes
   * once, and writes made while it runs may or may not be seen, as with a MongoDB cursor.
   */
  batchSize?: number;
}

export interface UpdateResult {
  matched: number;
  modified: number;
  upsertedId?: string;
}

export interface UpdateOptions {
  /** Insert when nothing matches: the new document is the filter's equality fields + the update. */
  upsert?: boolean;
}

export interface FindOneAndUpdateOptions extends UpdateOptions {
  returnDocument?: "before" | "after"; // default "after"
}

export type BulkOp<T extends Doc> =
  | { insertOne: { document: T } }
  | { updateOne: { filter: Filter; update: Update; upsert?: boolean } }
  | { deleteOne: { filter: Filter } };

/** One result per op, in order. A failed op never stops the others (unordered semantics). */
export interface BulkItemResult {
  ok: boolean;
  matched?: number;
  modified?: number;
  upsertedId?: string;
  inserted?: boolean;
  deleted?: number;
  error?: { code: StorageErrorCode; message: string; index?: string };
}

/**
 * DUPLICATE_KEY: a unique index refused the write. INVALID_QUERY: outside the port's subset.
 * UNAVAILABLE: the storage cannot be used now (503). SCAN_LIMIT: the query would read too many
 * documents that no index rules out (the embedded adapter's budget; callers answer 400).
 */
export type StorageErrorCode = "DUPLICATE_KEY" | "INVALID_QUERY" | "UNAVAILABLE" | "SCAN_LIMIT";

/** The only error type adapters throw for expected failures; check `code`, not the class. */
export class StorageError extends Error {
  constructor(
    readonly code: StorageErrorCode,
    message: string,
    readonly index?: string,
  ) {
    super(message);
    this.name = "StorageError";
  }
}

/** A read the storage stopped because no index narrows it enough (see StorageErrorCode). */
export function isScanLimit(err: unknown): boolean {
  return (err as Partial<StorageError> | undefined)?.code === "SCAN_LIMIT";
}

export function isDuplicateKey(err: unknown, index?: string): boolean {
  const e = err as Partial<StorageError> | undefined;
  return e?.code === "DUPLICATE_KEY" && (index === undefined || e.index === index);
}

export interface Collection<T extends Doc> {
  readonly name: string;
  createIndexes(specs: IndexSpec[]): Promise<void>;
  /** Removes the indexes of these names, where they exist: how a store retires an index an older version made. */
  dropIndexes(names: string[]): Promise<void>;
  insertOne(doc: T): Promise<void>;
  findOne(filter: Filter): Promise<T | null>;
  find(filter: Filter, options?: FindOptions): Promise<T[]>;
  findPage(request: PageRequest): Promise<Page<T>>;
  /** Every matching document, fetched in batches: for imports and sends that must not load it all. */
  stream(filter: Filter, options?: StreamOptions): AsyncIterable<T>;
  count(filter: Filter): Promise<number>;
  updateOne(filter: Filter, update: Update, options?: UpdateOptions): Promise<UpdateResult>;
  updateMany(filter: Filter, update: Update): Promise<UpdateResult>;
  findOneAndUpdate(filter: Filter, update: Update, options?: FindOneAndUpdateOptions): Promise<T | null>;
  deleteOne(filter: Filter): Promise<number>;
  deleteMany(filter: Filter): Promise<number>;
  bulkWrite(ops: BulkOp<T>[]): Promise<BulkItemResult[]>;
}

export interface Database {
  readonly name: string;
  collection<T extends Doc>(name: string): Collection<T>;
  /** Resolves when the storage answers; rejects with a StorageError("UNAVAILABLE") otherwise. */
  ping(): Promise<void>;
  close(): Promise<void>;
  /** Removes every collection (tests only). */
  drop(): Promise<void>;
}

/** Escapes user text for use inside `$regex`, so search input can never become a regex bomb. */
export function escapeRegex(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/-]/g, "\\$&");
}
