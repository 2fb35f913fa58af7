/**
 * The profiles service's collections and indexes, through the storage port:
 *   profiles     one document per profile (store-scoped; e-mail unique per store, case-insensitive)
 *   order_links  one document per linked order (unique per store + order id)
 *   merges       the merge journal: a merge's plan and progress, so a crash mid-way is rolled forward;
 *                once done it keeps only { store_id, source_id, target_id } to redirect late order events.
 */
import type { Collection, Database, Doc } from "../../shared/storage/port";
import type { PromoUsage, ProfileStatus, TaxonomyEntry } from "../../shared/contracts/profiles";

export interface ProfileDoc extends Doc {
  store_id: string;
  /** As given (trimmed); null for a guest. */
  email: string | null;
  /** Lowercased e-mail: the unique key per store. Null for a guest (not indexed by the unique index). */
  email_lower: string | null;
  /** email_lower or "" - the sort key of email-sorted pages (keyset comparisons need a non-null value). */
  email_sort: string;
  /** email_lower and each part of it from a word on (see emailWordsOf): prefix-matched by `find`'s `query`. */
  email_words: string[];
  verified: boolean;
  status: ProfileStatus;
  taxonomies: TaxonomyEntry[];
  promo_usage: PromoUsage[];
  /** Lowercased indexed taxonomy values, matched exactly by `find`'s `query`. */
  search_values: string[];
  /** Id of the merge journal holding this profile while it merges. */
  merge_lock?: string;
  /** Id of the merge whose plan was written on this (target) profile; removed with the lock. */
  merge_applied?: string;
  created_at: number;
  updated_at: number;
}

export interface OrderLinkDoc extends Doc {
  store_id: string;
  order_id: string;
  profile_id: string;
  total: number | null;
  currency: string | null;
  created_at: number;
  linked_at: number;
}

/** The target profile's fields after a merge, computed once (before any change) and stored in the journal. */
export interface MergePlan {
  email: string | null;
  email_lower: string | null;
  email_sort: string;
  email_words: string[];
  verified: boolean;
  taxonomies: TaxonomyEntry[];
  promo_usage: PromoUsage[];
  search_values: string[];
}

export type MergeState = "pending" | "running" | "done";

export interface MergeDoc extends Doc {
  store_id: string;
  target_id: string;
  source_id: string;
  /** pending: locks being taken, nothing changed (undone on recovery); running: roll forward; done: redirect only. */
  state: MergeState;
  steps: string[];
  /** The source profile as it was when the merge was planned (removed once done). */
  snapshot?: ProfileDoc;
  plan?: MergePlan;
  created_at: number;
  updated_at: number;
}

export const PROFILE_EMAIL_INDEX = "profiles_store_email_unique";
export const ORDER_LINK_INDEX = "order_links_store_order_unique";

export class ProfilesStore {
  readonly profiles: Collection<ProfileDoc>;
  readonly orderLinks: Collection<OrderLinkDoc>;
  readonly merges: Collection<MergeDoc>;

  constructor(db: Database) {
    this.profiles = db.collection<ProfileDoc>("profiles");
    this.orderLinks = db.collection<OrderLinkDoc>("order_links");
    this.merges = db.collection<MergeDoc>("merges");
  }

  async ensureIndexes(): Promise<void> {
    await this.profiles.createIndexes([
      { name: PROFILE_EMAIL_INDEX, keys: { store_id: 1, email_lower: 1 }, unique: true, partial: { email_lower: { $type: "string" } } },
      { name: "profiles_store_created", keys: { store_id: 1, created_at: 1 } },
      { name: "profiles_store_updated", keys: { store_id: 1, updated_at: 1 } },
      { name: "profiles_store_email_sort", keys: { store_id: 1, email_sort: 1 } },
      { name: "profiles_store_search", keys: { store_id: 1, search_values: 1 } },
      { name: "profiles_store_email_words", keys: { store_id: 1, email_words: 1 } },
    ]);
    await this.orderLinks.createIndexes([
      { name: ORDER_LINK_INDEX, keys: { store_id: 1, order_id: 1 }, unique: true },
      { name: "order_links_store_profile_created", keys: { store_id: 1, profile_id: 1, created_at: 1 } },
    ]);
    await this.merges.createIndexes([
      { name: "merges_state", keys: { state: 1, updated_at: 1 } },
      { name: "merges_store_source", keys: { store_id: 1, source_id: 1 } },
    ]);
  }
}
