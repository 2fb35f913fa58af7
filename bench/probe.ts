/**
 * Measuring probe for the storage bench: times every call of the SQLite adapter and watches the event
 * loop, without changing the adapter. Loaded two ways:
 *   - imported by bench/storage.bench.ts (the port measurements, in the bench's own child process);
 *   - preloaded into the real server: `node --require dist/bench/probe.js dist/bin/server.js`, spawned
 *     with an IPC channel; the bench asks it for its figures with `{ probe: "report", reset }`.
 *
 * Every adapter call runs to the end synchronously (node:sqlite is synchronous; the async methods have no
 * await before their work), so the time from a call to the return of its promise is exactly how long it
 * kept the event loop: that is the "storage call" time reported. A `stream` is timed per `next()` (the
 * call that reads a batch runs synchronously inside it), reported as `<collection>.stream`.
 */
import { monitorEventLoopDelay, performance, type IntervalHistogram } from "node:perf_hooks";
import type { Doc } from "../shared/storage/port";
import { SqliteCollection } from "../shared/storage/sqlite/collection";

/** One adapter call, as kept for the slowest calls. */
export interface CallRecord {
  call: string;
  /** Wall-clock time of the call: how long it held the event loop. */
  ms: number;
  /** CPU time of the calling thread during the call (on a loaded machine, wall time also counts waiting for a core). */
  cpuMs: number;
  /** Documents the read examined (SqliteCollection.lastExamined after the call; reads only). */
  examined: number;
  /** The call's first argument (filter, page request, specs), shortened. */
  args: string;
  /** "ok" or the StorageError code it failed with. */
  outcome: string;
}

export interface CallStats {
  call: string;
  calls: number;
  totalMs: number;
  totalCpuMs: number;
  maxMs: number;
  maxCpuMs: number;
  over50: number;
  /** Calls that used over 50 ms of CPU. */
  over50Cpu: number;
}

export interface ProbeReport {
  /** Per `<collection>.<method>`, since the last reset. */
  calls: CallStats[];
  /** The slowest calls since the last reset (at most 10), slowest first. */
  slowest: CallRecord[];
  /** Event-loop delay since the last reset, ms. */
  loop: { max: number; p50: number; p99: number; mean: number };
  /** process.memoryUsage() in MB; `afterGc` when the report was asked with `gc` (needs --expose-gc). */
  memory: { rss: number; heapUsed: number; external: number; afterGc?: { rss: number; heapUsed: number } };
  /** Each SQLite database this process opened: when (ms since process start) and how long opening took. */
  opens: { name: string; atMs: number; ms: number }[];
  /** ms since process start. */
  nowMs: number;
}

const METHODS = [
  "createIndexes",
  "insertOne",
  "findOne",
  "find",
  "findPage",
  "count",
  "updateOne",
  "updateMany",
  "findOneAndUpdate",
  "deleteOne",
  "deleteMany",
  "bulkWrite",
] as const;

const stats = new Map<string, CallStats>();
let slowest: CallRecord[] = [];
const opens: ProbeReport["opens"] = [];
let loop: IntervalHistogram | undefined;
let installed = false;

function shorten(value: unknown): string {
  let text: string;
  try {
    text = JSON.stringify(value) ?? String(value);
  } catch {
    text = String(value);
  }
  return text.length > 300 ? `${text.slice(0, 300)}…` : text;
}

/**
 * CPU time of this thread (Node >= 23.9), else of the process (which also counts V8's concurrent GC
 * threads, so it overstates a call's own work when the heap is busy). Linux may count a thread's time in
 * scheduler ticks (4 ms here): a single short call's CPU is then 0 or 4 ms, but means over many calls and
 * the CPU of long calls hold.
 */
const cpuUsage: (previous?: NodeJS.CpuUsage) => NodeJS.CpuUsage =
  (process as unknown as { threadCpuUsage?: (previous?: NodeJS.CpuUsage) => NodeJS.CpuUsage }).threadCpuUsage?.bind(process) ?? process.cpuUsage.bind(process);

/** Runs `fn`, measuring its wall-clock and CPU time in ms. */
function measured<R>(fn: () => R): { result: R; ms: number; cpuMs: number } {
  const cpu = cpuUsage();
  const started = performance.now();
  const result = fn();
  const ms = performance.now() - started;
  const used = cpuUsage(cpu);
  return { result, ms, cpuMs: (used.user + used.system) / 1000 };
}

function record(call: string, ms: number, cpuMs: number, examined: number, args: unknown[], outcome: string): void {
  let s = stats.get(call);
  if (!s) {
    s = { call, calls: 0, totalMs: 0, totalCpuMs: 0, maxMs: 0, maxCpuMs: 0, over50: 0, over50Cpu: 0 };
    stats.set(call, s);
  }
  s.calls++;
  s.totalMs += ms;
  s.totalCpuMs += cpuMs;
  if (ms > s.maxMs) s.maxMs = ms;
  if (cpuMs > s.maxCpuMs) s.maxCpuMs = cpuMs;
  if (ms > 50) s.over50++;
  if (cpuMs > 50) s.over50Cpu++;
  if (slowest.length < 10 || ms > slowest[slowest.length - 1].ms) {
    const first = call.endsWith(".bulkWrite") && Array.isArray(args[0]) ? `[${(args[0] as unknown[]).length} ops]` : shorten(args[0]);
    slowest.push({ call, ms, cpuMs, examined, args: first, outcome });
    slowest.sort((a, b) => b.ms - a.ms);
    if (slowest.length > 10) slowest.length = 10;
  }
}

/** Wraps the adapter's methods (once per process) and starts watching the event loop. */
export function installProbe(): void {
  if (installed) return;
  installed = true;
  const proto = SqliteCollection.prototype as unknown as Record<string, (...args: unknown[]) => Promise<unknown>>;
  for (const method of METHODS) {
    const original = proto[method];
    proto[method] = function (this: SqliteCollection<Doc>, ...args: unknown[]): Promise<unknown> {
      this.lastExamined = 0;
      const { result: promise, ms, cpuMs } = measured(() => original.apply(this, args));
      const call = `${this.name}.${method}`;
      const examined = this.lastExamined;
      promise.then(
        () => record(call, ms, cpuMs, examined, args, "ok"),
        (err: { code?: string; message?: string }) => {
          // A read that fails with SCAN_LIMIT says in its message how many documents it read.
          const read = /read (\d+) documents/.exec(String(err?.message))?.[1];
          record(call, ms, cpuMs, read ? Number(read) : examined, args, err?.code ?? "error");
        },
      );
      return promise;
    };
  }
  const stream = proto.stream as unknown as (...args: unknown[]) => AsyncIterable<unknown>;
  (proto as unknown as Record<string, unknown>).stream = function (this: SqliteCollection<Doc>, ...args: unknown[]): AsyncIterable<unknown> {
    const iterable = stream.apply(this, args);
    const call = `${this.name}.stream`;
    return {
      [Symbol.asyncIterator]() {
        const iterator = iterable[Symbol.asyncIterator]();
        return {
          next() {
            const { result: promise, ms, cpuMs } = measured(() => iterator.next());
            promise.then(
              () => record(call, ms, cpuMs, 0, args, "ok"),
              (err: { code?: string }) => record(call, ms, cpuMs, 0, args, err?.code ?? "error"),
            );
            return promise;
          },
          return(value?: unknown) {
            return iterator.return ? iterator.return(value) : Promise.resolve({ done: true as const, value });
          },
        };
      },
    };
  };
  // openSqliteDatabase is looked up on the module's exports at each call (CommonJS), so wrapping it here
  // times the opens the services make.
  const database = require("../shared/storage/sqlite/database") as Record<string, (...args: unknown[]) => Promise<unknown>>;
  const open = database.openSqliteDatabase;
  database.openSqliteDatabase = function (...args: unknown[]) {
    const started = performance.now();
    const promise = open.apply(this, args);
    opens.push({ name: String(args[0]), atMs: started, ms: performance.now() - started });
    return promise;
  };
  loop = monitorEventLoopDelay({ resolution: 1 });
  loop.enable();
}

export function probeReport(reset: boolean, gc = false): ProbeReport {
  const mb = (bytes: number) => Math.round((bytes / 2 ** 20) * 10) / 10;
  const ms = (ns: number) => Math.round((ns / 1e6) * 100) / 100;
  const memory = process.memoryUsage();
  let afterGc: ProbeReport["memory"]["afterGc"];
  const collect = (globalThis as { gc?: () => void }).gc;
  if (gc && collect) {
    collect();
    const m = process.memoryUsage();
    afterGc = { rss: mb(m.rss), heapUsed: mb(m.heapUsed) };
  }
  const report: ProbeReport = {
    calls: [...stats.values()].map((s) => ({ ...s })),
    slowest: slowest.map((c) => ({ ...c })),
    loop: loop ? { max: ms(loop.max), p50: ms(loop.percentile(50)), p99: ms(loop.percentile(99)), mean: ms(loop.mean) } : { max: 0, p50: 0, p99: 0, mean: 0 },
    memory: { rss: mb(memory.rss), heapUsed: mb(memory.heapUsed), external: mb(memory.external), ...(afterGc ? { afterGc } : {}) },
    opens: opens.map((o) => ({ ...o })),
    nowMs: performance.now(),
  };
  if (reset) probeReset();
  return report;
}

export function probeReset(): void {
  stats.clear();
  slowest = [];
  loop?.reset();
}

// Preloaded into a process spawned with an IPC channel (the server): answer the bench's questions.
if (process.send && process.env.CRM_BENCH_PROBE === "1") {
  installProbe();
  process.on("message", (message: { probe?: string; reset?: boolean; gc?: boolean }) => {
    if (message?.probe === "report") process.send!({ probe: "report", report: probeReport(message.reset === true, message.gc === true) });
  });
  // The channel must not keep the server alive once it is asked to stop.
  process.channel?.unref();
}
