/**
 * The embedded storage adapter: SQLite through Node's built-in `node:sqlite`, one database file per
 * service (`<DATA_DIR>/<service>.sqlite`, WAL mode) or `:memory:` for tests. This is what `npm start`
 * and CI run on.
 *
 * Several processes may open one file at once (the CLI while the server runs): SQLite serialises their
 * writes (a writer waits, without blocking the event loop, up to WRITE_WAIT_MS for another's
 * transaction) and readers never wait. Index definitions another process adds are picked up when
 * SQLite's `data_version` says another connection committed.
 * Within one process, opening the same database twice shares one connection; it closes with its last
 * handle, and a memory database is discarded then.
 *
 * Every call of node:sqlite is synchronous, so each port operation runs to the end in one turn of the
 * event loop: a write is atomic against every other caller in the process without locks, and a read
 * sees no write half-done. Operations are kept short by the planner's examine budget (see collection.ts).
 * The log's checkpoints, which SQLite would run inside a commit, run on a worker thread (checkpoint.ts).
 */
import { closeSync, mkdirSync, openSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { DatabaseSync, type StatementSync } from "node:sqlite";
import type { Collection, Database, Doc, IndexSpec } from "../port";
import { StorageError } from "../port";
import { invalidQuery } from "../query/rules";
import { SqliteCollection } from "./collection";
import { decodeValue } from "./codec";
import { type CheckpointHandle, type CheckpointSettings, checkpointInWorker, SQLITE_AUTOCHECKPOINT } from "./checkpoint";
import { asStorageError } from "./errors";

export interface SqliteOptions {
  /** The database file; memory only when absent. */
  file?: string;
  /** `synchronous=FULL`: every commit is on disk before it is acknowledged (survives power loss). */
  fsync?: boolean;
  /** When the checkpoint worker copies the log back (tests); the first opening of a file sets them. */
  checkpoints?: Partial<CheckpointSettings>;
  /** How long opening waits while another process holds the file alone (OPEN_WAIT_MS; tests lower it). */
  openWaitMs?: number;
}

/** How long SQLite itself waits for a lock (it blocks the thread): short, so the event loop never stalls. */
const SQLITE_BUSY_WAIT_MS = 20;
/** How long a writer waits, asynchronously, for another process's write transaction to end. */
const WRITE_WAIT_MS = 5000;
/** How long opening a file waits, asynchronously, while another process holds it alone. */
const OPEN_WAIT_MS = 10_000;
const NAME_RE = /^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,119}$/;

/** What one collection has on disk: its document table and the index tables the port declared. */
export interface IndexRecord {
  spec: IndexSpec;
  /** Some document gave this index several keys (an array field): it cannot serve sorted walks. */
  multikey: boolean;
}

/** One open SQLite connection, shared by every handle of the same database in this process. */
export class Connection {
  readonly db: DatabaseSync;
  /** A file, which other processes may open too (a memory database is this connection's alone). */
  private readonly shared: boolean;
  handles = 0;
  closed = false;
  /** Bumped by drop(): collections re-create their tables when they see a new generation. */
  generation = 0;
  /** Per-collection state (its index definitions), shared by every handle of this connection. */
  readonly cache = new Map<string, unknown>();
  private readonly statements = new Map<string, StatementSync>();
  /** The worker that checkpoints this file's log (none for a memory database, or once it failed). */
  private checkpoints: CheckpointHandle | undefined;
  private closing: Promise<void> | undefined;
  /**
   * How often and how long write transactions waited, with the event loop free, before they began: for
   * the checkpoint worker to catch up (`throttle`), for another connection's write lock. The bench
   * reports them, and subtracts them from a write's time to get how long it held the event loop.
   */
  readonly waits = { checkpoint: 0, checkpointMs: 0, lock: 0, lockMs: 0 };

  constructor(
    readonly key: string,
    file: string | undefined,
    fsync: boolean,
    checkpointSettings?: Partial<CheckpointSettings>,
  ) {
    if (file) createPrivately(file);
    this.shared = file !== undefined;
    this.db = new DatabaseSync(file ?? ":memory:");
    try {
      this.db.exec(`PRAGMA busy_timeout = ${SQLITE_BUSY_WAIT_MS}`);
      if (file) {
        this.db.exec("PRAGMA journal_mode = WAL");
        this.db.exec(`PRAGMA synchronous = ${fsync ? "FULL" : "NORMAL"}`);
      }
      this.db.exec(
        "CREATE TABLE IF NOT EXISTS _indexes (collection TEXT NOT NULL, name TEXT NOT NULL, spec TEXT NOT NULL, multikey INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (collection, name)) WITHOUT ROWID",
      );
      if (file) {
        // No checkpoint inside a commit (it held the event loop up to 1.2 s at 1M profiles): the worker runs them.
        this.checkpoints = checkpointInWorker(file, fsync, checkpointSettings, () => this.checkpointHere());
        if (this.checkpoints) this.db.exec("PRAGMA wal_autocheckpoint = 0");
      }
    } catch (err) {
      this.db.close();
      void this.checkpoints?.release();
      // Busy: another process is creating or changing the file; openConnection tries again.
      throw isBusy(err) ? err : asStorageError(err);
    }
  }

  /** The worker failed: SQLite checkpoints inside commits again, which keeps the log bounded. */
  private checkpointHere(): void {
    this.checkpoints = undefined;
    if (this.closed) return;
    try {
      this.db.exec(`PRAGMA wal_autocheckpoint = ${SQLITE_AUTOCHECKPOINT}`);
    } catch {
      // closed meanwhile
    }
  }

  /** A prepared statement, compiled once per connection. */
  statement(sql: string): StatementSync {
    let s = this.statements.get(sql);
    if (!s) {
      s = this.db.prepare(sql);
      this.statements.set(sql, s);
    }
    return s;
  }

  /**
   * Runs `fn` in one write transaction (BEGIN IMMEDIATE: another process's writer waits, never
   * interleaves). While another process holds the write lock, waits for it between short tries,
   * yielding the event loop, up to WRITE_WAIT_MS; then the storage is UNAVAILABLE.
   */
  async transaction<R>(fn: () => R): Promise<R> {
    // Writes have outrun the worker's checkpoints: let it copy the log back first (the write then starts it over).
    if (this.checkpoints?.behind()) {
      const started = performance.now();
      await this.checkpoints.throttle(WRITE_WAIT_MS, () => this.closed);
      this.waits.checkpoint++;
      this.waits.checkpointMs += performance.now() - started;
    }
    if (this.closed) throw new StorageError("UNAVAILABLE", "database is closed");
    const deadline = Date.now() + WRITE_WAIT_MS;
    for (let pause = 5; ; pause = Math.min(pause * 2, 100)) {
      try {
        this.db.exec("BEGIN IMMEDIATE");
        break;
      } catch (err) {
        if (!isBusy(err) || Date.now() >= deadline) throw err;
        const started = performance.now();
        await sleep(pause);
        this.waits.lock++;
        this.waits.lockMs += performance.now() - started;
        if (this.closed) throw new StorageError("UNAVAILABLE", "database is closed");
      }
    }
    try {
      const result = fn();
      this.db.exec("COMMIT");
      this.checkpoints?.committed();
      return result;
    } catch (err) {
      this.rollback("ROLLBACK");
      // What the transaction created (a collection's table, an index) is gone: read the definitions again.
      this.cache.clear();
      throw err;
    }
  }

  /** Runs `fn` inside a savepoint of the current transaction: a failure undoes only what `fn` did. */
  savepoint<R>(fn: () => R): R {
    this.db.exec("SAVEPOINT op");
    try {
      const result = fn();
      this.db.exec("RELEASE op");
      return result;
    } catch (err) {
      this.rollback("ROLLBACK TO op; RELEASE op");
      throw err;
    }
  }

  /** Undoes what it can; SQLite may have rolled back already (a full disk), which must not hide the cause. */
  private rollback(sql: string): void {
    try {
      this.db.exec(sql);
    } catch {
      // no transaction left to roll back
    }
  }

  /**
   * Changes when another connection (another process) commits; this connection's own commits do not change it.
   * A memory database has no other connection: it is never asked (a read asks before every call).
   */
  dataVersion(): number {
    if (!this.shared) return 0;
    return (this.statement("PRAGMA data_version").get() as { data_version: number }).data_version;
  }

  indexRecords(collection: string): Map<string, IndexRecord> {
    const rows = this.statement("SELECT name, spec, multikey FROM _indexes WHERE collection = ?").all(collection) as { name: string; spec: string; multikey: number }[];
    return new Map(rows.map((r) => [r.name, { spec: decodeValue<IndexSpec>(r.spec), multikey: r.multikey === 1 }]));
  }

  tableExists(table: string): boolean {
    return this.statement("SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = ?").get(table) !== undefined;
  }

  /** Removes every table (tests): documents and index definitions alike, as dropping a MongoDB database does. */
  async dropAll(): Promise<void> {
    await this.transaction(() => {
      const tables = this.statement("SELECT name FROM sqlite_schema WHERE type = 'table' AND name LIKE 'c:%'").all() as { name: string }[];
      for (const { name } of tables) this.db.exec(`DROP TABLE ${quote(name)}`);
      this.db.exec("DELETE FROM _indexes");
    });
    this.statements.clear();
    this.cache.clear();
    this.generation++;
  }

  /**
   * Closes the connection, then the worker's (which, the last of this process, copies the log back and
   * removes it on its thread); resolves once both are closed.
   */
  close(): Promise<void> {
    if (!this.closing) {
      this.closed = true;
      this.statements.clear();
      this.db.close();
      this.closing = this.checkpoints?.release() ?? Promise.resolve();
    }
    return this.closing;
  }
}

/**
 * A new database file (and its folder) readable by this user alone: it holds e-mails and hashed secrets.
 * SQLite gives the log files it creates beside it the same mode. An existing file keeps its own.
 */
function createPrivately(file: string): void {
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  try {
    closeSync(openSync(file, "wx", 0o600));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
  }
}

/** A quoted SQL identifier (names are checked against NAME_RE before they get here). */
export function quote(identifier: string): string {
  return `"${identifier.replace(/"/g, '""')}"`;
}

/**
 * The table of a collection (and of one of its indexes): `c:` then the names with each capital
 * letter written `^` + its small letter, because SQLite compares table names without case (MongoDB's
 * `Users` and `users` are two collections) and reserves `sqlite_*` names.
 */
export function tableName(collection: string, index?: string): string {
  const exact = (name: string) => name.replace(/[A-Z]/g, (c) => `^${c.toLowerCase()}`);
  return `c:${exact(collection)}${index === undefined ? "" : `$${exact(index)}`}`;
}

function isBusy(err: unknown): boolean {
  const e = err as { code?: string; errcode?: number };
  return e?.code === "ERR_SQLITE_ERROR" && typeof e.errcode === "number" && ((e.errcode & 0xff) === 5 || (e.errcode & 0xff) === 6);
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export function checkName(name: string, what: string): string {
  if (!NAME_RE.test(name)) throw invalidQuery(`invalid ${what} name "${name}"`);
  return name;
}

const connections = new Map<string, Connection>();
const opening = new Map<string, Promise<Connection>>();

/** Opens (or joins) an embedded SQLite database: in memory without `file`, else that file. */
export async function openSqliteDatabase(name: string, options: SqliteOptions = {}): Promise<Database> {
  const file = options.file === undefined ? undefined : resolve(options.file);
  const key = file ? `file:${file}` : `memory:${name}`;
  let connection = connections.get(key);
  if (!connection) {
    let pending = opening.get(key);
    if (!pending) {
      pending = openConnection(key, file, options).finally(() => opening.delete(key));
      opening.set(key, pending);
    }
    connection = await pending;
    connections.set(key, connection);
  }
  connection.handles++;
  return new SqliteDatabase(name, connection);
}

/**
 * A new connection, tried again while the file is busy: two processes started on one new `DATA_DIR`
 * both create its files and switch them to WAL, which takes the file alone for a moment (longer than
 * the busy timeout on a loaded machine: a start failed with "database is locked" in CI).
 */
async function openConnection(key: string, file: string | undefined, options: SqliteOptions): Promise<Connection> {
  const waitMs = options.openWaitMs ?? OPEN_WAIT_MS;
  const deadline = Date.now() + waitMs;
  for (let pause = 5; ; pause = Math.min(pause * 2, 200)) {
    try {
      return new Connection(key, file, options.fsync === true, options.checkpoints);
    } catch (err) {
      if (!isBusy(err)) throw err;
      if (Date.now() >= deadline) throw new StorageError("UNAVAILABLE", `storage unavailable: ${file} stayed locked by another process for ${waitMs / 1000} s`);
      await sleep(pause);
    }
  }
}

/** Closes every SQLite database of this process (tests, shutdown). */
export async function closeAllSqliteDatabases(): Promise<void> {
  const closing = [...connections.values()].map((connection) => connection.close());
  connections.clear();
  await Promise.all(closing);
}

class SqliteDatabase implements Database {
  private closed = false;
  private readonly collections = new Map<string, SqliteCollection<Doc>>();

  constructor(
    readonly name: string,
    private readonly connection: Connection,
  ) {}

  /** The live connection; UNAVAILABLE once this handle or the connection is closed. */
  live(): Connection {
    if (this.closed || this.connection.closed) throw new StorageError("UNAVAILABLE", `database ${this.name} is closed`);
    return this.connection;
  }

  collection<T extends Doc>(name: string): Collection<T> {
    let c = this.collections.get(name);
    if (!c) {
      c = new SqliteCollection<Doc>(checkName(name, "collection"), () => this.live());
      this.collections.set(name, c);
    }
    return c as unknown as Collection<T>;
  }

  async ping(): Promise<void> {
    try {
      this.live().statement("SELECT 1").get();
    } catch (err) {
      throw asStorageError(err);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (--this.connection.handles <= 0) {
      if (connections.get(this.connection.key) === this.connection) connections.delete(this.connection.key);
      await this.connection.close();
    }
  }

  async drop(): Promise<void> {
    await this.live().dropAll();
  }
}
