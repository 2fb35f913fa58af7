/**
 * Files of a file-backed embedded database: one directory per database holding
 *   LOCK                 pid, host and a random token of the process that has it open (one at a time);
 *   <collection>.jsonl   an append-only log of `{"put":doc}` / `{"del":id}` lines.
 * On open every log is replayed (a torn last line, left by a crash mid-write, is cut off; any other
 * damage stops the open with the file and line named) and rewritten compactly when it holds garbage.
 * While open, each collection has one write queue: records are appended in order, a batch per write
 * call, and a write's promise resolves once its batch is handed to the OS. A failed write stops the
 * log for good (the store then refuses everything until reopened). What a crash can lose: a process crash loses nothing that was acknowledged; an OS
 * crash or power loss can lose the last acknowledged writes unless `fsync` is on (then each batch is
 * fdatasync'ed before it is acknowledged). A log that keeps growing with rewrites of the same
 * documents is compacted in the background (snapshot to `.tmp`, fsync, rename).
 */
import { createReadStream } from "node:fs";
import { mkdir, open, readdir, readFile, rename, stat, truncate, unlink, type FileHandle } from "node:fs/promises";
import { hostname } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { createInterface } from "node:readline";
import { unlinkSync, readFileSync } from "node:fs";
import type { Doc } from "../port";
import { StorageError } from "../port";
import type { LogRecord } from "./engine";

const LOG_SUFFIX = ".jsonl";
const COMPACT_MIN_RECORDS = 10_000;
/**
 * How often a writer makes sure it still owns the directory (its LOCK, its log file). Checking every
 * write would halve write throughput; someone deleting a live LOCK by hand is caught within this.
 */
const OWNERSHIP_CHECK_MS = 500;

function unavailable(message: string): StorageError {
  return new StorageError("UNAVAILABLE", message);
}

// ------------------------------------------------------------------ lock

/** What this process writes into the LOCK files it takes: `<pid> <host> <random>`. */
const LOCK_CONTENT = `${process.pid} ${hostname()} ${randomBytes(8).toString("hex")}\n`;

const heldLocks = new Set<string>();
let exitHookInstalled = false;

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Takes the directory's lock file, or throws UNAVAILABLE naming the live process that holds it. */
async function acquireLock(dir: string): Promise<string> {
  const lockPath = join(dir, "LOCK");
  if (heldLocks.has(lockPath)) throw unavailable(`the database in ${dir} is already open in this process`);
  for (let attempt = 0; attempt < 20; attempt++) {
    try {
      const fh = await open(lockPath, "wx", 0o600);
      try {
        await fh.writeFile(LOCK_CONTENT);
      } finally {
        await fh.close();
      }
      heldLocks.add(lockPath);
      if (!exitHookInstalled) {
        exitHookInstalled = true;
        process.once("exit", () => {
          for (const p of heldLocks) releaseLockSync(p);
        });
      }
      return lockPath;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw unavailable(`cannot create the lock file ${lockPath}: ${(err as Error).message}`);
    }
    const content = await readFile(lockPath, "utf8").catch(() => "");
    const [pidText, host] = content.trim().split(" ");
    const pid = Number.parseInt(pidText ?? "", 10);
    if (content.endsWith("\n") && host && host !== hostname()) {
      // Another machine or container shares this folder: whether its process lives cannot be checked.
      throw unavailable(
        `the database in ${dir} is open by pid ${pid} on host ${host} (see ${lockPath}); two hosts or containers must not ` +
          `share a DATA_DIR (use MongoDB, MONGO_URL). If nothing on ${host} uses it any more, delete ${lockPath}.`,
      );
    }
    if (!content.endsWith("\n")) {
      // Another process is between creating the lock and writing its pid: give it a moment, then
      // treat a still-empty lock (left by a crash at that instant) as stale.
      const age = await stat(lockPath).then((s) => Date.now() - s.mtimeMs, () => 0);
      if (age < 2000) {
        await new Promise((r) => setTimeout(r, 50));
        continue;
      }
    } else if (pid > 0 && pid !== process.pid && isAlive(pid)) {
      throw unavailable(
        `the database in ${dir} is open in another process (pid ${pid}, see ${lockPath}). ` +
          `Stop that process or use another DATA_DIR; for several processes on one data set use MongoDB (MONGO_URL). ` +
          `If pid ${pid} is not a CRM process, delete ${lockPath}.`,
      );
    }
    // Stale: its process is gone. Remove it and try again.
    await unlink(lockPath).catch(() => undefined);
  }
  throw unavailable(`could not take the lock ${lockPath}`);
}

function releaseLockSync(lockPath: string): void {
  try {
    if (readFileSync(lockPath, "utf8") === LOCK_CONTENT) unlinkSync(lockPath);
  } catch {
    // already gone
  }
  heldLocks.delete(lockPath);
}

// ------------------------------------------------------------------ replay

async function endsWithNewline(path: string): Promise<boolean> {
  const fh = await open(path, "r");
  try {
    const { size } = await fh.stat();
    if (size === 0) return false;
    const last = Buffer.alloc(1);
    await fh.read(last, 0, 1, size - 1);
    return last[0] === 0x0a;
  } finally {
    await fh.close();
  }
}

const corrupt = (path: string, line: number, what: string) =>
  unavailable(`corrupt storage log ${path} at line ${line}${what}; restore the file from a backup, or remove that line to lose only its record`);

/**
 * Replays one log; returns the live documents, how many records the file held, and, when its last
 * line was torn (a crash mid-write: unparsable and without its newline), the length of the intact part.
 */
async function replay(path: string): Promise<{ docs: Map<string, Doc>; records: number; intactBytes: number | null }> {
  const docs = new Map<string, Doc>();
  let records = 0;
  let bad: number | null = null;
  let lineNo = 0;
  let bytes = 0; // of the lines read so far (exact for intact lines, which are valid UTF-8)
  let goodBytes = 0;
  const lines = createInterface({ input: createReadStream(path, { encoding: "utf8" }), crlfDelay: Infinity });
  for await (const line of lines) {
    lineNo++;
    bytes += Buffer.byteLength(line) + 1;
    if (bad !== null) throw corrupt(path, bad, "");
    if (line.length === 0) {
      goodBytes = bytes;
      continue;
    }
    let record: Partial<{ put: Doc; del: string }>;
    try {
      record = JSON.parse(line);
    } catch {
      bad = lineNo;
      continue;
    }
    records++;
    goodBytes = bytes;
    if (record && typeof record.put === "object" && record.put !== null && typeof record.put._id === "string") docs.set(record.put._id, record.put);
    else if (record && typeof record.del === "string") docs.delete(record.del);
    else throw corrupt(path, lineNo, " (not a put/del record)");
  }
  if (bad === null) return { docs, records, intactBytes: null };
  // Every record is written with its newline in one append: a damaged line that has its newline was
  // not cut short by a crash, it was damaged afterwards.
  if (await endsWithNewline(path)) throw corrupt(path, bad, "");
  process.emitWarning(`ignored a torn last line in ${path} (an interrupted write)`, { code: "CRM_STORAGE_TORN_LOG" });
  return { docs, records, intactBytes: goodBytes };
}

async function syncDir(dir: string): Promise<void> {
  try {
    const fh = await open(dir, "r");
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  } catch {
    // Not every platform can fsync a directory.
  }
}

/** Writes `docs` as put records to `path` atomically (temp file, fsync, rename). */
async function writeSnapshot(path: string, docs: Iterable<Doc>): Promise<number> {
  const tmp = `${path}.tmp`;
  const fh = await open(tmp, "w", 0o600);
  let count = 0;
  try {
    let batch: string[] = [];
    for (const doc of docs) {
      batch.push(`${JSON.stringify({ put: doc })}\n`);
      count++;
      if (batch.length >= 2000) {
        await fh.appendFile(batch.join(""));
        batch = [];
      }
    }
    if (batch.length > 0) await fh.appendFile(batch.join(""));
    await fh.sync();
    await fh.close();
    await rename(tmp, path);
  } catch (err) {
    // A half-written snapshot must not keep the disk space a full disk needs back.
    await fh.close().catch(() => undefined);
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
  return count;
}

// ------------------------------------------------------------------ write queue

interface Waiter {
  resolve: () => void;
  reject: (err: unknown) => void;
}

type Job = { kind: "append"; lines: string[]; waiters: Waiter[] } | { kind: "task"; run: () => Promise<void>; waiters: Waiter[] };

/** The log of one collection and its write queue. */
class CollectionLog {
  private fh: FileHandle | null = null;
  private readonly jobs: Job[] = [];
  private running = false;
  failed: Error | null = null;
  private records: number;
  private ownershipCheckedAt = 0;
  private compacting = false;

  constructor(
    readonly path: string,
    private readonly dir: string,
    records: number,
    private readonly fsync: boolean,
    private readonly live: () => { size: number; values(): Iterable<Doc> },
    /** Throws when this process no longer holds the directory's lock. */
    private readonly assertLockHeld: () => Promise<void>,
  ) {
    this.records = records;
  }

  append(records: LogRecord[]): Promise<void> {
    if (this.failed) return Promise.reject(unavailable(`storage log ${this.path} failed: ${this.failed.message}`));
    let job = this.jobs[this.jobs.length - 1];
    if (!job || job.kind !== "append") {
      job = { kind: "append", lines: [], waiters: [] };
      this.jobs.push(job);
    }
    for (const r of records) job.lines.push(`${JSON.stringify(r)}\n`);
    return this.enqueued(job);
  }

  /** Runs `run` after every write queued so far, and before any queued later. */
  task(run: () => Promise<void>): Promise<void> {
    const job: Job = { kind: "task", run, waiters: [] };
    this.jobs.push(job);
    return this.enqueued(job);
  }

  private enqueued(job: Job): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      job.waiters.push({ resolve, reject });
      void this.pump();
    });
  }

  private async pump(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      while (this.jobs.length > 0) {
        const job = this.jobs.shift()!;
        try {
          if (job.kind === "append") {
            if (this.failed) throw this.failed;
            await this.write(job.lines);
          } else {
            await job.run();
          }
          for (const w of job.waiters) w.resolve();
        } catch (err) {
          if (job.kind === "append" && !this.failed) this.failed = err as Error;
          const e = err instanceof StorageError ? err : unavailable(`storage log ${this.path}: ${(err as Error).message}`);
          for (const w of job.waiters) w.reject(e);
        }
        this.maybeCompact();
      }
    } finally {
      this.running = false;
    }
  }

  private async write(lines: string[]): Promise<void> {
    if (Date.now() - this.ownershipCheckedAt > OWNERSHIP_CHECK_MS) {
      await this.assertLockHeld();
      if (this.fh) await this.assertStillTheLog(this.fh);
      this.ownershipCheckedAt = Date.now();
    }
    if (!this.fh) this.fh = await open(this.path, "a", 0o600);
    await this.fh.appendFile(lines.join(""));
    if (this.fsync) await this.fh.datasync();
    this.records += lines.length;
  }

  /**
   * Appending to a file another process has since replaced (its LOCK deleted by hand, a second server
   * started) would acknowledge writes that no restart can find: refuse instead.
   */
  private async assertStillTheLog(fh: FileHandle): Promise<void> {
    const missing = (err: NodeJS.ErrnoException) => (err.code === "ENOENT" ? null : undefined);
    const [mine, current] = await Promise.all([fh.stat(), stat(this.path).catch(missing)]);
    if (current === undefined) return; // a passing error proves nothing
    if (current === null || current.ino !== mine.ino || current.dev !== mine.dev) {
      throw unavailable(`storage log ${this.path} was replaced or removed by another process; restart this one to reload it`);
    }
  }

  private maybeCompact(): void {
    if (this.compacting || this.failed || this.records < COMPACT_MIN_RECORDS || this.records < 2 * this.live().size) return;
    this.compacting = true;
    // Documents written while the snapshot is taken are appended after it again: replay stays exact.
    this.task(async () => {
      await this.closeFile();
      this.records = await writeSnapshot(this.path, this.live().values());
      await syncDir(this.dir);
    })
      .catch((err) => process.emitWarning(`storage log compaction of ${this.path} failed: ${(err as Error).message}`))
      .finally(() => {
        this.compacting = false;
      });
  }

  private async closeFile(): Promise<void> {
    const fh = this.fh;
    this.fh = null;
    await fh?.close();
  }

  /** Deletes the file once queued writes are done. */
  truncate(): Promise<void> {
    return this.task(async () => {
      await this.closeFile();
      await unlink(this.path).catch((err) => {
        if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
      });
      this.records = 0;
    });
  }

  close(): Promise<void> {
    return this.task(() => this.closeFile());
  }
}

// ------------------------------------------------------------------ database directory

export class DatabaseFiles {
  /** Documents replayed at open, per collection (the store moves them into its engines). */
  readonly loaded = new Map<string, Doc[]>();
  private readonly logs = new Map<string, CollectionLog>();
  private readonly recordCounts = new Map<string, number>();
  private closed = false;

  private constructor(
    readonly dir: string,
    private readonly lockPath: string,
    private readonly fsync: boolean,
    private readonly liveDocs: (collection: string) => { size: number; values(): Iterable<Doc> },
  ) {}

  /** Locks `dir` (creating it), replays and compacts every collection log in it. */
  static async open(dir: string, options: { fsync: boolean; liveDocs: (collection: string) => { size: number; values(): Iterable<Doc> } }): Promise<DatabaseFiles> {
    await mkdir(dir, { recursive: true, mode: 0o700 }).catch((err) => {
      throw unavailable(`cannot create the data directory ${dir}: ${(err as Error).message}`);
    });
    const lockPath = await acquireLock(dir);
    const files = new DatabaseFiles(dir, lockPath, options.fsync, options.liveDocs);
    try {
      for (const entry of await readdir(dir)) {
        if (entry.endsWith(`${LOG_SUFFIX}.tmp`)) await unlink(join(dir, entry)).catch(() => undefined);
        if (!entry.endsWith(LOG_SUFFIX)) continue;
        const collection = entry.slice(0, -LOG_SUFFIX.length);
        const path = join(dir, entry);
        const { docs, records, intactBytes } = await replay(path);
        let count = records;
        // Cut a torn tail off in place (needs no free space), then compact when it pays and room allows.
        if (intactBytes !== null) await truncate(path, intactBytes);
        if (records !== docs.size) {
          count = await writeSnapshot(path, docs.values()).catch((err) => {
            process.emitWarning(`could not compact ${path} at start-up (${(err as Error).message}); using it as it is`);
            return records;
          });
        }
        files.loaded.set(collection, [...docs.values()]);
        files.recordCounts.set(collection, count);
      }
      await syncDir(dir);
    } catch (err) {
      releaseLockSync(lockPath);
      throw err instanceof StorageError ? err : unavailable(`cannot open the database in ${dir}: ${(err as Error).message}`);
    }
    return files;
  }

  private log(collection: string): CollectionLog {
    let log = this.logs.get(collection);
    if (!log) {
      log = new CollectionLog(
        join(this.dir, `${collection}${LOG_SUFFIX}`),
        this.dir,
        this.recordCounts.get(collection) ?? 0,
        this.fsync,
        () => this.liveDocs(collection),
        () => this.assertLockHeld(),
      );
      this.logs.set(collection, log);
    }
    return log;
  }

  private async assertLockHeld(): Promise<void> {
    // By content, not inode: a file made right after ours was deleted may get the same inode number.
    let holder: string;
    try {
      holder = await readFile(this.lockPath, "utf8");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") return; // a passing error (EMFILE...) proves nothing
      holder = "";
    }
    if (holder !== LOCK_CONTENT) {
      throw unavailable(`the lock ${this.lockPath} of this process was removed or replaced (by hand, or by another process); restart this one`);
    }
  }

  append(collection: string, records: LogRecord[]): Promise<void> {
    if (this.closed) return Promise.reject(unavailable(`the database in ${this.dir} is closed`));
    return this.log(collection).append(records);
  }

  /** Throws UNAVAILABLE when a log write has failed (the store must then be reopened). */
  check(): void {
    if (this.closed) throw unavailable(`the database in ${this.dir} is closed`);
    for (const log of this.logs.values()) {
      if (log.failed) throw unavailable(`storage log ${log.path} failed: ${log.failed.message}`);
    }
  }

  /** Removes every collection's file (after the writes already queued). */
  async dropAll(): Promise<void> {
    for (const entry of await readdir(this.dir)) {
      if (entry.endsWith(LOG_SUFFIX)) this.log(entry.slice(0, -LOG_SUFFIX.length));
    }
    await Promise.all([...this.logs.values()].map((log) => log.truncate()));
  }

  /** Waits for queued writes, closes the files and releases the lock. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.allSettled([...this.logs.values()].map((log) => log.close()));
    releaseLockSync(this.lockPath);
  }
}
