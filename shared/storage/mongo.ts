/** MongoDB adapter (placeholder until it lands). */
import type { Database } from "./port";
import { StorageError } from "./port";

export async function openMongoDatabase(_url: string, name: string): Promise<Database> {
  throw new StorageError("UNAVAILABLE", `the MongoDB adapter is not implemented yet (database ${name})`);
}

export async function closeAllMongoDatabases(): Promise<void> {}
