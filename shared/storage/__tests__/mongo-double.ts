/**
 * A MongoDB driver double for the adapter's server-free tests: the few driver methods the adapter
 * calls, over plain in-memory collections (linear scans; mingo matches filters as MongoDB does,
 * query/update.ts applies update operators), answering with the driver's real error classes and the
 * server's refusals the adapter must work around or map:
 *   - unique indexes, partial ones included, refuse duplicates with E11000 naming the index (a missing
 *     field counts as null, as in MongoDB; array values are not expanded into several keys);
 *   - an index name that exists with other keys (86) or options (85), or the same keys under another
 *     name (85), is refused; `listIndexes` on a collection that does not exist is NamespaceNotFound (26);
 *   - an operator-shaped value inside `$in`/`$nin`, and a `$regex` holding U+0000, are refused (code 2);
 *   - `collection.bulkWrite` runs as the driver sends an unordered bulk: inserts, then updates, then
 *     deletes, reporting only totals plus per-op write errors and upserted ids (MongoBulkWriteError);
 *   - `clientBulk(8)` is MongoDB 8's client-level bulkWrite with verbose per-op results
 *     (MongoClientBulkWriteError); `clientBulk(7)` answers `supported()` with false, like `hello` on 7.0.
 * Every driver call is recorded in `calls`, so a test can count round trips.
 */
import { randomUUID } from "node:crypto";
import {
  MongoBulkWriteError,
  MongoClientBulkWriteError,
  MongoServerError,
  type ClientBulkWriteResult,
  type Collection as DriverCollection,
  type Document,
} from "mongodb";
import { mongoCollection, type ClientBulk } from "../mongo";
import type { Database, Doc, Filter, Update } from "../port";
import { isOperatorObject, upsertSeed } from "../query/rules";
import { applyUpdate, mingoPredicate } from "../query/update";
import { cloneValue, compareValues, getPath } from "../query/values";

export type Calls = { method: string; args: unknown[] }[];

interface IndexDef {
  name: string;
  key: Record<string, 1 | -1>;
  unique?: boolean;
  partialFilterExpression?: Filter;
  covers: (doc: Doc) => boolean;
}

interface State {
  name: string;
  exists: boolean;
  docs: Map<string, Doc>;
  indexes: Map<string, IndexDef>;
}

interface WriteOutcome {
  matched: number;
  modified: number;
  upsertedId?: string;
  before?: Doc | null;
  after?: Doc | null;
}

type IndexModel = { name: string; key: Record<string, 1 | -1>; unique?: boolean; partialFilterExpression?: Filter };
type BulkModel = { insertOne: { document: Doc } } | { updateOne: { filter: Filter; update: Update; upsert?: boolean } } | { deleteOne: { filter: Filter } };
type ClientModel =
  | { namespace: string; name: "insertOne"; document: Doc }
  | { namespace: string; name: "updateOne"; filter: Filter; update: Update; upsert?: boolean }
  | { namespace: string; name: "deleteOne"; filter: Filter };

const serverError = (message: string, code: number) => new MongoServerError({ message, errmsg: message, code });

/** The server's refusals of a filter: `$` inside `$in`/`$nin`, U+0000 in a `$regex`. */
export function refuseFilter(filter: unknown): void {
  if (Array.isArray(filter)) {
    for (const item of filter) refuseFilter(item);
    return;
  }
  if (filter === null || typeof filter !== "object") return;
  for (const [key, value] of Object.entries(filter)) {
    if ((key === "$in" || key === "$nin") && Array.isArray(value) && value.some(isOperatorObject)) throw serverError(`cannot nest $ under ${key}`, 2);
    if (key === "$regex" && typeof value === "string" && value.includes("\u0000")) throw serverError("Regular expression cannot contain an embedded null byte", 2);
    if (key === "$and" || key === "$or" || key === "$elemMatch" || key === "$not" || !key.startsWith("$")) refuseFilter(value);
  }
}

function sameKey(a: Record<string, unknown>, b: Record<string, unknown>): boolean {
  const x = Object.entries(a);
  const y = Object.entries(b);
  return x.length === y.length && x.every(([k, v], i) => k === y[i][0] && v === y[i][1]);
}

function sortDocs(docs: Doc[], sort: Record<string, 1 | -1> = {}): Doc[] {
  return docs.sort((a, b) => {
    for (const [field, direction] of Object.entries(sort)) {
      const c = compareValues(getPath(a, field), getPath(b, field));
      if (c !== 0) return c * direction;
    }
    return 0;
  });
}

export class DriverDouble {
  readonly calls: Calls = [];
  private readonly states = new Map<string, State>();

  constructor(readonly dbName = "crm_test") {}

  /** A collection's state (created empty, not yet existing, on first use). */
  state(name: string): State {
    let s = this.states.get(name);
    if (!s) {
      s = { name, exists: false, docs: new Map(), indexes: new Map() };
      this.states.set(name, s);
    }
    return s;
  }

  /** Stores documents directly (no call recorded), for a test's starting data. */
  seed(name: string, docs: Doc[]): void {
    for (const doc of docs) this.insert(this.state(name), cloneValue(doc));
  }

  /** Creates indexes directly (no call recorded), e.g. as an older version of the adapter left them. */
  seedIndexes(name: string, models: IndexModel[]): void {
    this.createIndexModels(this.state(name), models);
  }

  dropAll(): void {
    this.states.clear();
  }

  /** A port Database over this double, as a MongoDB `server` (7: collection bulk writes; 8: client bulkWrite). */
  database(server: 7 | 8, log: (message: string) => void = () => undefined): Database {
    const clientBulk = this.clientBulk(server);
    return {
      name: this.dbName,
      collection: <T extends Doc>(name: string) => mongoCollection<T>(name, () => this.collection(name), { clientBulk, log }),
      ping: async () => undefined,
      close: async () => undefined,
      drop: async () => this.dropAll(),
    };
  }

  /** The driver collection `name`: a plain object, so a test can override one method with Object.create. */
  collection(name: string): DriverCollection<Document> {
    const run = async <R>(method: string, args: unknown[], op: (s: State) => R): Promise<R> => {
      this.calls.push({ method, args: cloneValue(args) });
      return cloneValue(op(this.state(name)));
    };
    const namespace = `${this.dbName}.${name}`;
    const double = {
      namespace,
      collectionName: name,
      dbName: this.dbName,
      createIndexes: (models: IndexModel[]) =>
        run("createIndexes", [models], (s) => {
          this.createIndexModels(s, models);
          return models.map((m) => m.name);
        }),
      listIndexes: () => ({
        toArray: () =>
          run("listIndexes", [], (s) => {
            if (!s.exists) throw serverError(`ns does not exist: ${namespace}`, 26);
            return [{ v: 2, key: { _id: 1 }, name: "_id_" }, ...[...s.indexes.values()].map(({ covers: _covers, ...model }) => ({ v: 2, ...model }))];
          }),
      }),
      dropIndex: (indexName: string) =>
        run("dropIndex", [indexName], (s) => {
          if (!s.indexes.delete(indexName)) throw serverError(`index not found with name [${indexName}]`, 27);
          return { ok: 1 };
        }),
      insertOne: (doc: Doc) =>
        run("insertOne", [doc], (s) => {
          this.insert(s, cloneValue(doc));
          return { acknowledged: true, insertedId: doc._id };
        }),
      findOne: (filter: Filter) => run("findOne", [filter], (s) => this.select(s, filter)[0] ?? null),
      find: (filter: Filter, options: { sort?: Record<string, 1 | -1>; limit?: number } = {}) => ({
        toArray: () => run("find", [filter, options], (s) => sortDocs(this.select(s, filter), options.sort).slice(0, options.limit)),
      }),
      countDocuments: (filter: Filter) => run("countDocuments", [filter], (s) => this.select(s, filter).length),
      updateOne: (filter: Filter, update: Update, options: { upsert?: boolean } = {}) =>
        run("updateOne", [filter, update, options], (s) => {
          const r = this.updateOne(s, filter, update, options.upsert === true);
          return { acknowledged: true, matchedCount: r.matched, modifiedCount: r.modified, upsertedCount: r.upsertedId ? 1 : 0, upsertedId: r.upsertedId ?? null };
        }),
      updateMany: (filter: Filter, update: Update) =>
        run("updateMany", [filter, update], (s) => {
          let matched = 0;
          let modified = 0;
          for (const doc of this.select(s, filter)) {
            matched++;
            const next = this.apply(doc, update, false);
            if (!next) continue;
            this.checkUnique(s, next, doc._id);
            s.docs.set(doc._id, next);
            modified++;
          }
          return { acknowledged: true, matchedCount: matched, modifiedCount: modified, upsertedCount: 0, upsertedId: null };
        }),
      findOneAndUpdate: (filter: Filter, update: Update, options: { upsert?: boolean; returnDocument: "before" | "after" }) =>
        run("findOneAndUpdate", [filter, update, options], (s) => {
          const r = this.updateOne(s, filter, update, options.upsert === true);
          return (options.returnDocument === "before" ? r.before : r.after) ?? null;
        }),
      deleteOne: (filter: Filter) => run("deleteOne", [filter], (s) => ({ acknowledged: true, deletedCount: this.deleteOne(s, filter) })),
      deleteMany: (filter: Filter) =>
        run("deleteMany", [filter], (s) => {
          const gone = this.select(s, filter);
          for (const doc of gone) s.docs.delete(doc._id);
          return { acknowledged: true, deletedCount: gone.length };
        }),
      bulkWrite: (models: BulkModel[], options: { ordered?: boolean } = {}) =>
        run("bulkWrite", [models, options], (s) => {
          if (options.ordered !== false) throw new Error("driver double: the adapter sends unordered bulk writes only");
          return this.collectionBulk(s, models);
        }),
    };
    return double as unknown as DriverCollection<Document>;
  }

  /** MongoDB 8's client-level bulkWrite (verbose results), or what a 7.0 server's `hello` tells (not supported). */
  clientBulk(server: 7 | 8): ClientBulk {
    return {
      supported: async () => server >= 8,
      refused: () => undefined,
      write: async (models, options) => {
        this.calls.push({ method: "client.bulkWrite", args: cloneValue([models, options]) });
        if (server < 8) throw new Error("driver double: client bulkWrite sent to a MongoDB 7 double");
        if (options.ordered !== false || options.verboseResults !== true) throw new Error("driver double: the adapter asks for unordered, verbose client bulk writes");
        // Results hold Maps of ids only; the documents written are copies.
        return this.clientBulkWrite(cloneValue(models) as unknown as ClientModel[]);
      },
    };
  }

  // ---------------------------------------------------------------- the "server"

  private select(s: State, filter: Filter): Doc[] {
    refuseFilter(filter);
    const test = mingoPredicate(filter);
    return [...s.docs.values()].filter((d) => test(d));
  }

  /** applyUpdate, with its refusals as the server's (TypeMismatch for $inc, BadValue otherwise). */
  private apply(doc: Doc, update: Update, inserting: boolean): Doc | null {
    try {
      return applyUpdate(doc, update, inserting);
    } catch (err) {
      const message = (err as Error).message;
      throw serverError(message, /\$inc/.test(message) ? 14 : 2);
    }
  }

  private duplicate(s: State, index: string): MongoServerError {
    return serverError(`E11000 duplicate key error collection: ${this.dbName}.${s.name} index: ${index} dup key: { }`, 11000);
  }

  /** The unique index `doc` would break (other than `_id_`), ignoring the document `self`. */
  private uniqueViolation(s: State, doc: Doc, self: string | undefined, indexes: Iterable<IndexDef> = s.indexes.values()): string | undefined {
    for (const index of indexes) {
      if (!index.unique || !index.covers(doc)) continue;
      const fields = Object.keys(index.key);
      for (const other of s.docs.values()) {
        if (other._id === self || !index.covers(other)) continue;
        if (fields.every((f) => compareValues(getPath(other, f), getPath(doc, f)) === 0)) return index.name;
      }
    }
    return undefined;
  }

  private checkUnique(s: State, doc: Doc, self: string | undefined): void {
    const index = this.uniqueViolation(s, doc, self);
    if (index) throw this.duplicate(s, index);
  }

  private insert(s: State, doc: Doc): void {
    if (s.docs.has(doc._id)) throw this.duplicate(s, "_id_");
    this.checkUnique(s, doc, undefined);
    s.docs.set(doc._id, doc);
    s.exists = true;
  }

  private updateOne(s: State, filter: Filter, update: Update, upsert: boolean): WriteOutcome {
    const [target] = this.select(s, filter);
    if (target) {
      const next = this.apply(target, update, false);
      if (!next) return { matched: 1, modified: 0, before: target, after: target };
      this.checkUnique(s, next, target._id);
      s.docs.set(target._id, next);
      return { matched: 1, modified: 1, before: target, after: next };
    }
    if (!upsert) return { matched: 0, modified: 0, before: null, after: null };
    const doc = this.apply(upsertSeed(filter) as Doc, update, true)!;
    if (doc._id === undefined) doc._id = randomUUID(); // the server would make an ObjectId
    this.insert(s, doc);
    return { matched: 0, modified: 0, upsertedId: doc._id, before: null, after: doc };
  }

  private deleteOne(s: State, filter: Filter): number {
    const [doc] = this.select(s, filter);
    if (!doc) return 0;
    s.docs.delete(doc._id);
    return 1;
  }

  private createIndexModels(s: State, models: IndexModel[]): void {
    const added: IndexDef[] = [];
    for (const m of models) {
      const partial = m.partialFilterExpression;
      const def: IndexDef = { ...m, covers: partial ? (doc) => mingoPredicate(partial)(doc) : () => true };
      const same = s.indexes.get(m.name);
      if (same) {
        if (!sameKey(same.key, m.key)) throw serverError(`An existing index has the same name as the requested index but different key specification: ${m.name}`, 86);
        if (!!same.unique !== !!m.unique || JSON.stringify(same.partialFilterExpression ?? null) !== JSON.stringify(partial ?? null)) {
          throw serverError(`An equivalent index already exists with the same name but different options: ${m.name}`, 85);
        }
        continue;
      }
      const twin = [...s.indexes.values()].find((i) => sameKey(i.key, m.key) && JSON.stringify(i.partialFilterExpression ?? null) === JSON.stringify(partial ?? null));
      if (twin) throw serverError(`Index already exists with a different name: ${twin.name}`, 85);
      if (m.unique) {
        // Building a unique index over data that already breaks it fails, naming the index.
        const seen = new Map<string, Doc>();
        for (const doc of s.docs.values()) {
          if (!def.covers(doc)) continue;
          const violated = this.uniqueViolation({ ...s, docs: seen as Map<string, Doc> }, doc, undefined, [def]);
          if (violated) throw this.duplicate(s, violated);
          seen.set(doc._id, doc);
        }
      }
      added.push(def);
    }
    for (const def of added) s.indexes.set(def.name, def);
    s.exists = true;
  }

  /** An unordered collection bulk as the driver sends it: one command per kind, inserts first. */
  private collectionBulk(s: State, models: BulkModel[]) {
    const result = {
      acknowledged: true,
      insertedCount: 0,
      matchedCount: 0,
      modifiedCount: 0,
      deletedCount: 0,
      upsertedCount: 0,
      upsertedIds: {} as Record<number, string>,
      insertedIds: {} as Record<number, string>,
    };
    const writeErrors: { index: number; code: number; errmsg: string }[] = [];
    const kind = (m: BulkModel) => ("insertOne" in m ? 0 : "updateOne" in m ? 1 : 2);
    const order = models.map((m, index) => ({ m, index })).sort((a, b) => kind(a.m) - kind(b.m) || a.index - b.index);
    for (const { m, index } of order) {
      try {
        if ("insertOne" in m) {
          this.insert(s, cloneValue(m.insertOne.document));
          result.insertedCount++;
          result.insertedIds[index] = m.insertOne.document._id;
        } else if ("updateOne" in m) {
          const r = this.updateOne(s, m.updateOne.filter, m.updateOne.update, m.updateOne.upsert === true);
          result.matchedCount += r.matched;
          result.modifiedCount += r.modified;
          if (r.upsertedId !== undefined) {
            result.upsertedCount++;
            result.upsertedIds[index] = r.upsertedId;
          }
        } else {
          result.deletedCount += this.deleteOne(s, m.deleteOne.filter);
        }
      } catch (err) {
        if (!(err instanceof MongoServerError)) throw err;
        writeErrors.push({ index, code: Number(err.code), errmsg: err.message });
      }
    }
    if (writeErrors.length > 0) {
      writeErrors.sort((a, b) => a.index - b.index);
      throw new MongoBulkWriteError({ message: writeErrors[0].errmsg, code: writeErrors[0].code, writeErrors: writeErrors as never }, result as never);
    }
    return result;
  }

  /** MongoDB 8's bulkWrite command, unordered with verbose results (the server runs the ops in order). */
  private clientBulkWrite(models: ClientModel[]): ClientBulkWriteResult {
    const insertResults = new Map<number, { insertedId: unknown }>();
    const updateResults = new Map<number, { matchedCount: number; modifiedCount: number; didUpsert: boolean; upsertedId?: unknown }>();
    const deleteResults = new Map<number, { deletedCount: number }>();
    const writeErrors = new Map<number, { code: number; message: string }>();
    const totals = { insertedCount: 0, upsertedCount: 0, matchedCount: 0, modifiedCount: 0, deletedCount: 0 };
    models.forEach((m, j) => {
      const s = this.state(m.namespace.slice(this.dbName.length + 1));
      try {
        if (m.name === "insertOne") {
          this.insert(s, m.document);
          insertResults.set(j, { insertedId: m.document._id });
          totals.insertedCount++;
        } else if (m.name === "updateOne") {
          const r = this.updateOne(s, m.filter, m.update, m.upsert === true);
          const didUpsert = r.upsertedId !== undefined;
          // The server's n counts an upserted document (the driver reports it as matchedCount).
          updateResults.set(j, { matchedCount: didUpsert ? 1 : r.matched, modifiedCount: r.modified, didUpsert, ...(didUpsert ? { upsertedId: r.upsertedId } : {}) });
          totals.matchedCount += r.matched;
          totals.modifiedCount += r.modified;
          if (didUpsert) totals.upsertedCount++;
        } else {
          const n = this.deleteOne(s, m.filter);
          deleteResults.set(j, { deletedCount: n });
          totals.deletedCount += n;
        }
      } catch (err) {
        if (!(err instanceof MongoServerError)) throw err;
        writeErrors.set(j, { code: Number(err.code), message: err.message });
      }
    });
    const result: ClientBulkWriteResult = { acknowledged: true, ...totals, insertResults, updateResults, deleteResults };
    if (writeErrors.size > 0) {
      const error = new MongoClientBulkWriteError({ message: "Mongo client bulk write encountered errors during execution." });
      error.writeErrors = writeErrors;
      error.partialResult = result;
      throw error;
    }
    return result;
  }
}
