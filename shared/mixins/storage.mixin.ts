/**
 * Gives a service its own database (`this.db`) through the storage port, opened before the service's
 * own `started()` runs and closed after it stops, plus the `health` action the gateway's readiness
 * check calls: it answers only when this service's storage answers.
 */
import type { ServiceSchema, ServiceSettingSchema } from "moleculer";
import type { Database } from "../storage/port";
import { openDatabase } from "../storage";

export interface StorageMixinThis {
  db: Database;
}

export function storageMixin(databaseName: string): Partial<ServiceSchema> {
  const mixin: Partial<ServiceSchema<ServiceSettingSchema, Record<string, never>, StorageMixinThis>> = {
    actions: {
      health: {
        visibility: "public",
        async handler() {
          await this.db.ping();
          return { status: "ok" };
        },
      },
    },
    async started() {
      this.db = await openDatabase(databaseName);
    },
    async stopped() {
      await this.db?.close();
    },
  };
  return mixin as Partial<ServiceSchema>;
}
