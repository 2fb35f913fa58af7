/**
 * The composition root of the profile-lists service: builds its rules once from explicit dependencies
 * (its database, the bus, a logger, a clock). The rules land here as its issue fills it in.
 */
import type { ServiceBroker } from "moleculer";
import { nowSeconds } from "../../shared/ids";
import type { Database } from "../../shared/storage/port";
import { ProfileListsStore } from "./profile-lists.store";

export interface ProfileListsSetup {
  db: Database;
  bus: ServiceBroker;
  logger: { info(...args: unknown[]): void; warn(...args: unknown[]): void; error(...args: unknown[]): void };
  /** Unix seconds; tests pass a fake. */
  now?: () => number;
}

export type ProfileLists = Awaited<ReturnType<typeof createProfileLists>>;

export async function createProfileLists(setup: ProfileListsSetup) {
  const store = new ProfileListsStore(setup.db);
  await store.ensureIndexes();
  const now = setup.now ?? nowSeconds;
  return { store, now };
}
