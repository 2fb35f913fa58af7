/**
 * Gives a service its own database (`this.db`) through the storage port, opened before the service's
 * own `started()` runs and closed after it stops, plus the `health` action the gateway's readiness
 * check calls: it answers only when this service's storage answers. Any action that meets unusable
 * storage (a failed disk write, a closed or unreachable database) answers 503, not 500.
 */
import type { Context, ServiceSchema, ServiceSettingSchema } from "moleculer";
import { crmError } from "../errors";
import { StorageError, type Database } from "../storage/port";
import { openDatabase } from "../storage";

const STORAGE_RETRY_AFTER_SECONDS = 5;

export interface StorageMixinThis {
  db: Database;
}

export function storageMixin(databaseName: string): Partial<ServiceSchema> {
  const mixin: Partial<ServiceSchema<ServiceSettingSchema, Record<string, never>, StorageMixinThis>> = {
    hooks: {
      error: {
        "*"(this: { logger: { error(...args: unknown[]): void } }, ctx: Context, err: unknown) {
          if (!(err instanceof StorageError) || err.code !== "UNAVAILABLE") throw err;
          this.logger.error(`${ctx.action?.name ?? "action"}: storage unavailable: ${err.message}`);
          throw crmError("SERVICE_UNAVAILABLE", "Storage is unavailable, try again later", { retryAfter: STORAGE_RETRY_AFTER_SECONDS });
        },
      },
    },
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
