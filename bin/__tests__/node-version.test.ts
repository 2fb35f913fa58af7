/**
 * bin/node-version.js, the launcher of `npm start` and `npm test`, run by a Node older than 22.13 (what a
 * newcomer may have; the build machine's is 20): it re-runs the command under Node 24 from the npm registry
 * and passes signals on; with no way to get Node 24 it prints one line saying what to run, no stack trace.
 *
 * The suite itself runs under Node 24. The old Node is the machine's (a `node` on PATH, /usr/bin/node, ...),
 * or else node@20 from the npm registry; with neither, this test fails: it never passes without an old Node.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";

const LAUNCHER = path.resolve(__dirname, "../node-version.js");
const PATH_DIRS = (process.env.PATH ?? "").split(path.delimiter).filter(Boolean);

function versionOf(node: string): string | undefined {
  try {
    return execFileSync(node, ["--version"], { encoding: "utf8", timeout: 20_000 }).trim();
  } catch {
    return undefined;
  }
}

function atLeast(version: string, major: number, minor: number): boolean {
  const [ma, mi] = version.replace(/^v/, "").split(".").map(Number);
  return ma > major || (ma === major && mi >= minor);
}

/** An environment without the arguments npx exports to what it runs (they would hijack a nested npx). */
function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ...extra };
  for (const key of ["npm_config_call", "npm_config_package", "npm_lifecycle_event", "npm_config_registry"]) {
    if (!(key in extra)) delete env[key];
  }
  return env;
}

/** The machine's Node older than 22.13, or node@20 from the registry; throws (failing every test) without one. */
function findOldNode(): { node: string; version: string } {
  const candidates = [...PATH_DIRS.map((d) => path.join(d, "node")), "/usr/bin/node", "/usr/local/bin/node", "/bin/node", "/opt/homebrew/bin/node"];
  const seen: string[] = [];
  for (const node of candidates) {
    if (!fs.existsSync(node)) continue;
    const version = versionOf(node);
    seen.push(`${node} (${version ?? "does not run"})`);
    if (version && !atLeast(version, 22, 13)) return { node, version };
  }
  let fetched = "";
  try {
    fetched = execFileSync("npx", ["-y", "-p", "node@20", "-c", "node -p process.execPath"], { encoding: "utf8", env: cleanEnv({}), timeout: 240_000 })
      .trim()
      .split("\n")
      .pop()!;
  } catch (err) {
    fetched = `npx -p node@20 failed: ${(err as Error).message.split("\n")[0]}`;
  }
  const version = versionOf(fetched);
  if (version && !atLeast(version, 22, 13)) return { node: fetched, version };
  throw new Error(
    `No Node older than 22.13 to test the launcher with. Looked at: ${seen.join(", ") || "nothing"}; then ${fetched}. This test needs one and does not pass without it.`,
  );
}

function findNpx(dirs: string[]): string {
  for (const dir of dirs) {
    const npx = path.join(dir, "npx");
    if (fs.existsSync(npx)) return fs.realpathSync(npx);
  }
  throw new Error(`No npx found in ${dirs.join(", ")}: the launcher needs one to fetch Node 24`);
}

let old: { node: string; version: string };
let tmp: string;
/** A PATH like a machine whose Node is old: a folder with `node` (the old one) and `npx` first. */
let oldPath: string;

beforeAll(() => {
  old = findOldNode();
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "node-version-"));
  const bin = path.join(tmp, "bin");
  fs.mkdirSync(bin);
  fs.symlinkSync(old.node, path.join(bin, "node"));
  fs.symlinkSync(findNpx([...PATH_DIRS, path.dirname(old.node), "/usr/bin", "/usr/local/bin"]), path.join(bin, "npx"));
  oldPath = [bin, ...PATH_DIRS].join(path.delimiter);
}, 300_000);

afterAll(() => {
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

interface Result {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function start(node: string, command: string[], env: NodeJS.ProcessEnv): { child: ChildProcess; done: Promise<Result>; stdout: () => string } {
  const child = spawn(node, [LAUNCHER, ...command], { env, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout!.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
  const done = new Promise<Result>((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
  return { child, done, stdout: () => stdout };
}

const launch = (node: string, command: string[], env: NodeJS.ProcessEnv) => start(node, command, env).done;

function lines(text: string): string[] {
  return text.split("\n").filter((l) => l.trim() !== "");
}

function waitFor(check: () => boolean, what: string, timeoutMs = 60_000): Promise<void> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const poll = setInterval(() => {
      if (check()) {
        clearInterval(poll);
        resolve();
      } else if (Date.now() - started > timeoutMs) {
        clearInterval(poll);
        reject(new Error(`timed out waiting for ${what}`));
      }
    }, 20);
  });
}

/** A port nothing listens on (a registry that refuses connections). */
async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

const PRINT_VERSION = ["node", "-e", "console.log(process.version)"];
/** A command that runs until a signal; it exits 9 if the launcher dies first (its parent changes), not lingering. */
const UNTIL_SIGNAL = (onSigterm: string) =>
  `const parent = process.ppid; ${onSigterm} console.log("ready " + process.version + " " + parent); ` +
  "setInterval(() => { if (process.ppid !== parent) process.exit(9); }, 20);";
const rerunLine = (newVersion: string) =>
  `Node ${old.version} is older than 22.13 (this project uses node:sqlite): running under Node ${newVersion} from the npm registry (npx node@24). Install Node 24 to skip this.`;

describe("on a Node older than 22.13", () => {
  test("the test's machine really has that Node as `node`", () => {
    expect(atLeast(old.version, 22, 13)).toBe(false);
    expect(execFileSync("node", ["-p", "process.version"], { encoding: "utf8", env: cleanEnv({ PATH: oldPath }) }).trim()).toBe(old.version);
  });

  test("re-runs the command under Node 24 from the npm registry, saying so in one line", async () => {
    const r = await launch(old.node, PRINT_VERSION, cleanEnv({ PATH: oldPath, npm_lifecycle_event: "start" }));
    expect(r.code).toBe(0);
    const version = r.stdout.trim();
    expect(version).toMatch(/^v24\.\d+\.\d+$/);
    expect(lines(r.stderr)).toEqual([rerunLine(version)]);
  }, 300_000);

  test("scripts started through `#!/usr/bin/env node` (jest) also get Node 24", async () => {
    const script = path.join(tmp, "print-version");
    fs.writeFileSync(script, "#!/usr/bin/env node\nconsole.log(process.version);\n", { mode: 0o755 });
    const r = await launch(old.node, [script], cleanEnv({ PATH: oldPath }));
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toMatch(/^v24\./);
  }, 300_000);

  test("SIGTERM reaches the command, and the launcher exits with the command's code", async () => {
    const script = UNTIL_SIGNAL('process.on("SIGTERM", () => { console.log("got SIGTERM"); process.exit(7); });');
    const run = start(old.node, ["node", "-e", script], cleanEnv({ PATH: oldPath }));
    await waitFor(() => run.stdout().includes("ready"), "the command to start");
    run.child.kill("SIGTERM");
    const r = await run.done;
    expect(r.stdout).toMatch(/^ready v24\.[\s\S]*got SIGTERM/);
    expect(r.code).toBe(7);
  }, 300_000);

  test("SIGINT reaches the command, and when it kills the command the launcher dies of SIGINT too", async () => {
    const dieOfSigint = 'process.once("SIGINT", () => { console.log("got SIGINT"); process.kill(process.pid, "SIGINT"); });';
    const run = start(old.node, ["node", "-e", UNTIL_SIGNAL(dieOfSigint)], cleanEnv({ PATH: oldPath }));
    await waitFor(() => run.stdout().includes("ready"), "the command to start");
    run.child.kill("SIGINT");
    const r = await run.done;
    expect(r.stdout).toContain("got SIGINT");
    expect(r.signal).toBe("SIGINT");
  }, 300_000);

  test("a SIGTERM to npm, which only kills the shell npm runs the launcher through, still stops the command", async () => {
    const script = UNTIL_SIGNAL('process.on("SIGTERM", () => { console.log("got SIGTERM"); process.exit(7); });');
    // What npm does: `sh -c "<script line>"`; `; exit $?` keeps every sh from exec'ing the launcher in its place.
    const env = cleanEnv({ PATH: oldPath, npm_lifecycle_event: "start", OLD_NODE: old.node, LAUNCHER, SCRIPT: script });
    const shell = spawn("sh", ["-c", '"$OLD_NODE" "$LAUNCHER" node -e "$SCRIPT"; exit $?'], { env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    shell.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    const closed = new Promise<void>((resolve) => shell.on("close", () => resolve())); // every holder of the pipe is gone
    await waitFor(() => stdout.includes("ready"), "the command to start");
    const launcherPid = Number(/^ready \S+ (\d+)/.exec(stdout)![1]);
    shell.kill("SIGTERM");
    try {
      await waitFor(() => stdout.includes("got SIGTERM"), "the command to get SIGTERM", 20_000);
    } finally {
      if (!stdout.includes("got SIGTERM")) process.kill(launcherPid, "SIGKILL"); // its command then exits too
    }
    await closed;
    expect(stdout).toMatch(/^ready v24\.[\s\S]*got SIGTERM/);
  }, 300_000);

  test("with the registry unreachable, one line says what to install and run, and it exits 1", async () => {
    const cache = fs.mkdtempSync(path.join(tmp, "npm-cache-"));
    const env = cleanEnv({
      PATH: oldPath,
      npm_lifecycle_event: "start",
      npm_config_registry: `http://127.0.0.1:${await closedPort()}/`,
      npm_config_cache: cache, // nothing cached: npx has to ask the registry
      npm_config_fetch_retries: "0",
    });
    const r = await launch(old.node, PRINT_VERSION, env);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe("");
    const out = lines(r.stderr);
    expect(out).toHaveLength(1);
    expect(out[0]).toMatch(
      new RegExp(
        `^Node ${old.version.replace(/\./g, "\\.")} is older than 22\\.13 \\(this project uses node:sqlite\\) and npx could not fetch Node 24 from the npm registry \\(npm error code E[A-Z]+\\)\\. ` +
          "Install Node 24 \\(https://nodejs\\.org, or `nvm install 24`\\) and run `npm start` again\\.$",
      ),
    );
  }, 300_000);

  test("with no npx at all, one line says what to install and run, and it exits 1", async () => {
    const bin = fs.mkdtempSync(path.join(tmp, "only-node-"));
    fs.symlinkSync(old.node, path.join(bin, "node"));
    const r = await launch(old.node, ["jest"], cleanEnv({ PATH: bin, npm_lifecycle_event: "test" }));
    expect(r.code).toBe(1);
    expect(r.stdout).toBe("");
    expect(lines(r.stderr)).toEqual([
      `Node ${old.version} is older than 22.13 (this project uses node:sqlite) and npx could not fetch Node 24 from the npm registry (npx was not found on PATH). ` +
        "Install Node 24 (https://nodejs.org, or `nvm install 24`) and run `npm test` again.",
    ]);
  });
});

describe("on a Node new enough", () => {
  test("runs the command with this very Node, silently, and passes its exit code on", async () => {
    expect(atLeast(process.version, 22, 13)).toBe(true); // the suite runs under Node 24
    const ok = await launch(process.execPath, PRINT_VERSION, cleanEnv({ PATH: oldPath }));
    expect(ok).toEqual({ code: 0, signal: null, stdout: `${process.version}\n`, stderr: "" });
    const failing = await launch(process.execPath, ["node", "-e", "process.exit(3)"], cleanEnv({}));
    expect(failing.code).toBe(3);
  });
});
