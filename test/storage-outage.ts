/**
 * A storage outage for tests: `outage.open` (for storageMixin's `openDatabase` broker option, see
 * `openDatabaseWith`) opens the configured database and, for the databases the outage is about, wraps it
 * so that while the outage is on every call fails the way an unreachable database fails through the
 * storage port: StorageError("UNAVAILABLE").
 * Each refused call is recorded (collection, method, the `_id` of the document or filter, when).
 */
import type { Collection, Database, Doc } from "../shared/storage/port";
import { StorageError } from "../shared/storage/port";
import type { OpenDatabase } from "../shared/mixins/storage.mixin";

export interface RefusedCall {
  database: string;
  collection: string;
  method: string;
  /** `_id` of the inserted document or of the filter, when it has one. */
  id?: string;
  at: number;
}

const idOf = (arg: unknown): string | undefined => {
  const id = (arg as { _id?: unknown } | null)?._id;
  return typeof id === "string" ? id : undefined;
};

export class StorageOutage {
  readonly refused: RefusedCall[] = [];
  startedAt?: number;
  endedAt?: number;

  /** `databases`: the names of the databases that go down (default: every one opened through `open`). */
  constructor(private readonly databases?: string[]) {}

  get down(): boolean {
    return this.startedAt !== undefined && this.endedAt === undefined;
  }

  start(): void {
    this.startedAt = Date.now();
    this.endedAt = undefined;
  }

  end(): void {
    this.endedAt = Date.now();
  }

  /** Starts the outage now and ends it once `ms` have passed on the wall clock; resolves when it ended. */
  for(ms: number): Promise<void> {
    this.start();
    const started = this.startedAt!;
    return new Promise((resolve) => {
      // A timer may fire a millisecond before Date.now() says its delay is over: wait out the rest.
      const check = () => {
        const left = started + ms - Date.now();
        if (left > 0) return void setTimeout(check, left);
        this.end();
        resolve();
      };
      setTimeout(check, ms);
    });
  }

  readonly open: OpenDatabase = async (name, open) => {
    const db = await open(name);
    return !this.databases || this.databases.includes(name) ? this.wrap(db) : db;
  };

  private refuse(database: string, collection: string, method: string, arg?: unknown): void {
    if (!this.down) return;
    this.refused.push({ database, collection, method, id: idOf(arg), at: Date.now() });
    throw new StorageError("UNAVAILABLE", `${database}: storage unavailable (test outage)`);
  }

  wrap(db: Database): Database {
    const collection = <T extends Doc>(name: string): Collection<T> => {
      const inner = db.collection<T>(name);
      const guard =
        <A extends unknown[], R>(method: string, call: (...args: A) => Promise<R>) =>
        async (...args: A): Promise<R> => {
          this.refuse(db.name, name, method, args[0]);
          return call(...args);
        };
      const outage = this;
      return {
        name: inner.name,
        createIndexes: guard("createIndexes", (specs) => inner.createIndexes(specs)),
        dropIndexes: guard("dropIndexes", (names) => inner.dropIndexes(names)),
        insertOne: guard("insertOne", (doc) => inner.insertOne(doc)),
        findOne: guard("findOne", (filter) => inner.findOne(filter)),
        find: guard("find", (filter, options) => inner.find(filter, options)),
        findPage: guard("findPage", (request) => inner.findPage(request)),
        async *stream(filter, options) {
          outage.refuse(db.name, name, "stream", filter);
          for await (const doc of inner.stream(filter, options)) {
            outage.refuse(db.name, name, "stream", filter);
            yield doc;
          }
        },
        count: guard("count", (filter) => inner.count(filter)),
        updateOne: guard("updateOne", (filter, update, options) => inner.updateOne(filter, update, options)),
        updateMany: guard("updateMany", (filter, update) => inner.updateMany(filter, update)),
        findOneAndUpdate: guard("findOneAndUpdate", (filter, update, options) => inner.findOneAndUpdate(filter, update, options)),
        deleteOne: guard("deleteOne", (filter) => inner.deleteOne(filter)),
        deleteMany: guard("deleteMany", (filter) => inner.deleteMany(filter)),
        bulkWrite: guard("bulkWrite", (ops) => inner.bulkWrite(ops)),
      };
    };
    return {
      name: db.name,
      collection,
      ping: async () => {
        this.refuse(db.name, "", "ping");
        return db.ping();
      },
      close: () => db.close(),
      drop: () => db.drop(),
    };
  }
}
