/** The mailer service's collections and indexes, through the storage port (templates and mailboxes land here with their issues). */
import type { Database } from "../../shared/storage/port";

export class MailerStore {
  constructor(readonly db: Database) {}

  async ensureIndexes(): Promise<void> {}
}
