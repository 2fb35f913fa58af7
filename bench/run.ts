/**
 * `npm run bench`: requests/s and latency of the public auth routes through the gateway (GET /profiles/me with a
 * guest session and with a verified one, whose view lists its sessions and codes), each beside a bare `node:http`
 * server measured in the same run (bench/bare-server.ts, in a process of its own like every server measured), in
 * two deployments:
 *   - one process (every service + gateway, no bus: what `npm start` runs);
 *   - split over NATS (gateway in one process, the services in another, TRANSPORTER=nats://...).
 * `GET /profiles/me` runs in BENCH_ROUNDS rounds, each session's run right after a bare server's run, so that each
 * ratio compares two runs seconds apart (a shared build machine's speed drifts by a third within minutes); each round
 * ends with `GET /health/live` beside a bare run too, the least a request through the gateway costs. Each row
 * also gives the CPU the server processes spent per request (Linux `/proc`).
 * Then the latency of walking `GET /profiles` page by page with cursors over BENCH_PROFILES profiles.
 *
 * Settings (env): BENCH_SECONDS (5) per duration-based scenario, BENCH_CONNECTIONS (32),
 * BENCH_ROUNDS (3), BENCH_PROFILES (100000), BENCH_NATS (nats://127.0.0.1:4222; "off" skips the split run).
 * Prints a Markdown table; also writes it to bench/results/latest.md.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes, randomUUID } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import autocannon from "autocannon";
import { deleteStreams } from "../test/harness/nats";
import { freePort } from "../test/harness/ports";
import { startSmtpServer, type SmtpTestServer } from "../test/harness/smtp";
import { SERVER_NODE_FLAGS } from "../bin/server-flags";

const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 32);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const PROFILES = Number(process.env.BENCH_PROFILES ?? 100_000);
const NATS_URL = process.env.BENCH_NATS ?? "nats://127.0.0.1:4222";
const ADMIN_KEY = `bench-${randomBytes(24).toString("hex")}`;
const SERVER = path.resolve(__dirname, "../bin/server.js");
const BARE_SERVER = path.resolve(__dirname, "bare-server.js");
const BARE_DEPLOYMENT = "own process";
const BARE_REQUEST: Request = { method: "GET", path: "/" };
const LIVE_REQUEST: Request = { method: "GET", path: "/health/live" };

interface Row {
  scenario: string;
  deployment: string;
  rps: number;
  p50: number;
  p99: number;
  requests: number;
  errors: number;
  /** CPU time the server processes spent per request, µs by process (where `/proc` tells). */
  cpu?: Record<string, number>;
}

/** A run of a route (`GET /profiles/me`, `GET /health/live`) and the bare server's run just before it. */
interface RunPair {
  bare: Row;
  route: Row;
}

/**
 * A round of `GET /profiles/me`: the guest session's pair, then the verified session's, then `GET /health/live`'s
 * (the gateway, moleculer-web and one action call, nothing else: the least any routed request costs).
 */
interface MeRound {
  deployment: string;
  round: number;
  guest: RunPair;
  verified: RunPair;
  live: RunPair;
}

const rows: Row[] = [];
const meRounds: MeRound[] = [];
const log = (line: string) => process.stderr.write(`${line}\n`);

// ---------------------------------------------------------------- processes

function startProcess(name: string, env: Record<string, string>): ChildProcess {
  const child = spawn(process.execPath, [...SERVER_NODE_FLAGS, SERVER], {
    env: { ...process.env, ...env, NODE_ENV: "production", LOG_LEVEL: "warn" },
    stdio: ["ignore", "ignore", "pipe"],
  });
  child.stderr?.on("data", (chunk: Buffer) => {
    const text = chunk.toString().trim();
    if (text) log(`[${name}] ${text}`);
  });
  return child;
}

async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  await new Promise<void>((resolve) => {
    child.once("exit", () => resolve());
    child.kill("SIGTERM");
  });
}

async function waitReady(base: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      const res = await fetch(`${base}/health/ready`);
      if (res.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`${base} did not become ready within ${timeoutMs} ms`);
}

function commonEnv(port: number, smtp: SmtpTestServer): Record<string, string> {
  return {
    PORT: String(port),
    STORAGE: "memory",
    SMTP_URL: smtp.url,
    CRM_ADMIN_API_KEY: ADMIN_KEY,
    JWT_SECRET: randomBytes(32).toString("hex"),
    RATE_LIMIT_PER_MINUTE: "100000000",
  };
}

// ---------------------------------------------------------------- measuring

/** The server processes of each deployment, by name: their CPU is read around each run. */
const serverProcesses = new Map<string, Record<string, ChildProcess>>();

/** Clock ticks a second in /proc/<pid>/stat (USER_HZ): 100 on Linux. */
const TICKS_PER_SECOND = 100;

/** utime + stime of each server process of `deployment`, in ticks; empty where /proc cannot be read. */
function cpuTicks(deployment: string): Record<string, number> {
  const ticks: Record<string, number> = {};
  for (const [name, child] of Object.entries(serverProcesses.get(deployment) ?? {})) {
    try {
      // The fields after the command's last ")" start at the state (field 3): utime and stime are fields 14 and 15.
      const stat = readFileSync(`/proc/${child.pid}/stat`, "utf8");
      const fields = stat.slice(stat.lastIndexOf(") ") + 2).split(" ");
      ticks[name] = Number(fields[11]) + Number(fields[12]);
    } catch {
      // not Linux, or the process is gone
    }
  }
  return ticks;
}

function cpuPerRequest(before: Record<string, number>, after: Record<string, number>, requests: number): Record<string, number> | undefined {
  const names = Object.keys(before).filter((name) => name in after);
  if (names.length === 0 || requests === 0) return undefined;
  return Object.fromEntries(names.map((name) => [name, Math.round(((after[name] - before[name]) * 1e6) / TICKS_PER_SECOND / requests)]));
}

type Request = { method: "GET" | "POST"; path: string; headers?: Record<string, string>; body?: string };

async function measure(scenario: string, deployment: string, base: string, request: Request | (() => Request), amount?: number): Promise<Row> {
  const fixed = typeof request === "function" ? request() : request;
  const ticksBefore = cpuTicks(deployment);
  const result = await autocannon({
    url: base,
    connections: CONNECTIONS,
    ...(amount ? { amount } : { duration: SECONDS }),
    // autocannon notices the end of a run only at a sample tick: 100 ms ticks (not 1 s) keep a short
    // fixed-amount run from being stretched to the next whole second.
    sampleInt: 100,
    requests: [
      {
        ...fixed,
        headers: { "content-type": "application/json", ...fixed.headers },
        ...(typeof request === "function"
          ? {
              setupRequest: (req: autocannon.Request) => {
                const next = request();
                return { ...req, ...next, headers: { "content-type": "application/json", ...next.headers } };
              },
            }
          : {}),
      },
    ],
  });
  const row: Row = {
    scenario,
    deployment,
    // Fixed-amount runs end between ticks: total / elapsed is fairer than the per-tick sample average.
    rps: Math.round(result.requests.total / Math.max(result.duration, 0.001)),
    p50: result.latency.p50,
    p99: result.latency.p99,
    requests: result.requests.total,
    errors: result.non2xx + result.errors + result.timeouts,
    cpu: cpuPerRequest(ticksBefore, cpuTicks(deployment), result.requests.total),
  };
  rows.push(row);
  log(
    `${scenario} (${deployment}): ${row.rps} req/s, p50 ${row.p50} ms, p99 ${row.p99} ms, ${row.errors} errors${row.cpu ? `, CPU µs/request ${formatCpu(row.cpu)}` : ""}`,
  );
  return row;
}

async function warmUp(base: string, request: Request): Promise<void> {
  await autocannon({ url: base, connections: CONNECTIONS, amount: 3000, requests: [request] });
}

async function postJson<T>(url: string, body: unknown, headers: Record<string, string> = {}): Promise<T> {
  const res = await fetch(url, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: JSON.stringify(body) });
  if (!res.ok) throw new Error(`POST ${url} answered ${res.status}: ${await res.text()}`);
  return (await res.json()) as T;
}

/** Runs `task` over `items` with at most `parallel` at a time. */
async function inParallel<T, R>(items: T[], parallel: number, task: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: parallel }, async () => {
      while (next < items.length) {
        const index = next++;
        results[index] = await task(items[index]);
      }
    }),
  );
  return results;
}

interface Token {
  access_token: string;
  refresh_token: string;
}

/** Magic codes for `count` fresh e-mails, spread over stores so the per-store and per-IP caps hold. */
async function prepareCodes(base: string, smtp: SmtpTestServer, count: number) {
  const perStore = 20; // the per-IP send cap of one store
  const targets = Array.from({ length: count }, (_, i) => ({
    store: STORE_IDS[Math.floor(i / perStore) % STORE_IDS.length],
    email: `bench-${randomUUID()}@example.com`,
  }));
  await inParallel(targets, 16, (t) => postJson(`${base}/v1/stores/${t.store}/profiles/auth/code`, { email: t.email }));
  return inParallel(targets, 64, async (t) => {
    const mail = await smtp.waitForMessage((m) => m.to.includes(t.email), 30_000);
    const code = /\b(\d{6})\b/.exec(mail.text)?.[1];
    if (!code) throw new Error(`no code in the mail to ${t.email}`);
    return { ...t, code };
  });
}

const STORE_IDS = Array.from({ length: 200 }, () => randomUUID());

const meRequest = (store: string, token: Token): Request => ({
  method: "GET",
  path: `/v1/stores/${store}/profiles/me`,
  headers: { authorization: `Bearer ${token.access_token}` },
});

/** A session that proved its e-mail with a code, in a store of its own (the verify scenario's send caps stay whole). */
async function verifiedSession(base: string, smtp: SmtpTestServer): Promise<{ store: string; token: Token }> {
  const store = randomUUID();
  const email = `bench-me-${randomUUID()}@example.com`;
  await postJson(`${base}/v1/stores/${store}/profiles/auth/code`, { email });
  const mail = await smtp.waitForMessage((m) => m.to.includes(email), 30_000);
  const code = /\b(\d{6})\b/.exec(mail.text)?.[1];
  if (!code) throw new Error(`no code in the mail to ${email}`);
  return { store, token: await postJson<Token>(`${base}/v1/stores/${store}/profiles/auth/verify`, { email, code }) };
}

async function measureAuthRoutes(deployment: string, base: string, smtp: SmtpTestServer): Promise<void> {
  const store = STORE_IDS[0];
  const profiles = `/v1/stores/${store}/profiles`;

  await measure("POST /profiles/initialize", deployment, base, { method: "POST", path: `${profiles}/initialize`, body: "{}" });

  const guest = await postJson<Token>(`${base}${profiles}/initialize`, {});
  const login = await verifiedSession(base, smtp);
  // Not recorded: the first requests of a path run unoptimized code (and round 1 would pay for it).
  for (const request of [meRequest(store, guest), meRequest(login.store, login.token), LIVE_REQUEST]) await warmUp(base, request);
  const pair = async (scenario: string, request: Request): Promise<RunPair> => ({
    bare: await measureBareHttp(),
    route: await measure(scenario, deployment, base, request),
  });
  for (let round = 1; round <= ROUNDS; round++) {
    meRounds.push({
      deployment,
      round,
      guest: await pair("GET /profiles/me (guest session)", meRequest(store, guest)),
      verified: await pair("GET /profiles/me (verified session)", meRequest(login.store, login.token)),
      live: await pair("GET /health/live", LIVE_REQUEST),
    });
  }

  const sessions = 3000;
  const tokens = await inParallel(Array.from({ length: sessions }), 32, () => postJson<Token>(`${base}${profiles}/initialize`, {}));
  let t = 0;
  await measure(
    "POST /profiles/auth/refresh",
    deployment,
    base,
    () => ({ method: "POST", path: `${profiles}/auth/refresh`, body: JSON.stringify({ refresh_token: tokens[t++ % sessions].refresh_token }) }),
    sessions,
  );

  const codes = await prepareCodes(base, smtp, Number(process.env.BENCH_CODES ?? 2000));
  let c = 0;
  await measure(
    "POST /profiles/auth/verify",
    deployment,
    base,
    () => {
      const item = codes[c++ % codes.length];
      return { method: "POST", path: `/v1/stores/${item.store}/profiles/auth/verify`, body: JSON.stringify({ email: item.email, code: item.code }) };
    },
    codes.length,
  );
}

// ---------------------------------------------------------------- baselines and search

/** The bare server's address, once `startBareServer` has started it. */
let bareBase = "";

/** The baseline server, in a process of its own (bench/bare-server.ts), warmed up; its CPU is read like the others'. */
async function startBareServer(): Promise<ChildProcess> {
  const port = await freePort();
  const child = spawn(process.execPath, [...SERVER_NODE_FLAGS, BARE_SERVER], { env: { ...process.env, PORT: String(port) }, stdio: ["ignore", "ignore", "pipe"] });
  child.stderr?.on("data", (chunk: Buffer) => log(`[bare] ${chunk.toString().trim()}`));
  bareBase = `http://127.0.0.1:${port}`;
  serverProcesses.set(BARE_DEPLOYMENT, { bare: child });
  await waitReady(bareBase);
  await warmUp(bareBase, BARE_REQUEST);
  return child;
}

function measureBareHttp(): Promise<Row> {
  return measure("bare node:http (baseline)", BARE_DEPLOYMENT, bareBase, BARE_REQUEST);
}

const formatCpu = (cpu: Record<string, number>) =>
  Object.entries(cpu)
    .map(([name, us]) => `${name} ${us}`)
    .join(", ");

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
};

/** The rounds of GET /profiles/me, each run beside the bare server's run just before it, and each deployment's medians. */
function meReport(): string[] {
  const ratio = ({ bare, route }: RunPair) => route.rps / bare.rps;
  const cells = (p: RunPair) => `${p.bare.rps} | ${p.route.rps} | ${ratio(p).toFixed(2)} | ${p.route.p99}`;
  const lines = [
    `GET /profiles/me against the bare node:http server's run just before each (${ROUNDS} round${ROUNDS === 1 ? "" : "s"} a deployment):`,
    "",
    "| deployment | round | bare req/s | guest req/s | ratio | p99 ms | bare req/s | verified req/s | ratio | p99 ms |",
    "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ...meRounds.map((r) => `| ${r.deployment} | ${r.round} | ${cells(r.guest)} | ${cells(r.verified)} |`),
    "",
  ];
  for (const deployment of new Set(meRounds.map((r) => r.deployment))) {
    const of = meRounds.filter((r) => r.deployment === deployment);
    const summary = (run: "guest" | "verified" | "live") =>
      `${median(of.map((r) => ratio(r[run]))).toFixed(2)} of bare, p99 ${median(of.map((r) => r[run].route.p99))} ms`;
    lines.push(`- ${deployment}, medians: guest ${summary("guest")}; verified ${summary("verified")}; GET /health/live ${summary("live")}`);
  }
  return lines;
}

async function measureSearch(base: string): Promise<string[]> {
  const store = STORE_IDS[1];
  const auth = { authorization: `Bearer ${ADMIN_KEY}` };
  log(`seeding ${PROFILES} profiles through POST /profiles ...`);
  let n = 0;
  await measure(
    `POST /profiles (seeding ${PROFILES})`,
    "one process",
    base,
    () => ({ method: "POST", path: `/v1/stores/${store}/profiles`, headers: auth, body: JSON.stringify({ email: `p${n++}@seed.example.com` }) }),
    PROFILES,
  );

  const lines: string[] = [];
  for (const [label, query] of [
    ["created_at desc", "sort_field=created_at&sort_direction=desc"],
    ["email asc", "sort_field=email&sort_direction=asc"],
    ["status=active, updated_at", "status=active&sort_field=updated_at"],
  ] as const) {
    const latencies: number[] = [];
    let cursor: string | null = null;
    for (let page = 0; page < 300; page++) {
      const url: string = `${base}/v1/stores/${store}/profiles?limit=20&${query}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`;
      const started = process.hrtime.bigint();
      const res = await fetch(url, { headers: auth });
      const body = (await res.json()) as { items: unknown[]; cursor: string | null };
      latencies.push(Number(process.hrtime.bigint() - started) / 1e6);
      if (!res.ok) throw new Error(`find answered ${res.status}`);
      cursor = body.cursor;
      if (!cursor) break;
    }
    latencies.sort((a, b) => a - b);
    const pct = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))].toFixed(2);
    const line = `| ${label} | ${latencies.length} | ${pct(50)} | ${pct(99)} |`;
    lines.push(line);
    log(`find ${label}: ${latencies.length} pages, p50 ${pct(50)} ms, p99 ${pct(99)} ms`);
  }
  return lines;
}

// ---------------------------------------------------------------- main

async function main(): Promise<void> {
  const smtp = await startSmtpServer();
  const bare = await startBareServer();
  try {
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const single = startProcess("one-process", commonEnv(port, smtp));
    serverProcesses.set("one process", { server: single });
    let searchLines: string[] = [];
    try {
      await waitReady(base);
      await measureAuthRoutes("one process", base, smtp);
      searchLines = await measureSearch(base);
    } finally {
      await stopProcess(single);
    }

    if (NATS_URL !== "off") {
      const gatewayPort = await freePort();
      const splitBase = `http://127.0.0.1:${gatewayPort}`;
      // Its own namespace and event subjects: a bench run never joins a real system's consumer groups.
      const runId = `bench${randomBytes(4).toString("hex")}`;
      const env = { ...commonEnv(gatewayPort, smtp), TRANSPORTER: NATS_URL, NAMESPACE: runId, EVENTS_PREFIX: runId };
      const services = startProcess("services", { ...env, SERVICES: "auth,profiles,mailer,profile-lists,campaigns,billing" });
      const gateway = startProcess("gateway", { ...env, SERVICES: "gateway" });
      serverProcesses.set("split over NATS", { gateway, services });
      try {
        await waitReady(splitBase);
        await measureAuthRoutes("split over NATS", splitBase, smtp);
      } finally {
        await Promise.all([stopProcess(gateway), stopProcess(services)]);
        await deleteStreams(runId, NATS_URL);
      }
    }

    const report = [
      `Benchmark run ${new Date().toISOString()} on ${require("node:os").cpus().length} cores, Node ${process.version}, ${CONNECTIONS} connections`,
      "",
      "| scenario | deployment | req/s | p50 ms | p99 ms | requests | errors | server CPU µs/request |",
      "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |",
      ...rows.map((r) => `| ${r.scenario} | ${r.deployment} | ${r.rps} | ${r.p50} | ${r.p99} | ${r.requests} | ${r.errors} | ${r.cpu ? formatCpu(r.cpu) : ""} |`),
      "",
      ...meReport(),
      "",
      `Find profiles with cursors over ${PROFILES} profiles (one process, SQLite in memory, limit 20, sequential pages):`,
      "",
      "| order | pages | p50 ms | p99 ms |",
      "| --- | ---: | ---: | ---: |",
      ...searchLines,
    ].join("\n");
    console.log(report);
    const out = path.resolve(__dirname, "../../bench/results");
    mkdirSync(out, { recursive: true });
    writeFileSync(path.join(out, "latest.md"), `${report}\n`);
  } finally {
    await Promise.all([smtp.close(), stopProcess(bare)]);
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
