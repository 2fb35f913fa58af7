/**
 * The import engine behind both import routes: rows are read one at a time (import-rows.ts), gathered into
 * batches of at most IMPORT_BATCH_ROWS rows (and IMPORT_BATCH_BYTES of JSON, so a batch fits in one bus
 * message), and each batch is written with one `profiles.upsertMany` call and, for a list, one bulk insert
 * of the new memberships. Memory is bounded by the batch, not the file (over NATS, see docs/architecture.md
 * "Known limits" for the body's buffering). A batch is all-or-nothing per row:
 * a killed import leaves whole rows behind, and running it again completes it (upserts by e-mail, a
 * member is added once), which also makes a repeated import change nothing.
 */
import { setImmediate } from "node:timers/promises";
import { MAX_IMPORT_ERRORS, type ImportError, type ImportResult } from "../../shared/contracts/profile-lists";
import type { UpsertOutcome } from "../../shared/contracts/profiles";
import { toErrorBody } from "../../shared/errors";
import type { Caller, Deps } from "./deps";
import { CsvUnreadable, type ImportSource, readRows, type ValidRow } from "./import-rows";
import { requireList } from "./lists";
import { activate, hasAccess, newConsent, newMembership } from "./memberships";
import { ProfileListsErrors } from "./profile-lists.errors";
import { journalBatch, recordInserted, settleBatch } from "./counts";
import type { ListDoc, MembershipDoc } from "./profile-lists.store";

export const IMPORT_BATCH_ROWS = 1000;
/** NATS carries 1 MB per message by default: a batch of rows stays well under it. */
const IMPORT_BATCH_BYTES = 512 * 1024;
/** A progress line in the log every this many rows. */
const PROGRESS_EVERY_ROWS = 10_000;

/** What a profile's rows of one batch say about it, most telling first. */
const OUTCOME_RANK: Record<UpsertOutcome, number> = { unchanged: 0, updated: 1, created: 2 };

export interface ImportParams extends Omit<ImportSource, "stream"> {
  store_id: string;
  id?: string;
}

class ImportTally {
  readonly result: ImportResult = {
    rows_total: 0,
    profiles_created: 0,
    profiles_updated: 0,
    profiles_added: 0,
    profiles_updated_in_list: 0,
    rows_failed: 0,
    errors: [],
  };

  fail(error: ImportError): void {
    this.result.rows_failed++;
    if (this.result.errors.length < MAX_IMPORT_ERRORS) this.result.errors.push(error);
  }
}

export async function importProfiles(deps: Deps, p: ImportParams, stream: NodeJS.ReadableStream | undefined, caller: Caller): Promise<ImportResult> {
  if ([p.rows !== undefined, p.csv !== undefined, stream !== undefined].filter(Boolean).length > 1) throw ProfileListsErrors.importSourceTwice();
  const list = p.id === undefined ? null : await requireList(deps, p.store_id, p.id);
  if (list?.type.type === "paid") throw ProfileListsErrors.paidListImport();
  const tally = new ImportTally();
  const started = Date.now();
  const what = `import store=${p.store_id}${list ? ` list=${list._id}` : ""}`;
  let batch: ValidRow[] = [];
  let batchBytes = 0;
  let writeFailed = false;
  const flush = async () => {
    if (batch.length === 0) return;
    await importBatch(deps, p.store_id, list, batch, tally, caller).catch((err) => {
      writeFailed = true;
      throw err;
    });
    batch = [];
    batchBytes = 0;
    // Rows already buffered (and local calls in one process) resolve as microtasks only: without a turn
    // of the event loop between batches, a whole file would run before any other request, timer or bus
    // heartbeat of the process is served.
    await setImmediate();
  };
  try {
    for await (const row of readRows({ ...p, stream })) {
      tally.result.rows_total++;
      if ("error" in row) tally.fail(row.error);
      else {
        batch.push(row);
        batchBytes += Buffer.byteLength(JSON.stringify(row.taxonomies)) + row.email.length + 32;
        if (batch.length >= IMPORT_BATCH_ROWS || batchBytes >= IMPORT_BATCH_BYTES) await flush();
      }
      if (tally.result.rows_total % PROGRESS_EVERY_ROWS === 0) deps.logger.info(`${what}: ${progressOf(tally.result, started)}`);
    }
  } catch (err) {
    // The file cannot be read on (or the body failed): what was read before the failure is written.
    if (!writeFailed) await flush();
    deps.logger.info(`${what} stopped: ${(err as Error).message}; ${progressOf(tally.result, started)}`);
    throw stoppedImportError(err, tally.result, list !== null);
  }
  await flush();
  deps.logger.info(`${what} done: ${progressOf(tally.result, started)}`);
  return tally.result;
}

/** The answer of an import that stopped half way: it says what was written before, where the failure allows. */
function stoppedImportError(err: unknown, done: ImportResult, intoList: boolean): unknown {
  if (err instanceof CsvUnreadable) return ProfileListsErrors.csvUnreadable(err.row, err.reason, done, intoList);
  // The gateway's limit on a streamed body, failing the stream (in this process, or through the bus).
  const body = toErrorBody(err);
  if (body.error === "PAYLOAD_TOO_LARGE") return ProfileListsErrors.importBodyTooLarge(body.message, done, intoList);
  return err;
}

function progressOf(r: ImportResult, started: number): string {
  const seconds = (Date.now() - started) / 1000;
  return (
    `${r.rows_total} rows in ${seconds.toFixed(1)} s (${Math.round(r.rows_total / Math.max(seconds, 0.001))}/s): ${r.profiles_created} created, ` +
    `${r.profiles_updated} updated, ${r.profiles_added} added to the list, ${r.profiles_updated_in_list} changed in it, ${r.rows_failed} failed`
  );
}

async function importBatch(deps: Deps, storeId: string, list: ListDoc | null, rows: ValidRow[], tally: ImportTally, caller: Caller): Promise<void> {
  const { results } = await deps.profiles.upsertMany({ store_id: storeId, rows: rows.map(({ email, taxonomies }) => ({ email, taxonomies })) });
  const members: Array<{ row: number; profileId: string }> = [];
  // A profile counts once per batch, however many of its rows the batch holds.
  const outcomes = new Map<string, UpsertOutcome>();
  for (const [i, result] of results.entries()) {
    const row = rows[i].row;
    if ("error" in result) {
      tally.fail({ row, ...result.error });
      continue;
    }
    const before = outcomes.get(result.profile_id);
    if (!before || OUTCOME_RANK[result.outcome] > OUTCOME_RANK[before]) outcomes.set(result.profile_id, result.outcome);
    members.push({ row, profileId: result.profile_id });
  }
  for (const outcome of outcomes.values()) {
    if (outcome === "created") tally.result.profiles_created++;
    if (outcome === "updated") tally.result.profiles_updated++;
  }
  if (list) await addMembers(deps, list, members, tally, caller);
}

/**
 * Makes the batch's profiles active members: new memberships in one bulk insert whose change of
 * member_count is journaled and applied once for the batch (counts.ts); a pending one is activated; one
 * that has access stays as it is; one that unsubscribed is not re-added (the profile has to subscribe
 * again) and is reported.
 */
async function addMembers(deps: Deps, list: ListDoc, members: Array<{ row: number; profileId: string }>, tally: ImportTally, caller: Caller): Promise<void> {
  const profileIds = [...new Set(members.map((m) => m.profileId))];
  const existing = new Map(
    (await deps.store.memberships.find({ store_id: list.store_id, profile_list_id: list._id, profile_id: { $in: profileIds } }, { limit: profileIds.length })).map(
      (m) => [m.profile_id, m],
    ),
  );
  const now = deps.now();
  const fresh = new Map<string, MembershipDoc>();
  for (const id of profileIds) {
    if (!existing.has(id)) fresh.set(id, newMembership(list, id, "active", "import", newConsent("import", caller, now), now));
  }
  const inserted = new Set<string>();
  if (fresh.size > 0) {
    const ref = { store_id: list.store_id, profile_list_id: list._id };
    const docs = [...fresh.values()];
    const op = await journalBatch(
      deps,
      ref,
      docs.map((m) => m._id),
    );
    const outcomes = await deps.store.memberships.bulkWrite(docs.map((document) => ({ insertOne: { document } })));
    for (const [i, id] of [...fresh.keys()].entries()) if (outcomes[i].ok) inserted.add(id);
    await recordInserted(deps, op, inserted.size);
    await settleBatch(deps, { _id: op, ...ref }, inserted.size);
  }
  const seen = new Set<string>();
  for (const { row, profileId } of members) {
    if (seen.has(profileId)) continue; // a second row of the same profile in this batch changes nothing more
    seen.add(profileId);
    if (inserted.has(profileId)) {
      tally.result.profiles_added++;
      continue;
    }
    // Existing (or inserted concurrently by someone else): read it as it is now.
    const current = existing.get(profileId) ?? (await deps.store.memberships.findOne({ store_id: list.store_id, profile_list_id: list._id, profile_id: profileId }));
    const outcome = current ? await keepOrActivate(deps, list, current, caller) : "retry";
    if (outcome === "activated") tally.result.profiles_updated_in_list++;
    else if (outcome === "unsubscribed")
      tally.fail({ row, field: "email", message: "unsubscribed from this list: not added again (the profile has to subscribe again)" });
    else if (outcome === "retry") tally.fail({ row, field: "email", message: "the membership changed while it was imported; import this row again" });
  }
}

async function keepOrActivate(deps: Deps, list: ListDoc, current: MembershipDoc, caller: Caller): Promise<"unchanged" | "activated" | "unsubscribed" | "retry"> {
  if (current.removing) return "retry";
  if (hasAccess(current, deps.now())) return "unchanged";
  if (current.status === "unsubscribed") return "unsubscribed";
  const activated = await activate(deps, list, current, current.profile_id, newConsent("import", caller, deps.now()), "import");
  return activated ? "activated" : "retry";
}
