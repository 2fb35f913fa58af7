/**
 * The profile-lists service's collections and indexes, through the storage port:
 *   lists        one document per list (key unique per store; `search_words` served by a multikey index;
 *                `count_ops` marks the member_count changes applied, see counts.ts)
 *   memberships  one per (list, profile) (unique); the confirm token's hash lives on its membership, and a
 *                paid membership's Stripe references in `payment` (found by subscription id for its events)
 *   limits       fixed-window counters and cooldowns for confirmation mail (per address, per IP)
 *   secrets      the key that signs unsubscribe links (made once, shared by every instance)
 *   count_journal  member_count changes of batches (imports) not yet applied to their list (see counts.ts)
 *   deleted_templates  templates the mailer reported deleted (so a list saved meanwhile is marked too)
 */
import type { Collection, Database, Doc } from "../../shared/storage/port";
import type { Consent, MembershipStatus, Payment, ProfileListStatus, ProfileListType } from "../../shared/contracts/profile-lists";

export interface ListDoc extends Doc {
  store_id: string;
  key: string;
  name: string;
  description: string | null;
  status: ProfileListStatus;
  type: ProfileListType;
  member_count: number;
  confirm_template_missing: boolean;
  /** Lowercased key and name, and each part of them from a word on: prefix-matched by `find`'s `query`. */
  search_words: string[];
  created_at: number;
  updated_at: number;
}

export interface MembershipDoc extends Doc {
  store_id: string;
  profile_list_id: string;
  profile_id: string;
  status: MembershipStatus;
  source: "signup" | "admin" | "import" | "system";
  consent: Consent;
  consent_history: Consent[];
  payment: Payment | null;
  /** A paid membership's current checkout: a new one after an ended or expired one (part of Stripe's idempotency key). */
  checkout_attempt?: string;
  /** The Stripe event time (`created`) of the newest payment change applied: an older one never undoes it. */
  payment_version?: number;
  start_date: number | null;
  end_date: number | null;
  /** sha256 of the pending confirmation token (only while pending). */
  confirm_token_hash?: string;
  confirm_expires_at?: number;
  /** When the last confirmation mail was sent (re-sends at most once a minute). */
  last_sent_at?: number;
  /** A change of member_count written with the membership and not yet applied to the list (see counts.ts). */
  count_op?: string;
  count_delta?: number;
  count_op_at?: number;
  /** Being removed: its access has ended and the document goes once its count change settles. */
  removing?: true;
  created_at: number;
  updated_at: number;
}

/** A batch of new memberships whose member_count change is not applied yet (`_id` is the op id). */
export interface CountJournalDoc extends Doc {
  store_id: string;
  profile_list_id: string;
  membership_ids: string[];
  /** How many of them the batch inserted, once the insert is done. */
  inserted?: number;
  at: number;
}

export interface LimitDoc extends Doc {
  store_id: string;
  count: number;
  window_start: number;
  expires_at: number;
}

/** A template the mailer reported deleted (`_id` = `<store>:<template>`): never usable again (ids are not reused). */
export interface DeletedTemplateDoc extends Doc {
  store_id: string;
  deleted_at: number;
}

export interface SecretDoc extends Doc {
  secret: string;
}

export const LIST_KEY_INDEX = "lists_store_key_unique";
export const MEMBERSHIP_INDEX = "memberships_list_profile_unique";

export class ProfileListsStore {
  readonly lists: Collection<ListDoc>;
  readonly memberships: Collection<MembershipDoc>;
  readonly limits: Collection<LimitDoc>;
  readonly secrets: Collection<SecretDoc>;
  readonly deletedTemplates: Collection<DeletedTemplateDoc>;
  readonly countJournal: Collection<CountJournalDoc>;

  constructor(readonly db: Database) {
    this.lists = db.collection<ListDoc>("lists");
    this.memberships = db.collection<MembershipDoc>("memberships");
    this.limits = db.collection<LimitDoc>("limits");
    this.secrets = db.collection<SecretDoc>("secrets");
    this.deletedTemplates = db.collection<DeletedTemplateDoc>("deleted_templates");
    this.countJournal = db.collection<CountJournalDoc>("count_journal");
  }

  async ensureIndexes(): Promise<void> {
    await this.lists.createIndexes([
      { name: LIST_KEY_INDEX, keys: { store_id: 1, key: 1 }, unique: true },
      { name: "lists_store_created", keys: { store_id: 1, created_at: 1 } },
      { name: "lists_store_search", keys: { store_id: 1, search_words: 1 } },
      { name: "lists_store_template", keys: { store_id: 1, "type.confirm_template_id": 1 } },
    ]);
    await this.memberships.createIndexes([
      { name: MEMBERSHIP_INDEX, keys: { store_id: 1, profile_list_id: 1, profile_id: 1 }, unique: true },
      { name: "memberships_list_created", keys: { store_id: 1, profile_list_id: 1, created_at: 1 } },
      { name: "memberships_list_status_created", keys: { store_id: 1, profile_list_id: 1, status: 1, created_at: 1 } },
      { name: "memberships_store_profile", keys: { store_id: 1, profile_id: 1 } },
      { name: "memberships_confirm_token", keys: { confirm_token_hash: 1 }, partial: { confirm_token_hash: { $type: "string" } } },
      { name: "memberships_count_ops", keys: { count_op_at: 1 }, partial: { count_op_at: { $type: "number" } } },
      { name: "memberships_removing", keys: { removing: 1 }, partial: { removing: { $eq: true } } },
      {
        name: "memberships_subscription",
        keys: { store_id: 1, "payment.subscription_id": 1 },
        partial: { "payment.subscription_id": { $type: "string" } },
      },
      // Only the memberships whose access ends at end_date (the sweep of lapsed ones reads them).
      { name: "memberships_lapsing", keys: { status: 1, end_date: 1 }, partial: { status: { $eq: "cancellation_scheduled" } } },
    ]);
    // Its predecessor held a row for every membership, which cost a fifth of an import's membership writes.
    await this.memberships.dropIndexes(["memberships_status_end"]);
    await this.limits.createIndexes([{ name: "limits_expires", keys: { expires_at: 1 } }]);
    await this.countJournal.createIndexes([{ name: "count_journal_at", keys: { at: 1 } }]);
  }
}
