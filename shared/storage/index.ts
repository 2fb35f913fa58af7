/** Opens a service's database on the configured adapter. (Placeholder until the adapters land.) */
import type { Database } from "./port";

export async function openDatabase(name: string): Promise<Database> {
  throw new Error(`storage adapters are not implemented yet (database ${name})`);
}
