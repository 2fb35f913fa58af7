/**
 * One collection on SQLite: a table of documents (`id`, JSON `doc`) and, per declared index, an index
 * table whose primary key is the index's key columns then `id` (WITHOUT ROWID, so the table is the
 * SQLite index). Index tables are kept by this code on every write, inside the write's transaction, so
 * multikey (array) fields, partial indexes and MongoDB's cross-type order hold exactly as in MongoDB,
 * which expression indexes over JSON could not give (see keys.ts).
 *
 * Reads are planned over those tables (`plan()`): a lookup by `_id`, a small range of an index read
 * whole, an index walked in the order a page asks for (stopping once the page is full), or a walk of
 * the whole table. The full filter is then checked on each document read (MongoDB semantics, through
 * query/matcher.ts). A read that would examine more than EXAMINE_BUDGET documents it does not return
 * fails with SCAN_LIMIT instead of blocking the event loop: a request path must have an index.
 * `stream` has no budget; it reads in chunks and yields the event loop between them.
 */
import type { StatementSync } from "node:sqlite";
import { setImmediate as nextTick } from "node:timers/promises";
import type {
  BulkItemResult,
  BulkOp,
  Collection,
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
} from "../port";
import { StorageError } from "../port";
import { uuidv7 } from "../../ids";
import { afterKeyset, compileFilter, sortComparator, type Matcher } from "../query/matcher";
import {
  checkIndexNames,
  equalityValues,
  filterFields,
  invalidQuery,
  normalizeUpdate,
  rangeBounds,
  upsertSeed,
  validateFilter,
  validatePartialFilter,
} from "../query/rules";
import { applyUpdate } from "../query/update";
import { compareStrings, isPlainObject, setPath } from "../query/values";
import { decodeDoc, decodeValue, encodeDoc, encodeValue } from "./codec";
import { checkName, quote, tableName, type Connection } from "./database";
import { asStorageError, isDuplicateError } from "./errors";
import { IndexKeys, keyOf, sameKeys, type IndexedKeys, type KeyColumn } from "./keys";

export const MAX_FIND_LIMIT = 1000;
/** Documents one call may read without returning (or acting on) them, before it fails with SCAN_LIMIT. */
export const EXAMINE_BUDGET = 2_000;
/** An index range at most this large is read whole (and sorted in memory) rather than walked in order. */
const SMALL_RANGE = 1000;
/**
 * At most this many key prefixes (the product of `$in` lists) are looked up, LOOKUP_BATCH a query: as
 * many as one find returns, so `{ store_id, email_lower: { $in: [1000 e-mails] } }` is 1000 lookups in a
 * unique index. Planning stays cheap: a unique index whose every field is fixed is not counted at all, and a
 * count over several prefixes stops once their total passes its cap (see rangeSize).
 */
const MAX_PREFIXES = MAX_FIND_LIMIT;
/**
 * Rows per SQL round of a walk: first as many as its reader wants, if it says (each row read joins its
 * document, and rows in another order than `_id` sit on random pages: a page of 100 read 24, 48 then 96
 * rows), else a few; then doubling up to the most.
 */
const FIRST_CHUNK = 24;
const MAX_CHUNK = 256;
/** The first chunk of a walk whose reader wants `wanted` rows, rounded up to a multiple of 8 (a few statements serve every page size). */
const firstChunkFor = (wanted: number) => Math.min(MAX_CHUNK, Math.max(FIRST_CHUNK, Math.ceil(wanted / 8) * 8));
/** Key prefixes (`$in` values) looked up per query. */
const LOOKUP_BATCH = 64;
/**
 * The `_id`s of an index range a stream holds (a window; twice as many while a pass sorts them, about
 * 4 MB): a larger range is read in several passes over its index rows, each keeping the next window
 * in `_id` order.
 */
const STREAM_WINDOW = 25_000;
/** Index rows a pass reads per turn of the event loop (a few ms). */
const STREAM_CHUNK = 2_500;
/**
 * What a row of the table costs a stream (read, decoded, matched: 5.4 µs at 200,000 profiles) against
 * an index row of a pass (1.1 µs).
 */
const ROW_COST = 5;
/**
 * Index rows one statement of a bulk write adds: a `run` of node:sqlite costs 1.4 µs besides the 2.3 µs
 * of its row, so the inserts of a bulk write's chunk write theirs this many a statement.
 */
const ROWS_PER_INSERT = 32;
/**
 * A bulk write is several transactions, the event loop free between two (1000 profile inserts in one held
 * it 50-70 ms): each applies at most BULK_CHUNK_OPS ops, and no more once it has run BULK_CHUNK_MS. Chunks
 * are not free: each commit writes every page it changed to the log, so the pages every chunk changes (an
 * index's last pages, one per value of a field with few values) are written once per chunk. 1000 imported
 * profiles wrote 955 pages in one transaction, 1263 in two, 1684 in four: hence a time limit rather than a
 * small count of ops. 40 ms rather than 20: the import bench's first import of 100,000 rows took 8.9 s
 * on average instead of 9.9 s (five runs each, alternating, 2026-12-03), for at most 40 ms of waiting
 * added to a request that comes in during a bulk write.
 */
const BULK_CHUNK_OPS = 1000;
const BULK_CHUNK_MS = 40;

interface IndexState {
  spec: IndexSpec;
  keys: IndexKeys;
  table: string;
  unique: boolean;
  partial: Matcher | null;
  multikey: boolean;
  /** Columns of an index row: two per key field, then `id`. */
  columns: number;
  /** The SQL that adds one key tuple (then `id`), ROWS_PER_INSERT of them, and that removes one: built once, not per row. */
  insertSql: string;
  insertManySql: string;
  removeSql: string;
  /** The WHERE of a read of this index, by its shape (see `where`). */
  whereSql: Map<string, string>;
  /** The statements of the keyset walks of this index, by the WHERE's shape and the direction. */
  walks: Map<string, KeysetWalk>;
}

/**
 * The index rows that a bulk write's inserts add, per index, flattened (each row its key columns then
 * `id`): written ROWS_PER_INSERT a statement as soon as they are that many, the rest by flushRows.
 */
type PendingRows = Map<IndexState, KeyColumn[]>;

interface CollectionState {
  generation: number;
  /** `data_version` when the index definitions were read: another process's commit changes it. */
  version: number;
  indexes: Map<string, IndexState>;
}

/** Where a read finds its candidates. */
type Source =
  | { kind: "ids"; ids: string[] }
  | { kind: "table" }
  /**
   * Rows of an index whose leading key columns equal one of `prefixes` (flattened t, v pairs), and
   * whose next key lies in `range` when there is one.
   */
  | { kind: "index"; index: IndexState; prefixes: KeyColumn[][]; range?: KeyRange };

/** A range of the key column after a prefix, within one type rank. */
interface KeyRange {
  rank: number;
  lower?: { v: KeyColumn; inclusive: boolean };
  upper?: { v: KeyColumn; inclusive: boolean };
}

interface Plan {
  source: Source;
  /** The rows come in the requested order (then `after` and `limit` are applied while walking). */
  sorted: boolean;
}

/** What a stream walks: rows in `_id` order, or an index range read in windows of `_id`s. */
type StreamPlan = { kind: "rows"; source: Source } | { kind: "range"; source: Source & { kind: "index" } };

export interface StreamStats {
  /** What the stream read last: the filter's ids, an index in `_id` order, an index range, the table. */
  plan: "ids" | "index" | "range" | "table";
  /** Passes over the index range. */
  passes: number;
  /** The most `_id`s held at once by a pass. */
  heldIds: number;
  /** The most index rows one read of a pass returned. */
  passRows: number;
  /** The most rows (documents) one batch read. */
  batchRows: number;
}

interface Row {
  id: string;
  doc: string;
  [column: string]: KeyColumn;
}

interface SelectOptions {
  sort?: [string, SortDirection][];
  limit?: number;
  after?: { value: unknown; id: string };
  /** Every match is acted on (updateMany, deleteMany): only non-matching reads count against the budget. */
  all?: boolean;
}

/** Whether every condition of `filter` is one equality the source's prefix fixes (so every row of the source matches). */
function prefixIsWholeFilter(source: Source & { kind: "index" }, filter: Filter): boolean {
  const fixed = source.index.keys.fields.slice(0, source.prefixes[0].length / 2);
  const equalityOnly = (condition: unknown) => !isPlainObject(condition) || ["$eq", "$in"].includes(Object.keys(condition).join());
  return Object.entries(filter).every(([field, condition]) => fixed.includes(field) && equalityOnly(condition));
}

/** Each document's first row only: a document sits under several keys of a multikey index, and may match several prefixes. */
function* distinct(rows: Iterable<Row>): Generator<Row> {
  const seen = new Set<string>();
  for (const row of rows) {
    if (seen.has(row.id)) continue;
    seen.add(row.id);
    yield row;
  }
}

/** Errors a bulk write reports per op (the others fail the whole call). */
function isReportable(err: unknown): err is StorageError {
  const code = (err as StorageError | undefined)?.code;
  return code === "DUPLICATE_KEY" || code === "INVALID_QUERY" || code === "SCAN_LIMIT";
}

function scanLimit(examined: number): StorageError {
  return new StorageError("SCAN_LIMIT", `the query read ${examined} documents that did not match without finishing: narrow it with a condition an index serves`);
}

/** MongoDB's limit on one document (BSON); the JSON text is about as long. */
const MAX_DOCUMENT_BYTES = 16 * 1024 * 1024;

function encodeChecked(doc: Doc): string {
  const text = encodeDoc(doc);
  if (text.length > MAX_DOCUMENT_BYTES) throw invalidQuery(`document ${JSON.stringify(doc._id)} is larger than 16 MiB`);
  return text;
}

/** SQLITE_CONSTRAINT_NOTNULL: a key column got NULL (an invalid Date's time is NaN). */
function isNotNull(err: unknown): boolean {
  return (err as { errcode?: number })?.errcode === 1299;
}

function duplicate(index: string): StorageError {
  return new StorageError("DUPLICATE_KEY", `duplicate key in unique index ${index}`, index);
}

/** An index row SQLite refused, as the port's error: a duplicate, or a key column that got NULL (`of`: whose value). */
function keyError(index: IndexState, err: unknown, of: string): unknown {
  if (isDuplicateError(err)) return duplicate(index.spec.name);
  if (isNotNull(err)) return invalidQuery(`index ${index.spec.name}: a value of ${of} cannot be indexed (an invalid Date?)`);
  return err;
}

function sameSpec(a: IndexSpec, b: IndexSpec): boolean {
  return (
    JSON.stringify(Object.entries(a.keys)) === JSON.stringify(Object.entries(b.keys)) &&
    (a.unique === true) === (b.unique === true) &&
    JSON.stringify(a.partial ?? null) === JSON.stringify(b.partial ?? null)
  );
}

function checkSpec(spec: IndexSpec): void {
  if (!spec || typeof spec.name !== "string" || spec.name.length === 0) throw invalidQuery("an index needs a name");
  checkName(spec.name, "index");
  const fields = Object.keys(spec.keys ?? {});
  if (fields.length === 0 || fields.some((f) => spec.keys[f] !== 1 && spec.keys[f] !== -1)) {
    throw invalidQuery(`index ${spec.name}: keys must map fields to 1 or -1`);
  }
  if (spec.partial !== undefined) validatePartialFilter(spec.partial, spec.name);
}

function checkLimit(limit: unknown, what: string): number {
  if (typeof limit !== "number" || !Number.isInteger(limit) || limit < 1) throw invalidQuery(`${what} must be a positive integer`);
  return Math.min(limit, MAX_FIND_LIMIT);
}

function sortEntries(sort: FindOptions["sort"]): [string, SortDirection][] | undefined {
  if (sort === undefined) return undefined;
  const entries = Object.entries(sort);
  if (entries.length === 0) return undefined;
  for (const [, d] of entries) if (d !== 1 && d !== -1) throw invalidQuery("sort directions are 1 or -1");
  return entries as [string, SortDirection][];
}

/** A UTF-16 unit from U+D800 on: JS orders such strings otherwise than by code point (SQLite's order). */
const OUT_OF_ORDER = /[\ud800-\uffff]/;

/** Strings sorted by code point (SQLite's order of `_id`s; JS's own when no string is `exotic`), each once. */
function distinctSorted(values: string[], exotic: boolean): string[] {
  if (exotic) values.sort(compareStrings);
  else values.sort();
  let n = 0;
  for (const value of values) if (n === 0 || values[n - 1] !== value) values[n++] = value;
  values.length = n;
  return values;
}

/** An empty `$in` among the filter's conditions (every one of which a match meets): nothing matches. */
function matchesNothing(eq: Map<string, unknown[]>): boolean {
  for (const values of eq.values()) if (values.length === 0) return true;
  return false;
}

/**
 * Whether every match of `filter` is in a partial index `{ f: { $type: "number" | "string" } }`: a range
 * on f bounded by a value of that type (MongoDB compares values of one type only), like "the ops stamped
 * before t" on an index of the stamped ones.
 */
function rangeImpliesType(partial: Filter, filter: Filter): boolean {
  const entries = Object.entries(partial);
  if (entries.length !== 1) return false;
  const [field, condition] = entries[0];
  const type = isPlainObject(condition) && Object.keys(condition).length === 1 ? condition.$type : undefined;
  if (type !== "number" && type !== "string") return false;
  const bounds = rangeBounds(filter, field);
  return typeof bounds?.lower?.value === type || typeof bounds?.upper?.value === type;
}

/**
 * The statements of one keyset walk: `select` WHERE `fixed` [AND (order columns) > cursor] ORDER BY the order
 * columns, in one direction, LIMIT a chunk. Their SQL is built once and each chunk size prepared once: a read
 * that built them anew hashed a few hundred characters of SQL to find its prepared statement.
 */
class KeysetWalk {
  private readonly firstSql: string;
  private readonly nextSql: string;
  private readonly firsts = new Map<number, StatementSync>();
  private readonly nexts = new Map<number, StatementSync>();

  constructor(
    private readonly conn: Connection,
    select: string,
    fixed: string,
    readonly order: string[],
    direction: SortDirection,
    alias: string,
  ) {
    const dir = direction === 1 ? "ASC" : "DESC";
    const cmp = direction === 1 ? ">" : "<";
    const orderBy = order.map((c) => `${alias}${c} ${dir}`).join(", ");
    const tuple = order.length === 1 ? `${alias}${order[0]}` : `(${order.map((c) => alias + c).join(", ")})`;
    const marks = order.length === 1 ? "?" : `(${order.map(() => "?").join(", ")})`;
    this.firstSql = `${select}${fixed ? ` WHERE ${fixed}` : ""} ORDER BY ${orderBy}`;
    this.nextSql = `${select} WHERE ${fixed ? `${fixed} AND ` : ""}${tuple} ${cmp} ${marks} ORDER BY ${orderBy}`;
  }

  // The LIMIT is written into the SQL, not bound: with node:sqlite a bound LIMIT made each run of such a
  // query cost ~8 µs more (15 µs instead of 7 for a profile's sessions); a chunk takes only five values.
  first(limit: number): StatementSync {
    return this.prepared(this.firsts, this.firstSql, limit);
  }

  next(limit: number): StatementSync {
    return this.prepared(this.nexts, this.nextSql, limit);
  }

  private prepared(byLimit: Map<number, StatementSync>, sql: string, limit: number): StatementSync {
    let statement = byLimit.get(limit);
    if (!statement) {
      statement = this.conn.statement(`${sql} LIMIT ${limit}`);
      byLimit.set(limit, statement);
    }
    return statement;
  }
}

/** Column names of key field i. */
const t = (i: number) => `t${i}`;
const v = (i: number) => `v${i}`;

export class SqliteCollection<T extends Doc> implements Collection<T> {
  private readonly docs: string;
  private readonly sql: { insert: string; update: string; delete: string; byId: string };
  /** Documents the last read examined (tests use it to prove that a query walked an index). */
  lastExamined = 0;
  /** SQL queries of rows the last read ran (tests use it to prove how reads are batched). */
  lastQueries = 0;
  private queries = 0;
  /** How the last stream read (tests use it to prove that its memory and reads stay bounded). */
  lastStream: StreamStats | undefined;
  /** The most `_id`s of an index range a stream holds at once (tests lower it). */
  streamWindow = STREAM_WINDOW;
  /** Index rows a stream's pass reads per turn of the event loop (tests lower it). */
  streamChunk = STREAM_CHUNK;
  /** The most ops, and milliseconds, of one transaction of a bulk write (tests change them). */
  bulkChunkLimits = { ops: BULK_CHUNK_OPS, ms: BULK_CHUNK_MS };

  constructor(
    readonly name: string,
    private readonly connection: () => Connection,
  ) {
    this.docs = quote(tableName(name));
    this.sql = {
      insert: `INSERT INTO ${this.docs} (id, doc) VALUES (?, ?)`,
      update: `UPDATE ${this.docs} SET doc = ? WHERE id = ?`,
      delete: `DELETE FROM ${this.docs} WHERE id = ?`,
      byId: `SELECT id, doc FROM ${this.docs} WHERE id = ?`,
    };
  }

  // ------------------------------------------------------------------ tables and indexes

  /**
   * The collection's tables and index definitions: created or read when first used, and read again
   * after a drop or when another process has committed (it may have added an index or made one multikey).
   */
  private state(conn: Connection): CollectionState {
    const cached = conn.cache.get(this.name) as CollectionState | undefined;
    const version = conn.dataVersion();
    if (cached && cached.generation === conn.generation && cached.version === version) return cached;
    conn.db.exec(`CREATE TABLE IF NOT EXISTS ${this.docs} (id TEXT PRIMARY KEY NOT NULL, doc TEXT NOT NULL)`);
    const indexes = new Map<string, IndexState>();
    for (const [name, record] of conn.indexRecords(this.name)) {
      const index = this.indexState(record.spec, record.multikey);
      if (!conn.tableExists(tableName(this.name, name))) throw new StorageError("UNAVAILABLE", `index table of ${this.name}.${name} is missing`);
      indexes.set(name, index);
    }
    const state = { generation: conn.generation, version, indexes };
    conn.cache.set(this.name, state);
    return state;
  }

  private indexState(spec: IndexSpec, multikey: boolean): IndexState {
    const keys = new IndexKeys(spec);
    const table = quote(tableName(this.name, spec.name));
    const n = keys.fields.length;
    const where = Array.from({ length: n }, (_, i) => `${t(i)} = ? AND ${v(i)} = ?`).join(" AND ");
    const row = `(${"?, ".repeat(2 * n)}?)`;
    return {
      spec,
      keys,
      table,
      unique: spec.unique === true,
      partial: spec.partial ? compileFilter(spec.partial) : null,
      multikey,
      columns: 2 * n + 1,
      insertSql: `INSERT INTO ${table} VALUES ${row}`,
      // OR FAIL: SQLite then keeps no statement journal (a copy of every page a statement of several rows
      // changes, to undo it alone), which made these statements slower than single rows and wrote 4 times
      // the bytes. A statement that fails leaves its first rows: the savepoint of the bulk write's chunk undoes them.
      insertManySql: `INSERT OR FAIL INTO ${table} VALUES ${Array(ROWS_PER_INSERT).fill(row).join(", ")}`,
      removeSql: `DELETE FROM ${table} WHERE ${where} AND id = ?`,
      whereSql: new Map(),
      walks: new Map(),
    };
  }

  /** Runs `fn` on the live connection; SQLite's failures come out as the port's errors. */
  private use<R>(fn: (conn: Connection, state: CollectionState) => R): R {
    try {
      const conn = this.connection();
      return fn(conn, this.state(conn));
    } catch (err) {
      throw asStorageError(err);
    }
  }

  /** Like `use`, inside one write transaction (the index definitions read once it holds the write lock). */
  private async write<R>(fn: (conn: Connection, state: CollectionState) => R): Promise<R> {
    try {
      const conn = this.connection();
      return await conn.transaction(() => fn(conn, this.state(conn)));
    } catch (err) {
      throw asStorageError(err);
    }
  }

  async createIndexes(specs: IndexSpec[]): Promise<void> {
    for (const spec of specs) checkSpec(spec);
    await this.write((conn, state) => {
      for (const spec of specs) {
        const existing = state.indexes.get(spec.name);
        if (existing) {
          if (!sameSpec(existing.spec, spec)) throw invalidQuery(`index ${spec.name} already exists with a different definition`);
          continue;
        }
        const index = this.indexState(decodeValue<IndexSpec>(encodeValue(spec)), false);
        this.createIndexTable(conn, index);
        for (const row of conn.statement(`SELECT doc FROM ${this.docs}`).iterate() as Iterable<{ doc: string }>) {
          this.addKeys(conn, index, decodeDoc(row.doc));
        }
        conn
          .statement("INSERT INTO _indexes (collection, name, spec, multikey) VALUES (?, ?, ?, ?)")
          .run(this.name, spec.name, encodeValue(index.spec), index.multikey ? 1 : 0);
        state.indexes.set(spec.name, index);
      }
    });
  }

  async dropIndexes(names: string[]): Promise<void> {
    checkIndexNames(names);
    await this.write((conn, state) => {
      for (const name of names) {
        const index = state.indexes.get(name);
        if (!index) continue;
        conn.db.exec(`DROP TABLE ${index.table}`);
        conn.statement("DELETE FROM _indexes WHERE collection = ? AND name = ?").run(this.name, name);
        state.indexes.delete(name);
      }
    });
  }

  private createIndexTable(conn: Connection, index: IndexState): void {
    const n = index.keys.fields.length;
    const columns = Array.from({ length: n }, (_, i) => `${t(i)} INTEGER NOT NULL, ${v(i)} NOT NULL`).join(", ");
    const key = Array.from({ length: n }, (_, i) => `${t(i)}, ${v(i)}`).join(", ");
    // A unique index's primary key is its key columns alone: SQLite then refuses a second document.
    conn.db.exec(`CREATE TABLE ${index.table} (${columns}, id TEXT NOT NULL, PRIMARY KEY (${key}${index.unique ? "" : ", id"})) WITHOUT ROWID`);
  }

  // ------------------------------------------------------------------ writes of one document

  private keysOf(index: IndexState, doc: Doc): IndexedKeys {
    if (index.partial && !index.partial(doc)) return { tuples: [], multikey: false };
    return index.keys.of(doc);
  }

  private addKeys(conn: Connection, index: IndexState, doc: Doc, keys = this.keysOf(index, doc)): void {
    if (keys.tuples.length === 0) return;
    const insert = conn.statement(index.insertSql);
    for (const tuple of keys.tuples) {
      try {
        insert.run(...tuple, doc._id);
      } catch (err) {
        throw keyError(index, err, `document ${JSON.stringify(doc._id)}`);
      }
    }
    this.noteMultikey(conn, index, keys);
  }

  /** Like addKeys, except that the rows go through `pending` (see PendingRows). */
  private queueKeys(conn: Connection, index: IndexState, doc: Doc, pending: PendingRows): void {
    const keys = this.keysOf(index, doc);
    if (keys.tuples.length === 0) return;
    let rows = pending.get(index);
    if (!rows) {
      rows = [];
      pending.set(index, rows);
    }
    for (const tuple of keys.tuples) {
      for (const column of tuple) rows.push(column);
      rows.push(doc._id);
      if (rows.length === index.columns * ROWS_PER_INSERT) {
        this.insertRows(conn, index, index.insertManySql, rows);
        rows.length = 0;
      }
    }
    this.noteMultikey(conn, index, keys);
  }

  /** Stores that the index became multikey, in the write's transaction (a rollback undoes it: see inSavepoint). */
  private noteMultikey(conn: Connection, index: IndexState, keys: IndexedKeys): void {
    if (!keys.multikey || index.multikey) return;
    conn.statement("UPDATE _indexes SET multikey = 1 WHERE collection = ? AND name = ?").run(this.name, index.spec.name);
    index.multikey = true;
  }

  /** Writes the rows still pending (fewer than ROWS_PER_INSERT an index), one by one. */
  private flushRows(conn: Connection, pending: PendingRows): void {
    for (const [index, rows] of pending) {
      for (let i = 0; i < rows.length; i += index.columns) this.insertRows(conn, index, index.insertSql, rows.slice(i, i + index.columns));
    }
    pending.clear();
  }

  /** Flattened index rows through `sql` (insertSql or insertManySql). */
  private insertRows(conn: Connection, index: IndexState, sql: string, rows: KeyColumn[]): void {
    try {
      conn.statement(sql).run(...rows);
    } catch (err) {
      throw keyError(index, err, "a document of the batch");
    }
  }

  private removeKeys(conn: Connection, index: IndexState, doc: Doc, keys = this.keysOf(index, doc)): void {
    if (keys.tuples.length === 0) return;
    const remove = conn.statement(index.removeSql);
    for (const tuple of keys.tuples) remove.run(...tuple, doc._id);
  }

  /** Inserts a document; with `pending`, its index rows wait there (a bulk write's chunk). */
  private insertDoc(conn: Connection, state: CollectionState, doc: Doc, pending?: PendingRows): void {
    try {
      conn.statement(this.sql.insert).run(doc._id, encodeChecked(doc));
    } catch (err) {
      if (isDuplicateError(err)) throw new StorageError("DUPLICATE_KEY", `duplicate key in index _id_ (_id: ${JSON.stringify(doc._id)})`, "_id_");
      throw err;
    }
    for (const index of state.indexes.values()) {
      if (pending) this.queueKeys(conn, index, doc, pending);
      else this.addKeys(conn, index, doc);
    }
  }

  /** Replaces a document; index rows are touched only where its keys changed (a counter bump touches none). */
  private replaceDoc(conn: Connection, state: CollectionState, before: Doc, after: Doc): void {
    conn.statement(this.sql.update).run(encodeChecked(after), after._id);
    for (const index of state.indexes.values()) {
      const old = this.keysOf(index, before);
      const next = this.keysOf(index, after);
      if (sameKeys(old, next)) continue;
      this.removeKeys(conn, index, before, old);
      this.addKeys(conn, index, after, next);
    }
  }

  private deleteDoc(conn: Connection, state: CollectionState, before: Doc): void {
    conn.statement(this.sql.delete).run(before._id);
    for (const index of state.indexes.values()) this.removeKeys(conn, index, before);
  }

  // ------------------------------------------------------------------ planning

  /**
   * A partial index holds every match only when the filter's equalities imply its partial filter: with
   * `$in` lists, every combination of their values must (a match equals one of them in each field).
   */
  private partialCovered(index: IndexState, eq: Map<string, unknown[]>, filter?: Filter): boolean {
    if (!index.partial) return true;
    if (filter && rangeImpliesType(index.spec.partial!, filter)) return true;
    const fields = filterFields(index.spec.partial!);
    if (!fields) return false;
    let combinations: [string, unknown][][] = [[]];
    for (const f of fields) {
      const values = eq.get(f);
      if (!values || values.length === 0 || combinations.length * values.length > MAX_PREFIXES) return false;
      combinations = combinations.flatMap((combination) => values.map((value): [string, unknown][] => [...combination, [f, value]]));
    }
    return combinations.every((combination) => {
      const probe: Record<string, unknown> = {};
      const missing: Record<string, unknown> = {};
      for (const [f, value] of combination) {
        setPath(probe, f, value);
        // `{ f: null }` also matches documents without f: the index must hold those too.
        if (value !== null) setPath(missing, f, value);
      }
      return index.partial!(probe as Doc) && index.partial!(missing as Doc);
    });
  }

  /** The key prefixes of `index` that the filter's equalities fix (their cross product), or null. */
  private prefixesOf(index: IndexState, eq: Map<string, unknown[]>, singleOnly: boolean): KeyColumn[][] | null {
    let prefixes: KeyColumn[][] = [[]];
    for (const field of index.keys.fields) {
      const values = eq.get(field);
      if (!values || (singleOnly && values.length !== 1)) break;
      if (prefixes.length * values.length > MAX_PREFIXES) break;
      if (values.length === 1) {
        // The common case (an equality): no duplicates to drop, no cross product to build.
        const key = keyOf(values[0]);
        for (const prefix of prefixes) prefix.push(...key);
        continue;
      }
      const keys = [...new Map(values.map((value) => [JSON.stringify(keyOf(value)), keyOf(value)])).values()];
      prefixes = prefixes.flatMap((prefix) => keys.map((key) => [...prefix, ...key]));
    }
    return prefixes[0].length === 0 ? null : prefixes;
  }

  /** The filter's range on the key after the prefix of `p` fields, in key columns. */
  private keyRange(index: IndexState, p: number, filter: Filter): KeyRange | undefined {
    const field = index.keys.fields[p];
    let bounds = field === undefined ? undefined : rangeBounds(filter, field);
    if (!bounds) return undefined;
    // On an array field, `$gte` and `$lt` may each be met by a different element: only one side bounds it.
    if (index.multikey && !bounds.oneElement && bounds.lower && bounds.upper) bounds = { lower: bounds.lower, oneElement: false };
    const lower = bounds.lower && keyOf(bounds.lower.value);
    const upper = bounds.upper && keyOf(bounds.upper.value);
    const rank = (lower ?? upper)![0];
    return {
      rank,
      ...(lower ? { lower: { v: lower[1], inclusive: bounds.lower!.inclusive } } : {}),
      ...(upper ? { upper: { v: upper[1], inclusive: bounds.upper!.inclusive } } : {}),
    };
  }

  /** The WHERE of an index source (`alias` before each column) and what follows its prefix's values. */
  private where(source: Source & { kind: "index" }, alias: string): { sql: string; rangeParams: KeyColumn[]; shape: string } {
    const p = source.prefixes[0].length / 2;
    const range = this.rangeWhere(source, alias);
    // The SQL depends only on the alias, the prefix's length and the range's operators: built once per index.
    const { lower, upper } = source.range ?? {};
    const shape = `${alias}${p}${lower ? (lower.inclusive ? "[" : "(") : ""}${upper ? (upper.inclusive ? "]" : ")") : ""}`;
    let sql = source.index.whereSql.get(shape);
    if (sql === undefined) {
      const parts = Array.from({ length: p }, (_, i) => `${alias}${t(i)} = ? AND ${alias}${v(i)} = ?`);
      if (range.sql) parts.push(range.sql);
      sql = parts.join(" AND ");
      source.index.whereSql.set(shape, sql);
    }
    return { sql, rangeParams: range.rangeParams, shape };
  }

  /** The WHERE of an index source's range alone (empty without one). */
  private rangeWhere(source: Source & { kind: "index" }, alias: string): { sql: string; rangeParams: KeyColumn[] } {
    const p = source.prefixes[0].length / 2;
    const range = source.range;
    if (!range) return { sql: "", rangeParams: [] };
    const parts = [`${alias}${t(p)} = ?`];
    const rangeParams: KeyColumn[] = [range.rank];
    if (range.lower) {
      parts.push(`${alias}${v(p)} ${range.lower.inclusive ? ">=" : ">"} ?`);
      rangeParams.push(range.lower.v);
    }
    if (range.upper) {
      parts.push(`${alias}${v(p)} ${range.upper.inclusive ? "<=" : "<"} ?`);
      rangeParams.push(range.upper.v);
    }
    return { sql: parts.join(" AND "), rangeParams };
  }

  /**
   * The WHERE that selects any of a batch of up to LOOKUP_BATCH prefixes of an index source (`alias`
   * before each column), then its range, and the parameters of each batch. The leading key fields that
   * every prefix shares (a store_id) are plain equalities; the rest go in a row-value IN list (that ran
   * in a third of the time of an IN list of whole prefixes). A short batch repeats its last prefix: one
   * statement serves every batch.
   */
  private prefixBatches(source: Source & { kind: "index" }, alias: string): { sql: string; paramsOf: (batch: KeyColumn[][]) => KeyColumn[] } {
    const { prefixes } = source;
    const n = prefixes[0].length / 2;
    let shared = 0;
    while (shared < n - 1 && prefixes.every((prefix) => prefix[2 * shared] === prefixes[0][2 * shared] && prefix[2 * shared + 1] === prefixes[0][2 * shared + 1]))
      shared++;
    const equalities = Array.from({ length: shared }, (_, i) => `${alias}${t(i)} = ? AND ${alias}${v(i)} = ? AND `).join("");
    const columns = Array.from({ length: n - shared }, (_, i) => `${alias}${t(shared + i)}, ${alias}${v(shared + i)}`).join(", ");
    const tuple = `(${"?, ".repeat(2 * (n - shared) - 1)}?)`;
    const range = this.rangeWhere(source, alias);
    return {
      sql: `${equalities}(${columns}) IN (VALUES ${Array(LOOKUP_BATCH).fill(tuple).join(", ")})${range.sql ? ` AND ${range.sql}` : ""}`,
      paramsOf: (batch) => {
        const params = prefixes[0].slice(0, 2 * shared);
        for (let i = 0; i < LOOKUP_BATCH; i++) params.push(...batch[Math.min(i, batch.length - 1)].slice(2 * shared));
        return [...params, ...range.rangeParams];
      },
    };
  }

  /** How many index rows a source selects, counted up to `cap` (so estimating stays cheap). */
  private rangeSize(conn: Connection, source: Source & { kind: "index" }, cap: number): number {
    const { prefixes } = source;
    if (prefixes.length === 1) {
      const { sql, rangeParams } = this.where(source, "");
      const count = conn.statement(`SELECT count(*) AS n FROM (SELECT 1 FROM ${source.index.table} WHERE ${sql} LIMIT ?)`);
      return (count.get(...prefixes[0], ...rangeParams, cap + 1) as { n: number }).n;
    }
    const batches = this.prefixBatches(source, "");
    const count = conn.statement(`SELECT count(*) AS n FROM (SELECT 1 FROM ${source.index.table} WHERE ${batches.sql} LIMIT ?)`);
    let total = 0;
    for (let i = 0; i < prefixes.length && total <= cap; i += LOOKUP_BATCH) {
      total += (count.get(...batches.paramsOf(prefixes.slice(i, i + LOOKUP_BATCH)), cap - total + 1) as { n: number }).n;
    }
    return total;
  }

  /**
   * The smallest index range the filter's equalities (and a range after them) select, with its (capped)
   * size. When the caller does not need the size and one index alone can serve, nothing is counted (the
   * size is then NaN): a lookup like "this profile's sessions" costs one query, not two.
   */
  private smallestRange(
    conn: Connection,
    state: CollectionState,
    filter: Filter,
    eq: Map<string, unknown[]>,
    needSize = true,
  ): { source: Source & { kind: "index" }; size: number } | undefined {
    const candidates: Array<{ source: Source & { kind: "index" }; width: number }> = [];
    for (const index of state.indexes.values()) {
      if (!this.partialCovered(index, eq, filter)) continue;
      const prefixes = this.prefixesOf(index, eq, false) ?? [[]];
      const p = prefixes[0].length / 2;
      const range = this.keyRange(index, p, filter);
      if (p === 0 && !range) continue;
      const source: Source & { kind: "index" } = { kind: "index", index, prefixes, ...(range ? { range } : {}) };
      const fixesAll = p === index.keys.fields.length;
      // Point lookups on a unique index (at most MAX_PREFIXES, one row each) need no counting and no rival.
      if (index.unique && fixesAll && !index.multikey) return { source, size: prefixes.length };
      candidates.push({ source, width: 2 * p + (range ? 1 : 0) });
    }
    if (candidates.length === 1 && !needSize) return { source: candidates[0].source, size: Number.NaN };
    let best: { source: Source & { kind: "index" }; size: number; width: number } | undefined;
    // Indexes that start with the same fields select the same rows for the same prefix (when neither is
    // partial or multikey): count such a range once (profiles' indexes all start with store_id).
    const counted = new Map<string, number>();
    for (const { source, width } of candidates) {
      const { index } = source;
      const p = source.prefixes[0].length / 2;
      const cap = best ? Math.min(best.size, SMALL_RANGE + 1) : SMALL_RANGE + 1;
      const sameRows = !index.partial && !index.multikey && !source.range ? `${index.keys.fields.slice(0, p).join("\u0000")}|${cap}` : undefined;
      const known = sameRows === undefined ? undefined : counted.get(sameRows);
      const size = known ?? this.rangeSize(conn, source, cap);
      if (sameRows !== undefined && known === undefined) counted.set(sameRows, size);
      if (!best || size < best.size || (size === best.size && width > best.width)) best = { source, size, width };
    }
    return best && { source: best.source, size: best.size };
  }

  /**
   * An index that yields the filter's matches in `sort` order: its leading fields fixed by single
   * equalities, then the sort field (then `_id`, implicit in every non-unique index). `_id` order
   * comes from an index whose every field is fixed, or from the table itself.
   */
  private sortedSource(state: CollectionState, eq: Map<string, unknown[]>, sort: [string, SortDirection][]): Source | undefined {
    const [field, direction] = sort[0];
    const tail = sort.slice(1);
    if (tail.length > 1 || (tail.length === 1 && (tail[0][0] !== "_id" || tail[0][1] !== direction))) return undefined;
    let best: { source: Source & { kind: "index" }; p: number } | undefined;
    for (const index of state.indexes.values()) {
      if (index.multikey || !this.partialCovered(index, eq)) continue;
      const prefixes = this.prefixesOf(index, eq, true) ?? [[]];
      const p = prefixes[0].length / 2;
      const fields = index.keys.fields;
      const serves = field === "_id" ? p === fields.length : fields[p] === field && p === fields.length - 1;
      if (serves && p > 0 && (!best || p > best.p)) best = { source: { kind: "index", index, prefixes }, p };
    }
    if (best) return best.source;
    return field === "_id" && tail.length === 0 ? { kind: "table" } : undefined;
  }

  private plan(conn: Connection, state: CollectionState, filter: Filter, sort?: [string, SortDirection][]): Plan {
    const eq = equalityValues(filter);
    if (matchesNothing(eq)) return { source: { kind: "ids", ids: [] }, sorted: false };
    const ids = eq.get("_id");
    if (ids) return { source: { kind: "ids", ids: [...new Set(ids.filter((id): id is string => typeof id === "string"))] }, sorted: false };
    if (sort) {
      // An index whose fixed prefix is the whole filter yields exactly the matches, in order: nothing can beat it, so nothing is counted.
      const sorted = this.sortedSource(state, eq, sort);
      if (sorted?.kind === "index" && prefixIsWholeFilter(sorted, filter)) return { source: sorted, sorted: true };
    }
    const range = this.smallestRange(conn, state, filter, eq, sort !== undefined);
    if (sort) {
      if (range && range.size <= SMALL_RANGE) return { source: range.source, sorted: false };
      const sorted = this.sortedSource(state, eq, sort);
      // The table in `_id` order walks every other store's documents too: a range read whole is better while it is within the budget.
      if (sorted?.kind === "table" && range && this.rangeSize(conn, range.source, EXAMINE_BUDGET) <= EXAMINE_BUDGET) return { source: range.source, sorted: false };
      if (sorted) return { source: sorted, sorted: true };
    }
    return { source: range?.source ?? { kind: "table" }, sorted: false };
  }

  // ------------------------------------------------------------------ reading rows

  /** The columns a source's rows come ordered by (and resume from). */
  private orderOf(source: Source): string[] {
    if (source.kind !== "index") return ["id"];
    const p = source.prefixes[0].length / 2;
    const n = source.index.keys.fields.length;
    const order: string[] = [];
    for (let i = p; i < n; i++) order.push(t(i), v(i));
    // A unique index has no ties once the prefix is fixed: its rows are ordered by the key alone.
    if (!source.index.unique || p === n) order.push("id");
    return order;
  }

  /**
   * The rows of `source`, in its order (`direction`), starting strictly after `start` (values of the
   * source's order columns; not with several prefixes). Reads a chunk of rows per query, so a walk that
   * stops early reads little.
   */
  private *rows(conn: Connection, source: Source, direction: SortDirection = 1, start?: KeyColumn[], firstChunk = FIRST_CHUNK): Generator<Row> {
    if (source.kind === "ids") {
      const get = conn.statement(this.sql.byId);
      for (const id of source.ids) {
        if (start && id <= (start[0] as string)) continue;
        const row = get.get(id) as Row | undefined;
        if (row) yield row;
      }
      return;
    }
    if (source.kind === "table") {
      const key = `${this.name}\u0000walk${direction}`;
      let keyset = conn.cache.get(key) as KeysetWalk | undefined;
      if (!keyset) {
        keyset = new KeysetWalk(conn, `SELECT id, doc FROM ${this.docs}`, "", ["id"], direction, "");
        conn.cache.set(key, keyset);
      }
      yield* this.walk(keyset, [], start, firstChunk);
      return;
    }
    const { index, prefixes } = source;
    const { sql: fixed, rangeParams, shape } = this.where(source, "k.");
    const key = `${shape}|${direction}`;
    let keyset = index.walks.get(key);
    if (!keyset) {
      const order = this.orderOf(source);
      const select = `SELECT d.id AS id, d.doc AS doc${order.map((c) => `, k.${c} AS ${c}`).join("")} FROM ${index.table} AS k CROSS JOIN ${this.docs} AS d ON d.id = k.id`;
      keyset = new KeysetWalk(conn, select, fixed, order, direction, "k.");
      index.walks.set(key, keyset);
    }
    const walk = keyset;
    const walkOne = (prefix: KeyColumn[], from?: KeyColumn[]) => this.walk(walk, [...prefix, ...rangeParams], from, firstChunk);
    if (prefixes.length === 1) {
      const rows = walkOne(prefixes[0], start);
      // An array field gives a document a row per element.
      yield* index.multikey ? distinct(rows) : rows;
      return;
    }
    yield* distinct(this.prefixRows(conn, source, walkOne));
  }

  /**
   * The rows of several key prefixes (`$in` lists), in no particular order, LOOKUP_BATCH prefixes per
   * query: a query per prefix made a page of 100 profiles' sessions 100 queries. A batch with more than
   * MAX_CHUNK rows is read again prefix by prefix with `walkOne`, in growing chunks, so a reader that
   * stops early never reads a large range whole (whole keys of a unique index have a row each at most).
   */
  private *prefixRows(conn: Connection, source: Source & { kind: "index" }, walkOne: (prefix: KeyColumn[]) => Iterable<Row>): Generator<Row> {
    const { index, prefixes } = source;
    const wholeKeys = index.unique && prefixes[0].length === 2 * index.keys.fields.length;
    const batches = this.prefixBatches(source, "k.");
    const select = conn.statement(
      `SELECT d.id AS id, d.doc AS doc FROM ${index.table} AS k CROSS JOIN ${this.docs} AS d ON d.id = k.id WHERE ${batches.sql}${wholeKeys ? "" : ` LIMIT ${MAX_CHUNK + 1}`}`,
    );
    for (let i = 0; i < prefixes.length; i += LOOKUP_BATCH) {
      const batch = prefixes.slice(i, i + LOOKUP_BATCH);
      this.queries++;
      const rows = select.all(...batches.paramsOf(batch)) as Row[];
      if (wholeKeys || rows.length <= MAX_CHUNK) yield* rows;
      else for (const prefix of batch) yield* walkOne(prefix);
    }
  }

  /** Keyset walk: the walk's rows after `start` (values of its order columns), a growing chunk at a time. */
  private *walk(keyset: KeysetWalk, params: KeyColumn[], start: KeyColumn[] | undefined, firstChunk = FIRST_CHUNK): Generator<Row> {
    let cursor = start;
    let chunk = firstChunk;
    for (;;) {
      this.queries++;
      const rows = (cursor ? keyset.next(chunk).all(...params, ...cursor) : keyset.first(chunk).all(...params)) as Row[];
      for (const row of rows) yield row;
      if (rows.length < chunk) return;
      chunk = Math.min(chunk * 2, MAX_CHUNK);
      const last = rows[rows.length - 1];
      cursor = keyset.order.map((c) => last[c]);
    }
  }

  /** The keyset position of `after` in the order columns of `source`. */
  private startOf(source: Source, after: { value: unknown; id: string }): KeyColumn[] {
    const order = this.orderOf(source);
    return order.length === 1 ? [after.id] : order[order.length - 1] === "id" ? [...keyOf(after.value), after.id] : [...keyOf(after.value)];
  }

  /** The matching documents, as the plan finds them, within the examine budget. */
  private select(conn: Connection, state: CollectionState, filter: Filter, options: SelectOptions = {}): Doc[] {
    validateFilter(filter);
    const matcher = compileFilter(filter);
    const limit = options.limit ?? Number.POSITIVE_INFINITY;
    const sort = options.sort;
    const plan = this.plan(conn, state, filter, sort);
    const after = options.after;
    const direction = plan.sorted && sort ? sort[0][1] : 1;
    const start = plan.sorted && after ? this.startOf(plan.source, after) : undefined;
    const keyset = !plan.sorted && after && sort ? afterKeyset(sort[0][0], sort[0][1], after) : null;
    const out: Doc[] = [];
    let examined = 0;
    this.queries = 0;
    for (const row of this.rows(conn, plan.source, direction, start, firstChunkFor(limit))) {
      examined++;
      const doc = decodeDoc(row.doc);
      if (matcher(doc) && (!keyset || keyset(doc))) {
        out.push(doc);
        if (out.length >= limit && (plan.sorted || !sort)) break;
      }
      const kept = options.all ? out.length : Math.min(out.length, limit);
      if (examined - kept > EXAMINE_BUDGET) throw scanLimit(examined - kept);
    }
    this.lastExamined = examined;
    this.lastQueries = this.queries;
    if (sort && !plan.sorted) {
      out.sort(sortComparator(sort));
      if (out.length > limit) out.length = limit;
    }
    return out;
  }

  // ------------------------------------------------------------------ the port

  async insertOne(doc: T): Promise<void> {
    if (!isPlainObject(doc)) throw invalidQuery("a document must be a plain object");
    if (typeof doc._id !== "string" || doc._id.length === 0) throw invalidQuery("a document needs a string _id");
    await this.write((conn, state) => this.insertDoc(conn, state, doc));
  }

  async findOne(filter: Filter): Promise<T | null> {
    const [doc] = this.use((conn, state) => this.select(conn, state, filter, { limit: 1 }));
    return (doc as T) ?? null;
  }

  async find(filter: Filter, options: FindOptions = {}): Promise<T[]> {
    const limit = options.limit === undefined || options.limit === 0 ? MAX_FIND_LIMIT : checkLimit(options.limit, "limit");
    const sort = sortEntries(options.sort);
    return this.use((conn, state) => this.select(conn, state, filter, { sort, limit })) as T[];
  }

  async findPage(request: PageRequest): Promise<Page<T>> {
    const limit = checkLimit(request.limit, "limit");
    const { field, direction } = request.sort ?? ({} as PageRequest["sort"]);
    if (typeof field !== "string" || (direction !== 1 && direction !== -1)) throw invalidQuery("findPage needs sort { field, direction }");
    if (request.after !== undefined && typeof request.after?.id !== "string") throw invalidQuery("after.id must be a string");
    const sort: [string, SortDirection][] =
      field === "_id"
        ? [["_id", direction]]
        : [
            [field, direction],
            ["_id", direction],
          ];
    const docs = this.use((conn, state) => this.select(conn, state, request.filter, { sort, limit: limit + 1, after: request.after }));
    const hasMore = docs.length > limit;
    if (hasMore) docs.length = limit;
    return { items: docs as T[], hasMore };
  }

  async *stream(filter: Filter, options: StreamOptions = {}): AsyncIterable<T> {
    const batchSize = options.batchSize === undefined ? 500 : checkLimit(options.batchSize, "batchSize");
    validateFilter(filter);
    const matcher = compileFilter(filter);
    const plan = this.use((conn, state) => this.streamPlan(conn, state, filter));
    const stats: StreamStats = { plan: plan.kind === "range" ? "range" : plan.source.kind, passes: 0, heldIds: 0, passRows: 0, batchRows: 0 };
    this.lastStream = stats;
    // Each batch is a fresh read of documents after the last `_id` read: writers run between batches,
    // and a document the consumer changes is never met again (the walk is in `_id` order, not the index's).
    const batches = plan.kind === "range" ? this.rangeBatches(plan.source, batchSize, stats) : this.rowBatches(plan.source, batchSize, undefined, stats);
    for await (const rows of batches) {
      stats.batchRows = Math.max(stats.batchRows, rows.length);
      for (const row of rows) {
        const doc = decodeDoc<T>(row.doc);
        if (matcher(doc)) yield doc;
      }
    }
  }

  /**
   * What a stream walks, in `_id` order: the filter's `_id`s; an index whose every field the filter
   * fixes (its rows are in `_id` order); the smallest index range, in windows of `_id`s (rangeBatches);
   * or the table.
   */
  private streamPlan(conn: Connection, state: CollectionState, filter: Filter): StreamPlan {
    const eq = equalityValues(filter);
    if (matchesNothing(eq)) return { kind: "rows", source: { kind: "ids", ids: [] } };
    const ids = eq.get("_id");
    if (ids) return { kind: "rows", source: { kind: "ids", ids: [...new Set(ids.filter((id): id is string => typeof id === "string"))].sort() } };
    const byId = this.sortedSource(state, eq, [["_id", 1]]);
    if (byId?.kind === "index") return { kind: "rows", source: byId };
    const range = this.smallestRange(conn, state, filter, eq, false)?.source;
    return range ? { kind: "range", source: range } : { kind: "rows", source: { kind: "table" } };
  }

  /**
   * Rows of `source` after `after` (an `_id`; the source is in `_id` order), `batchSize` per fresh read,
   * the event loop free between two reads.
   */
  private async *rowBatches(source: Source, batchSize: number, after: string | undefined, stats: StreamStats): AsyncGenerator<Row[]> {
    stats.plan = source.kind;
    for (let first = true; ; first = false) {
      if (!first) await nextTick();
      const rows = this.use((conn) => {
        const out: Row[] = [];
        for (const row of this.rows(conn, source, 1, after === undefined ? undefined : [after])) {
          out.push(row);
          if (out.length >= batchSize) break;
        }
        return out;
      });
      if (rows.length > 0) after = rows[rows.length - 1].id;
      yield rows;
      if (rows.length < batchSize) return;
    }
  }

  /**
   * The documents of an index range in `_id` order without holding all its ids: a pass over the
   * range's index rows (in chunks, the event loop free between them) keeps the `streamWindow` smallest
   * `_id`s after the last one read; their documents are read `batchSize` at a time; then the next pass.
   * A range of many windows costs a pass each: when the table holds few documents outside the range
   * (a walk of the table reads each once, at about ROW_COST index rows), the table is walked instead
   * after the first window.
   */
  private async *rangeBatches(source: Source & { kind: "index" }, batchSize: number, stats: StreamStats): AsyncGenerator<Row[]> {
    let after: string | undefined;
    for (;;) {
      const pass = await this.idWindow(source, after, stats);
      for (let i = 0; i < pass.ids.length; i += batchSize) {
        await nextTick();
        const ids = pass.ids.slice(i, i + batchSize);
        yield this.use((conn) => [...this.rows(conn, { kind: "ids", ids })]);
      }
      if (pass.complete) return;
      after = pass.ids[pass.ids.length - 1];
      // Each pass reads the whole range again, and about as many are left as windows of documents after
      // this one; a walk of the table reads every document once, those outside the range in vain.
      const passesLeft = Math.ceil((pass.after / pass.keysPerDoc - pass.ids.length) / this.streamWindow);
      const outside = Math.max(0, this.use((conn) => this.tableRows(conn)) - pass.rows / pass.keysPerDoc);
      if (outside * ROW_COST < passesLeft * pass.rows) {
        yield* this.rowBatches({ kind: "table" }, batchSize, after, stats);
        return;
      }
    }
  }

  /**
   * One pass over the index rows of `source`: the `streamWindow` smallest distinct `_id`s after `after`
   * (in code point order, SQLite's), whether they are all there are, how many rows the pass read, how
   * many of them lay after `after`, and about how many rows a document has (a multikey index, `$in`s).
   */
  private async idWindow(
    source: Source & { kind: "index" },
    after: string | undefined,
    stats: StreamStats,
  ): Promise<{ ids: string[]; complete: boolean; rows: number; after: number; keysPerDoc: number }> {
    stats.passes++;
    const window = this.streamWindow;
    const order = this.orderOf(source);
    let kept: string[] = [];
    /** Once the window is full: no `_id` from this one on belongs in it. */
    let bound: string | undefined;
    let complete = true;
    let rows = 0;
    let rowsAfter = 0;
    /** Ids read into the window, how many of them were new to it, and how many it held after a shrink. */
    let sorted = 0;
    let distinct = 0;
    let carried = 0;
    // JS compares strings faster than compareStrings, and in the same order until an `_id` holds a unit from U+D800 on.
    let exotic = after !== undefined && OUT_OF_ORDER.test(after);
    const less = (a: string, b: string) => (exotic ? compareStrings(a, b) < 0 : a < b);
    const shrink = () => {
      sorted += kept.length - carried;
      kept = distinctSorted(kept, exotic);
      distinct += kept.length - carried;
      if (kept.length > window) {
        kept.length = window;
        bound = kept[window - 1];
        complete = false;
      }
      carried = kept.length;
    };
    for (const prefix of source.prefixes) {
      let cursor: KeyColumn[] | undefined;
      for (;;) {
        const chunk = this.use((conn) => this.indexChunk(conn, source, prefix, order, cursor));
        stats.passRows = Math.max(stats.passRows, chunk.length);
        rows += chunk.length;
        for (const row of chunk) {
          const id = row.id as string;
          if (!exotic && OUT_OF_ORDER.test(id)) exotic = true;
          if (after !== undefined && !less(after, id)) continue;
          rowsAfter++;
          if (bound !== undefined && !less(id, bound)) {
            if (id !== bound) complete = false;
            continue;
          }
          kept.push(id);
          if (kept.length >= 2 * window) shrink();
        }
        stats.heldIds = Math.max(stats.heldIds, kept.length);
        if (chunk.length < this.streamChunk) break;
        const last = chunk[chunk.length - 1];
        cursor = order.map((c) => last[c]);
        await nextTick();
      }
    }
    shrink();
    return { ids: kept, complete, rows, after: rowsAfter, keysPerDoc: distinct > 0 ? sorted / distinct : 1 };
  }

  /** Up to `streamChunk` index rows of one prefix of `source` (id and order columns), after `cursor` in index order. */
  private indexChunk(conn: Connection, source: Source & { kind: "index" }, prefix: KeyColumn[], order: string[], cursor: KeyColumn[] | undefined): Row[] {
    const { sql, rangeParams } = this.where(source, "");
    const columns = [...new Set(["id", ...order])].join(", ");
    const orderBy = order.join(", ");
    const after = cursor ? ` AND (${orderBy}) > (${order.map(() => "?").join(", ")})` : "";
    const select = conn.statement(`SELECT ${columns} FROM ${source.index.table} WHERE ${sql}${after} ORDER BY ${orderBy} LIMIT ${this.streamChunk}`);
    return select.all(...prefix, ...rangeParams, ...(cursor ?? [])) as Row[];
  }

  /** About how many documents the table holds (its largest rowid: deletions leave gaps), read in O(log n). */
  private tableRows(conn: Connection): number {
    return (conn.statement(`SELECT max(rowid) AS n FROM ${this.docs}`).get() as { n: number | null }).n ?? 0;
  }

  async count(filter: Filter): Promise<number> {
    return this.use((conn, state) => this.select(conn, state, filter, { all: true }).length);
  }

  async updateOne(filter: Filter, update: Update, options: UpdateOptions = {}): Promise<UpdateResult> {
    const r = await this.write((conn, state) => this.updateFirst(conn, state, filter, normalizeUpdate(update), options.upsert === true));
    return { matched: r.matched, modified: r.modified, ...(r.upsertedId ? { upsertedId: r.upsertedId } : {}) };
  }

  async findOneAndUpdate(filter: Filter, update: Update, options: FindOneAndUpdateOptions = {}): Promise<T | null> {
    const r = await this.write((conn, state) => this.updateFirst(conn, state, filter, normalizeUpdate(update), options.upsert === true));
    return ((options.returnDocument === "before" ? r.before : r.after) as T | undefined) ?? null;
  }

  private updateFirst(conn: Connection, state: CollectionState, filter: Filter, update: Update, upsert: boolean): UpdateResult & { before?: Doc; after?: Doc } {
    const [before] = this.select(conn, state, filter, { limit: 1 });
    if (before) {
      const after = applyUpdate(before, update, false);
      if (!after) return { matched: 1, modified: 0, before, after: before };
      this.replaceDoc(conn, state, before, after);
      return { matched: 1, modified: 1, before, after };
    }
    if (!upsert) return { matched: 0, modified: 0 };
    const seed = upsertSeed(filter) as Doc;
    const created = applyUpdate(seed, update, true)!;
    if (seed._id !== undefined && created._id !== seed._id) throw invalidQuery("an upsert cannot set an _id other than the filter's");
    if (created._id === undefined) created._id = uuidv7();
    if (typeof created._id !== "string" || created._id.length === 0) throw invalidQuery("an upserted document needs a string _id");
    this.insertDoc(conn, state, created);
    return { matched: 0, modified: 0, upsertedId: created._id, after: created };
  }

  async updateMany(filter: Filter, update: Update): Promise<UpdateResult> {
    const normalized = normalizeUpdate(update);
    return this.write((conn, state) => {
      const matches = this.select(conn, state, filter, { all: true });
      let modified = 0;
      for (const before of matches) {
        const after = applyUpdate(before, normalized, false);
        if (!after) continue;
        this.replaceDoc(conn, state, before, after);
        modified++;
      }
      return { matched: matches.length, modified };
    });
  }

  async deleteOne(filter: Filter): Promise<number> {
    return this.write((conn, state) => {
      const [before] = this.select(conn, state, filter, { limit: 1 });
      if (before) this.deleteDoc(conn, state, before);
      return before ? 1 : 0;
    });
  }

  async deleteMany(filter: Filter): Promise<number> {
    return this.write((conn, state) => {
      const matches = this.select(conn, state, filter, { all: true });
      for (const before of matches) this.deleteDoc(conn, state, before);
      return matches.length;
    });
  }

  /**
   * The ops in order, in chunks of at most BULK_CHUNK_OPS ops (fewer once one has run BULK_CHUNK_MS), a
   * transaction each, the event loop free between two. So, as with MongoDB's unordered bulkWrite, a batch
   * is not atomic: another caller's write may land between two chunks, and a call that fails (UNAVAILABLE)
   * may leave its first chunks written. The results are one per op, in order, whatever the chunks.
   */
  async bulkWrite(ops: BulkOp<T>[]): Promise<BulkItemResult[]> {
    if (!Array.isArray(ops)) throw invalidQuery("bulkWrite takes an array of operations");
    const results: BulkItemResult[] = [];
    while (results.length < ops.length) {
      if (results.length > 0) await nextTick();
      const from = results.length;
      results.push(...(await this.write((conn, state) => this.bulkChunk(conn, state, ops, from))));
    }
    return results;
  }

  /**
   * The ops of one chunk, from `from` on. A savepoint per op (a failed op undone alone and reported) costs
   * about as much as the op itself, so the chunk is first tried whole under one savepoint, its inserts'
   * index rows written ROWS_PER_INSERT a statement; only a chunk in which an op fails is undone and run
   * again op by op.
   */
  private bulkChunk(conn: Connection, state: CollectionState, ops: BulkOp<T>[], from: number): BulkItemResult[] {
    const deadline = performance.now() + this.bulkChunkLimits.ms;
    const last = Math.min(ops.length, from + this.bulkChunkLimits.ops);
    let end = from;
    try {
      return this.inSavepoint(conn, state, () => {
        const pending: PendingRows = new Map();
        const results: BulkItemResult[] = [];
        while (end < last && (end === from || performance.now() < deadline)) results.push(this.applyOp(conn, state, ops[end++], pending));
        this.flushRows(conn, pending);
        return results;
      });
    } catch (err) {
      if (!isReportable(asStorageError(err))) throw err;
      // `end` counts the op that failed: the chunk is every op tried.
      return ops.slice(from, end).map((op) => this.bulkItem(conn, state, op));
    }
  }

  /**
   * `fn` in a savepoint. A rollback also undoes the stored multikey flag an index got meanwhile, so the
   * in-memory flags go back as they were (else the next write would not store the flag again).
   */
  private inSavepoint<R>(conn: Connection, state: CollectionState, fn: () => R): R {
    const flags = [...state.indexes.values()].map((index) => [index, index.multikey] as const);
    try {
      return conn.savepoint(fn);
    } catch (err) {
      for (const [index, multikey] of flags) index.multikey = multikey;
      throw err;
    }
  }

  /** One op in its own savepoint: when it fails with a reportable error, only it is undone. */
  private bulkItem(conn: Connection, state: CollectionState, op: BulkOp<T>): BulkItemResult {
    try {
      return this.inSavepoint(conn, state, () => this.applyOp(conn, state, op));
    } catch (err) {
      const e = asStorageError(err) as StorageError;
      if (!isReportable(e)) throw e;
      return { ok: false, error: { code: e.code, message: e.message, ...(e.index ? { index: e.index } : {}) } };
    }
  }

  /** One op; with `pending`, an insert's index rows wait there, and they are written before an op that reads. */
  private applyOp(conn: Connection, state: CollectionState, op: BulkOp<T>, pending?: PendingRows): BulkItemResult {
    if (op && "insertOne" in op) {
      const doc = op.insertOne.document;
      if (!isPlainObject(doc) || typeof doc._id !== "string" || doc._id.length === 0) throw invalidQuery("a document needs a string _id");
      this.insertDoc(conn, state, doc, pending);
      return { ok: true, inserted: true };
    }
    if (pending) this.flushRows(conn, pending);
    if (op && "updateOne" in op) {
      const { filter, update, upsert } = op.updateOne;
      const r = this.updateFirst(conn, state, filter, normalizeUpdate(update), upsert === true);
      return { ok: true, matched: r.matched, modified: r.modified, ...(r.upsertedId ? { upsertedId: r.upsertedId } : {}) };
    }
    if (op && "deleteOne" in op) {
      const [before] = this.select(conn, state, op.deleteOne.filter, { limit: 1 });
      if (before) this.deleteDoc(conn, state, before);
      return { ok: true, deleted: before ? 1 : 0 };
    }
    throw invalidQuery("unknown bulk operation");
  }
}
