/**
 * Imports' side of profiles: `upsertMany` finds each row's profile by e-mail (one `$in` read for the
 * batch), merges the row's taxonomies into it or plans a new profile, and writes the batch with one
 * `bulkWrite`. A row whose write loses a race (a concurrent create of the same address, a change since
 * the read, a merge) is redone on its own against the profile as it is now.
 */
import { isDeepStrictEqual } from "node:util";
import { normalizeEmail } from "../../shared/contracts/common";
import { UpsertRow, type UpsertRowResult } from "../../shared/contracts/profiles";
import type { BulkOp } from "../../shared/storage/port";
import { findOrCreateByEmail, newProfileDoc } from "./profiles.logic";
import type { ProfilesDeps } from "./profiles.ports";
import type { ProfileDoc } from "./profiles.store";
import { mergeIncoming, searchValuesOf, taxonomyLimitBroken } from "./profiles.taxonomies";

/** How often a row that lost a race is redone before it is reported. */
const ROW_ATTEMPTS = 3;

/** A profile as the batch will leave it: a new one, or an existing one and whether its taxonomies changed. */
interface Planned {
  doc: ProfileDoc;
  /** The existing document's updated_at, the write's guard; undefined for a new profile. */
  readAt?: number;
  /** The existing document's taxonomies as read (undefined for a new profile). */
  readTaxonomies?: ProfileDoc["taxonomies"];
  dirty: boolean;
  /** The rows that touch this profile (by index in the batch). */
  rows: number[];
}

/**
 * Each row is checked here, on its own (UpsertRow): a bad row gets an error result and the others are
 * written. The caller (an import) reports it with the row's number.
 */
export async function upsertMany(deps: ProfilesDeps, p: { store_id: string; rows: unknown[] }): Promise<{ results: UpsertRowResult[] }> {
  const now = deps.now();
  const rows = p.rows.map(checkRow);
  const emails = [...new Set(rows.flatMap((row) => ("error" in row ? [] : [normalizeEmail(row.email)])))];
  const found = emails.length === 0 ? [] : await deps.store.profiles.find({ store_id: p.store_id, email_lower: { $in: emails } }, { limit: emails.length });
  const existing = new Map(found.map((doc) => [doc.email_lower as string, doc]));
  const planned = new Map<string, Planned>();
  const results: UpsertRowResult[] = rows.map((row, i) => {
    if ("error" in row) return row;
    const lower = normalizeEmail(row.email);
    const plan = planned.get(lower);
    const current = plan?.doc ?? existing.get(lower);
    if (!current) {
      const doc = newProfileDoc(p.store_id, row.email, now, row.taxonomies);
      planned.set(lower, { doc, dirty: true, rows: [i] });
      return { profile_id: doc._id, outcome: "created" };
    }
    const merged = withRow(current, row, now);
    if ("error" in merged) return merged;
    const { next, changed } = merged;
    if (plan) {
      plan.doc = next;
      plan.dirty ||= changed;
      plan.rows.push(i);
    } else {
      planned.set(lower, { doc: next, readAt: current.updated_at, readTaxonomies: current.taxonomies, dirty: changed, rows: [i] });
    }
    // A later row of a profile this batch creates is part of its creation.
    if (plan && plan.readAt === undefined) return { profile_id: current._id, outcome: "created" };
    return { profile_id: current._id, outcome: changed ? "updated" : "unchanged" };
  });

  for (const plan of planned.values()) {
    // Rows that change a profile and later rows that change it back (the same address twice in a file,
    // with other values) leave it as it was: nothing is written, and every row of it is "unchanged".
    if (!plan.dirty || plan.readTaxonomies === undefined || !isDeepStrictEqual(plan.readTaxonomies, plan.doc.taxonomies)) continue;
    plan.dirty = false;
    for (const row of plan.rows) if (!("error" in results[row])) results[row] = { profile_id: plan.doc._id, outcome: "unchanged" };
  }
  const writes = [...planned.values()].filter((plan) => plan.dirty);
  const outcomes = writes.length === 0 ? [] : await deps.store.profiles.bulkWrite(writes.map(writeOf));
  for (const [i, plan] of writes.entries()) {
    if (outcomes[i].ok && (outcomes[i].inserted || outcomes[i].matched === 1)) continue;
    // Lost a race: redo this profile's rows one by one against what is stored now.
    for (const row of plan.rows) results[row] = await upsertOne(deps, p.store_id, rows[row] as UpsertRow);
  }
  return { results };
}

function checkRow(value: unknown): UpsertRow | { error: { field: string; message: string } } {
  const parsed = UpsertRow.safeParse(value);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  return { error: { field: issue.path.map(String).join(".") || "row", message: issue.message } };
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

/** One row on its own: its profile found or created (a concurrent create wins), then the row merged in with a guarded write. */
async function upsertOne(deps: ProfilesDeps, storeId: string, row: UpsertRow): Promise<UpsertRowResult> {
  for (let attempt = 0; attempt < ROW_ATTEMPTS; attempt++) {
    const { doc: current, created } = await findOrCreateByEmail(deps, storeId, row.email, row.taxonomies);
    if (created) return { profile_id: current._id, outcome: "created" };
    const merged = withRow(current, row, deps.now());
    if ("error" in merged) return merged;
    if (!merged.changed) return { profile_id: current._id, outcome: "unchanged" };
    const [written] = await deps.store.profiles.bulkWrite([writeOf({ doc: merged.next, readAt: current.updated_at, dirty: true, rows: [] })]);
    if (written.ok && written.matched === 1) return { profile_id: current._id, outcome: "updated" };
  }
  return { error: { field: "email", message: "the profile kept changing while it was imported; import this row again" } };
}

/** The profile with the row's taxonomies merged in (`changed` false when it brings nothing new), or why it cannot take them. */
function withRow(current: ProfileDoc, row: UpsertRow, now: number): { next: ProfileDoc; changed: boolean } | { error: { field: string; message: string } } {
  if (current.merge_lock) return { error: { field: "email", message: "the profile is being merged; import this row again in a moment" } };
  const merged = mergeIncoming(current.taxonomies, row.taxonomies);
  if (!merged.changed) return { next: current, changed: false };
  const broken = taxonomyLimitBroken(merged.taxonomies);
  if (broken) return { error: { field: "taxonomies", message: broken } };
  return { next: { ...current, taxonomies: merged.taxonomies, search_values: searchValuesOf(merged.taxonomies), updated_at: now }, changed: true };
}
