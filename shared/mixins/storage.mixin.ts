/**
 * Gives a service its own database (`this.db`) through the storage port, opened before the service's
 * own `started()` runs and closed after it stops, plus the `health` action the gateway's readiness
 * check calls: it answers only when this service's storage answers. Any action that meets unusable
 * storage (a failed disk write, a closed or unreachable database) answers 503, not 500; a query the
 * embedded store refuses to scan (SCAN_LIMIT: no index narrows it) answers 400 saying so.
 *
 * The broker option `openDatabase` (tests only) opens the databases of that broker's services instead of
 * the configured adapter, e.g. to wrap one in a Database whose calls fail for a while.
 */
import type { BrokerOptions, Context, ServiceSchema, ServiceSettingSchema } from "moleculer";
import { crmError } from "../errors";
import { isScanLimit, StorageError, type Database } from "../storage/port";
import { openDatabase } from "../storage";

const STORAGE_RETRY_AFTER_SECONDS = 5;

export interface StorageMixinThis {
  db: Database;
}

/** Opens the database `name` of a service; `open` is the configured adapter's opener. */
export type OpenDatabase = (name: string, open: typeof openDatabase) => Promise<Database>;

/** Broker options for a broker whose storageMixin services open their databases through `open` (tests). */
export function openDatabaseWith(open: OpenDatabase): Partial<BrokerOptions> {
  return { openDatabase: open } as Partial<BrokerOptions>;
}

function openerOf(options: BrokerOptions): OpenDatabase | undefined {
  return (options as { openDatabase?: OpenDatabase }).openDatabase;
}

export function storageMixin(databaseName: string): Partial<ServiceSchema> {
  const mixin: Partial<ServiceSchema<ServiceSettingSchema, Record<string, never>, StorageMixinThis>> = {
    hooks: {
      error: {
        "*"(this: { logger: { error(...args: unknown[]): void; warn(...args: unknown[]): void } }, ctx: Context, err: unknown) {
          if (!(err instanceof StorageError)) throw err;
          const action = ctx.action?.name ?? "action";
          if (isScanLimit(err)) {
            this.logger.warn(`${action}: refused a query no index serves: ${err.message}`);
            throw crmError(
              "VALIDATION_ERROR",
              "This search is too broad to answer quickly: no index narrows it. Add a narrower condition (an e-mail, an exact taxonomy value, a status).",
            );
          }
          if (err.code !== "UNAVAILABLE") throw err;
          this.logger.error(`${action}: storage unavailable: ${err.message}`);
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
      const open = openerOf(this.broker.options);
      this.db = open ? await open(databaseName, openDatabase) : await openDatabase(databaseName);
    },
    async stopped() {
      await this.db?.close();
    },
  };
  return mixin as Partial<ServiceSchema>;
}
