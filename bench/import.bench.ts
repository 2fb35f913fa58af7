/**
 * The import bench: a CSV of `--rows` profiles (default 100,000) imported into a list through HTTP as one
 * `text/csv` body, on the embedded SQLite file store, in one process (what `npm start` runs) and split over
 * NATS (gateway and services in separate processes; `--nats off` skips it). Each deployment imports the
 * file twice: the first run creates every profile and membership, the second finds nothing to change.
 * Split over NATS is one process per service, as deploy/compose.yaml runs them (profiles and profile-lists
 * then write their own databases on separate cores).
 * Beside them, in the same run, the store's raw speed: the same number of profile documents written
 * through the storage port with `bulkWrite` batches of 1000 into a fresh database.
 *
 *   npm run build --silent && node dist/bench/import.bench.js [--rows 100000] [--nats nats://127.0.0.1:4222|off]
 */
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes, randomUUID } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import type { ImportResult } from "../shared/contracts/profile-lists";
import { openSqliteDatabase } from "../shared/storage/sqlite/database";
import { newProfileDoc } from "../services/profiles/profiles.logic";
import { ProfilesStore } from "../services/profiles/profiles.store";
import { deleteStreams } from "../test/harness/nats";
import { freePort } from "../test/harness/ports";
import { SERVER_NODE_FLAGS } from "../bin/server-flags";
import { SERVICE_NAMES } from "../shared/registry";

const { values: args } = parseArgs({ options: { rows: { type: "string", default: "100000" }, nats: { type: "string", default: "nats://127.0.0.1:4222" } } });
const ROWS = Number(args.rows);
const ADMIN_KEY = `bench-${randomBytes(24).toString("hex")}`;
const SERVER = path.resolve(__dirname, "../bin/server.js");
const log = (line: string) => process.stderr.write(`${line}\n`);

interface Line {
  what: string;
  seconds: number;
  rowsPerSecond: number;
  peakRssMb?: number;
  result?: string;
}

function csvOf(rows: number): Buffer {
  const lines = ["email,first_name,crm.tier,crm.city"];
  for (let i = 0; i < rows; i++) lines.push(`customer${i}.bench@example.com,Name ${i},${["gold", "silver", "bronze"][i % 3]},"City, ${i % 97}"`);
  return Buffer.from(`${lines.join("\r\n")}\r\n`);
}

function start(name: string, env: Record<string, string>): ChildProcess {
  const child = spawn(process.execPath, [...SERVER_NODE_FLAGS, SERVER], {
    env: { ...process.env, ...env, NODE_ENV: "production", LOG_LEVEL: "warn" },
    stdio: ["ignore", "ignore", "pipe"],
  });
  child.stderr?.on("data", (chunk: Buffer) => chunk.toString().trim() && log(`[${name}] ${chunk.toString().trim()}`));
  return child;
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  await new Promise<void>((resolve) => {
    child.once("exit", () => resolve());
    child.kill("SIGTERM");
  });
}

async function waitReady(base: string): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    const ok = await fetch(`${base}/health/ready`).then(
      (res) => res.ok,
      () => false,
    );
    if (ok) return;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`${base} did not become ready`);
}

/** The highest resident memory of a process so far (Linux), in MB. */
function peakRssMb(pid: number | undefined): number | undefined {
  try {
    const kb = /VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1];
    return kb ? Math.round(Number(kb) / 1024) : undefined;
  } catch {
    return undefined;
  }
}

async function importOnce(base: string, storeId: string, listId: string, csv: Buffer): Promise<{ seconds: number; result: ImportResult }> {
  const started = process.hrtime.bigint();
  const res = await fetch(`${base}/v1/stores/${storeId}/profile-lists/${listId}/profiles/import`, {
    method: "POST",
    headers: { authorization: `Bearer ${ADMIN_KEY}`, "content-type": "text/csv" },
    body: csv,
  });
  const body = (await res.json()) as ImportResult;
  if (!res.ok) throw new Error(`import answered ${res.status}: ${JSON.stringify(body)}`);
  return { seconds: Number(process.hrtime.bigint() - started) / 1e9, result: body };
}

async function measureDeployment(
  label: string,
  csv: Buffer,
  processes: (port: number, dataDir: string) => ChildProcess[],
  cleanup?: () => Promise<void>,
): Promise<Line[]> {
  const dataDir = mkdtempSync(path.join(tmpdir(), "crm-import-bench-"));
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const children = processes(port, dataDir);
  try {
    await waitReady(base);
    const storeId = randomUUID();
    const list = await fetch(`${base}/v1/stores/${storeId}/profile-lists`, {
      method: "POST",
      headers: { authorization: `Bearer ${ADMIN_KEY}`, "content-type": "application/json" },
      body: JSON.stringify({ key: "bench" }),
    }).then((res) => res.json() as Promise<{ id: string }>);
    const lines: Line[] = [];
    for (const run of ["first import (creates all)", "same file again (changes nothing)"]) {
      const { seconds, result } = await importOnce(base, storeId, list.id, csv);
      const counts = `${result.profiles_created} created, ${result.profiles_updated} updated, ${result.profiles_added} added, ${result.rows_failed} failed`;
      const peak = Math.max(...children.map((child) => peakRssMb(child.pid) ?? 0));
      lines.push({ what: `${label}: ${run}`, seconds, rowsPerSecond: ROWS / seconds, peakRssMb: peak || undefined, result: counts });
      log(`${label}: ${run}: ${seconds.toFixed(1)} s, ${counts}`);
    }
    return lines;
  } finally {
    await Promise.all(children.map(stop));
    await cleanup?.();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

async function measureRawStore(): Promise<Line> {
  const dir = mkdtempSync(path.join(tmpdir(), "crm-import-raw-"));
  try {
    const db = await openSqliteDatabase("profiles", { file: path.join(dir, "profiles.sqlite") });
    const store = new ProfilesStore(db);
    await store.ensureIndexes();
    const storeId = randomUUID();
    const started = process.hrtime.bigint();
    for (let i = 0; i < ROWS; i += 1000) {
      const ops = [];
      for (let j = i; j < Math.min(ROWS, i + 1000); j++) {
        const taxonomies = [{ taxonomy_id: "crm", fields: [{ key: "tier", type: "text" as const, value: "gold" }] }];
        ops.push({ insertOne: { document: newProfileDoc(storeId, `customer${j}.bench@example.com`, 1, taxonomies) } });
      }
      await store.profiles.bulkWrite(ops);
    }
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    await db.close();
    return { what: "storage port: bulkWrite of new profile documents (1000 a batch)", seconds, rowsPerSecond: ROWS / seconds };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const csv = csvOf(ROWS);
  log(`CSV of ${ROWS} rows, ${(csv.length / 1024 / 1024).toFixed(1)} MB`);
  const env = (port: number, dataDir: string) => ({
    PORT: String(port),
    DATA_DIR: dataDir,
    CRM_ADMIN_API_KEY: ADMIN_KEY,
    JWT_SECRET: randomBytes(32).toString("hex"),
    RATE_LIMIT_PER_MINUTE: "1000000",
  });
  const lines: Line[] = [await measureRawStore()];
  lines.push(...(await measureDeployment("one process", csv, (port, dir) => [start("one-process", env(port, dir))])));
  if (args.nats !== "off") {
    const runId = `importbench${randomBytes(4).toString("hex")}`;
    const split = (port: number, dir: string) => {
      const shared = { ...env(port, dir), TRANSPORTER: args.nats!, NAMESPACE: runId, EVENTS_PREFIX: runId };
      return SERVICE_NAMES.map((name) => start(name, { ...shared, SERVICES: name }));
    };
    lines.push(...(await measureDeployment("split over NATS", csv, split, () => deleteStreams(runId, args.nats))));
  }
  console.log(
    [
      `Import bench ${new Date().toISOString()}: ${ROWS} CSV rows (${(csv.length / 1024 / 1024).toFixed(1)} MB), SQLite file store, Node ${process.version}, ${require("node:os").cpus().length} cores`,
      "",
      "| what | seconds | rows/s | peak RSS MB (largest process) | counts |",
      "| --- | ---: | ---: | ---: | --- |",
      ...lines.map((l) => `| ${l.what} | ${l.seconds.toFixed(2)} | ${Math.round(l.rowsPerSecond)} | ${l.peakRssMb ?? ""} | ${l.result ?? ""} |`),
    ].join("\n"),
  );
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
