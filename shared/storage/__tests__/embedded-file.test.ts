/**
 * The storage contract on the file-backed embedded adapter, plus its own promises: data survives a
 * reopen and a killed process, a torn last log line is ignored, logs are compacted, and one live
 * process at a time holds a database directory.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { appendFileSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { hostname, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { closeAllEmbeddedDatabases, openEmbeddedDatabase } from "../embedded";
import type { Doc } from "../port";
import { describeStorageContract } from "./contract";

const root = mkdtempSync(join(tmpdir(), "crm-storage-test-"));
let dirs = 0;
const freshDir = () => join(root, `db${++dirs}`);

afterAll(async () => {
  await closeAllEmbeddedDatabases();
  rmSync(root, { recursive: true, force: true });
});

describeStorageContract("embedded (file)", () => openEmbeddedDatabase("contract_file", { dir: freshDir() }));

interface Item extends Doc {
  store_id: string;
  n?: number;
  email_lower?: string;
}

const lines = (path: string) => readFileSync(path, "utf8").split("\n").filter(Boolean);

/**
 * Runs a TypeScript snippet in a separate Node process (transpiled on the fly with @swc/core), with
 * `openEmbeddedDatabase` in scope. Resolves once the child prints "ready".
 */
function child(body: string): Promise<{ proc: ChildProcess; output: () => string }> {
  const embedded = resolve(__dirname, "../embedded.ts");
  const hook = `
    const fs = require("node:fs");
    const { transformSync } = require("@swc/core");
    require.extensions[".ts"] = (module, filename) => {
      const { code } = transformSync(fs.readFileSync(filename, "utf8"), {
        filename, jsc: { target: "es2022", parser: { syntax: "typescript" } }, module: { type: "commonjs" },
      });
      module._compile(code, filename);
    };
    const { openEmbeddedDatabase } = require(${JSON.stringify(embedded)});
    (async () => { ${body} })().catch((e) => { console.log("error " + (e.code || "") + " " + e.message); process.exit(3); });
  `;
  const proc = spawn(process.execPath, ["-e", hook], { cwd: resolve(__dirname, "../../.."), stdio: ["ignore", "pipe", "inherit"] });
  let out = "";
  return new Promise((resolvePromise, reject) => {
    proc.stdout!.on("data", (chunk: Buffer) => {
      out += chunk.toString();
      if (out.includes("ready")) resolvePromise({ proc, output: () => out });
      if (out.includes("error ")) reject(new Error(out));
    });
    proc.on("exit", (code) => reject(new Error(`child exited (${code}) before ready: ${out}`)));
  });
}

function killed(proc: ChildProcess): Promise<void> {
  return new Promise((r) => {
    if (proc.exitCode !== null || proc.signalCode !== null) return r();
    proc.once("exit", () => r());
    proc.kill("SIGKILL");
  });
}

describe("embedded file storage", () => {
  it("keeps inserts, updates, upserts and deletes across a reopen", async () => {
    const dir = freshDir();
    const db = await openEmbeddedDatabase("reopen", { dir });
    const c = db.collection<Item>("items");
    await c.insertOne({ _id: "a", store_id: "s", n: 1 });
    await c.insertOne({ _id: "b", store_id: "s", n: 1 });
    await c.insertOne({ _id: "c", store_id: "s", n: 1 });
    await c.updateOne({ _id: "a" }, { $inc: { n: 41 } });
    await c.deleteOne({ _id: "b" });
    const { upsertedId } = await c.updateOne({ store_id: "s", email_lower: "x@y.io" }, { $set: { n: 7 } }, { upsert: true });
    await db.close();

    const again = await openEmbeddedDatabase("reopen", { dir });
    const items = again.collection<Item>("items");
    expect(await items.find({}, { sort: { _id: 1 } })).toEqual(
      [
        { _id: "a", store_id: "s", n: 42 },
        { _id: "c", store_id: "s", n: 1 },
        { _id: upsertedId, store_id: "s", email_lower: "x@y.io", n: 7 },
      ].sort((x, y) => (x._id! < y._id! ? -1 : 1)),
    );
    // Indexes are declared again at start-up and checked against the loaded data.
    await items.createIndexes([{ name: "email_unique", keys: { store_id: 1, email_lower: 1 }, unique: true, partial: { email_lower: { $type: "string" } } }]);
    await expect(items.insertOne({ _id: "d", store_id: "s", email_lower: "x@y.io" })).rejects.toMatchObject({ code: "DUPLICATE_KEY", index: "email_unique" });
    await again.close();
  });

  it("has the record on disk when a write resolves", async () => {
    const dir = freshDir();
    const db = await openEmbeddedDatabase("durable", { dir });
    await db.collection<Item>("items").insertOne({ _id: "a", store_id: "s" });
    expect(lines(join(dir, "items.jsonl")).map((l) => JSON.parse(l))).toEqual([{ put: { _id: "a", store_id: "s" } }]);
    await db.collection<Item>("items").deleteOne({ _id: "a" });
    expect(JSON.parse(lines(join(dir, "items.jsonl"))[1])).toEqual({ del: "a" });
    await db.close();
  });

  it("ignores a torn last line and compacts the log on open", async () => {
    const dir = freshDir();
    const db = await openEmbeddedDatabase("torn", { dir });
    const c = db.collection<Item>("items");
    for (let i = 0; i < 5; i++) await c.insertOne({ _id: `i${i}`, store_id: "s", n: i });
    await c.updateOne({ _id: "i0" }, { $set: { n: 100 } });
    await db.close();
    appendFileSync(join(dir, "items.jsonl"), '{"put":{"_id":"i9","store_id":"s","n":');

    const again = await openEmbeddedDatabase("torn", { dir });
    const items = again.collection<Item>("items");
    expect(await items.count({})).toBe(5);
    expect(await items.findOne({ _id: "i0" })).toEqual({ _id: "i0", store_id: "s", n: 100 });
    expect(await items.findOne({ _id: "i9" })).toBeNull();
    expect(lines(join(dir, "items.jsonl"))).toHaveLength(5);
    await items.insertOne({ _id: "i5", store_id: "s" });
    await again.close();

    const third = await openEmbeddedDatabase("torn", { dir });
    expect(await third.collection<Item>("items").count({})).toBe(6);
    await third.close();
  });

  it("refuses a log damaged in the middle with UNAVAILABLE instead of losing data silently", async () => {
    const dir = freshDir();
    const db = await openEmbeddedDatabase("corrupt", { dir });
    await db.collection<Item>("items").insertOne({ _id: "a", store_id: "s" });
    await db.close();
    const path = join(dir, "items.jsonl");
    writeFileSync(path, `{"put":{"_id":"a"\n${readFileSync(path, "utf8")}`);
    await expect(openEmbeddedDatabase("corrupt", { dir })).rejects.toMatchObject({ code: "UNAVAILABLE", message: expect.stringContaining("line 1") });
    // The failed open released its lock.
    expect(readdirSync(dir)).not.toContain("LOCK");
  });

  it("refuses a last line that was damaged after it was written (it has its newline: not a torn write)", async () => {
    const dir = freshDir();
    const db = await openEmbeddedDatabase("damaged-tail", { dir });
    for (const id of ["a", "b"]) await db.collection<Item>("items").insertOne({ _id: id, store_id: "s" });
    await db.close();
    const path = join(dir, "items.jsonl");
    const text = readFileSync(path, "utf8");
    const lastLine = text.lastIndexOf("{");
    writeFileSync(path, `${text.slice(0, lastLine + 3)}\u0000\u0000\u0000${text.slice(lastLine + 6)}`);
    await expect(openEmbeddedDatabase("damaged-tail", { dir })).rejects.toMatchObject({
      code: "UNAVAILABLE",
      message: expect.stringMatching(/corrupt storage log .*items\.jsonl at line 2; restore the file from a backup/),
    });
    expect(readFileSync(path, "utf8")).toContain("\u0000"); // the evidence is left as it was
  });

  it("after a failed log write refuses every read and write, so a change the disk does not have is never served", async () => {
    const dir = freshDir();
    const db = await openEmbeddedDatabase("failed-write", { dir });
    const items = db.collection<Item>("items");
    mkdirSync(join(dir, "items.jsonl")); // the log cannot be opened for appending: as good as a full disk
    await expect(items.insertOne({ _id: "lost", store_id: "s" })).rejects.toMatchObject({ code: "UNAVAILABLE" });
    await expect(items.findOne({ _id: "lost" })).rejects.toMatchObject({ code: "UNAVAILABLE" });
    await expect(items.count({})).rejects.toMatchObject({ code: "UNAVAILABLE" });
    await expect(db.collection<Item>("other").insertOne({ _id: "x", store_id: "s" })).rejects.toMatchObject({ code: "UNAVAILABLE" });
    await expect(db.ping()).rejects.toMatchObject({ code: "UNAVAILABLE", message: expect.stringContaining("items.jsonl") });
    await db.close();
  });

  it("stops writing when another process replaces its log or its LOCK (never acknowledges a write no restart finds)", async () => {
    for (const damage of ["log", "lock"] as const) {
      const dir = freshDir();
      const db = await openEmbeddedDatabase(`taken-${damage}`, { dir });
      const items = db.collection<Item>("items");
      await items.insertOne({ _id: "before", store_id: "s" });
      if (damage === "log") {
        // What a second server does at open: rewrite the log and rename it into place.
        writeFileSync(join(dir, "items.jsonl.tmp"), readFileSync(join(dir, "items.jsonl")));
        renameSync(join(dir, "items.jsonl.tmp"), join(dir, "items.jsonl"));
      } else {
        rmSync(join(dir, "LOCK"));
        writeFileSync(join(dir, "LOCK"), "999999\n");
      }
      await new Promise((r) => setTimeout(r, 600)); // writers check their ownership every 500 ms
      await expect(items.insertOne({ _id: "after", store_id: "s" })).rejects.toMatchObject({
        code: "UNAVAILABLE",
        message: damage === "log" ? expect.stringMatching(/replaced or removed by another process/) : expect.stringMatching(/LOCK of this process was removed or replaced/),
      });
      await expect(items.count({})).rejects.toMatchObject({ code: "UNAVAILABLE" });
      await db.close();
      expect(readFileSync(join(dir, "items.jsonl"), "utf8")).not.toContain("after");
    }
  });

  it("compacts a log that grows with rewrites of the same documents", async () => {
    const dir = freshDir();
    const db = await openEmbeddedDatabase("compact", { dir });
    const c = db.collection<Item>("items");
    await c.insertOne({ _id: "counter", store_id: "s", n: 0 });
    await c.insertOne({ _id: "other", store_id: "s", n: 0 });
    for (let round = 0; round < 12; round++) {
      await Promise.all(Array.from({ length: 1000 }, () => c.updateOne({ _id: "counter" }, { $inc: { n: 1 } })));
    }
    await db.close();
    expect(lines(join(dir, "items.jsonl")).length).toBeLessThan(5000);
    const again = await openEmbeddedDatabase("compact", { dir });
    expect(await again.collection<Item>("items").findOne({ _id: "counter" })).toMatchObject({ n: 12000 });
    expect(await again.collection<Item>("items").count({})).toBe(2);
    await again.close();
  });

  it("drop removes the collections' files", async () => {
    const dir = freshDir();
    const db = await openEmbeddedDatabase("drop", { dir });
    await db.collection<Item>("a").insertOne({ _id: "1", store_id: "s" });
    await db.collection<Item>("b").insertOne({ _id: "1", store_id: "s" });
    await db.drop();
    expect(readdirSync(dir).filter((f) => f.endsWith(".jsonl"))).toEqual([]);
    await db.collection<Item>("a").insertOne({ _id: "2", store_id: "s" });
    await db.close();
    const again = await openEmbeddedDatabase("drop", { dir });
    expect(await again.collection<Item>("a").find({})).toEqual([{ _id: "2", store_id: "s" }]);
    expect(await again.collection<Item>("b").count({})).toBe(0);
    await again.close();
  });

  it("shares one store between handles of the same directory in one process", async () => {
    const dir = freshDir();
    const one = await openEmbeddedDatabase("shared", { dir });
    const two = await openEmbeddedDatabase("shared", { dir });
    await one.collection<Item>("items").insertOne({ _id: "a", store_id: "s" });
    expect(await two.collection<Item>("items").count({})).toBe(1);
    await one.close();
    await expect(one.collection<Item>("items").count({})).rejects.toMatchObject({ code: "UNAVAILABLE" });
    expect(await two.collection<Item>("items").count({})).toBe(1);
    await two.close();
    await expect(two.ping()).rejects.toMatchObject({ code: "UNAVAILABLE" });
  });

  it("lets one live process hold a database: a second gets UNAVAILABLE naming it; a dead holder's lock is stale", async () => {
    const dir = freshDir();
    const { proc } = await child(`
      const db = await openEmbeddedDatabase("locked", { dir: ${JSON.stringify(dir)} });
      await db.collection("items").insertOne({ _id: "from-child", store_id: "s" });
      console.log("ready");
      setInterval(() => {}, 1000);
    `);
    try {
      const err = await openEmbeddedDatabase("locked", { dir }).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: "UNAVAILABLE", message: expect.stringContaining(`pid ${proc.pid}`) });
      expect((err as Error).message).toContain("LOCK");
    } finally {
      await killed(proc);
    }
    // SIGKILL left the lock file behind; its process is gone, so the lock is stale.
    const db = await openEmbeddedDatabase("locked", { dir });
    expect(await db.collection<Item>("items").findOne({ _id: "from-child" })).toEqual({ _id: "from-child", store_id: "s" });
    expect(readFileSync(join(dir, "LOCK"), "utf8")).toMatch(new RegExp(`^${process.pid} ${hostname()} [0-9a-f]{16}\n$`));
    await db.close();
  });

  it("refuses a folder held by a process on another host or container (its liveness cannot be checked)", async () => {
    const dir = freshDir();
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, "LOCK"), `${process.pid} other-container 0123456789abcdef\n`); // same pid: pid 1 in two containers
    await expect(openEmbeddedDatabase("foreign", { dir })).rejects.toMatchObject({
      code: "UNAVAILABLE",
      message: expect.stringMatching(/open by pid \d+ on host other-container .*must not share a DATA_DIR/),
    });
    expect(readFileSync(join(dir, "LOCK"), "utf8")).toContain("other-container"); // left alone
  });

  it("loses no acknowledged write when the process is killed mid-stream", async () => {
    const dir = freshDir();
    const { proc, output } = await child(`
      const db = await openEmbeddedDatabase("crash", { dir: ${JSON.stringify(dir)} });
      const c = db.collection("items");
      let i = 0;
      console.log("ready");
      for (;;) {
        await Promise.all([0, 1, 2, 3].map(() => { const id = "d" + String(i++).padStart(6, "0"); return c.insertOne({ _id: id, store_id: "s" }); }));
        process.stdout.write("acked " + i + "\\n");
      }
    `);
    await new Promise<void>((r) => {
      const poll = setInterval(() => {
        if ((output().match(/acked/g) ?? []).length >= 50) {
          clearInterval(poll);
          r();
        }
      }, 10);
    });
    await killed(proc);
    const acked = Math.max(...[...output().matchAll(/acked (\d+)/g)].map((m) => Number(m[1])));
    const db = await openEmbeddedDatabase("crash", { dir });
    const c = db.collection<Item>("items");
    expect(await c.count({})).toBeGreaterThanOrEqual(acked);
    for (let i = 0; i < acked; i += 97) expect(await c.findOne({ _id: `d${String(i).padStart(6, "0")}` })).not.toBeNull();
    await db.close();
  });
});

describe("embedded file storage lifecycle", () => {
  it("reopens a directory right after its last handle starts closing", async () => {
    const dir = freshDir();
    const db = await openEmbeddedDatabase("restart", { dir });
    const writes = Array.from({ length: 200 }, (_, i) => db.collection<Item>("items").insertOne({ _id: `i${i}`, store_id: "s" }));
    await Promise.all(writes);
    const closed = db.close();
    const again = await openEmbeddedDatabase("restart", { dir });
    await closed;
    expect(await again.collection<Item>("items").count({})).toBe(200);
    await again.close();
  });
});
