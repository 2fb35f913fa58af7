/**
 * Imports' side of profiles: `upsertMany` finds each row's profile by e-mail (one `$in` read for the
 * batch), merges the row's taxonomies into it or plans a new profile, and writes the batch with one
 * `bulkWrite`. A row whose write loses a race (a concurrent create of the same address, a change since
 * the read, a merge) is redone on its own against the profile as it is now.
 */
import { normalizeEmail } from "../../shared/contracts/common";
import type { TaxonomyEntryInput, UpsertOutcome, UpsertRowResult } from "../../shared/contracts/profiles";
import type { BulkOp } from "../../shared/storage/port";
import { findByEmail, newProfileDoc } from "./profiles.logic";
import type { ProfilesDeps } from "./profiles.ports";
import type { ProfileDoc } from "./profiles.store";
import { mergeIncoming, searchValuesOf, taxonomyLimitBroken } from "./profiles.taxonomies";

export interface UpsertRow {
  email: string;
  taxonomies: TaxonomyEntryInput[];
}

/** How often a row that lost a race is redone before it is reported. */
const ROW_ATTEMPTS = 3;

/** A profile as the batch will leave it: a new one, or an existing one and whether its taxonomies changed. */
interface Planned {
  doc: ProfileDoc;
  /** The existing document's updated_at, the write's guard; undefined for a new profile. */
  readAt?: number;
  dirty: boolean;
  /** The rows that touch this profile (by index in the batch). */
  rows: number[];
}

export async function upsertMany(deps: ProfilesDeps, p: { store_id: string; rows: UpsertRow[] }): Promise<{ results: UpsertRowResult[] }> {
  const now = deps.now();
  const emails = [...new Set(p.rows.map((row) => normalizeEmail(row.email)))];
  const found = emails.length === 0 ? [] : await deps.store.profiles.find({ store_id: p.store_id, email_lower: { $in: emails } }, { limit: emails.length });
  const existing = new Map(found.map((doc) => [doc.email_lower as string, doc]));
  const planned = new Map<string, Planned>();
  const results: UpsertRowResult[] = p.rows.map((row, i) => {
    const lower = normalizeEmail(row.email);
    const plan = planned.get(lower);
    const current = plan?.doc ?? existing.get(lower);
    if (!current) {
      const doc = newProfileDoc(p.store_id, row.email, now, row.taxonomies);
      planned.set(lower, { doc, dirty: true, rows: [i] });
      return { profile_id: doc._id, outcome: "created" };
    }
    if (current.merge_lock) return mergingError();
    const merged = mergeIncoming(current.taxonomies, row.taxonomies);
    const broken = merged.changed ? taxonomyLimitBroken(merged.taxonomies) : null;
    if (broken) return { error: { field: "taxonomies", message: broken } };
    const next = merged.changed ? { ...current, taxonomies: merged.taxonomies, search_values: searchValuesOf(merged.taxonomies), updated_at: now } : current;
    if (plan) {
      plan.doc = next;
      plan.dirty ||= merged.changed;
      plan.rows.push(i);
    } else {
      planned.set(lower, { doc: next, readAt: current.updated_at, dirty: merged.changed, rows: [i] });
    }
    // A later row of a profile this batch creates is part of its creation.
    if (plan && plan.readAt === undefined) return { profile_id: current._id, outcome: "created" };
    return { profile_id: current._id, outcome: merged.changed ? "updated" : "unchanged" };
  });

  const writes = [...planned.values()].filter((plan) => plan.dirty);
  const outcomes = writes.length === 0 ? [] : await deps.store.profiles.bulkWrite(writes.map(writeOf));
  for (const [i, plan] of writes.entries()) {
    if (outcomes[i].ok && (outcomes[i].inserted || outcomes[i].matched === 1)) continue;
    // Lost a race: redo this profile's rows one by one against what is stored now.
    for (const row of plan.rows) results[row] = await upsertOne(deps, p.store_id, p.rows[row]);
  }
  return { results };
}

function writeOf(plan: Planned): BulkOp<ProfileDoc> {
  if (plan.readAt === undefined) return { insertOne: { document: plan.doc } };
  const { doc } = plan;
  return {
    updateOne: {
      filter: { _id: doc._id, store_id: doc.store_id, updated_at: plan.readAt, merge_lock: { $exists: false } },
      update: { $set: { taxonomies: doc.taxonomies, search_values: doc.search_values, updated_at: doc.updated_at } },
    },
  };
}

/** One row on its own: its profile created, or its taxonomies merged with a guarded write. */
async function upsertOne(deps: ProfilesDeps, storeId: string, row: UpsertRow): Promise<UpsertRowResult> {
  for (let attempt = 0; attempt < ROW_ATTEMPTS; attempt++) {
    const current = await findByEmail(deps, storeId, row.email);
    if (!current) {
      const doc = newProfileDoc(storeId, row.email, deps.now(), row.taxonomies);
      const [inserted] = await deps.store.profiles.bulkWrite([{ insertOne: { document: doc } }]);
      if (inserted.ok) return { profile_id: doc._id, outcome: "created" };
      continue; // created meanwhile: merge into it
    }
    if (current.merge_lock) return mergingError();
    const merged = mergeIncoming(current.taxonomies, row.taxonomies);
    if (!merged.changed) return { profile_id: current._id, outcome: "unchanged" };
    const broken = taxonomyLimitBroken(merged.taxonomies);
    if (broken) return { error: { field: "taxonomies", message: broken } };
    const plan: Planned = {
      doc: { ...current, taxonomies: merged.taxonomies, search_values: searchValuesOf(merged.taxonomies), updated_at: deps.now() },
      readAt: current.updated_at,
      dirty: true,
      rows: [],
    };
    const [written] = await deps.store.profiles.bulkWrite([writeOf(plan)]);
    if (written.ok && written.matched === 1) return { profile_id: current._id, outcome: "updated" satisfies UpsertOutcome };
  }
  return { error: { field: "email", message: "the profile kept changing while it was imported; import this row again" } };
}

function mergingError(): UpsertRowResult {
  return { error: { field: "email", message: "the profile is being merged; import this row again in a moment" } };
}
