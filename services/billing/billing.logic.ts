/**
 * The composition root of the billing service: builds its rules once from explicit dependencies
 * (its database, the bus, a logger, a clock). The rules land here as its issue fills it in.
 */
import type { ServiceBroker } from "moleculer";
import { nowSeconds } from "../../shared/ids";
import type { Database } from "../../shared/storage/port";
import { BillingStore } from "./billing.store";

export interface BillingSetup {
  db: Database;
  bus: ServiceBroker;
  logger: { info(...args: unknown[]): void; warn(...args: unknown[]): void; error(...args: unknown[]): void };
  /** Unix seconds; tests pass a fake. */
  now?: () => number;
}

export type Billing = Awaited<ReturnType<typeof createBilling>>;

export async function createBilling(setup: BillingSetup) {
  const store = new BillingStore(setup.db);
  await store.ensureIndexes();
  const now = setup.now ?? nowSeconds;
  return { store, now };
}
