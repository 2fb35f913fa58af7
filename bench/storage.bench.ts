/**
 * Storage bench: BENCH_STORAGE_PROFILES (default 1,000,000) profiles in one store of the SQLite file
 * store, measured through the storage port and through HTTP on the real server.
 *
 *   npm run build --silent && node dist/bench/storage.bench.js [--profiles 100000] [--dir /tmp/crm-bench] [--no-port] [--no-http]
 *
 * 1. Seeds `<dir>/profiles.sqlite`: real ProfileDoc documents (newProfileDoc, with taxonomies, guests,
 *    archived profiles) under the real profiles indexes (ProfilesStore.ensureIndexes), through the port:
 *    `bulkWrite` batches of --batch (1000) inserts, then the last 10,000 one `insertOne` at a time.
 *    With --dir the data is kept (and how it was seeded, in profiles.sqlite.seed.json): a later run with
 *    the same --dir and size measures it again without seeding. Without --dir a temp dir is used and removed.
 * 2. Port (a fresh child process, so its RSS is what opening and reading cost): open time
 *    (openSqliteDatabase, ensureIndexes, first page), RSS, `searchProfiles` pages of 20: the first page
 *    --repeat (500) times, and going down the order with cursors, --depth-pages (100) consecutive pages at
 *    0%, 10%, ... 80% depth and --repeat at 90% (pages of --walk-limit (100) carry the cursor in between;
 *    --full-walk reads every page of 20 instead), in two orders, after --warmup-seconds (3) of unmeasured
 *    first pages; then the searches.
 * 3. HTTP (the real server, `dist/bin/server.js`, every service in one process, DATA_DIR = that dir,
 *    preloaded with bench/probe.ts): start time (spawn to /health/ready 200, beside a start on an empty
 *    DATA_DIR), RSS, `GET /v1/stores/{id}/profiles?limit=20` the same way as the port (cursors carried
 *    by pages of limit --walk-limit), then the searches, each with the server's longest event-loop delay
 *    and longest storage call while it ran.
 *
 * Every adapter call is timed (bench/probe.ts): node:sqlite is synchronous, so a call's wall time is how
 * long it held the event loop (its CPU time is reported too: on a busy machine wall time also counts
 * waiting for a core). Prints Markdown; also writes bench/results/storage-latest.md.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { setImmediate as nextTurn } from "node:timers/promises";
import type { BulkOp, Database, Page } from "../shared/storage/port";
import { openSqliteDatabase } from "../shared/storage/sqlite/database";
import { ProfilesStore, type ProfileDoc } from "../services/profiles/profiles.store";
import { newProfileDoc } from "../services/profiles/profiles.logic";
import { searchProfiles, type ProfileSearch } from "../services/profiles/profiles.search";
import type { TaxonomyEntryInput } from "../shared/contracts/profiles";
import { freePort } from "../test/harness/ports";
import { installProbe, probeReport, probeReset, type CallRecord, type CallStats, type ProbeReport } from "./probe";
import { SERVER_NODE_FLAGS } from "../bin/server-flags";

// ---------------------------------------------------------------- settings

const args = process.argv.slice(2);
function option(name: string): string | undefined {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
}
const PROFILES = Number(option("--profiles") ?? process.env.BENCH_STORAGE_PROFILES ?? 1_000_000);
const BATCH = Number(option("--batch") ?? 1000);
const DIR_OPTION = option("--dir") ?? process.env.BENCH_STORAGE_DIR;
/** Samples of the first page, and pages read from 90% depth on. */
const REPEAT = Number(option("--repeat") ?? 500);
/**
 * Seconds of first pages (both orders in turn) read, and not measured, before the pages: the first
 * reads after a start also compile code and prepare statements, and the first major GC of the heap that
 * starting left (35-40 ms here) comes about a second after the start.
 */
const WARMUP_SECONDS = Number(option("--warmup-seconds") ?? 3);

const SEARCH_REPEAT = Number(option("--search-repeat") ?? 20);
/** Page size of the HTTP walk down to 90% depth (the API's maximum is 100). */
const WALK_LIMIT = Number(option("--walk-limit") ?? 100);
/** Consecutive pages of 20 read at each of the ten depths (REPEAT at 90%). */
const DEPTH_PAGES = Number(option("--depth-pages") ?? 100);
/** Port: walk every page of 20 (slow at 1M: 50,000 pages per order) instead of ten depths. */
const FULL_WALK = args.includes("--full-walk");
const ONE_BY_ONE = Math.min(10_000, Math.floor(PROFILES / 10));
/** The bench store (a fixed id, so a kept --dir can be measured again). */
const STORE_ID = "0190a000-0000-7000-8000-00000000be9c";
const BASE_TIME = 1_640_995_200; // 2022-01-01, unix seconds
const SERVER = path.resolve(__dirname, "../bin/server.js");
const PROBE = path.resolve(__dirname, "probe.js");

const log = (line: string) => process.stderr.write(`${line}\n`);
const load = () =>
  os
    .loadavg()
    .map((l) => l.toFixed(2))
    .join(" / ");
const fmt = (n: number, digits = 2) => n.toFixed(digits);
const int = (n: number) => Math.round(n).toLocaleString("en-US");

// ---------------------------------------------------------------- profiles

const CITIES = [
  "lisbon",
  "porto",
  "madrid",
  "seville",
  "paris",
  "lyon",
  "marseille",
  "berlin",
  "hamburg",
  "munich",
  "vienna",
  "zurich",
  "geneva",
  "milan",
  "rome",
  "naples",
  "turin",
  "london",
  "leeds",
  "dublin",
  "cork",
  "oslo",
  "bergen",
  "stockholm",
  "gothenburg",
  "copenhagen",
  "aarhus",
  "helsinki",
  "tallinn",
  "riga",
  "vilnius",
  "warsaw",
  "krakow",
  "prague",
  "brno",
  "budapest",
  "bucharest",
  "sofia",
  "athens",
  "thessaloniki",
];
const TIERS = ["bronze", "silver", "gold"];

/** A multiplier coprime with PROFILES: e-mail numbers are a permutation of 0..n-1, not in creation order. */
const STRIDE = (() => {
  const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b));
  let s = 7919;
  while (gcd(s, PROFILES) !== 1) s++;
  return s;
})();

/**
 * Profile i (created in order of i, one a minute): e-mail u<k>@example.com with k a permutation of i
 * (every 10th spelled in upper case), except every 25th, a guest with no e-mail; every 50th archived;
 * every other one with a "customer" taxonomy (city: 40 values, tier: 3, orders: number, newsletter:
 * boolean), so search_values holds 3 values for half the profiles.
 */
function profileDoc(i: number): ProfileDoc {
  const guest = i % 25 === 7;
  const k = (i * STRIDE) % PROFILES;
  const email = guest ? null : i % 10 === 1 ? `U${k}@Example.com` : `u${k}@example.com`;
  const createdAt = BASE_TIME + i * 60 + (i % 7);
  const taxonomies: TaxonomyEntryInput[] =
    i % 2 === 0
      ? [
          {
            taxonomy_id: "customer",
            fields: [
              { key: "city", type: "text", value: CITIES[Math.floor(i / 2) % CITIES.length] },
              { key: "tier", type: "text", value: TIERS[i % 3] },
              { key: "orders", type: "number", value: i % 37 },
              { key: "newsletter", type: "boolean", value: i % 4 === 0 },
            ],
          },
        ]
      : [];
  const doc = newProfileDoc(STORE_ID, email, createdAt, taxonomies);
  doc.verified = !guest && i % 3 !== 0;
  if (i % 50 === 3) doc.status = "archived";
  doc.updated_at = createdAt + (i % 1000) * 60;
  if (i % 10 === 0) doc.promo_usage = [{ promo_code_id: "WELCOME10", uses: 1 + (i % 3) }];
  return doc;
}

// ---------------------------------------------------------------- statistics

interface Summary {
  n: number;
  p50: number;
  p99: number;
  max: number;
}

function summarize(samples: number[]): Summary {
  if (samples.length === 0) return { n: 0, p50: 0, p99: 0, max: 0 };
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
  return { n: sorted.length, p50: at(50), p99: at(99), max: sorted[sorted.length - 1] };
}

function rssMb(): number {
  return Math.round((process.memoryUsage().rss / 2 ** 20) * 10) / 10;
}

/** Peak RSS (VmHWM) of a process in MB, where /proc has it. */
function peakRssMb(pid: number | undefined): number | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const kb = /VmHWM:\s+(\d+) kB/.exec(status)?.[1];
    return kb ? Math.round((Number(kb) / 1024) * 10) / 10 : undefined;
  } catch {
    return undefined;
  }
}

/** The size of a database's write-ahead log (0 when there is none). */
function walBytes(file: string): number {
  try {
    return statSync(`${file}-wal`).size;
  } catch {
    return 0;
  }
}

function fileMb(file: string): number {
  let bytes = 0;
  for (const f of [file, `${file}-wal`]) if (existsSync(f)) bytes += statSync(f).size;
  return Math.round(bytes / 2 ** 20);
}

/** Adds one probe report's per-call figures to `into` (the probe's figures are reset between phases). */
function mergeCalls(into: Map<string, CallStats>, calls: CallStats[]): void {
  for (const c of calls) {
    const s = into.get(c.call) ?? { call: c.call, calls: 0, totalMs: 0, totalCpuMs: 0, maxMs: 0, maxCpuMs: 0, over50: 0, over50Cpu: 0 };
    s.calls += c.calls;
    s.totalMs += c.totalMs;
    s.totalCpuMs += c.totalCpuMs;
    s.maxMs = Math.max(s.maxMs, c.maxMs);
    s.maxCpuMs = Math.max(s.maxCpuMs, c.maxCpuMs);
    s.over50 += c.over50;
    s.over50Cpu += c.over50Cpu;
    into.set(c.call, s);
  }
}

function slowestLine(c: CallRecord | undefined): string {
  return c ? `${fmt(c.ms)} ms (CPU ${fmt(c.cpuMs)} ms) ${c.call} (${c.outcome}, examined ${c.examined})` : "-";
}

// ---------------------------------------------------------------- 1. seeding

interface SeedFigures {
  reused: boolean;
  bulkRows: number;
  bulkRowsPerSec: number;
  bulkBatch: Summary;
  oneRows: number;
  oneRowsPerSec: number;
  insertOne: Summary;
  seconds: number;
  fileMb: number;
  load: string;
  /**
   * The slowest write calls (bulkWrite batches and insertOne calls), slowest first: `ms` from the call
   * to its result, `heldMs` how long of it the event loop was held (`ms` less the adapter's waits).
   */
  slowestWrites?: { call: string; ms: number; heldMs: number }[];
  /** How long each call held the event loop (its time less the adapter's asynchronous waits). */
  bulkHeld?: Summary;
  oneHeld?: Summary;
  /** The main thread's CPU time per call (on a busy machine wall time also counts waiting for a core). */
  bulkCpu?: Summary;
  oneCpu?: Summary;
  /** The adapter's asynchronous waits before write transactions (for the checkpoint worker, for a lock). */
  waits?: AdapterWaits;
  /** The COMMIT statements of all those writes: where SQLite's automatic checkpoint ran. */
  commit?: Summary;
  /** The largest the -wal file was after a write call, MB. */
  walMaxMb?: number;
  /** The -wal file when seeding ended, before closing, MB. */
  walEndMb?: number;
  /** How long closing the database took (it may checkpoint what the log holds). */
  closeMs?: number;
}

/** The SQLite connection's count of asynchronous waits before write transactions (none in older builds). */
interface AdapterWaits {
  checkpoint: number;
  checkpointMs: number;
  lock: number;
  lockMs: number;
}

/** CPU time of this thread (Node >= 23.9), else of the process. */
const threadCpu: (previous?: NodeJS.CpuUsage) => NodeJS.CpuUsage =
  (process as unknown as { threadCpuUsage?: (previous?: NodeJS.CpuUsage) => NodeJS.CpuUsage }).threadCpuUsage?.bind(process) ?? process.cpuUsage.bind(process);

function adapterWaits(db: Database): AdapterWaits | undefined {
  return (db as unknown as { live?(): { waits?: AdapterWaits } }).live?.().waits;
}

/** Times every COMMIT of the database's connection (its automatic checkpoint, when it has one, runs inside). */
function timeCommits(db: Database): number[] {
  const times: number[] = [];
  const raw = (db as unknown as { live?(): { db?: { exec(sql: string): void } } }).live?.().db;
  if (!raw) return times;
  const exec = raw.exec.bind(raw);
  raw.exec = (sql: string) => {
    if (sql !== "COMMIT") return exec(sql);
    const t = performance.now();
    try {
      return exec(sql);
    } finally {
      times.push(performance.now() - t);
    }
  };
  return times;
}

/** What a completed seeding leaves beside the data (`<file>.seed.json`): a later run reuses the data. */
interface SeedRecord {
  profiles: number;
  /** The id of profile n/2: what the id search looks for. */
  someId: string;
  figures: SeedFigures;
}

/** Seeds `file`, or reuses it when a completed seeding of the same size is recorded beside it. */
async function seed(file: string): Promise<SeedRecord> {
  const saved = `${file}.seed.json`;
  if (existsSync(saved)) {
    const record = JSON.parse(readFileSync(saved, "utf8")) as SeedRecord;
    if (record.profiles !== PROFILES) throw new Error(`${file} holds ${record.profiles} profiles, not ${PROFILES}: remove it or give another --dir`);
    log(`${file} already holds ${int(PROFILES)} profiles (${saved}): reusing it`);
    return { ...record, figures: { ...record.figures, reused: true } };
  }
  if (existsSync(file)) throw new Error(`${file} exists but no completed seeding is recorded (${saved}): remove it or give another --dir`);
  const loadAtStart = load();
  const db = await openSqliteDatabase("profiles", { file });
  const store = new ProfilesStore(db);
  await store.ensureIndexes();
  const started = performance.now();
  const bulkRows = PROFILES - ONE_BY_ONE;
  const waits = adapterWaits(db);
  const commits = timeCommits(db);
  const waited = () => (waits ? waits.checkpointMs + waits.lockMs : 0);
  const batches: number[] = [];
  const singles: number[] = [];
  const held = { bulk: [] as number[], one: [] as number[] };
  const cpu = { bulk: [] as number[], one: [] as number[] };
  const writes: { call: string; ms: number; heldMs: number }[] = [];
  /** Times one write call: its time to the result, and how long of it the event loop was held. */
  const timed = async <R>(kind: "bulk" | "one", write: () => Promise<R>): Promise<R> => {
    const w = waited();
    const c = threadCpu();
    const t = performance.now();
    const result = await write();
    const ms = performance.now() - t;
    const used = threadCpu(c);
    cpu[kind].push((used.user + used.system) / 1000);
    const heldMs = ms - (waited() - w);
    (kind === "bulk" ? batches : singles).push(ms);
    held[kind].push(heldMs);
    writes.push({ call: `${kind === "bulk" ? "bulkWrite" : "insertOne"} #${(kind === "bulk" ? batches : singles).length}`, ms, heldMs });
    walMax = Math.max(walMax, walBytes(file));
    // Each call in a turn of the event loop of its own, as a server's requests are.
    await nextTurn();
    return result;
  };
  let walMax = 0;
  let someId = "";
  const made = (i: number) => {
    const doc = profileDoc(i);
    if (i === Math.floor(PROFILES / 2)) someId = doc._id;
    return doc;
  };
  for (let i = 0; i < bulkRows; ) {
    const ops: BulkOp<ProfileDoc>[] = [];
    for (const end = Math.min(bulkRows, i + BATCH); i < end; i++) ops.push({ insertOne: { document: made(i) } });
    const results = await timed("bulk", () => store.profiles.bulkWrite(ops));
    const failed = results.find((r) => !r.ok);
    if (failed) throw new Error(`bulkWrite failed: ${JSON.stringify(failed)}`);
    if (i % 100_000 < BATCH)
      log(`seeded ${int(i)} / ${int(PROFILES)} (${int(i / ((performance.now() - started) / 1000))} rows/s, WAL ${fmt(walBytes(file) / 2 ** 20, 1)} MB, load ${load()})`);
  }
  const bulkMs = performance.now() - started;
  // Documents are built outside the timed calls; rows/s counts the adapter's time only.
  const bulkStoreMs = batches.reduce((a, b) => a + b, 0);
  for (let i = bulkRows; i < PROFILES; i++) {
    const doc = made(i);
    await timed("one", () => store.profiles.insertOne(doc));
  }
  const oneMs = singles.reduce((a, b) => a + b, 0);
  const waitsAtEnd = waits && { ...waits };
  const walEnd = walBytes(file);
  const closing = performance.now();
  await db.close();
  const closeMs = performance.now() - closing;
  log(`seeded ${int(PROFILES)} profiles in ${fmt((performance.now() - started) / 1000, 1)} s (bulk part ${fmt(bulkMs / 1000, 1)} s)`);
  const figures: SeedFigures = {
    reused: false,
    bulkRows,
    bulkRowsPerSec: bulkRows / (bulkStoreMs / 1000),
    bulkBatch: summarize(batches),
    oneRows: ONE_BY_ONE,
    oneRowsPerSec: ONE_BY_ONE / (oneMs / 1000),
    insertOne: summarize(singles),
    seconds: (performance.now() - started) / 1000,
    fileMb: fileMb(file),
    load: `${loadAtStart} → ${load()}`,
    slowestWrites: writes.sort((a, b) => b.heldMs - a.heldMs).slice(0, 5),
    walMaxMb: walMax / 2 ** 20,
    walEndMb: walEnd / 2 ** 20,
    closeMs,
    bulkHeld: summarize(held.bulk),
    oneHeld: summarize(held.one),
    bulkCpu: summarize(cpu.bulk),
    oneCpu: summarize(cpu.one),
    waits: waitsAtEnd,
    commit: summarize(commits),
  };
  // Kept beside the data: a later run on the same --dir reuses it and reports how it was seeded.
  const record: SeedRecord = { profiles: PROFILES, someId, figures };
  writeFileSync(saved, JSON.stringify(record));
  return record;
}

// ---------------------------------------------------------------- searches (both paths)

interface SearchCase {
  label: string;
  search: Partial<ProfileSearch>;
}

/** How many of the bench's profiles each search matches (exact: the documents are a function of i). */
function matchCounts(): { prefix: Map<string, number>; lisbon: number; archived: number } {
  const prefix = new Map(["u12", "u123", "u1234"].map((p) => [p, 0]));
  let lisbon = 0;
  let archived = 0;
  for (let i = 0; i < PROFILES; i++) {
    if (i % 25 !== 7) {
      const email = `u${(i * STRIDE) % PROFILES}`;
      for (const p of prefix.keys()) if (email.startsWith(p)) prefix.set(p, prefix.get(p)! + 1);
    }
    if (i % 2 === 0 && CITIES[Math.floor(i / 2) % CITIES.length] === "lisbon") lisbon++;
    if (i % 50 === 3) archived++;
  }
  return { prefix, lisbon, archived };
}

function searchCases(someId: string): SearchCase[] {
  const taxonomy = (operation: string, key: string, value: unknown) =>
    [{ taxonomy_id: "customer", query: [{ key, type: "text", operation, value }] }] as ProfileSearch["taxonomy_query"];
  const m = matchCounts();
  const prefix = (p: string) => ({ label: `query=${p} (e-mail prefix, ${int(m.prefix.get(p)!)} matches)`, search: { query: p } });
  return [
    prefix("u12"),
    prefix("u123"),
    prefix("u1234"),
    { label: "query=<profile id>", search: { query: someId } },
    { label: "query=atlantis (text matching nothing)", search: { query: "atlantis" } },
    { label: "taxonomy city eq atlantis (indexed value, matches nothing)", search: { taxonomy_query: taxonomy("eq", "city", "atlantis") } },
    { label: `taxonomy city eq lisbon (indexed value, ${int(m.lisbon)} matches)`, search: { taxonomy_query: taxonomy("eq", "city", "lisbon") } },
    { label: "taxonomy city contains atlantis (no index serves it, matches nothing)", search: { taxonomy_query: taxonomy("contains", "city", "atlantis") } },
    { label: `status=archived (${int(m.archived)} matches, no index on status)`, search: { status: "archived" } },
  ];
}

function searchQueryString(search: Partial<ProfileSearch>): string {
  const params = new URLSearchParams();
  if (search.query) params.set("query", search.query);
  if (search.status) params.set("status", search.status);
  if (search.taxonomy_query) params.set("taxonomy_query", JSON.stringify(search.taxonomy_query));
  return params.toString();
}

interface SearchRow {
  label: string;
  answer: string;
  latency: Summary;
  loopMax?: number;
  slowest?: CallRecord;
}

const ORDERS = [
  { label: "created_at desc (default)", sort_field: "created_at", sort_direction: "desc", query: "" },
  { label: "email asc", sort_field: "email", sort_direction: "asc", query: "&sort_field=email&sort_direction=asc" },
] as const;

/** Reads the first page of each order in turn (`read`) until WARMUP_SECONDS have passed. */
async function warmUp(read: (order: (typeof ORDERS)[number]) => Promise<unknown>): Promise<void> {
  const until = performance.now() + WARMUP_SECONDS * 1000;
  while (performance.now() < until) for (const order of ORDERS) await read(order);
}

interface PageRow {
  order: string;
  /** The first page, requested again and again. */
  first: Summary;
  /** Consecutive pages of 20 from 90% depth on. */
  deep: Summary;
  deepAt: number;
  /** Consecutive pages of 20 at 0%, 10%, ... 90% depth (or every page, with --full-walk). */
  depths: Summary;
  depthsLabel: string;
  /** The larger pages that carried the cursor between those depths. */
  walk?: Summary;
  walkLabel?: string;
  loopMax?: number;
  slowest?: CallRecord;
}

/**
 * Pages down one order with cursors: `big` pages (the cursor's carrier) down to 0%, 10%, ... 90% depth,
 * and at each depth `DEPTH_PAGES` consecutive pages of 20 (REPEAT at 90%), each timed by `page`.
 */
async function pageDown<C>(
  page: (cursor: C | undefined, limit: number) => Promise<{ ms: number; rows: number; cursor: C | undefined }>,
  bigLimit: number,
): Promise<{ deep: number[]; deepAt: number; depths: number[]; walk: number[] }> {
  const depths: number[] = [];
  const walk: number[] = [];
  let deep: number[] = [];
  let deepAt = 0;
  let cursor: C | undefined;
  let rows = 0;
  for (let d = 0; d <= 9; d++) {
    const target = Math.floor((d / 10) * PROFILES);
    while (rows < target) {
      const r = await page(cursor, Math.min(bigLimit, target - rows));
      walk.push(r.ms);
      rows += r.rows;
      cursor = r.cursor;
      if (cursor === undefined) throw new Error(`the walk ended at ${rows} profiles`);
    }
    const samples: number[] = [];
    if (d === 9) deepAt = rows;
    for (let k = 0; k < (d === 9 ? REPEAT : DEPTH_PAGES); k++) {
      const r = await page(cursor, 20);
      samples.push(r.ms);
      rows += r.rows;
      cursor = r.cursor;
      if (cursor === undefined) break;
    }
    depths.push(...samples);
    if (d === 9) deep = samples;
  }
  return { deep, deepAt, depths, walk };
}

// ---------------------------------------------------------------- 2. through the port (child process)

interface PortFigures {
  rssBaseline: number;
  openMs: number;
  ensureIndexesMs: number;
  firstPageMs: number;
  rssAfterOpen: number;
  pages: PageRow[];
  searches: SearchRow[];
  rssAfter: number;
  afterGc?: { rss: number; heapUsed: number };
  slowest: CallRecord[];
  calls: CallStats[];
  load: string;
}

async function portChild(file: string, someId: string): Promise<PortFigures> {
  const loadAtStart = load();
  const rssBaseline = rssMb();
  installProbe();
  let t = performance.now();
  const db = await openSqliteDatabase("profiles", { file });
  const openMs = performance.now() - t;
  const store = new ProfilesStore(db);
  t = performance.now();
  await store.ensureIndexes();
  const ensureIndexesMs = performance.now() - t;
  const base: ProfileSearch = { sort_field: "created_at", sort_direction: "desc" };
  t = performance.now();
  await searchProfiles(store.profiles, { storeId: STORE_ID, search: base, limit: 20 });
  const firstPageMs = performance.now() - t;
  const rssAfterOpen = rssMb();
  if (!(await store.profiles.findOne({ _id: someId, store_id: STORE_ID }))) {
    throw new Error(`profile ${someId} is not in ${file}: the data was written by another version of the adapter; remove the dir and seed again`);
  }
  probeReset();
  const calls = new Map<string, CallStats>();
  const slowest: CallRecord[] = [];
  const phase = () => {
    const r = probeReport(true);
    mergeCalls(calls, r.calls);
    slowest.push(...r.slowest);
    return r;
  };

  const pages: PageRow[] = [];
  await warmUp((order) =>
    searchProfiles(store.profiles, { storeId: STORE_ID, search: { sort_field: order.sort_field, sort_direction: order.sort_direction }, limit: 20 }),
  );
  for (const order of ORDERS) {
    const search: ProfileSearch = { sort_field: order.sort_field, sort_direction: order.sort_direction };
    const sortKey = order.sort_field === "email" ? "email_sort" : "created_at";
    const first: number[] = [];
    for (let r = 0; r < REPEAT; r++) {
      const s = performance.now();
      await searchProfiles(store.profiles, { storeId: STORE_ID, search, limit: 20 });
      first.push(performance.now() - s);
    }
    let row: PageRow;
    if (FULL_WALK) {
      // Every page, with cursors (the service's keyset position: last sort value and id).
      const walk: number[] = [];
      let after: { value: unknown; id: string } | undefined;
      let rows = 0;
      let deepAt = -1;
      for (;;) {
        const s = performance.now();
        const page: Page<ProfileDoc> = await searchProfiles(store.profiles, { storeId: STORE_ID, search, limit: 20, after });
        walk.push(performance.now() - s);
        if (deepAt < 0 && rows >= 0.9 * PROFILES) deepAt = walk.length - 1;
        rows += page.items.length;
        const last = page.items[page.items.length - 1];
        if (!page.hasMore || !last) break;
        after = { value: last[sortKey], id: last._id };
      }
      if (rows !== PROFILES) throw new Error(`the ${order.label} walk read ${rows} profiles, not ${PROFILES}`);
      row = {
        order: order.label,
        first: summarize(first),
        deep: summarize(walk.slice(deepAt, deepAt + REPEAT)),
        deepAt: deepAt * 20,
        depths: summarize(walk),
        depthsLabel: `every page (${int(walk.length)})`,
      };
    } else {
      // Pages of 20 through searchProfiles at ten depths; between them the cursor is carried by pages of
      // WALK_LIMIT (the API's largest) read through searchProfiles too.
      type After = { value: unknown; id: string };
      const r = await pageDown<After>(async (after, limit) => {
        const s = performance.now();
        const page: Page<ProfileDoc> = await searchProfiles(store.profiles, { storeId: STORE_ID, search, limit, after });
        const ms = performance.now() - s;
        const last = page.items[page.items.length - 1];
        return { ms, rows: page.items.length, cursor: page.hasMore && last ? { value: last[sortKey], id: last._id } : undefined };
      }, WALK_LIMIT);
      row = {
        order: order.label,
        first: summarize(first),
        deep: summarize(r.deep),
        deepAt: r.deepAt,
        depths: summarize(r.depths),
        depthsLabel: `ten depths 0%, 10%, … 90% (${DEPTH_PAGES} consecutive pages each, ${REPEAT} at 90%)`,
        walk: summarize(r.walk),
        walkLabel: `pages of ${WALK_LIMIT} carrying the cursor between them`,
      };
    }
    const report = phase();
    row.slowest = report.slowest[0];
    pages.push(row);
    log(`port ${order.label}: first p99 ${fmt(row.first.p99)} ms, 90% p99 ${fmt(row.deep.p99)} ms, depths p99 ${fmt(row.depths.p99)} max ${fmt(row.depths.max)} ms`);
  }

  const searches: SearchRow[] = [];
  for (const c of searchCases(someId)) {
    const search: ProfileSearch = { ...base, ...c.search } as ProfileSearch;
    const latencies: number[] = [];
    let answer = "";
    for (let r = 0; r < SEARCH_REPEAT; r++) {
      const s = performance.now();
      try {
        const page = await searchProfiles(store.profiles, { storeId: STORE_ID, search, limit: 20 });
        answer = `${page.items.length} items${page.hasMore ? ", more" : ""}`;
      } catch (err) {
        answer = `error ${(err as { code?: string }).code ?? (err as Error).message}`;
      }
      latencies.push(performance.now() - s);
    }
    const report = phase();
    searches.push({ label: c.label, answer, latency: summarize(latencies), slowest: report.slowest[0] });
  }
  const rssAfter = rssMb();
  const afterGc = probeReport(false, true).memory.afterGc;
  await db.close();
  slowest.sort((a, b) => b.ms - a.ms);
  return {
    rssBaseline,
    openMs,
    ensureIndexesMs,
    firstPageMs,
    rssAfterOpen,
    pages,
    searches,
    rssAfter,
    afterGc,
    slowest: slowest.slice(0, 5),
    calls: [...calls.values()],
    load: `${loadAtStart} → ${load()}`,
  };
}

function runPortChild(file: string, someId: string): Promise<PortFigures> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [
        "--expose-gc",
        __filename,
        "--port-child",
        file,
        someId,
        "--profiles",
        String(PROFILES),
        "--repeat",
        String(REPEAT),
        "--search-repeat",
        String(SEARCH_REPEAT),
        "--depth-pages",
        String(DEPTH_PAGES),
        "--walk-limit",
        String(WALK_LIMIT),
        ...(FULL_WALK ? ["--full-walk"] : []),
      ],
      {
        stdio: ["ignore", "inherit", "inherit", "ipc"],
      },
    );
    let figures: PortFigures | undefined;
    child.on("message", (m: { figures?: PortFigures }) => (figures = m.figures));
    child.on("exit", (code) => (figures ? resolve(figures) : reject(new Error(`the port child exited with ${code}`))));
  });
}

// ---------------------------------------------------------------- 3. through HTTP (the real server)

interface Server {
  child: ChildProcess;
  base: string;
  readyMs: number;
}

const ADMIN_KEY = `bench-${randomBytes(24).toString("hex")}`;

async function startServer(dataDir: string): Promise<Server> {
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const started = performance.now();
  // Every service in one process on the SQLite file store, whatever this shell has configured.
  const inherited = { ...process.env };
  for (const name of ["MONGO_URL", "TRANSPORTER", "SERVICES", "STORAGE_FSYNC", "CURSOR_SECRET", "JWT_KEYS", "SMTP_URL"]) delete inherited[name];
  // --expose-gc only lets the probe measure live memory after a collection, at the end.
  const child = spawn(process.execPath, [...SERVER_NODE_FLAGS, "--expose-gc", "--require", PROBE, SERVER], {
    env: {
      ...inherited,
      NODE_ENV: "production",
      LOG_LEVEL: "warn",
      PORT: String(port),
      HOST: "127.0.0.1",
      DATA_DIR: dataDir,
      STORAGE: "auto",
      CRM_ADMIN_API_KEY: ADMIN_KEY,
      JWT_SECRET: randomBytes(32).toString("hex"),
      RATE_LIMIT_PER_MINUTE: "100000000",
      CRM_BENCH_PROBE: "1",
    },
    stdio: ["ignore", "pipe", "pipe", "ipc"],
  });
  // LOG_LEVEL=warn: what the server says (warnings, the runner's own lines, a stop) is worth seeing.
  for (const stream of [child.stdout, child.stderr]) {
    stream?.on("data", (chunk: Buffer) => {
      const text = chunk.toString().trim();
      if (text) log(`[server] ${text}`);
    });
  }
  child.on("exit", (code, signal) => {
    if (!stopping.has(child)) log(`[server] exited unexpectedly: code ${code}, signal ${signal}`);
  });
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`the server exited with ${child.exitCode}`);
    try {
      const res = await fetch(`${base}/health/ready`);
      await res.arrayBuffer();
      if (res.ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error("the server did not become ready within 60 s");
    await new Promise((r) => setTimeout(r, 10));
  }
  return { child, base, readyMs: performance.now() - started };
}

/** Servers this bench is stopping (any other exit is reported). */
const stopping = new WeakSet<ChildProcess>();

async function stopServer(server: Server): Promise<void> {
  const { child } = server;
  stopping.add(child);
  if (child.exitCode !== null) return;
  if (child.connected) child.disconnect();
  await new Promise<void>((resolve) => {
    child.once("exit", () => resolve());
    child.kill("SIGTERM");
  });
}

function askProbe(server: Server, reset: boolean, gc = false): Promise<ProbeReport> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("the server's probe did not answer")), 10_000);
    const onMessage = (m: { probe?: string; report?: ProbeReport }) => {
      if (m?.probe !== "report" || !m.report) return;
      clearTimeout(timer);
      server.child.off("message", onMessage);
      resolve(m.report);
    };
    server.child.on("message", onMessage);
    server.child.send({ probe: "report", reset, gc });
  });
}

async function getJson(url: string): Promise<{ status: number; ms: number; body: { items?: { id: string }[]; cursor?: string | null; error?: string } }> {
  for (let attempt = 1; ; attempt++) {
    const s = performance.now();
    try {
      const res = await fetch(url, { headers: { authorization: `Bearer ${ADMIN_KEY}` } });
      const body = (await res.json()) as { items?: { id: string }[]; cursor?: string | null };
      return { status: res.status, ms: performance.now() - s, body };
    } catch (err) {
      // A reused keep-alive connection the server had just closed: once, and counted in the report.
      if (attempt > 1) throw err;
      connectionRetries++;
      log(`request failed (${(err as { cause?: { code?: string } }).cause?.code ?? (err as Error).message}); retrying once`);
    }
  }
}

let connectionRetries = 0;

interface HttpFigures {
  emptyReadyMs: number;
  emptyRss: number;
  readyMs: number;
  profilesOpenMs: number;
  profilesIndexesMs: number;
  rssAfterReady: number;
  pages: PageRow[];
  searches: SearchRow[];
  rssAfter: number;
  heapAfter: number;
  afterGc?: { rss: number; heapUsed: number };
  peakRss?: number;
  slowest: CallRecord[];
  calls: CallStats[];
  loopMax: number;
  load: string;
}

async function measureHttp(dataDir: string, someId: string): Promise<HttpFigures> {
  const loadAtStart = load();
  // The same system on an empty DATA_DIR: what starting costs without the profiles.
  const emptyDir = mkdtempSync(path.join(os.tmpdir(), "crm-bench-empty-"));
  let emptyReadyMs: number;
  let emptyRss: number;
  try {
    const empty = await startServer(emptyDir);
    emptyReadyMs = empty.readyMs;
    emptyRss = (await askProbe(empty, true)).memory.rss;
    await stopServer(empty);
  } finally {
    rmSync(emptyDir, { recursive: true, force: true });
  }
  log(`empty server: ready in ${fmt(emptyReadyMs, 0)} ms, RSS ${emptyRss} MB`);

  const server = await startServer(dataDir);
  try {
    const ready = await askProbe(server, true);
    const profilesOpen = ready.opens.find((o) => o.name === "profiles");
    const indexes = ready.calls.find((c) => c.call === "profiles.createIndexes");
    log(`server on ${int(PROFILES)} profiles: ready in ${fmt(server.readyMs, 0)} ms, RSS ${ready.memory.rss} MB`);
    const url = (query: string, limit = 20) => `${server.base}/v1/stores/${STORE_ID}/profiles?limit=${limit}${query}`;
    let loopMax = 0;
    const slowest: CallRecord[] = [];
    const calls = new Map<string, CallStats>();

    const pages: PageRow[] = [];
    await warmUp((order) => getJson(url(order.query)));
    for (const order of ORDERS) {
      await askProbe(server, true);
      const first: number[] = [];
      for (let r = 0; r < REPEAT; r++) {
        const res = await getJson(url(order.query));
        if (res.status !== 200) throw new Error(`first page answered ${res.status}`);
        first.push(res.ms);
      }
      // Down the order with cursors: pages of WALK_LIMIT between ten depths, pages of 20 at each.
      const r = await pageDown<string>(async (cursor, limit) => {
        const res = await getJson(url(`${order.query}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`, limit));
        if (res.status !== 200) throw new Error(`a page answered ${res.status}`);
        return { ms: res.ms, rows: res.body.items!.length, cursor: res.body.cursor ?? undefined };
      }, WALK_LIMIT);
      const report = await askProbe(server, true);
      loopMax = Math.max(loopMax, report.loop.max);
      slowest.push(...report.slowest);
      mergeCalls(calls, report.calls);
      const row: PageRow = {
        order: order.label,
        first: summarize(first),
        deep: summarize(r.deep),
        deepAt: r.deepAt,
        depths: summarize(r.depths),
        depthsLabel: `ten depths 0%, 10%, … 90% (${DEPTH_PAGES} consecutive pages each, ${REPEAT} at 90%)`,
        walk: summarize(r.walk),
        walkLabel: `pages of ${WALK_LIMIT} carrying the cursor between them`,
        loopMax: report.loop.max,
        slowest: report.slowest[0],
      };
      pages.push(row);
      log(
        `http ${order.label}: first p99 ${fmt(row.first.p99)} ms, 90% p99 ${fmt(row.deep.p99)} ms, depths p99 ${fmt(row.depths.p99)} ms, loop max ${report.loop.max} ms`,
      );
    }

    const searches: SearchRow[] = [];
    for (const c of searchCases(someId)) {
      await askProbe(server, true);
      const latencies: number[] = [];
      let answer = "";
      for (let r = 0; r < SEARCH_REPEAT; r++) {
        const res = await getJson(url(`&${searchQueryString(c.search)}`));
        latencies.push(res.ms);
        answer = res.status === 200 ? `200, ${res.body.items?.length} items${res.body.cursor ? ", cursor" : ""}` : `${res.status} ${res.body.error ?? ""}`.trim();
      }
      const report = await askProbe(server, true);
      loopMax = Math.max(loopMax, report.loop.max);
      slowest.push(...report.slowest);
      mergeCalls(calls, report.calls);
      searches.push({ label: c.label, answer, latency: summarize(latencies), loopMax: report.loop.max, slowest: report.slowest[0] });
      log(`http ${c.label}: ${answer}, p50 ${fmt(summarize(latencies).p50)} ms, loop max ${report.loop.max} ms`);
    }
    const end = await askProbe(server, false);
    const afterGc = (await askProbe(server, false, true)).memory.afterGc;
    slowest.sort((a, b) => b.ms - a.ms);
    return {
      emptyReadyMs,
      emptyRss,
      readyMs: server.readyMs,
      profilesOpenMs: profilesOpen?.ms ?? NaN,
      profilesIndexesMs: indexes?.maxMs ?? NaN,
      rssAfterReady: ready.memory.rss,
      pages,
      searches,
      rssAfter: end.memory.rss,
      heapAfter: end.memory.heapUsed,
      afterGc,
      peakRss: peakRssMb(server.child.pid),
      slowest: slowest.slice(0, 5),
      calls: [...calls.values()],
      loopMax,
      load: `${loadAtStart} → ${load()}`,
    };
  } finally {
    await stopServer(server);
  }
}

// ---------------------------------------------------------------- report

function report(file: string, seedFigures: SeedFigures, port: PortFigures | undefined, http: HttpFigures | undefined): string {
  const lines = [
    `Storage bench ${new Date().toISOString()}: ${int(PROFILES)} profiles in one store, SQLite file store (${fileMb(file)} MB on disk), Node ${process.version}, ${os.cpus().length} cores`,
    "",
  ];
  if (seedFigures.reused) lines.push(`Seeding: reused ${file}; it was seeded by an earlier run, which measured:`, "");
  lines.push(
    `Seeding through the port (load ${seedFigures.load}): ${int(seedFigures.bulkRows)} profiles by bulkWrite in batches of ${BATCH}: ${int(seedFigures.bulkRowsPerSec)} rows/s (per batch p50 ${fmt(seedFigures.bulkBatch.p50)} ms, p99 ${fmt(seedFigures.bulkBatch.p99)} ms, max ${fmt(seedFigures.bulkBatch.max)} ms); then ${int(seedFigures.oneRows)} by insertOne: ${int(seedFigures.oneRowsPerSec)} rows/s (p50 ${fmt(seedFigures.insertOne.p50, 3)} ms, p99 ${fmt(seedFigures.insertOne.p99, 3)} ms, max ${fmt(seedFigures.insertOne.max)} ms). ${fmt(seedFigures.seconds, 0)} s in all.`,
    "",
  );
  if (seedFigures.slowestWrites) {
    const heldLine = (what: string, x: Summary | undefined) => (x ? `${what} p50 ${fmt(x.p50, 3)} ms, p99 ${fmt(x.p99)} ms, max ${fmt(x.max)} ms` : `${what} -`);
    const w = seedFigures.waits;
    lines.push(
      `Event loop held by a write call while seeding (its time less the adapter's asynchronous waits): ${heldLine("bulkWrite", seedFigures.bulkHeld)}; ${heldLine("insertOne", seedFigures.oneHeld)}. ` +
        `Main thread CPU per call: ${heldLine("bulkWrite", seedFigures.bulkCpu)}; ${heldLine("insertOne", seedFigures.oneCpu)}. ` +
        `${seedFigures.commit ? `${heldLine(`COMMIT (${int(seedFigures.commit.n)})`, seedFigures.commit)}. ` : ""}` +
        `Slowest: ${seedFigures.slowestWrites.map((x) => `${x.call} ${fmt(x.heldMs)} ms${x.ms - x.heldMs >= 0.01 ? ` (+${fmt(x.ms - x.heldMs)} ms waiting)` : ""}`).join(", ")}. ` +
        `${w ? `Writes waited for the checkpoint worker ${int(w.checkpoint)} times, ${fmt(w.checkpointMs / 1000, 1)} s in all (for a lock: ${int(w.lock)}). ` : ""}` +
        `Write-ahead log: at most ${fmt(seedFigures.walMaxMb ?? 0, 1)} MB after a call, ${fmt(seedFigures.walEndMb ?? 0, 1)} MB at the end; closing the database took ${fmt(seedFigures.closeMs ?? 0)} ms.`,
      "",
    );
  }
  const row = (label: string, what: string, x: Summary) => `| ${label} | ${what} | ${int(x.n)} | ${fmt(x.p50)} | ${fmt(x.p99)} | ${fmt(x.max)} |`;
  const pageTable = (rows: PageRow[]) => [
    `After ${WARMUP_SECONDS} s of first pages, not measured (the first reads after a start also compile code, and the first major GC of the start-up heap comes about a second after the start):`,
    "",
    "| order | pages (limit 20 unless said) | n | p50 ms | p99 ms | max ms |",
    "| --- | --- | ---: | ---: | ---: | ---: |",
    ...rows.flatMap((r) => [
      row(r.order, "first page (the same page, again and again)", r.first),
      row(r.order, `90% depth: consecutive pages from row ${int(r.deepAt)}`, r.deep),
      row(r.order, r.depthsLabel, r.depths),
      ...(r.walk && r.walkLabel ? [row(r.order, r.walkLabel, r.walk)] : []),
    ]),
    "",
    ...rows.map((r) => `${r.order}: slowest storage call ${slowestLine(r.slowest)}${r.loopMax !== undefined ? `; longest event-loop delay ${fmt(r.loopMax)} ms` : ""}.`),
  ];
  const searchTable = (rows: SearchRow[], http: boolean) => [
    `| search (limit 20, created_at desc) | answer | n | p50 ms | max ms | slowest storage call${http ? " | event-loop max ms" : ""} |`,
    `| --- | --- | ---: | ---: | ---: | ---${http ? " | ---:" : ""} |`,
    ...rows.map(
      (r) =>
        `| ${r.label} | ${r.answer} | ${r.latency.n} | ${fmt(r.latency.p50)} | ${fmt(r.latency.max)} | ${slowestLine(r.slowest)}${http ? ` | ${fmt(r.loopMax ?? 0)}` : ""} |`,
    ),
  ];
  const callTable = (calls: CallStats[]) => [
    "| storage call | calls | mean ms (wall / CPU) | max ms (wall / CPU) | over 50 ms (wall / CPU) |",
    "| --- | ---: | ---: | ---: | ---: |",
    ...[...calls]
      .sort((a, b) => b.maxMs - a.maxMs)
      .map(
        (c) =>
          `| ${c.call} | ${int(c.calls)} | ${fmt(c.totalMs / c.calls, 3)} / ${fmt(c.totalCpuMs / c.calls, 3)} | ${fmt(c.maxMs)} / ${fmt(c.maxCpuMs)} | ${c.over50} / ${c.over50Cpu} |`,
      ),
  ];
  const slowList = (calls: CallRecord[]) => calls.slice(0, 3).map((c) => `- ${slowestLine(c)}: ${c.args}`);
  if (port) {
    lines.push(
      `### Through the port (a fresh process; load ${port.load})`,
      "",
      `Open: openSqliteDatabase ${fmt(port.openMs)} ms, ensureIndexes ${fmt(port.ensureIndexesMs)} ms, first page ${fmt(port.firstPageMs)} ms. RSS: ${port.rssBaseline} MB before opening (Node + modules), ${port.rssAfterOpen} MB after opening, ${port.rssAfter} MB after every page and search below${port.afterGc ? ` (${port.afterGc.rss} MB, V8 heap ${port.afterGc.heapUsed} MB, after a full GC)` : ""}.`,
      "",
      ...pageTable(port.pages),
      "",
      ...searchTable(port.searches, false),
      "",
      "Every storage call after opening (each call's time is how long it held the event loop):",
      "",
      ...callTable(port.calls),
      "",
      "Slowest:",
      ...slowList(port.slowest),
      "",
    );
  }
  if (http) {
    lines.push(
      `### Through HTTP (the real server, every service in one process; load ${http.load})`,
      "",
      `Start (spawn to /health/ready 200): ${fmt(http.readyMs, 0)} ms on ${int(PROFILES)} profiles, ${fmt(http.emptyReadyMs, 0)} ms on an empty DATA_DIR; inside it, opening profiles.sqlite took ${fmt(http.profilesOpenMs)} ms and ensureIndexes ${fmt(http.profilesIndexesMs)} ms. ` +
        `RSS: ${http.rssAfterReady} MB when ready (${http.emptyRss} MB on an empty DATA_DIR), ${http.rssAfter} MB after the pages and searches below (V8 heap ${http.heapAfter} MB${http.afterGc ? `; ${http.afterGc.rss} MB, heap ${http.afterGc.heapUsed} MB, after a full GC` : ""})${http.peakRss ? `, peak ${http.peakRss} MB` : ""}.`,
      "",
      ...pageTable(http.pages),
      "",
      ...searchTable(http.searches, true),
      "",
      `Longest event-loop delay in the server during the pages and searches: ${fmt(http.loopMax)} ms.${connectionRetries ? ` ${connectionRetries} request(s) failed on the connection and were sent again.` : ""} Every storage call the server made during them (all services):`,
      "",
      ...callTable(http.calls),
      "",
      "Slowest:",
      ...slowList(http.slowest),
      "",
    );
  }
  return lines.join("\n");
}

// ---------------------------------------------------------------- main

async function main(): Promise<void> {
  if (args[0] === "--port-child") {
    const figures = await portChild(args[1], args[2]);
    process.send!({ figures });
    return;
  }
  const dir = DIR_OPTION ? path.resolve(DIR_OPTION) : mkdtempSync(path.join(os.tmpdir(), "crm-storage-bench-"));
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, "profiles.sqlite");
  log(`storage bench: ${int(PROFILES)} profiles in ${file}; load ${load()}`);
  try {
    const { figures: seeded, someId } = await seed(file);
    const port = args.includes("--no-port") ? undefined : await runPortChild(file, someId);
    const http = args.includes("--no-http") ? undefined : await measureHttp(dir, someId);
    const text = report(file, seeded, port, http);
    console.log(text);
    const out = path.resolve(__dirname, "../../bench/results");
    mkdirSync(out, { recursive: true });
    writeFileSync(path.join(out, "storage-latest.md"), `${text}\n`);
  } finally {
    if (!DIR_OPTION) rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
