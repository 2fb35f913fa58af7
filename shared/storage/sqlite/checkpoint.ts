/**
 * Checkpoints of the file databases, off the main thread.
 *
 * In WAL mode a commit appends pages (frames) to `<file>-wal`; a checkpoint copies them back into the
 * database file and syncs it, after which a writer starts the log from its beginning again. SQLite's
 * automatic checkpoint runs inside the commit that takes the log past `wal_autocheckpoint` pages:
 * node:sqlite is synchronous, so that one write held the event loop for the whole copy (up to 1.2 s
 * measured at 1,000,000 profiles). Connections therefore run with `wal_autocheckpoint = 0`, and one
 * worker thread per process (`node:worker_threads`) checkpoints every file database of the process,
 * through its own connection to the same file:
 *
 * - After each commit the main thread reads how long the log is (the wal-index header in `<file>-shm`,
 *   136 bytes, https://www.sqlite.org/walformat.html); once `checkpointFrames` frames wait to be copied
 *   it asks the worker for a PASSIVE checkpoint and goes on. PASSIVE takes no lock a writer or reader
 *   waits on: the main thread goes on writing while the worker copies.
 * - Every `intervalMs` the worker also runs a PASSIVE checkpoint of each database (writes of other
 *   processes, the last few frames), and, when a log fully copied back has not grown since the last
 *   tick (idle), a TRUNCATE checkpoint that empties the file (it takes the write lock for a moment: a
 *   writer then waits for it without blocking the event loop, see Connection.transaction).
 * - The log only starts over when a writer finds it wholly copied back. Should writes outrun the
 *   copying, a write transaction waits, asynchronously, once the log holds `maxFrames` frames not all
 *   copied back, until the worker has caught up: the log stays bounded.
 *
 * The worker is unref'd (it never keeps a process alive; it is ref'd only while the main thread awaits
 * an answer of it) and stopped when the last file database closes. A database closes its own connection
 * first, then the worker's: being the last, the worker's connection does the final checkpoint and
 * removes the log, on its thread. Memory databases have no log and no worker. Should the worker fail,
 * its databases go back to SQLite's automatic checkpoint.
 */
import { closeSync, openSync, readSync } from "node:fs";
import { endianness } from "node:os";
import { Worker } from "node:worker_threads";

export interface CheckpointSettings {
  /** Frames waiting to be copied back that start a checkpoint (SQLite's own default is 1000 pages). */
  checkpointFrames: number;
  /** Past this many frames, a write transaction first waits for the worker to copy the log back. */
  maxFrames: number;
  /** The worker's timer: a PASSIVE checkpoint of every database, and a TRUNCATE of an idle log. */
  intervalMs: number;
  /** How long the worker's connection waits for a lock (it blocks the worker only). */
  busyMs: number;
}

export const DEFAULT_CHECKPOINT_SETTINGS: CheckpointSettings = {
  checkpointFrames: 1000,
  // 64 MiB of 4 KiB pages.
  maxFrames: 16_384,
  intervalMs: 1000,
  busyMs: 100,
};

/** SQLite's automatic checkpoint threshold, restored on a connection whose worker failed. */
export const SQLITE_AUTOCHECKPOINT = 1000;

/**
 * The worker (CommonJS, run with `eval`: it needs no file of this package, so it runs the same from
 * `dist/` and under Jest). Messages in: open, checkpoint, close. Out: checkpointed, failed, closed.
 */
const WORKER_SOURCE = `
const { parentPort } = require("node:worker_threads");
const { DatabaseSync } = require("node:sqlite");

const dbs = new Map();
let timer;

function checkpoint(e, mode) {
  const row = e.checkpoints[mode].get();
  return { busy: row.busy !== 0, frames: row.log, backfilled: row.checkpointed };
}

function fail(e, err) {
  dbs.delete(e.id);
  try {
    e.db.close();
  } catch {}
  parentPort.postMessage({ type: "failed", id: e.id, message: String((err && err.message) || err) });
}

/** The timer: whatever waits is copied back; an idle log, wholly copied back, is truncated. */
function tick() {
  for (const e of [...dbs.values()]) {
    try {
      const r = checkpoint(e, "PASSIVE");
      if (r.busy) continue;
      const idle = r.frames > 0 && r.backfilled === r.frames && r.frames === e.lastFrames;
      e.lastFrames = r.frames;
      if (idle && !checkpoint(e, "TRUNCATE").busy) e.lastFrames = 0;
    } catch (err) {
      fail(e, err);
    }
  }
}

parentPort.on("message", (m) => {
  if (m.type === "open") {
    let db;
    try {
      db = new DatabaseSync(m.file);
      db.exec("PRAGMA busy_timeout = " + Number(m.settings.busyMs));
      db.exec("PRAGMA synchronous = " + (m.fsync ? "FULL" : "NORMAL"));
      const checkpoints = {
        PASSIVE: db.prepare("PRAGMA wal_checkpoint(PASSIVE)"),
        TRUNCATE: db.prepare("PRAGMA wal_checkpoint(TRUNCATE)"),
      };
      dbs.set(m.id, { id: m.id, db, checkpoints, lastFrames: -1 });
      if (!timer || m.settings.intervalMs < timer.ms) {
        if (timer) clearInterval(timer.handle);
        timer = { ms: m.settings.intervalMs, handle: setInterval(tick, m.settings.intervalMs) };
      }
    } catch (err) {
      try {
        if (db) db.close();
      } catch {}
      parentPort.postMessage({ type: "failed", id: m.id, message: String((err && err.message) || err) });
    }
  } else if (m.type === "checkpoint") {
    const e = dbs.get(m.id);
    if (e) {
      // Writes are going on (or waiting for this checkpoint): the log is not idle at the next tick.
      e.lastFrames = -1;
      try {
        checkpoint(e, "PASSIVE");
      } catch (err) {
        fail(e, err);
        return;
      }
    }
    parentPort.postMessage({ type: "checkpointed", id: m.id });
  } else if (m.type === "close") {
    const e = dbs.get(m.id);
    dbs.delete(m.id);
    let message;
    try {
      // The main thread's connection is closed: this one is the last of the process and copies the log back.
      if (e) e.db.close();
    } catch (err) {
      message = String((err && err.message) || err);
    }
    parentPort.postMessage({ type: "closed", id: m.id, message });
  }
});
`;

type WorkerMessage = { type: "checkpointed" | "failed" | "closed"; id: number; message?: string };

interface Registration {
  id: number;
  /** Called when the worker cannot checkpoint this database: its connection checkpoints itself again. */
  fallback: (reason: string) => void;
  /** Resolves the pending checkpoint request (the worker ran it, or cannot). */
  checkpointed?: () => void;
  /** Resolves the pending close. */
  closed?: () => void;
}

/** The process's checkpoint worker and the databases it serves. */
class Checkpointer {
  private worker: Worker | undefined;
  /** Answers the main thread awaits of the current worker: it is ref'd while there are any. */
  private awaited = 0;
  private readonly registrations = new Map<number, Registration>();
  private nextId = 1;
  /** The worker failed: later databases keep SQLite's automatic checkpoint. */
  private broken = false;

  register(file: string, fsync: boolean, settings: CheckpointSettings, fallback: (reason: string) => void): CheckpointHandle | undefined {
    if (this.broken) return undefined;
    const worker = this.start();
    const registration: Registration = { id: this.nextId++, fallback };
    this.registrations.set(registration.id, registration);
    worker.postMessage({ type: "open", id: registration.id, file, fsync, settings });
    return new CheckpointHandle(this, registration, file, settings);
  }

  private start(): Worker {
    if (this.worker) return this.worker;
    const worker = new Worker(WORKER_SOURCE, { eval: true, name: "sqlite-checkpoints" });
    worker.on("message", (m: WorkerMessage) => this.onMessage(m));
    worker.on("error", (err) => this.onExit(worker, `the checkpoint worker failed: ${err.message}`));
    worker.on("exit", (code) => this.onExit(worker, `the checkpoint worker exited (${code})`));
    // After the listeners: a 'message' listener refs the worker's port again.
    worker.unref();
    this.worker = worker;
    this.awaited = 0;
    return worker;
  }

  private onMessage(m: WorkerMessage): void {
    const registration = this.registrations.get(m.id);
    if (!registration) return;
    if (m.type === "checkpointed") {
      registration.checkpointed?.();
      return;
    }
    this.registrations.delete(m.id);
    if (m.type === "failed") registration.fallback(m.message ?? "the checkpoint worker failed");
    registration.checkpointed?.();
    registration.closed?.();
    if (this.registrations.size === 0) this.stop();
  }

  /** The worker is gone (it failed): every database it served checkpoints itself again. */
  private onExit(worker: Worker, reason: string): void {
    if (this.worker !== worker) return;
    this.worker = undefined;
    this.broken = true;
    const registrations = [...this.registrations.values()];
    this.registrations.clear();
    for (const r of registrations) {
      r.fallback(reason);
      r.checkpointed?.();
      r.closed?.();
    }
  }

  /** No database left: the worker ends (a later database starts another). */
  private stop(): void {
    const worker = this.worker;
    if (!worker) return;
    this.worker = undefined;
    void worker.terminate();
  }

  post(message: { type: "checkpoint" | "close"; id: number }): void {
    this.worker?.postMessage(message);
  }

  /** Keeps the process alive while the main thread awaits the worker (a write, a close). */
  async awaiting(promise: Promise<void>): Promise<void> {
    const worker = this.worker;
    if (!worker) return promise;
    if (this.awaited++ === 0) worker.ref();
    try {
      await promise;
    } finally {
      // A worker stopped meanwhile is not counted any more.
      if (this.worker === worker && --this.awaited === 0) worker.unref();
    }
  }

  serves(registration: Registration): boolean {
    return this.registrations.get(registration.id) === registration;
  }
}

const little = endianness() === "LE";

/** One database's link to the checkpoint worker. */
export class CheckpointHandle {
  /** The checkpoint asked of the worker, until it has run. */
  private pending: Promise<void> | undefined;
  private released: Promise<void> | undefined;
  /** `<file>-shm`, opened when first read (SQLite creates it with the log). */
  private shm: number | undefined;
  private readonly header = Buffer.alloc(136);

  constructor(
    private readonly checkpointer: Checkpointer,
    private readonly registration: Registration,
    private readonly file: string,
    private readonly settings: CheckpointSettings,
  ) {}

  /**
   * The log's length in frames and how many of them are copied back, from the wal-index header
   * (walformat.html: `mxFrame` at byte 16 of the header, which is written twice, then `nBackfill` at
   * byte 96, in native byte order); undefined when it cannot be read or a writer is changing it.
   */
  logState(): { frames: number; backfilled: number } | undefined {
    const h = this.header;
    try {
      this.shm ??= openSync(`${this.file}-shm`, "r");
      if (readSync(this.shm, h, 0, h.length, 0) < h.length) return undefined;
    } catch {
      return undefined;
    }
    const u32 = (offset: number) => (little ? h.readUInt32LE(offset) : h.readUInt32BE(offset));
    // Version 3007000, initialised, and both copies of the header equal.
    if (u32(0) !== 3007000 || h[12] !== 1 || h.compare(h, 0, 48, 48, 96) !== 0) return undefined;
    return { frames: u32(16), backfilled: u32(96) };
  }

  /** After a commit: once `checkpointFrames` frames wait, asks the worker to copy them back (without waiting). */
  committed(): void {
    if (this.pending || !this.checkpointer.serves(this.registration)) return;
    const log = this.logState();
    if (log && log.frames - log.backfilled >= this.settings.checkpointFrames) void this.checkpoint();
  }

  /** The log holds `maxFrames` frames not all copied back: a write should wait for the worker first. */
  behind(): boolean {
    if (!this.checkpointer.serves(this.registration)) return false;
    const log = this.logState();
    return log !== undefined && log.frames >= this.settings.maxFrames && log.backfilled < log.frames;
  }

  /**
   * Before a write transaction, while `behind()`: has the worker copy the log back and waits for it
   * (asynchronously, at most `waitMs`); the write then starts the log over.
   */
  async throttle(waitMs: number, stopped: () => boolean): Promise<void> {
    const deadline = Date.now() + waitMs;
    while (this.behind() && !stopped() && Date.now() < deadline) {
      await this.checkpointer.awaiting(this.checkpoint());
      // Still behind: another process's checkpoint held the log, or another process writes too.
      if (this.behind()) await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }

  /** Asks the worker for a PASSIVE checkpoint; resolves once it has run (or the worker cannot). */
  private checkpoint(): Promise<void> {
    if (!this.pending) {
      this.pending = new Promise<void>((resolve) => {
        this.registration.checkpointed = () => {
          this.registration.checkpointed = undefined;
          this.pending = undefined;
          resolve();
        };
      });
      this.checkpointer.post({ type: "checkpoint", id: this.registration.id });
    }
    return this.pending;
  }

  /** Closes the worker's connection (after the main thread's: it copies the log back and removes it). */
  release(): Promise<void> {
    if (!this.released) {
      if (this.shm !== undefined) closeSync(this.shm);
      this.shm = undefined;
      if (!this.checkpointer.serves(this.registration)) this.released = Promise.resolve();
      else {
        const closed = new Promise<void>((resolve) => {
          this.registration.closed = resolve;
        });
        this.released = this.checkpointer.awaiting(closed);
        this.checkpointer.post({ type: "close", id: this.registration.id });
      }
    }
    return this.released;
  }
}

const checkpointer = new Checkpointer();

/**
 * Hands the checkpoints of `file` to the worker; undefined when there is no worker (it failed): the
 * connection then keeps SQLite's automatic checkpoint. `fallback` is called should the worker fail later.
 */
export function checkpointInWorker(
  file: string,
  fsync: boolean,
  settings: Partial<CheckpointSettings> | undefined,
  fallback: (reason: string) => void,
): CheckpointHandle | undefined {
  return checkpointer.register(file, fsync, { ...DEFAULT_CHECKPOINT_SETTINGS, ...settings }, fallback);
}
