/** openDatabase: the adapter and location come from the configuration (MONGO_URL, STORAGE, DATA_DIR). */
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { resetConfig } from "../../config";
import { closeAllDatabases, openDatabase } from "..";

const saved = { ...process.env };
const dataDir = mkdtempSync(join(tmpdir(), "crm-open-db-"));

function configure(env: Record<string, string | undefined>): void {
  for (const key of ["MONGO_URL", "STORAGE", "DATA_DIR"]) delete process.env[key];
  Object.assign(process.env, env);
  resetConfig();
}

afterEach(async () => {
  await closeAllDatabases();
  process.env = { ...saved };
  resetConfig();
});
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

describe("openDatabase", () => {
  it("keeps data in memory only with STORAGE=memory", async () => {
    configure({ STORAGE: "memory", DATA_DIR: dataDir });
    const db = await openDatabase("profiles");
    await db.collection("people").insertOne({ _id: "a" });
    expect(await db.collection("people").count({})).toBe(1);
    expect(existsSync(join(dataDir, "profiles.sqlite"))).toBe(false);
  });

  it("stores one SQLite file per service, DATA_DIR/<name>.sqlite, by default; closeAllDatabases closes them", async () => {
    configure({ DATA_DIR: dataDir });
    const db = await openDatabase("campaigns");
    await db.collection("sends").insertOne({ _id: "a" });
    expect(existsSync(join(dataDir, "campaigns.sqlite"))).toBe(true);
    await closeAllDatabases();
    await expect(db.ping()).rejects.toMatchObject({ code: "UNAVAILABLE" });
    const again = await openDatabase("campaigns");
    expect(await again.collection("sends").findOne({ _id: "a" })).toEqual({ _id: "a" });
  });

  it("uses MongoDB when MONGO_URL is set (UNAVAILABLE when it cannot be reached)", async () => {
    configure({ MONGO_URL: "mongodb://127.0.0.1:9/?directConnection=true", STORAGE: "memory" });
    await expect(openDatabase("billing")).rejects.toMatchObject({ code: "UNAVAILABLE" });
  }, 15_000);

  it("refuses a database name that is not a plain identifier", async () => {
    configure({ STORAGE: "memory" });
    await expect(openDatabase("../etc")).rejects.toMatchObject({ code: "INVALID_QUERY" });
  });
});
