/**
 * The operator CLI: `keys create|list|revoke` and `events dead-letters list|replay`, usage and exit codes,
 * local storage, the bus and NATS JetStream.
 */
import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { ServiceBroker, type ServiceSchema } from "moleculer";
import { connect, type JetStreamManager, type NatsConnection } from "nats";
import { resetConfig } from "../../shared/config";
import { durableChannel, publishEvent } from "../../shared/events/durable";
import { deadLetterStream } from "../../shared/events/dead-letters";
import { storageMixin } from "../../shared/mixins/storage.mixin";
import { uuidv7 } from "../../shared/ids";
import { ZodValidator } from "../../shared/validation";
import AuthService from "../../services/auth/auth.service";
import { assertNatsUp, deleteStreams, NATS_URL, startBroker, uniqueName, waitFor } from "../../test/harness";
import { freePort } from "../../test/harness/ports";
import { main, USAGE } from "../cli";

const run = promisify(execFile);
const ROOT = path.resolve(__dirname, "../..");

function capture() {
  const out: string[] = [];
  const err: string[] = [];
  return { io: { out: (l: string) => void out.push(l), err: (l: string) => void err.push(l) }, out, err, text: () => out.join("\n"), errText: () => err.join("\n") };
}

const ENV_KEYS = ["TRANSPORTER", "MONGO_URL", "DATA_DIR", "STORAGE", "JWT_SECRET", "EVENTS_PREFIX", "EVENTS_RETRY_DELAYS"];
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
    [["events"]],
    [["events", "dead-letter", "list"]],
    [["events", "dead-letters"]],
    [["events", "dead-letters", "list", "extra"]],
    [["events", "dead-letters", "replay"]],
    [["events", "dead-letters", "replay", "--all", "3"]],
    [["events", "dead-letters", "replay", "0"]],
    [["events", "dead-letters", "replay", "3x"]],
    [["events", "dead-letters", "replay", "--force"]],
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

    const again = capture();
    await expect(main(["keys", "revoke", keyId], { io: again.io })).resolves.toBe(0);
    expect(again.text()).toMatch(new RegExp(`API key ${keyId} was already revoked \\(\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d UTC\\)\\.`));
  });

  /** The store the server makes on its first start. */
  const openStore = async () => {
    const server = await startBroker({ services: [AuthService as ServiceSchema], storage: { dataDir } });
    await server.stop();
  };

  it("exits 1 when revoking an unknown key", async () => {
    await openStore();
    const c = capture();
    const id = uuidv7();
    await expect(main(["keys", "revoke", id], { io: c.io })).resolves.toBe(1);
    expect(c.errText()).toBe(`No API key with id ${id}.`);
  });

  it("says so when there are no keys", async () => {
    await openStore();
    const c = capture();
    await expect(main(["keys", "list"], { io: c.io })).resolves.toBe(0);
    expect(c.text()).toBe("No API keys.");
  });

  it("refuses to list or revoke where there is no store (a mistyped DATA_DIR), and says when create makes one", async () => {
    for (const args of [
      ["keys", "list"],
      ["keys", "revoke", uuidv7()],
    ]) {
      const c = capture();
      await expect(main(args, { io: c.io })).resolves.toBe(1);
      expect(c.errText()).toContain(`No embedded store in ${dataDir} (it has no auth.sqlite).`);
    }
    const created = capture();
    await expect(main(["keys", "create", "--store", uuidv7()], { io: created.io })).resolves.toBe(0);
    expect(created.errText()).toContain(`Note: there was no store in ${dataDir}; a new one holds this key.`);
    const listed = capture();
    await expect(main(["keys", "list"], { io: listed.io })).resolves.toBe(0);
    expect(listed.errText()).toBe("");
  });
});

describe("cli keys over the bus (TRANSPORTER set)", () => {
  const namespace = `cli-test-${uuidv7()}`;
  const transporter = process.env.NATS_URL ?? "nats://127.0.0.1:4222";

  it("calls the running auth service", async () => {
    useEnv({ TRANSPORTER: undefined, STORAGE: "memory", JWT_SECRET: "cli-test-secret" });
    const server = new ServiceBroker({
      namespace,
      nodeID: `auth-${uuidv7()}`,
      transporter: { type: "NATS", options: { url: transporter } },
      logger: false,
      validator: new ZodValidator({}),
    });
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

  it("exits 1 saying so when nothing answers at TRANSPORTER (Moleculer alone would retry for ever), and 2 for a TRANSPORTER that is not NATS", async () => {
    const nobody = `nats://127.0.0.1:${await freePort()}`;
    useEnv({ TRANSPORTER: nobody });
    const c = capture();
    await expect(main(["keys", "list"], { io: c.io, broker: { namespace } })).resolves.toBe(1);
    expect(c.errText()).toMatch(new RegExp(`^Could not reach NATS at ${nobody}: `));
    useEnv({ TRANSPORTER: "bogus://x" });
    const bogus = capture();
    await expect(main(["keys", "list"], { io: bogus.io, broker: { namespace } })).resolves.toBe(2);
    expect(bogus.errText()).toMatch(/^TRANSPORTER must be the system's NATS server, nats:\/\/host:4222/);
  });
});

describe("cli events dead-letters (NATS JetStream)", () => {
  const prefix = uniqueName("t");
  const stream = deadLetterStream(prefix);
  /** Order ids the consumer refuses (they go to DEAD_LETTER), and what it applied. */
  const failing = new Set<string>();
  const applied: string[] = [];
  const sink: ServiceSchema = {
    name: "cli-sink",
    mixins: [storageMixin("cli-sink")],
    channels: {
      "order.created": durableChannel("order.created", {
        group: "cli-sink",
        handler(payload) {
          if (failing.has(payload.order_id)) throw new Error(`storage said no to ${payload.order_id}`);
          applied.push(payload.order_id);
        },
      }),
    },
  };
  const storeId = uuidv7();
  let consumer: ServiceBroker;
  let nc: NatsConnection;
  let jsm: JetStreamManager;

  const letters = async () => (await jsm.streams.info(stream)).state.messages;
  const cli = async (...args: string[]) => {
    useEnv({ TRANSPORTER: NATS_URL, EVENTS_PREFIX: prefix });
    const c = capture();
    const code = await main(["events", "dead-letters", ...args], { io: c.io });
    return { code, out: c.text(), err: c.errText() };
  };

  beforeAll(async () => {
    await assertNatsUp();
    nc = await connect({ servers: NATS_URL });
    jsm = await nc.jetstreamManager();
    consumer = await startBroker({
      services: [sink],
      transporter: NATS_URL,
      namespace: prefix,
      channelPrefix: prefix,
      env: { EVENTS_RETRY_DELAYS: "50ms" },
    });
  });
  afterAll(async () => {
    await consumer?.stop();
    await deleteStreams(prefix);
    await nc?.close();
  });

  it("exits 2 with one line when TRANSPORTER is not a NATS URL", async () => {
    for (const transporter of [undefined, "redis://127.0.0.1:6379"]) {
      useEnv({ TRANSPORTER: transporter });
      const c = capture();
      await expect(main(["events", "dead-letters", "list"], { io: c.io })).resolves.toBe(2);
      expect(c.err).toEqual(["The events commands need TRANSPORTER=nats://host:4222, the NATS server of the running system."]);
      expect(c.out).toEqual([]);
    }
  });

  it("lists the dead letters with why, and replays one, then all: each event applied once, DEAD_LETTER empty", async () => {
    await expect(cli("list")).resolves.toEqual({ code: 0, out: `No dead letters in ${stream}.`, err: "" });

    for (const id of ["A-1", "A-2", "A-3"]) failing.add(id);
    for (const id of ["A-1", "A-2", "A-3"]) await publishEvent(consumer, "order.created", { store_id: storeId, order_id: id, total: 5 });
    await waitFor(async () => (await letters()) === 3, "three dead letters");

    const listed = await cli("list");
    expect(listed.code).toBe(0);
    const lines = listed.out.split("\n");
    expect(lines[0]).toMatch(/^SEQ\s+DEAD-LETTERED \(UTC\)\s+EVENT\s+GROUP\s+REDELIVERED\s+ERROR\s+PAYLOAD$/);
    const rows = lines.slice(1, 4);
    for (const [i, id] of ["A-1", "A-2", "A-3"].entries()) {
      expect(rows[i]).toMatch(
        new RegExp(
          `^\\d+\\s+\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d\\s+order\\.created\\s+cli-sink\\s+1\\s+storage said no to ${id}\\s+\\{"store_id":"${storeId}","order_id":"${id}","total":5\\}$`,
        ),
      );
    }
    expect(lines.slice(4)).toEqual(["", `3 dead letters in ${stream}. Replay with: npm run cli -- events dead-letters replay <seq>... | --all`]);
    const seqOf = (id: string) => rows.find((row) => row.includes(`"${id}"`))!.split(/\s+/)[0];

    // Still failing: the replay is dead-lettered again (a new letter), the old one is gone.
    const again = await cli("replay", seqOf("A-1"));
    expect(again).toMatchObject({
      code: 0,
      out: expect.stringMatching(
        new RegExp(`^Replayed dead letter ${seqOf("A-1")} to ${prefix}\\.order\\.created \\(message \\d+\\)\\.\\nReplayed 1 of 1 dead letter\\.$`),
      ),
    });
    await waitFor(
      async () => (await cli("list")).out.split("\n").filter((l) => l.includes('"A-1"')).length === 1 && (await letters()) === 3,
      "A-1 to be dead-lettered again",
    );
    expect((await cli("list")).out).not.toMatch(new RegExp(`^${seqOf("A-1")}\\s`, "m"));

    failing.clear();
    const one = await cli("replay", seqOf("A-2"));
    expect(one.code).toBe(0);
    await waitFor(() => applied.includes("A-2"), "A-2 to be applied");
    expect(await letters()).toBe(2);

    const missing = await cli("replay", "999999");
    expect(missing).toEqual({ code: 1, out: "Replayed 0 of 1 dead letter.", err: `No dead letter 999999 in ${stream}.` });

    const all = await cli("replay", "--all");
    expect(all).toMatchObject({ code: 0, out: expect.stringMatching(/Replayed 2 of 2 dead letters\.$/) });
    await waitFor(() => applied.includes("A-1") && applied.includes("A-3"), "A-1 and A-3 to be applied");
    expect([...applied].sort()).toEqual(["A-1", "A-2", "A-3"]);
    expect(await letters()).toBe(0);
    await expect(cli("list")).resolves.toEqual({ code: 0, out: `No dead letters in ${stream}.`, err: "" });
    await expect(cli("replay", "--all")).resolves.toEqual({ code: 0, out: `No dead letters in ${stream}.`, err: "" });
  });

  it("carries the original request id to the replayed event, with a fresh message id", async () => {
    failing.add("B-1");
    consumer.createService({
      name: "cli-orders",
      actions: { create: (ctx) => publishEvent(ctx, "order.created", { store_id: storeId, order_id: "B-1" }) },
    });
    await consumer.waitForServices(["cli-orders"]);
    await consumer.call("cli-orders.create", {}, { requestID: "req-replayed-1" });
    await waitFor(async () => (await letters()) === 1, "the dead letter");
    const letter = await jsm.streams.getMessage(stream, { last_by_subj: `${prefix}.DEAD_LETTER` });
    expect(letter.header.get("$requestID")).toBe("req-replayed-1");
    expect(letter.header.get("x-original-msg-id")).toBe(`order.created:${storeId}:B-1`);
    failing.clear();
    await expect(cli("replay", String(letter.seq))).resolves.toMatchObject({ code: 0 });
    await waitFor(() => applied.includes("B-1"), "B-1 to be applied");
    const replayed = await jsm.streams.getMessage(`${prefix}_order_created`, { last_by_subj: `${prefix}.order.created` });
    expect(replayed.header.get("$requestID")).toBe("req-replayed-1");
    expect(replayed.header.get("Nats-Msg-Id")).toBe(`replay:${stream}:${letter.seq}:${letter.time.getTime()}`);
    expect(replayed.header.has("x-error")).toBe(false);
  });

  it("says so when the system never created its streams on this NATS", async () => {
    useEnv({ TRANSPORTER: NATS_URL, EVENTS_PREFIX: uniqueName("nothing") });
    const c = capture();
    await expect(main(["events", "dead-letters", "list"], { io: c.io })).resolves.toBe(1);
    expect(c.errText()).toMatch(/^There is no stream nothing[0-9a-f]+_DEAD_LETTER: no service of this system \(EVENTS_PREFIX\) has started on this NATS\.$/);
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
      env: {
        ...process.env,
        NODE_PATH: path.join(ROOT, "node_modules"),
        DATA_DIR: dataDir,
        TRANSPORTER: "",
        MONGO_URL: "",
        STORAGE: "auto",
        JWT_SECRET: "cli-test-secret",
      },
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

  it("works on the embedded store while the server has it open: both see each other's keys", async () => {
    useEnv({ DATA_DIR: dataDir, STORAGE: undefined, MONGO_URL: undefined, JWT_SECRET: "cli-test-secret" });
    const server = await startBroker({ services: [AuthService as ServiceSchema], storage: { dataDir } });
    try {
      const store = uuidv7();
      const created = await cli(["keys", "create", "--store", store, "--name", "while running"]);
      expect(created.code).toBe(0);
      const key = /crm_sk_[A-Za-z0-9_-]{43}/.exec(created.stdout)![0];
      // The running auth service accepts the key the CLI stored in the same SQLite file.
      await expect(server.call("auth.verifyApiKey", { key })).resolves.toMatchObject({ store_id: store });
      const listed = await cli(["keys", "list", "--store", store]);
      expect(listed).toMatchObject({ code: 0, stdout: expect.stringContaining("while running") });
    } finally {
      await server.stop();
    }
  });

  it("says what to check when the embedded store cannot be opened", async () => {
    const notADir = path.join(dataDir, "a-file");
    await writeFile(notADir, "");
    const result = await run(process.execPath, [path.join(outDir, "bin/cli.js"), "keys", "create", "--store", uuidv7()], {
      cwd: ROOT,
      env: {
        ...process.env,
        NODE_PATH: path.join(ROOT, "node_modules"),
        DATA_DIR: path.join(notADir, "data"),
        TRANSPORTER: "",
        MONGO_URL: "",
        STORAGE: "auto",
        JWT_SECRET: "x",
      },
    }).then(
      () => ({ code: 0, stderr: "" }),
      (err: { code: number; stderr: string }) => ({ code: err.code, stderr: err.stderr }),
    );
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(`Could not open the embedded store under ${path.join(notADir, "data")}: ENOTDIR`);
    expect(result.stderr).toMatch(/TRANSPORTER/);
  });
});
