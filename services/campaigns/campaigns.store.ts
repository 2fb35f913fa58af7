/** The campaigns service's collections and indexes, through the storage port (none yet). */
import type { Database } from "../../shared/storage/port";

export class CampaignsStore {
  constructor(readonly db: Database) {}

  async ensureIndexes(): Promise<void> {}
}
