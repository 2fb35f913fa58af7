/**
 * Where the MongoDB-only tests get their server: MONGO_URL, or a local mongod binary that
 * mongodb-memory-server starts (MONGOMS_SYSTEM_BINARY, or `mongod` on PATH; it is never asked to
 * download one). Known when the test file loads, so suites without a server are declared with
 * `describeIfMongo` and show in jest's skipped count — never as passing tests.
 */
import { existsSync } from "node:fs";
import { delimiter, join } from "node:path";
import type { MongoMemoryServer } from "mongodb-memory-server";

function localMongod(): string | undefined {
  if (process.env.MONGOMS_SYSTEM_BINARY) return process.env.MONGOMS_SYSTEM_BINARY;
  for (const dir of (process.env.PATH ?? "").split(delimiter)) {
    if (dir && existsSync(join(dir, "mongod"))) return join(dir, "mongod");
  }
  return undefined;
}

const mongoUrl = process.env.MONGO_URL || undefined;
const binary = mongoUrl ? undefined : localMongod();

/** Whether a MongoDB server is configured or can be started here. */
export const mongoAvailable = mongoUrl !== undefined || binary !== undefined;

/** Which server the tests use, for suite titles. */
export const mongoLabel = mongoUrl ? "MONGO_URL" : (binary ?? "none");

/** `describe` where a server is available, `describe.skip` (jest counts the tests as skipped) where not. */
export const describeIfMongo = mongoAvailable ? describe : describe.skip;

/** What to tell a reader of the test output when the MongoDB-only tests are skipped. */
export const SKIP_NOTE = "MongoDB-only tests skipped: no server here. Run them with MONGO_URL=mongodb://… npm test (or MONGOMS_SYSTEM_BINARY / a mongod on PATH).";

let server: MongoMemoryServer | undefined;
let starting: Promise<string> | undefined;

/** The server's URL (a memory server is started on first use; stop it with `stopMongo`). */
export function mongoServerUrl(): Promise<string> {
  if (mongoUrl) return Promise.resolve(mongoUrl);
  if (!binary) return Promise.reject(new Error("no MongoDB server: set MONGO_URL"));
  starting ??= (async () => {
    const { MongoMemoryServer } = await import("mongodb-memory-server");
    server = await MongoMemoryServer.create({ binary: { systemBinary: binary } });
    return server.getUri();
  })();
  return starting;
}

export async function stopMongo(): Promise<void> {
  await server?.stop();
  server = undefined;
  starting = undefined;
}
