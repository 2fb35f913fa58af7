/**
 * Merging a source profile into a target, as a saga with a journal (the `merges` collection):
 *   pending  the journal exists and both profiles are being locked; nothing else changed yet. A crash
 *            here is undone on recovery (locks released, journal removed).
 *   running  the source snapshot and the target's new fields (the plan) are stored: from here on the
 *            merge only rolls forward, each step idempotent and recorded, so a restart completes it.
 *   done     the source is gone; the journal keeps only { store_id, source_id, target_id } so a late
 *            order event for the source still reaches the target.
 * The target keeps its id; taxonomies united (target wins), promo usage summed, the e-mail taken from the
 * source only if the target has none, order links moved, the source's sessions and codes deleted, the
 * source hard-deleted, and `profile.merged` published durably for the services that own memberships.
 */
import { uuidv7 } from "../../shared/ids";
import { isDuplicateKey } from "../../shared/storage/port";
import { ProfileErrors } from "./profiles.errors";
import type { ProfilesDeps } from "./profiles.ports";
import { emailFields } from "./profiles.search";
import type { MergeDoc, MergePlan, ProfileDoc } from "./profiles.store";
import { searchValuesOf, sumPromoUsage, uniteTaxonomies } from "./profiles.taxonomies";

/** How long a `pending` journal may sit before recovery treats its merge as dead and undoes it. */
export const PENDING_LEASE_SECONDS = 30;

const STEPS = [
  "source_email_released",
  "target_updated",
  "orders_moved",
  "sessions_revoked",
  "codes_deleted",
  "source_deleted",
  "event_published",
  "target_released",
] as const;
type Step = (typeof STEPS)[number];

export function planMerge(target: ProfileDoc, source: ProfileDoc): MergePlan {
  const takesEmail = target.email_lower === null && source.email_lower !== null;
  const taxonomies = uniteTaxonomies(target.taxonomies, source.taxonomies);
  return {
    email: takesEmail ? source.email : target.email,
    email_lower: takesEmail ? source.email_lower : target.email_lower,
    email_sort: takesEmail ? source.email_sort : target.email_sort,
    email_words: takesEmail ? source.email_words : target.email_words,
    verified: takesEmail ? source.verified : target.verified,
    taxonomies,
    promo_usage: sumPromoUsage(target.promo_usage, source.promo_usage),
    search_values: searchValuesOf(taxonomies),
  };
}

/** Merges `sourceId` into `targetId` (same store) and answers the target as it is afterwards. */
export async function mergeProfiles(deps: ProfilesDeps, storeId: string, targetId: string, sourceId: string): Promise<ProfileDoc> {
  if (targetId === sourceId) throw ProfileErrors.mergeIntoItself();
  const { profiles, merges } = deps.store;
  const [target, source] = await Promise.all([profiles.findOne({ _id: targetId, store_id: storeId }), profiles.findOne({ _id: sourceId, store_id: storeId })]);
  if (!target) throw ProfileErrors.profileNotFound();
  if (!source) throw ProfileErrors.sourceNotFound();
  if (target.merge_lock || source.merge_lock) throw ProfileErrors.mergeInProgress();

  const now = deps.now();
  const journal: MergeDoc = { _id: uuidv7(), store_id: storeId, target_id: targetId, source_id: sourceId, state: "pending", steps: [], created_at: now, updated_at: now };
  await merges.insertOne(journal);
  let running: MergeDoc;
  try {
    await lockProfile(deps, journal, sourceId, ProfileErrors.sourceNotFound);
    await lockProfile(deps, journal, targetId, ProfileErrors.profileNotFound);
    // Plan from the locked documents: nothing can merge them away while we hold the locks.
    const [lockedTarget, lockedSource] = await Promise.all([
      profiles.findOne({ _id: targetId, store_id: storeId }),
      profiles.findOne({ _id: sourceId, store_id: storeId }),
    ]);
    if (!lockedTarget) throw ProfileErrors.profileNotFound();
    if (!lockedSource) throw ProfileErrors.sourceNotFound();
    const started = await merges.findOneAndUpdate(
      { _id: journal._id, state: "pending" },
      { $set: { state: "running", snapshot: lockedSource, plan: planMerge(lockedTarget, lockedSource), updated_at: deps.now() } },
    );
    if (!started) throw ProfileErrors.mergeInProgress(); // recovery undid it meanwhile
    running = started;
  } catch (err) {
    await undoPendingMerge(deps, journal).catch((e: unknown) => deps.logger.error("merge: undo failed", journal._id, e));
    throw err;
  }

  try {
    await completeMerge(deps, running);
  } catch (err) {
    deps.logger.error(`merge ${running._id}: a step failed; it will be completed by recovery`, err);
    throw ProfileErrors.mergeUnfinished();
  }
  const merged = await profiles.findOne({ _id: targetId, store_id: storeId });
  if (!merged) throw ProfileErrors.profileNotFound();
  return merged;
}

async function lockProfile(deps: ProfilesDeps, journal: MergeDoc, id: string, missing: () => Error): Promise<void> {
  const locked = await deps.store.profiles.findOneAndUpdate(
    { _id: id, store_id: journal.store_id, merge_lock: { $exists: false } },
    { $set: { merge_lock: journal._id } },
  );
  if (locked) return;
  const doc = await deps.store.profiles.findOne({ _id: id, store_id: journal.store_id });
  if (!doc) throw missing();
  if (doc.merge_lock !== journal._id) throw ProfileErrors.mergeInProgress();
}

/** Undoes a merge that never got past `pending`: only if it still is pending (else it rolls forward). */
export async function undoPendingMerge(deps: ProfilesDeps, journal: Pick<MergeDoc, "_id" | "store_id">): Promise<void> {
  const removed = await deps.store.merges.deleteOne({ _id: journal._id, state: "pending" });
  if (removed === 0) return;
  await deps.store.profiles.updateMany({ store_id: journal.store_id, merge_lock: journal._id }, { $unset: { merge_lock: "" } });
}

/**
 * Runs every step of a `running` merge not recorded as done yet, then marks it done. A live merge and a
 * recovery pass may run this at the same time, each from its own (possibly stale) copy of the journal:
 * the journal is re-read before every step and either stops as soon as it is no longer running; the plan
 * is applied at most once and only while the target still holds this merge's lock (so never over changes
 * made after the merge released it); and only one of them moves the journal from running to done.
 */
export async function completeMerge(deps: ProfilesDeps, journal: Pick<MergeDoc, "_id">): Promise<void> {
  const { merges } = deps.store;
  for (const step of STEPS) {
    const current = await merges.findOne({ _id: journal._id });
    if (current?.state !== "running" || !current.plan || !current.snapshot) return;
    if (current.steps.includes(step)) continue;
    await runStep(deps, current, step);
    await merges.updateOne({ _id: journal._id, state: "running" }, { $addToSet: { steps: step }, $set: { updated_at: deps.now() } });
  }
  // Done: keep only the redirect (no personal data of the deleted source).
  const finished = await merges.findOneAndUpdate(
    { _id: journal._id, state: "running" },
    { $set: { state: "done", updated_at: deps.now() }, $unset: { snapshot: "", plan: "" } },
  );
  if (finished) deps.logger.info(`merge ${journal._id}: profile ${finished.source_id} merged into ${finished.target_id}`);
}

/** One step of a running merge; each is idempotent. */
function runStep(deps: ProfilesDeps, journal: MergeDoc, step: Step): Promise<unknown> {
  const { profiles, orderLinks } = deps.store;
  const { store_id, target_id, source_id } = journal;
  const snapshot = journal.snapshot!;
  const moveOrders = () => orderLinks.updateMany({ store_id, profile_id: source_id }, { $set: { profile_id: target_id } });
  switch (step) {
    case "source_email_released": // first, so the target can take the e-mail under the unique index
      return profiles.updateOne({ _id: source_id, store_id, merge_lock: journal._id }, { $set: emailFields(null) });
    case "target_updated":
      return applyPlan(deps, journal, journal.plan!);
    case "orders_moved":
      return moveOrders();
    case "sessions_revoked":
      return deps.auth.revokeProfileSessions({ store_id, profile_id: source_id });
    case "codes_deleted":
      return snapshot.email ? deps.auth.deleteCodes({ store_id, email: snapshot.email }) : Promise.resolve();
    case "source_deleted":
      return (async () => {
        await profiles.deleteOne({ _id: source_id, store_id });
        await moveOrders(); // links written for the source while it was being merged
      })();
    case "event_published":
      return deps.events.profileMerged({ store_id, target_id, source_id });
    case "target_released": // a step, not after `done`: a crash before `done` is still completed by recovery
      return profiles.updateOne({ _id: target_id, store_id, merge_lock: journal._id }, { $unset: { merge_lock: "", merge_applied: "" } });
  }
}

/** Writes the plan on the target once (marked by `merge_applied`), only while this merge holds it. */
async function applyPlan(deps: ProfilesDeps, journal: MergeDoc, plan: MergePlan): Promise<void> {
  const filter = { _id: journal.target_id, store_id: journal.store_id, merge_lock: journal._id, merge_applied: { $ne: journal._id } };
  const { email, email_lower, email_sort, email_words, verified, ...rest } = plan;
  const own = { ...rest, merge_applied: journal._id, updated_at: deps.now() };
  // The target takes the source's e-mail (and its verification) only when it had none; otherwise its own
  // e-mail fields are left alone, so a verification that lands during the merge is not undone.
  const takesEmail = email_lower !== null && email_lower === journal.snapshot?.email_lower;
  if (!takesEmail) {
    await deps.store.profiles.updateOne(filter, { $set: own });
    return;
  }
  try {
    await deps.store.profiles.updateOne(filter, { $set: { ...own, email, email_lower, email_sort, email_words, verified } });
  } catch (err) {
    if (!isDuplicateKey(err)) throw err;
    // Another profile took the source's e-mail after it was released: the target keeps its own.
    deps.logger.warn(`merge ${journal._id}: e-mail taken meanwhile; target keeps its own`);
    await deps.store.profiles.updateOne(filter, { $set: own });
  }
}

/**
 * Recovery: completes every `running` merge and undoes `pending` ones older than the lease. Runs when the
 * service starts and periodically; safe to run concurrently with a live merge (see completeMerge).
 */
export async function recoverMerges(deps: ProfilesDeps): Promise<{ completed: number; undone: number; failed: number }> {
  const { merges } = deps.store;
  const result = { completed: 0, undone: 0, failed: 0 };
  for (const journal of await merges.find({ state: "running" }, { limit: 1000 })) {
    try {
      await completeMerge(deps, journal);
      result.completed++;
    } catch (err) {
      result.failed++;
      deps.logger.error(`merge ${journal._id}: recovery step failed; will retry`, err);
    }
  }
  const staleBefore = deps.now() - PENDING_LEASE_SECONDS;
  for (const journal of await merges.find({ state: "pending", updated_at: { $lt: staleBefore } }, { limit: 1000 })) {
    await undoPendingMerge(deps, journal);
    result.undone++;
  }
  return result;
}

/** Where a profile id lives now: itself if it exists, else the target it was merged into (following chains). */
export async function resolveProfileId(deps: ProfilesDeps, storeId: string, profileId: string): Promise<string | null> {
  let id = profileId;
  for (let hop = 0; hop < 10; hop++) {
    if (await deps.store.profiles.findOne({ _id: id, store_id: storeId })) return id;
    const [redirect] = await deps.store.merges.find({ store_id: storeId, source_id: id, state: { $in: ["running", "done"] } }, { limit: 1 });
    if (!redirect) return null;
    id = redirect.target_id;
  }
  return null;
}
