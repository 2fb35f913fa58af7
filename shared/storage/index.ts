/**
 * Opens a service's database on the configured adapter: MongoDB when MONGO_URL is set (database
 * `crm_<name>`, one shared client per process), else the embedded SQLite store — in memory with
 * STORAGE=memory, otherwise the file `<DATA_DIR>/<name>.sqlite`.
 */
import { resolve } from "node:path";
import { config } from "../config";
import type { Database } from "./port";
import { StorageError } from "./port";
import { closeAllSqliteDatabases, openSqliteDatabase } from "./sqlite/database";

const NAME_RE = /^[A-Za-z0-9_-]{1,50}$/;

type MongoAdapter = typeof import("./mongo");
let mongoLoaded: MongoAdapter | undefined;

/** Loaded on first use so the embedded mode never pays for the MongoDB driver. */
function mongo(): MongoAdapter {
  mongoLoaded ??= require("./mongo") as MongoAdapter;
  return mongoLoaded;
}

export async function openDatabase(name: string): Promise<Database> {
  if (!NAME_RE.test(name)) throw new StorageError("INVALID_QUERY", `invalid database name "${name}"`);
  const c = config();
  if (c.MONGO_URL) {
    return mongo().openMongoDatabase(c.MONGO_URL, `crm_${name}`);
  }
  if (c.STORAGE === "memory") return openSqliteDatabase(name);
  return openSqliteDatabase(name, { file: resolve(c.DATA_DIR, `${name}.sqlite`), fsync: c.STORAGE_FSYNC });
}

/** Closes every database this process opened, on every adapter (tests, shutdown). */
export async function closeAllDatabases(): Promise<void> {
  await closeAllSqliteDatabases();
  if (mongoLoaded) await mongoLoaded.closeAllMongoDatabases();
}
