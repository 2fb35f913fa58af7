/**
 * The embedded storage adapter: an in-process engine per collection (see embedded/engine.ts), memory
 * only (tests) or file-backed under one directory per database (see embedded/persistence.ts). This is
 * what `npm start` and CI run on.
 *
 * Opening the same database twice in one process shares one store (each `openEmbeddedDatabase` call
 * gets its own handle; the store closes with its last handle). A memory store is discarded when its
 * last handle closes; a file store keeps its data on disk.
 */
import { resolve } from "node:path";
import type { BulkItemResult, BulkOp, Collection, Database, Doc, Filter, FindOneAndUpdateOptions, FindOptions, IndexSpec, Page, PageRequest, StreamOptions, Update, UpdateOptions, UpdateResult } from "./port";
import { StorageError } from "./port";
import { CollectionEngine, MAX_FIND_LIMIT, type LogRecord } from "./embedded/engine";
import { DatabaseFiles } from "./embedded/persistence";
import { invalidQuery } from "./query/rules";
import { cloneValue } from "./query/values";

export interface EmbeddedOptions {
  /** Directory of a file-backed database; memory only when absent. */
  dir?: string;
  /** fsync after every write batch (default false: a process crash loses nothing acknowledged, an OS crash may). */
  fsync?: boolean;
}

const NAME_RE = /^[A-Za-z0-9_-][A-Za-z0-9_.-]*$/;

/** The shared state behind every handle of one database. */
class Store {
  readonly engines = new Map<string, CollectionEngine>();
  handles = 0;
  closed = false;

  constructor(
    readonly key: string,
    readonly files: DatabaseFiles | null,
  ) {}

  engine(name: string): CollectionEngine {
    let engine = this.engines.get(name);
    if (!engine) {
      if (!NAME_RE.test(name) || name.length > 120) throw invalidQuery(`invalid collection name "${name}"`);
      engine = new CollectionEngine(name);
      this.engines.set(name, engine);
    }
    return engine;
  }

  async persist(collection: string, records: LogRecord[]): Promise<void> {
    if (records.length > 0 && this.files) await this.files.append(collection, records);
  }
}

const stores = new Map<string, Store | Promise<Store>>();
/** Stores still flushing and unlocking after their last handle closed: a reopen waits for them. */
const closing = new Map<string, Promise<void>>();

/** Opens (or joins) an embedded database: memory only without `dir`, else file-backed in `dir`. */
export async function openEmbeddedDatabase(name: string, options: EmbeddedOptions = {}): Promise<Database> {
  const dir = options.dir === undefined ? undefined : resolve(options.dir);
  const key = dir ? `file:${dir}` : `memory:${name}`;
  await closing.get(key);
  let entry = stores.get(key);
  if (!entry) {
    if (!dir) entry = new Store(key, null);
    else {
      entry = (async () => {
        let store: Store | undefined;
        const files = await DatabaseFiles.open(dir, {
          fsync: options.fsync === true,
          liveDocs: (collection) => store?.engines.get(collection)?.docs ?? new Map<string, Doc>(),
        });
        store = new Store(key, files);
        for (const [collection, docs] of files.loaded) store.engine(collection).load(docs);
        files.loaded.clear();
        return store;
      })();
    }
    stores.set(key, entry);
    if (entry instanceof Promise) {
      entry.then(
        (store) => stores.get(key) === entry && stores.set(key, store),
        () => stores.get(key) === entry && stores.delete(key),
      );
    }
  }
  const store = await entry;
  store.handles++;
  return new EmbeddedDatabase(name, store);
}

/** Closes every embedded store of this process (tests, shutdown). */
export async function closeAllEmbeddedDatabases(): Promise<void> {
  const all = await Promise.allSettled([...stores.values()]);
  for (const r of all) if (r.status === "fulfilled") await closeStore(r.value);
}

async function closeStore(store: Store): Promise<void> {
  if (store.closed) return;
  store.closed = true;
  if (stores.get(store.key) === store) stores.delete(store.key);
  if (!store.files) return;
  const done = store.files.close().finally(() => {
    if (closing.get(store.key) === done) closing.delete(store.key);
  });
  closing.set(store.key, done);
  await done;
}

function unavailable(what: string): StorageError {
  return new StorageError("UNAVAILABLE", `${what} is closed`);
}

class EmbeddedDatabase implements Database {
  private closed = false;
  private readonly collections = new Map<string, EmbeddedCollection<Doc>>();

  constructor(
    readonly name: string,
    private readonly store: Store,
  ) {}

  collection<T extends Doc>(name: string): Collection<T> {
    let c = this.collections.get(name);
    if (!c) {
      this.store.engine(name);
      c = new EmbeddedCollection<Doc>(name, this);
      this.collections.set(name, c);
    }
    return c as unknown as Collection<T>;
  }

  /**
   * The live engine of a collection; throws UNAVAILABLE once this handle or the store is closed, and
   * once a log write has failed (disk full, I/O error): the memory then holds changes the disk does
   * not, so nothing is read or written until the process restarts and replays what the disk has.
   */
  engine(name: string): CollectionEngine {
    if (this.closed || this.store.closed) throw unavailable(`database ${this.name}`);
    this.store.files?.check();
    return this.store.engine(name);
  }

  persist(collection: string, records: LogRecord[]): Promise<void> {
    return this.store.persist(collection, records);
  }

  async ping(): Promise<void> {
    if (this.closed || this.store.closed) throw unavailable(`database ${this.name}`);
    this.store.files?.check();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (--this.store.handles <= 0) await closeStore(this.store);
  }

  async drop(): Promise<void> {
    if (this.closed || this.store.closed) throw unavailable(`database ${this.name}`);
    for (const engine of this.store.engines.values()) engine.clear();
    await this.store.files?.dropAll();
  }
}

function checkLimit(limit: unknown, what: string): number {
  if (typeof limit !== "number" || !Number.isInteger(limit) || limit < 1) throw invalidQuery(`${what} must be a positive integer`);
  return Math.min(limit, MAX_FIND_LIMIT);
}

function sortEntries(sort: FindOptions["sort"]): [string, 1 | -1][] | undefined {
  if (sort === undefined) return undefined;
  const entries = Object.entries(sort);
  if (entries.length === 0) return undefined;
  for (const [, d] of entries) if (d !== 1 && d !== -1) throw invalidQuery("sort directions are 1 or -1");
  return entries as [string, 1 | -1][];
}

class EmbeddedCollection<T extends Doc> implements Collection<T> {
  constructor(
    readonly name: string,
    private readonly db: EmbeddedDatabase,
  ) {}

  /** Runs a synchronous engine operation, then waits until its log records are written. */
  private async run<R>(op: (engine: CollectionEngine) => R): Promise<R> {
    const engine = this.db.engine(this.name);
    let result: R | undefined;
    let failure: { error: unknown } | undefined;
    try {
      result = op(engine);
    } catch (error) {
      failure = { error };
    }
    await this.db.persist(this.name, engine.takeRecords());
    if (failure) throw failure.error;
    return result as R;
  }

  async createIndexes(specs: IndexSpec[]): Promise<void> {
    this.db.engine(this.name).createIndexes(specs);
  }

  insertOne(doc: T): Promise<void> {
    return this.run((e) => e.insertOne(doc));
  }

  async findOne(filter: Filter): Promise<T | null> {
    const [doc] = this.db.engine(this.name).select(filter, { limit: 1 });
    return doc ? (cloneValue(doc) as T) : null;
  }

  async find(filter: Filter, options: FindOptions = {}): Promise<T[]> {
    const limit = options.limit === undefined || options.limit === 0 ? MAX_FIND_LIMIT : checkLimit(options.limit, "limit");
    const docs = this.db.engine(this.name).select(filter, { sort: sortEntries(options.sort), limit });
    return docs.map((d) => cloneValue(d) as T);
  }

  async findPage(request: PageRequest): Promise<Page<T>> {
    const limit = checkLimit(request.limit, "limit");
    const { field, direction } = request.sort ?? ({} as PageRequest["sort"]);
    if (typeof field !== "string" || (direction !== 1 && direction !== -1)) throw invalidQuery("findPage needs sort { field, direction }");
    if (request.after !== undefined && typeof request.after?.id !== "string") throw invalidQuery("after.id must be a string");
    const sort: [string, 1 | -1][] = field === "_id" ? [["_id", direction]] : [[field, direction], ["_id", direction]];
    const docs = this.db.engine(this.name).select(request.filter, { sort, limit: limit + 1, after: request.after });
    const hasMore = docs.length > limit;
    if (hasMore) docs.length = limit;
    return { items: docs.map((d) => cloneValue(d) as T), hasMore };
  }

  async *stream(filter: Filter, options: StreamOptions = {}): AsyncIterable<T> {
    const batchSize = options.batchSize === undefined ? 500 : checkLimit(options.batchSize, "batchSize");
    let after: string | undefined;
    for (;;) {
      const batch = this.db.engine(this.name).selectAfterId(filter, after, batchSize).map((d) => cloneValue(d) as T);
      for (const doc of batch) yield doc;
      if (batch.length < batchSize) return;
      after = batch[batch.length - 1]._id;
      // Let writers run between batches, as a remote cursor would.
      await new Promise((resolve) => setImmediate(resolve));
    }
  }

  async count(filter: Filter): Promise<number> {
    return this.db.engine(this.name).count(filter);
  }

  async updateOne(filter: Filter, update: Update, options: UpdateOptions = {}): Promise<UpdateResult> {
    const r = await this.run((e) => e.updateOne(filter, update, options.upsert === true));
    return { matched: r.matched, modified: r.modified, ...(r.upsertedId ? { upsertedId: r.upsertedId } : {}) };
  }

  updateMany(filter: Filter, update: Update): Promise<UpdateResult> {
    return this.run((e) => e.updateMany(filter, update));
  }

  async findOneAndUpdate(filter: Filter, update: Update, options: FindOneAndUpdateOptions = {}): Promise<T | null> {
    const r = await this.run((e) => e.updateOne(filter, update, options.upsert === true));
    const doc = options.returnDocument === "before" ? r.before : r.after;
    return doc ? (cloneValue(doc) as T) : null;
  }

  deleteOne(filter: Filter): Promise<number> {
    return this.run((e) => e.deleteOne(filter));
  }

  deleteMany(filter: Filter): Promise<number> {
    return this.run((e) => e.deleteMany(filter));
  }

  bulkWrite(ops: BulkOp<T>[]): Promise<BulkItemResult[]> {
    return this.run((e) => e.bulkWrite(ops as BulkOp<Doc>[]));
  }
}
