/**
 * The mailer service's collections and indexes, through the storage port:
 *   email_templates           one document per template (store-scoped; key unique per store)
 *   pending_template_deletes  a deleted template whose `email-template.deleted` event is not yet
 *                             published: written before the delete, removed once published, so a
 *                             crash or a bus outage in between cannot lose the event.
 */
import type { Collection, Database, Doc } from "../../shared/storage/port";
import type { EmailTemplateStatus } from "../../shared/contracts/mailer";

export interface EmailTemplateDoc extends Doc {
  store_id: string;
  key: string;
  name: string;
  subject: string;
  html: string;
  text: string | null;
  status: EmailTemplateStatus;
  /** Bumped on every change: the compiled-template cache is keyed by id and version. */
  version: number;
  /** The lowercased key and each word of the lowercased name: prefix-matched by `find`'s `query`. */
  search_words: string[];
  created_at: number;
  updated_at: number;
}

export interface PendingTemplateDeleteDoc extends Doc {
  store_id: string;
  created_at: number;
}

export const TEMPLATE_KEY_INDEX = "email_templates_store_key_unique";

export class MailerStore {
  readonly templates: Collection<EmailTemplateDoc>;
  readonly pendingDeletes: Collection<PendingTemplateDeleteDoc>;

  constructor(readonly db: Database) {
    this.templates = db.collection<EmailTemplateDoc>("email_templates");
    this.pendingDeletes = db.collection<PendingTemplateDeleteDoc>("pending_template_deletes");
  }

  async ensureIndexes(): Promise<void> {
    await this.templates.createIndexes([
      { name: TEMPLATE_KEY_INDEX, keys: { store_id: 1, key: 1 }, unique: true },
      { name: "email_templates_store_created", keys: { store_id: 1, created_at: 1 } },
      { name: "email_templates_store_status_created", keys: { store_id: 1, status: 1, created_at: 1 } },
      { name: "email_templates_store_search", keys: { store_id: 1, search_words: 1 } },
    ]);
  }
}
