/** The profile-lists service's collections and indexes, through the storage port (none yet). */
import type { Database } from "../../shared/storage/port";

export class ProfileListsStore {
  constructor(readonly db: Database) {}

  async ensureIndexes(): Promise<void> {}
}
