/** The operator CLI: `keys create|list|revoke`, usage and exit codes, local storage and the bus. */
import { execFile } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { ServiceBroker } from "moleculer";
import { resetConfig } from "../../shared/config";
import { uuidv7 } from "../../shared/ids";
import { openDatabase } from "../../shared/storage";
import { ZodValidator } from "../../shared/validation";
import AuthService from "../../services/auth/auth.service";
import { main, USAGE } from "../cli";

const run = promisify(execFile);
const ROOT = path.resolve(__dirname, "../..");

function capture() {
  const out: string[] = [];
  const err: string[] = [];
  return { io: { out: (l: string) => void out.push(l), err: (l: string) => void err.push(l) }, out, err, text: () => out.join("\n"), errText: () => err.join("\n") };
}

const ENV_KEYS = ["TRANSPORTER", "MONGO_URL", "DATA_DIR", "STORAGE", "JWT_SECRET"];
const saved: Record<string, string | undefined> = {};
beforeAll(() => {
  for (const k of ENV_KEYS) saved[k] = process.env[k];
});
afterEach(() => {
  for (const k of ENV_KEYS) {
    if (saved[k] === undefined) delete process.env[k];
    else process.env[k] = saved[k];
  }
  resetConfig();
});

function useEnv(env: Record<string, string | undefined>) {
  for (const [k, v] of Object.entries(env)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
  resetConfig();
}

describe("cli usage", () => {
  it("prints the help with --help and exits 0", async () => {
    const c = capture();
    await expect(main(["--help"], { io: c.io })).resolves.toBe(0);
    expect(c.text()).toBe(USAGE);
  });

  it.each([
    [[]],
    [["keys"]],
    [["keys", "create"]],
    [["keys", "create", "--store", "not-a-uuid"]],
    [["keys", "create", "--store"]],
    [["keys", "create", "--store", uuidv7(), "--colour", "red"]],
    [["keys", "create", "--store", uuidv7(), "--name", "evil\u001b[2J\nline2"]],
    [["keys", "revoke"]],
    [["keys", "revoke", "nope"]],
    [["keys", "list", "--store", "x"]],
    [["users", "list"]],
  ])("exits 2 with the usage for %j", async (argv) => {
    const c = capture();
    await expect(main(argv as string[], { io: c.io })).resolves.toBe(2);
    expect(c.errText()).toMatch(/^Error: /);
    expect(c.errText()).toContain("Usage: npm run cli");
    expect(c.out).toEqual([]);
  });
});

describe("cli keys on local storage (no TRANSPORTER)", () => {
  let dataDir: string;
  beforeEach(async () => {
    dataDir = await mkdtemp(path.join(os.tmpdir(), "crm-cli-"));
    useEnv({ TRANSPORTER: undefined, MONGO_URL: undefined, STORAGE: undefined, DATA_DIR: dataDir, JWT_SECRET: "cli-test-secret" });
  });
  afterEach(async () => {
    await rm(dataDir, { recursive: true, force: true });
  });

  it("creates a key (shown once, with a warning), lists it as a table without the key, and revokes it", async () => {
    const storeId = uuidv7();
    const created = capture();
    await expect(main(["keys", "create", "--store", storeId, "--name", "storefront backend"], { io: created.io })).resolves.toBe(0);
    const key = /(crm_sk_[A-Za-z0-9_-]{43})/.exec(created.text())?.[1];
    expect(key).toBeDefined();
    expect(created.text()).toMatch(/shown only this once/);
    const keyId = /id ([0-9a-f-]{36})/.exec(created.text())![1];

    const listed = capture();
    await expect(main(["keys", "list", "--store", storeId], { io: listed.io })).resolves.toBe(0);
    const table = listed.text();
    expect(table.split("\n")[0]).toMatch(/^ID\s+STORE\s+NAME\s+PREFIX\s+CREATED \(UTC\)\s+LAST USED\s+STATUS$/);
    expect(table).toContain(keyId);
    expect(table).toContain("storefront backend");
    expect(table).toContain(key!.slice(0, 13));
    expect(table).not.toContain(key);
    expect(table).toMatch(/active$/m);

    const revoked = capture();
    await expect(main(["keys", "revoke", keyId], { io: revoked.io })).resolves.toBe(0);
    expect(revoked.text()).toContain(`API key ${keyId} revoked.`);
    const after = capture();
    await main(["keys", "list"], { io: after.io });
    expect(after.text()).toMatch(/revoked \d{4}-\d\d-\d\d \d\d:\d\d$/m);
  });

  it("exits 1 when revoking an unknown key", async () => {
    const c = capture();
    const id = uuidv7();
    await expect(main(["keys", "revoke", id], { io: c.io })).resolves.toBe(1);
    expect(c.errText()).toBe(`No API key with id ${id}.`);
  });

  it("says so when there are no keys", async () => {
    const c = capture();
    await expect(main(["keys", "list"], { io: c.io })).resolves.toBe(0);
    expect(c.text()).toBe("No API keys.");
  });
});

describe("cli keys over the bus (TRANSPORTER set)", () => {
  const namespace = `cli-test-${uuidv7()}`;
  const transporter = process.env.NATS_URL ?? "nats://127.0.0.1:4222";

  it("calls the running auth service", async () => {
    useEnv({ TRANSPORTER: undefined, STORAGE: "memory", JWT_SECRET: "cli-test-secret" });
    const server = new ServiceBroker({ namespace, nodeID: `auth-${uuidv7()}`, transporter: { type: "NATS", options: { url: transporter } }, logger: false, validator: new ZodValidator({}) });
    server.createService(AuthService);
    await server.start();
    try {
      useEnv({ TRANSPORTER: transporter });
      const storeId = uuidv7();
      const c = capture();
      await expect(main(["keys", "create", "--store", storeId], { io: c.io, broker: { namespace } })).resolves.toBe(0);
      const key = /(crm_sk_[A-Za-z0-9_-]{43})/.exec(c.text())![1];
      await expect(server.call("auth.verifyApiKey", { key })).resolves.toMatchObject({ store_id: storeId });
    } finally {
      await server.stop();
    }
  });

  it("exits 1 with a clear message when no auth service answers", async () => {
    useEnv({ TRANSPORTER: transporter });
    const c = capture();
    await expect(main(["keys", "list"], { io: c.io, broker: { namespace: `${namespace}-empty` }, waitForAuthMs: 500 })).resolves.toBe(1);
    expect(c.errText()).toMatch(/No auth service answered/);
  });
});

describe("cli as a process", () => {
  let outDir: string;
  let dataDir: string;
  beforeAll(async () => {
    outDir = await mkdtemp(path.join(os.tmpdir(), "crm-cli-build-"));
    // Other parts of the tree may be mid-edit: tsc still emits, and only the CLI's files matter here.
    await run("npx", ["tsc", "-p", "tsconfig.build.json", "--outDir", outDir], { cwd: ROOT }).catch(() => undefined);
  }, 120_000);
  beforeEach(async () => {
    dataDir = await mkdtemp(path.join(os.tmpdir(), "crm-cli-data-"));
  });
  afterAll(async () => {
    await rm(outDir, { recursive: true, force: true });
  });
  afterEach(async () => {
    await rm(dataDir, { recursive: true, force: true });
  });

  const cli = (args: string[]) =>
    run(process.execPath, [path.join(outDir, "bin/cli.js"), ...args], {
      cwd: ROOT,
      // The build lives outside the tree: let it find the project's packages.
      env: { ...process.env, NODE_PATH: path.join(ROOT, "node_modules"), DATA_DIR: dataDir, TRANSPORTER: "", MONGO_URL: "", STORAGE: "auto", JWT_SECRET: "cli-test-secret" },
    }).then(
      ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
      (err: { code: number; stdout: string; stderr: string }) => ({ code: err.code, stdout: err.stdout, stderr: err.stderr }),
    );

  it("exits 0, 1 and 2 as documented", async () => {
    const created = await cli(["keys", "create", "--store", uuidv7()]);
    expect(created).toMatchObject({ code: 0, stdout: expect.stringMatching(/crm_sk_[A-Za-z0-9_-]{43}/) });
    expect((await cli(["keys", "revoke", uuidv7()])).code).toBe(1);
    expect((await cli(["keys", "nope"])).code).toBe(2);
  });

  it("tells the operator to stop the server (or use TRANSPORTER) when the embedded store is held", async () => {
    useEnv({ DATA_DIR: dataDir, STORAGE: undefined, MONGO_URL: undefined });
    const held = await openDatabase("auth");
    try {
      const result = await cli(["keys", "list"]);
      expect(result.code).toBe(1);
      expect(result.stderr).toMatch(/stop it first/);
      expect(result.stderr).toMatch(/TRANSPORTER/);
    } finally {
      await held.close();
    }
  });
});
