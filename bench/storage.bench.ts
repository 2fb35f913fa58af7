/**
 * Embedded storage benchmark: inserts, unique lookups, upserts and keyset page latency at 100k
 * documents, in memory and file-backed (temp dir). Build, then run:
 *   npx tsc -p tsconfig.build.json && node dist/bench/storage.bench.js [--docs 100000] [--memory-only]
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { openEmbeddedDatabase } from "../shared/storage/embedded";
import type { Collection, Database, Doc } from "../shared/storage/port";
import { uuidv7 } from "../shared/ids";

interface Profile extends Doc {
  store_id: string;
  email_lower: string;
  status: string;
  created_at: number;
  visits: number;
}

const args = process.argv.slice(2);
const arg = (name: string, fallback: number) => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : fallback;
};
const DOCS = arg("--docs", 100_000);
const STORES = 4;
const CONCURRENCY = 64;

function rate(n: number, ms: number): string {
  return `${Math.round((n / ms) * 1000).toLocaleString("en-US")} ops/s`;
}

function percentile(sorted: number[], p: number): string {
  return `${sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))].toFixed(3)} ms`;
}

/** Runs `n` operations with `CONCURRENCY` in flight; returns elapsed ms. */
async function timed(n: number, op: (i: number) => Promise<unknown>): Promise<number> {
  const start = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < n) await op(next++);
    }),
  );
  return performance.now() - start;
}

const storeOf = (i: number) => `store-${i % STORES}`;
const emailOf = (i: number) => `user${i}@example.com`;

async function run(label: string, db: Database): Promise<void> {
  console.log(`\n== ${label}: ${DOCS.toLocaleString("en-US")} documents, ${STORES} stores, ${CONCURRENCY} ops in flight`);
  const c: Collection<Profile> = db.collection<Profile>("profiles");
  await c.createIndexes([
    { name: "store_email", keys: { store_id: 1, email_lower: 1 }, unique: true, partial: { email_lower: { $type: "string" } } },
    { name: "store_created", keys: { store_id: 1, created_at: 1 } },
  ]);
  const base = 1_700_000_000;

  let ms = await timed(DOCS, (i) =>
    c.insertOne({ _id: uuidv7(), store_id: storeOf(i), email_lower: emailOf(i), status: i % 3 === 0 ? "archived" : "active", created_at: base + Math.floor(i / 10), visits: 0 }),
  );
  console.log(`insertOne              ${rate(DOCS, ms)}`);

  const lookups = Math.min(DOCS, 100_000);
  ms = await timed(lookups, async (i) => {
    const k = (i * 7919) % DOCS;
    const doc = await c.findOne({ store_id: storeOf(k), email_lower: emailOf(k) });
    if (!doc) throw new Error("lookup missed");
  });
  console.log(`findOne by unique key  ${rate(lookups, ms)}`);

  const upserts = Math.min(DOCS, 50_000);
  ms = await timed(upserts, (i) => {
    const k = i % 2 === 0 ? (i * 7919) % DOCS : DOCS + i;
    return c.updateOne(
      { store_id: storeOf(k), email_lower: emailOf(k) },
      { $inc: { visits: 1 }, $setOnInsert: { status: "active", created_at: base + k } },
      { upsert: true },
    );
  });
  console.log(`upsert by unique key   ${rate(upserts, ms)} (half new)`);

  const pages = 2000;
  const latencies: number[] = [];
  for (let i = 0; i < pages; i++) {
    const store = storeOf(i);
    const start = performance.now();
    const after = i % 4 === 0 ? undefined : { value: base + ((i * 104729) % (DOCS / 10)), id: "" };
    const page = await c.findPage({ filter: { store_id: store, status: "active" }, sort: { field: "created_at", direction: -1 }, limit: 20, after });
    latencies.push(performance.now() - start);
    if (page.items.length === 0 && !after) throw new Error("empty page");
  }
  latencies.sort((a, b) => a - b);
  console.log(`findPage limit 20      p50 ${percentile(latencies, 50)}  p99 ${percentile(latencies, 99)}  (store_id + status filter, sort created_at desc)`);

  const streamed = performance.now();
  let n = 0;
  for await (const _doc of c.stream({ store_id: storeOf(0) }, { batchSize: 500 })) n++;
  console.log(`stream one store       ${rate(n, performance.now() - streamed)} (${n.toLocaleString("en-US")} documents)`);
}

async function main(): Promise<void> {
  const memory = await openEmbeddedDatabase(`bench_${process.pid}`);
  await run("embedded, memory", memory);
  await memory.close();
  if (args.includes("--memory-only")) return;

  const dir = mkdtempSync(join(tmpdir(), "crm-storage-bench-"));
  try {
    const file = await openEmbeddedDatabase("bench", { dir });
    await run(`embedded, file (${dir})`, file);
    await file.close();
    const reopen = performance.now();
    const again = await openEmbeddedDatabase("bench", { dir });
    await again.collection("profiles").count({});
    console.log(`reopen (replay)        ${(performance.now() - reopen).toFixed(0)} ms`);
    await again.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
