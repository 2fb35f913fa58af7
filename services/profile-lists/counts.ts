/**
 * member_count, crash-safe without transactions. A membership write that changes access records the
 * change on the membership itself in the same atomic write (`count_op`, `count_delta`); settling it then
 * `$inc`s the list once (the list remembers the op id, so a repeat adds nothing) and clears the op from
 * the membership. A process that dies between the two writes leaves the op on the membership, and the
 * recovery pass (at start and every minute) settles ops older than STALE_OP_SECONDS. At most one op is in
 * flight per membership: a write that would change access waits for the previous one to settle.
 */
import { uuidv7 } from "../../shared/ids";
import type { Filter } from "../../shared/storage/port";
import type { Deps } from "./deps";
import { ProfileListsErrors } from "./profile-lists.errors";
import type { CountJournalDoc, MembershipDoc } from "./profile-lists.store";

/** An op this old belongs to a writer that died (requests time out after seconds). */
export const STALE_OP_SECONDS = 60;
/** How long a writer waits for another writer's op on the same membership to settle. */
const WAIT_FOR_OP_MS = 2_000;

/** The fields that record a change of member_count on the membership (none when it does not change). */
export function countOp(delta: number, now: number): Partial<MembershipDoc> {
  return delta === 0 ? {} : { count_op: uuidv7(), count_delta: delta, count_op_at: now };
}

/** Matches a membership with no change of member_count in flight. */
export const NO_OP_IN_FLIGHT: Filter = { count_op: { $exists: false } };

/** Applies the membership's pending change of member_count to its list, once, and clears it. */
export async function settleCount(deps: Deps, m: Pick<MembershipDoc, "_id" | "store_id" | "profile_list_id" | "count_op" | "count_delta">): Promise<void> {
  if (!m.count_op) return;
  const marker = `count_ops.${m.count_op}`;
  await deps.store.lists.updateOne(
    { _id: m.profile_list_id, store_id: m.store_id, [marker]: { $exists: false } },
    { $inc: { member_count: m.count_delta ?? 0 }, $set: { [marker]: deps.now() } },
  );
  await deps.store.memberships.updateOne({ _id: m._id, store_id: m.store_id, count_op: m.count_op }, { $unset: { count_op: "", count_delta: "", count_op_at: "" } });
  // One settler per op (the writer, or recovery once the writer is long gone), so the marker can go now.
  await deps.store.lists.updateOne({ _id: m.profile_list_id, store_id: m.store_id }, { $unset: { [marker]: "" } });
}

/**
 * member_count for a batch of new memberships (an import): the batch's op and the ids it inserts are
 * journaled first (one document), the memberships are inserted without ops of their own, how many were
 * inserted is written on the journal entry, then the list gets `$inc` by that many (once, by the op's
 * marker) and the entry goes. A writer that dies in between leaves the entry: recovery applies the
 * number it holds, or, when the writer died before writing it, counts which of its memberships exist.
 */
export async function journalBatch(deps: Deps, ref: { store_id: string; profile_list_id: string }, membershipIds: string[]): Promise<string> {
  const op = uuidv7();
  await deps.store.countJournal.insertOne({ _id: op, ...ref, membership_ids: membershipIds, at: deps.now() });
  return op;
}

/** Records on the journal entry how many of its memberships the batch inserted. */
export async function recordInserted(deps: Deps, op: string, inserted: number): Promise<void> {
  await deps.store.countJournal.updateOne({ _id: op }, { $set: { inserted } });
}

export async function settleBatch(deps: Deps, entry: Pick<CountJournalDoc, "_id" | "store_id" | "profile_list_id">, inserted: number): Promise<void> {
  const marker = `count_ops.${entry._id}`;
  await deps.store.lists.updateOne(
    { _id: entry.profile_list_id, store_id: entry.store_id, [marker]: { $exists: false } },
    { $inc: { member_count: inserted }, $set: { [marker]: deps.now() } },
  );
  await deps.store.countJournal.deleteOne({ _id: entry._id });
  await deps.store.lists.updateOne({ _id: entry.profile_list_id, store_id: entry.store_id }, { $unset: { [marker]: "" } });
}

/** Waits for another writer's op (or removal) of this membership to finish (finishing it when that writer died). */
export async function waitForOp(deps: Deps, m: MembershipDoc): Promise<void> {
  const deadline = Date.now() + WAIT_FOR_OP_MS;
  let current: MembershipDoc | null = m;
  while (current?.count_op || current?.removing) {
    const since = current.count_op_at ?? current.updated_at;
    if (since <= deps.now() - STALE_OP_SECONDS) return finish(deps, current);
    if (Date.now() > deadline) throw ProfileListsErrors.concurrentUpdate();
    await new Promise((resolve) => setTimeout(resolve, 5));
    current = await deps.store.memberships.findOne({ _id: m._id, store_id: m.store_id });
  }
}

/** Settles every op a dead writer left (and finishes removals it started). */
export async function recoverCounts(deps: Deps): Promise<number> {
  let settled = 0;
  for (;;) {
    const stale = await deps.store.memberships.find({ count_op_at: { $lte: deps.now() - STALE_OP_SECONDS } }, { limit: 100 });
    if (stale.length === 0) break;
    for (const m of stale) {
      await finish(deps, m);
      settled++;
    }
  }
  for (;;) {
    const batches = await deps.store.countJournal.find({ at: { $lte: deps.now() - STALE_OP_SECONDS } }, { limit: 10 });
    if (batches.length === 0) break;
    for (const entry of batches) {
      // Every membership of the batch was inserted with access, and any later change settled its own op.
      const inserted = entry.inserted ?? (await deps.store.memberships.count({ _id: { $in: entry.membership_ids } }));
      await settleBatch(deps, entry, inserted);
      settled++;
    }
  }
  const removals = await deps.store.memberships.find({ removing: true }, { limit: 1000 });
  for (const m of removals) if (!m.count_op && m.updated_at <= deps.now() - STALE_OP_SECONDS) await finish(deps, m);
  return settled;
}

/** Settles a dead writer's op and finishes its removal. */
async function finish(deps: Deps, m: MembershipDoc): Promise<void> {
  await settleCount(deps, m);
  if (m.removing) await deps.store.memberships.deleteOne({ _id: m._id, store_id: m.store_id, removing: true });
}
