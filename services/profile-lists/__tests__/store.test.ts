/**
 * The profile-lists store's indexes on the embedded store: the sweep of lapsed memberships reads only
 * the memberships whose access ends at a date, and a data file of an older version loses the index
 * that held a row for every membership.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { uuidv7 } from "../../../shared/ids";
import { EXAMINE_BUDGET, type SqliteCollection } from "../../../shared/storage/sqlite/collection";
import { closeAllSqliteDatabases, openSqliteDatabase } from "../../../shared/storage/sqlite/database";
import { newConsent, newMembership } from "../memberships";
import { type ListDoc, type MembershipDoc, ProfileListsStore } from "../profile-lists.store";

const root = mkdtempSync(join(tmpdir(), "crm-lists-store-"));
afterAll(async () => {
  await closeAllSqliteDatabases();
  rmSync(root, { recursive: true, force: true });
});

const NOW = 1_900_000_000;
const list = { _id: uuidv7(), store_id: uuidv7(), type: { type: "newsletter" } } as unknown as ListDoc;
const member = (status: MembershipDoc["status"], end_date: number | null): MembershipDoc => ({
  ...newMembership(list, uuidv7(), "active", "import", newConsent("import", undefined, NOW), NOW),
  status,
  end_date,
});

it("the lapsed-membership sweep reads only the scheduled cancellations, and an older file's index on every membership goes", async () => {
  const file = join(root, "profile-lists.sqlite");
  const older = await openSqliteDatabase("profile-lists", { file });
  // What an older version made: an index with a row for every membership.
  await older.collection("memberships").createIndexes([{ name: "memberships_status_end", keys: { status: 1, end_date: 1 } }]);
  await older.close();

  const store = new ProfileListsStore(await openSqliteDatabase("profile-lists", { file }));
  await store.ensureIndexes();
  const active = Array.from({ length: EXAMINE_BUDGET + 500 }, () => ({ insertOne: { document: member("active", null) } }));
  const lapsed = member("cancellation_scheduled", NOW - 10);
  const later = member("cancellation_scheduled", NOW + 10);
  await store.memberships.bulkWrite([...active, { insertOne: { document: lapsed } }, { insertOne: { document: later } }]);

  const found = await store.memberships.find({ status: "cancellation_scheduled", end_date: { $lte: NOW } }, { limit: 100 });
  expect(found.map((m) => m._id)).toEqual([lapsed._id]);
  expect((store.memberships as unknown as SqliteCollection<MembershipDoc>).lastExamined).toBe(1);

  const indexes = new DatabaseSync(file, { readOnly: true });
  try {
    const names = (indexes.prepare("SELECT name FROM _indexes WHERE collection = 'memberships'").all() as Array<{ name: string }>).map((r) => r.name);
    expect(names).toContain("memberships_lapsing");
    expect(names).not.toContain("memberships_status_end");
  } finally {
    indexes.close();
  }
});
