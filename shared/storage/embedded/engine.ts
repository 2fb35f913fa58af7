/**
 * The in-memory engine of one embedded collection: documents, indexes, query planning and writes.
 * Every operation is synchronous (so each is atomic: `$inc` under concurrency, upsert races), and a
 * write either passes every unique index or changes nothing. Persistence sits outside: each write
 * reports the log records it produced through `takeRecords()`.
 *
 * Indexes keep a hash map (tuple of values -> ids) for equality lookups and an ordered list of
 * (values..., _id) for range walks: a page sorted on an indexed field walks from the cursor and stops
 * after `limit + 1` matches. Matching uses mingo, with a fast path for plain equality filters.
 */
import type { BulkItemResult, BulkOp, Doc, Filter, IndexSpec, SortDirection, Update, UpdateResult } from "../port";
import { StorageError } from "../port";
import { uuidv7 } from "../../ids";
import { equalityValues, filterFields, invalidQuery, normalizeUpdate, upsertSeed, validateFilter, validatePartialFilter } from "../query/rules";
import { SortedList, type Position } from "./sorted-list";
import { applyUpdate, mingoPredicate } from "../query/update";
import { cloneValue, compareValues, getPath, isHashable, isPlainObject, keyPart, pathValues, setPath } from "../query/values";

export type LogRecord = { put: Doc } | { del: string };

type Matcher = (doc: Doc) => boolean;

/** Compiles a (validated) filter to a predicate; plain equality filters skip mingo. */
export function compileFilter(filter: Filter): Matcher {
  const keys = Object.keys(filter);
  if (keys.length === 0) return () => true;
  const simple: { key: string; parts: string[] | null; value: unknown }[] = [];
  for (const key of keys) {
    if (key.startsWith("$")) return mingoMatcher(filter);
    let value = filter[key];
    if (isPlainObject(value) && "$eq" in value && Object.keys(value).length === 1) value = value.$eq;
    if (value === null || !isHashable(value) || value instanceof Date || Number.isNaN(value)) return mingoMatcher(filter);
    simple.push({ key, parts: key.includes(".") ? key.split(".") : null, value });
  }
  return (doc) => {
    for (const { key, parts, value } of simple) {
      if (parts === null) {
        const v = (doc as Record<string, unknown>)[key];
        if (v === value) continue;
        if (Array.isArray(v) && v.includes(value)) continue;
        return false;
      }
      const found: unknown[] = [];
      pathValues(doc, parts, found);
      if (!found.includes(value)) return false;
    }
    return true;
  };
}

function mingoMatcher(filter: Filter): Matcher {
  return mingoPredicate(filter);
}

interface Entry {
  k: unknown[];
  id: string;
}

function compareEntries(a: Entry, b: Entry): number {
  const n = a.k.length;
  for (let i = 0; i < n; i++) {
    const c = compareValues(a.k[i], b.k[i]);
    if (c !== 0) return c;
  }
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

const MAX_LOOKUP_KEYS = 1000;
const SMALL_BUCKET = 64;
export const MAX_FIND_LIMIT = 1000;

/** One index: a hash map for equality lookups and (unless multikey) an ordered list for walks. */
class Index {
  readonly fields: string[];
  private readonly parts: string[][];
  readonly unique: boolean;
  readonly partial: Matcher | null;
  readonly hash = new Map<string, string | Set<string>>();
  ordered: SortedList<Entry> | null = new SortedList<Entry>(compareEntries);

  constructor(readonly spec: IndexSpec) {
    this.fields = Object.keys(spec.keys);
    this.parts = this.fields.map((f) => f.split("."));
    this.unique = spec.unique === true;
    this.partial = spec.partial ? compileFilter(spec.partial) : null;
  }

  get multikey(): boolean {
    return this.ordered === null;
  }

  /** The hash keys of `doc` (several when an indexed field holds an array) and its ordered entry. */
  keysOf(doc: Doc): { keys: string[]; entry: Entry | null } | null {
    if (this.partial && !this.partial(doc)) return null;
    if (this.fields.length === 1) {
      const found: unknown[] = [];
      const multi = pathValues(doc, this.parts[0], found);
      if (!multi) return { keys: [keyPart(found[0])], entry: { k: [found[0]], id: doc._id } };
      return { keys: [...new Set(found.map(keyPart))], entry: null };
    }
    let multi = false;
    const perField: unknown[][] = [];
    for (const parts of this.parts) {
      const found: unknown[] = [];
      if (pathValues(doc, parts, found)) multi = true;
      perField.push(found);
    }
    if (!multi) return { keys: [perField.map((v) => keyPart(v[0])).join("\u0000")], entry: { k: perField.map((v) => v[0]), id: doc._id } };
    let keys = [""];
    perField.forEach((values, i) => {
      const parts = [...new Set(values.map(keyPart))];
      keys = keys.flatMap((prefix) => parts.map((p) => (i === 0 ? p : `${prefix}\u0000${p}`)));
    });
    return { keys: [...new Set(keys)], entry: null };
  }

  add(doc: Doc, k = this.keysOf(doc)): void {
    if (!k) return;
    for (const key of k.keys) {
      const cur = this.hash.get(key);
      if (cur === undefined) this.hash.set(key, doc._id);
      else if (typeof cur === "string") this.hash.set(key, new Set([cur, doc._id]));
      else cur.add(doc._id);
    }
    if (k.entry === null) this.ordered = null;
    else this.ordered?.insert(k.entry);
  }

  remove(doc: Doc, k = this.keysOf(doc)): void {
    if (!k) return;
    for (const key of k.keys) {
      const cur = this.hash.get(key);
      if (cur === doc._id) this.hash.delete(key);
      else if (typeof cur === "object") {
        cur.delete(doc._id);
        if (cur.size === 1) this.hash.set(key, cur.values().next().value as string);
      }
    }
    if (k.entry) this.ordered?.delete(k.entry);
  }

  /** The lookup keys for equality values per field (their cross product), or null when too many. */
  lookupKeys(eq: Map<string, unknown[]>): string[] | null {
    let keys = [""];
    for (let i = 0; i < this.fields.length; i++) {
      const values = eq.get(this.fields[i])!;
      if (keys.length * values.length > MAX_LOOKUP_KEYS) return null;
      const parts = values.map(keyPart);
      keys = keys.flatMap((prefix) => parts.map((p) => (i === 0 ? p : `${prefix}\u0000${p}`)));
    }
    return keys;
  }

  bucketSize(key: string): number {
    const cur = this.hash.get(key);
    return cur === undefined ? 0 : typeof cur === "string" ? 1 : cur.size;
  }

  owner(key: string): string | undefined {
    const cur = this.hash.get(key);
    return typeof cur === "string" ? cur : cur === undefined ? undefined : cur.values().next().value;
  }

  *bucket(key: string): Generator<string> {
    const cur = this.hash.get(key);
    if (cur === undefined) return;
    if (typeof cur === "string") yield cur;
    else yield* cur;
  }

  rebuild(docs: Iterable<Doc>): void {
    this.hash.clear();
    const entries: Entry[] = [];
    let multi = false;
    for (const doc of docs) {
      const k = this.keysOf(doc);
      if (!k) continue;
      for (const key of k.keys) {
        const cur = this.hash.get(key);
        if (cur === undefined) this.hash.set(key, doc._id);
        else if (this.unique) throw new StorageError("DUPLICATE_KEY", `duplicate key in index ${this.spec.name} (${key})`, this.spec.name);
        else if (typeof cur === "string") this.hash.set(key, new Set([cur, doc._id]));
        else cur.add(doc._id);
      }
      if (k.entry) entries.push(k.entry);
      else multi = true;
    }
    if (multi) this.ordered = null;
    else {
      this.ordered = new SortedList<Entry>(compareEntries);
      this.ordered.load(entries.sort(compareEntries));
    }
  }
}

interface Change {
  id: string;
  before?: Doc;
  after?: Doc;
}

type Plan =
  | { kind: "ids"; ids: Iterable<string>; sorted: false }
  | { kind: "walk"; index: Index; prefix: unknown[]; sorted: boolean }
  /** Several unsorted walks of one index: `$in` on the key after an equality prefix. */
  | { kind: "walks"; index: Index; prefixes: unknown[][]; sorted: false }
  | { kind: "scan"; sorted: false };

interface SelectOptions {
  sort?: [string, SortDirection][];
  limit?: number;
  after?: { value: unknown; id: string };
}

function sameSpec(a: IndexSpec, b: IndexSpec): boolean {
  return (
    JSON.stringify(Object.entries(a.keys)) === JSON.stringify(Object.entries(b.keys)) &&
    (a.unique === true) === (b.unique === true) &&
    JSON.stringify(a.partial ?? null) === JSON.stringify(b.partial ?? null)
  );
}

export class CollectionEngine {
  readonly docs = new Map<string, Doc>();
  private readonly indexes = new Map<string, Index>();
  private readonly idIndex: Index;
  private records: LogRecord[] = [];
  /** Documents the last read tested against its filter (tests use it to prove index use). */
  lastExamined = 0;

  constructor(readonly name: string) {
    this.idIndex = new Index({ name: "_id_", keys: { _id: 1 }, unique: true });
    this.indexes.set("_id_", this.idIndex);
  }

  /** The log records of the writes since the last call. */
  takeRecords(): LogRecord[] {
    const out = this.records;
    this.records = [];
    return out;
  }

  /** Loads documents replayed from the log (no records are produced). */
  load(docs: Iterable<Doc>): void {
    for (const doc of docs) this.docs.set(doc._id, doc);
    for (const index of this.indexes.values()) index.rebuild(this.docs.values());
  }

  /** Empties the collection and drops its secondary indexes (as dropping a MongoDB database does). */
  clear(): void {
    this.docs.clear();
    this.indexes.clear();
    this.indexes.set("_id_", this.idIndex);
    this.idIndex.rebuild([]);
  }

  createIndexes(specs: IndexSpec[]): void {
    for (const spec of specs) {
      if (!spec || typeof spec.name !== "string" || spec.name.length === 0) throw invalidQuery("an index needs a name");
      const fields = Object.keys(spec.keys ?? {});
      if (fields.length === 0 || fields.some((f) => spec.keys[f] !== 1 && spec.keys[f] !== -1)) {
        throw invalidQuery(`index ${spec.name}: keys must map fields to 1 or -1`);
      }
      if (spec.partial !== undefined) validatePartialFilter(spec.partial, spec.name);
      const existing = this.indexes.get(spec.name);
      if (existing) {
        if (!sameSpec(existing.spec, spec)) throw invalidQuery(`index ${spec.name} already exists with a different definition`);
        continue;
      }
      const index = new Index(cloneValue(spec));
      index.rebuild(this.docs.values());
      this.indexes.set(spec.name, index);
    }
  }

  // ---------------------------------------------------------------- reads

  /** Matching stored documents (not copies): callers clone before handing them out. */
  select(filter: Filter, options: SelectOptions = {}): Doc[] {
    validateFilter(filter);
    const matcher = compileFilter(filter);
    const limit = options.limit ?? Number.POSITIVE_INFINITY;
    const sort = options.sort;
    const single = sort && (sort.length === 1 || (sort.length === 2 && sort[1][0] === "_id" && sort[1][1] === sort[0][1])) ? sort[0] : undefined;
    const plan = this.plan(filter, single?.[0], limit);
    const out: Doc[] = [];
    let examined = 0;
    if (plan.kind === "walk" && plan.sorted && single) {
      for (const doc of this.walk(plan.index, plan.prefix, single[1], options.after)) {
        examined++;
        if (!matcher(doc)) continue;
        out.push(doc);
        if (out.length >= limit) break;
      }
      this.lastExamined = examined;
      return out;
    }
    const after = options.after;
    const keyset = after && single ? this.keysetTest(single[0], single[1], after) : null;
    for (const doc of this.candidates(plan)) {
      examined++;
      if (!matcher(doc) || (keyset && !keyset(doc))) continue;
      out.push(doc);
      if (!sort && out.length >= limit) break;
    }
    this.lastExamined = examined;
    if (sort) {
      out.sort(sortComparator(sort));
      if (out.length > limit) out.length = limit;
    }
    return out;
  }

  count(filter: Filter): number {
    validateFilter(filter);
    const matcher = compileFilter(filter);
    let n = 0;
    let examined = 0;
    for (const doc of this.candidates(this.plan(filter))) {
      examined++;
      if (matcher(doc)) n++;
    }
    this.lastExamined = examined;
    return n;
  }

  /** Up to `limit` matching documents with `_id` > `afterId`, in `_id` order (for streams). */
  selectAfterId(filter: Filter, afterId: string | undefined, limit: number): Doc[] {
    return this.select(filter, { sort: [["_id", 1]], limit, after: afterId === undefined ? undefined : { value: afterId, id: afterId } });
  }

  private keysetTest(field: string, direction: SortDirection, after: { value: unknown; id: string }): Matcher {
    return (doc) => {
      let c = compareValues(getPath(doc, field), after.value);
      if (c === 0) c = doc._id < after.id ? -1 : doc._id > after.id ? 1 : 0;
      return direction === 1 ? c > 0 : c < 0;
    };
  }

  /** Chooses how to find candidates: a small hash bucket, an ordered walk, a larger bucket, a range, or a scan. */
  private plan(filter: Filter, sortField?: string, limit = Number.POSITIVE_INFINITY): Plan {
    const eq = equalityValues(filter);
    let best: { index: Index; keys: string[]; size: number } | undefined;
    if (eq.size > 0) {
      for (const index of this.indexes.values()) {
        if (!index.fields.every((f) => eq.has(f)) || !this.partialCovered(index, eq)) continue;
        const keys = index.lookupKeys(eq);
        if (!keys) continue;
        let size = 0;
        for (const key of keys) size += index.bucketSize(key);
        if (!best || size < best.size) best = { index, keys, size };
      }
    }
    const bucketPlan = (b: NonNullable<typeof best>): Plan => {
      const ids = b.keys.length === 1 && !b.index.multikey ? b.index.bucket(b.keys[0]) : new Set(b.keys.flatMap((k) => [...b.index.bucket(k)]));
      return { kind: "ids", ids, sorted: false };
    };
    if (best && best.size <= SMALL_BUCKET) return bucketPlan(best);

    let walk: { index: Index; prefix: unknown[]; sorted: boolean } | undefined;
    for (const index of this.indexes.values()) {
      if (index.multikey || !this.partialCovered(index, eq)) continue;
      const prefix: unknown[] = [];
      for (const f of index.fields) {
        const values = eq.get(f);
        if (!values || values.length !== 1) break;
        prefix.push(values[0]);
      }
      const next = index.fields[prefix.length];
      const rest = index.fields.length - prefix.length;
      const sorted = sortField !== undefined && next === sortField && (rest === 1 || (rest === 2 && index.fields[prefix.length + 1] === "_id"));
      if (sorted) {
        if (!walk?.sorted || prefix.length > walk.prefix.length) walk = { index, prefix, sorted };
      } else if (prefix.length > 0 && !walk?.sorted && (!walk || prefix.length > walk.prefix.length)) {
        walk = { index, prefix, sorted: false };
      }
    }
    // A sorted walk examines about limit * N / matches documents; a bucket examines (and sorts) all of it.
    const cheaperThanSortedWalk = (size: number) => size * size <= (limit + 1) * this.docs.size;
    if (walk?.sorted && !(best && cheaperThanSortedWalk(best.size))) {
      const walks = this.multiWalk(eq, walk.prefix.length);
      if (walks && cheaperThanSortedWalk(walks.size)) return walks.plan;
      return { kind: "walk", ...walk };
    }
    if (best) return bucketPlan(best);
    if (walk?.sorted) return { kind: "walk", ...walk };
    const walks = this.multiWalk(eq, walk?.prefix.length ?? 0);
    if (walks) return walks.plan;
    if (walk) return { kind: "walk", ...walk };
    return { kind: "scan", sorted: false };
  }

  /**
   * One walk per value of an `$in` on the index key right after an equality prefix (e.g. `{ store_id: S,
   * profile_id: { $in: ids } }` on `{ store_id, profile_id, created_at }`), when that is a longer prefix
   * than a single walk would have.
   */
  private multiWalk(eq: Map<string, unknown[]>, longerThan: number): { plan: Plan; size: number } | undefined {
    let found: { index: Index; prefix: unknown[]; values: unknown[] } | undefined;
    for (const index of this.indexes.values()) {
      if (index.multikey || !this.partialCovered(index, eq)) continue;
      const prefix: unknown[] = [];
      for (const f of index.fields) {
        const values = eq.get(f);
        if (!values) break;
        if (values.length === 1) {
          prefix.push(values[0]);
          continue;
        }
        if (prefix.length + 1 > longerThan && (!found || prefix.length > found.prefix.length)) {
          found = { index, prefix: [...prefix], values: [...new Set(values)] };
        }
        break;
      }
    }
    if (!found) return undefined;
    const { index, prefix, values } = found;
    const prefixes = values.map((v) => [...prefix, v]);
    const size = prefixes.reduce((n, p) => n + this.rangeSize(index, p), 0);
    return { plan: { kind: "walks", index, prefixes, sorted: false }, size };
  }

  /** How many entries of `index` start with `prefix` (two binary searches). */
  private rangeSize(index: Index, prefix: unknown[]): number {
    const list = index.ordered!;
    const cmp = (e: Entry): number => {
      for (let i = 0; i < prefix.length; i++) {
        const c = compareValues(e.k[i], prefix[i]);
        if (c !== 0) return c;
      }
      return 0;
    };
    return list.rank(list.lowerBound((e) => cmp(e) > 0)) - list.rank(list.lowerBound((e) => cmp(e) >= 0));
  }

  /** A partial index holds every match only when the filter's equalities imply its partial filter. */
  private partialCovered(index: Index, eq: Map<string, unknown[]>): boolean {
    if (!index.partial) return true;
    const fields = filterFields(index.spec.partial!);
    if (!fields) return false;
    const probe: Record<string, unknown> = {};
    for (const f of fields) {
      const values = eq.get(f);
      if (!values || values.length !== 1) return false;
      setPath(probe, f, values[0]);
    }
    return index.partial(probe as Doc);
  }

  private *candidates(plan: Plan): Generator<Doc> {
    if (plan.kind === "ids") {
      for (const id of plan.ids) {
        const doc = this.docs.get(id);
        if (doc) yield doc;
      }
    } else if (plan.kind === "walk") {
      yield* this.walk(plan.index, plan.prefix, 1);
    } else if (plan.kind === "walks") {
      for (const prefix of plan.prefixes) yield* this.walk(plan.index, prefix, 1);
    } else {
      yield* this.docs.values();
    }
  }

  /** Documents of `index` whose leading keys equal `prefix`, in the order of the next key then `_id`. */
  private *walk(index: Index, prefix: unknown[], direction: SortDirection, after?: { value: unknown; id: string }): Generator<Doc> {
    const list = index.ordered!;
    const m = prefix.length;
    const cmpPrefix = (e: Entry): number => {
      for (let i = 0; i < m; i++) {
        const c = compareValues(e.k[i], prefix[i]);
        if (c !== 0) return c;
      }
      return 0;
    };
    let start: Position;
    if (!after) start = list.lowerBound(direction === 1 ? (e) => cmpPrefix(e) >= 0 : (e) => cmpPrefix(e) > 0);
    else {
      const cmpAfter = (e: Entry): number => {
        const c = cmpPrefix(e) || compareValues(e.k[m], after.value);
        if (c !== 0) return c;
        return e.id < after.id ? -1 : e.id > after.id ? 1 : 0;
      };
      start = list.lowerBound(direction === 1 ? (e) => cmpAfter(e) > 0 : (e) => cmpAfter(e) >= 0);
    }
    for (const entry of list.walk(start, direction)) {
      if (cmpPrefix(entry) !== 0) return;
      const doc = this.docs.get(entry.id);
      if (doc) yield doc;
    }
  }

  // ---------------------------------------------------------------- writes

  insertOne(doc: Doc): void {
    if (!isPlainObject(doc)) throw invalidQuery("a document must be a plain object");
    if (typeof doc._id !== "string" || doc._id.length === 0) throw invalidQuery("a document needs a string _id");
    this.commit([{ id: doc._id, after: cloneValue(doc) }]);
  }

  updateOne(filter: Filter, update: Update, upsert = false): UpdateResult & { before?: Doc; after?: Doc } {
    const normalized = normalizeUpdate(update);
    const [before] = this.select(filter, { limit: 1 });
    if (before) {
      const after = applyUpdate(before, normalized, false);
      if (!after) return { matched: 1, modified: 0, before, after: before };
      this.commit([{ id: before._id, before, after }]);
      return { matched: 1, modified: 1, before, after };
    }
    if (!upsert) return { matched: 0, modified: 0 };
    const created = applyUpdate(upsertSeed(filter) as Doc, normalized, true)!;
    if (created._id === undefined) created._id = uuidv7();
    if (typeof created._id !== "string" || created._id.length === 0) throw invalidQuery("an upserted document needs a string _id");
    this.commit([{ id: created._id, after: created }]);
    return { matched: 0, modified: 0, upsertedId: created._id, after: created };
  }

  updateMany(filter: Filter, update: Update): UpdateResult {
    const normalized = normalizeUpdate(update);
    const matches = this.select(filter);
    const changes: Change[] = [];
    for (const before of matches) {
      const after = applyUpdate(before, normalized, false);
      if (after) changes.push({ id: before._id, before, after });
    }
    this.commit(changes);
    return { matched: matches.length, modified: changes.length };
  }

  deleteOne(filter: Filter): number {
    const [before] = this.select(filter, { limit: 1 });
    if (!before) return 0;
    this.commit([{ id: before._id, before }]);
    return 1;
  }

  deleteMany(filter: Filter): number {
    const matches = this.select(filter);
    this.commit(matches.map((before) => ({ id: before._id, before })));
    return matches.length;
  }

  bulkWrite(ops: BulkOp<Doc>[]): BulkItemResult[] {
    if (!Array.isArray(ops)) throw invalidQuery("bulkWrite takes an array of operations");
    return ops.map((op): BulkItemResult => {
      try {
        if (op && "insertOne" in op) {
          this.insertOne(op.insertOne.document);
          return { ok: true, inserted: true };
        }
        if (op && "updateOne" in op) {
          const { filter, update, upsert } = op.updateOne;
          const r = this.updateOne(filter, update, upsert === true);
          return { ok: true, matched: r.matched, modified: r.modified, ...(r.upsertedId ? { upsertedId: r.upsertedId } : {}) };
        }
        if (op && "deleteOne" in op) return { ok: true, deleted: this.deleteOne(op.deleteOne.filter) };
        throw invalidQuery("unknown bulk operation");
      } catch (err) {
        const e = err as StorageError;
        if (!(e?.code === "DUPLICATE_KEY" || e?.code === "INVALID_QUERY")) throw err;
        return { ok: false, error: { code: e.code, message: e.message, ...(e.index ? { index: e.index } : {}) } };
      }
    });
  }

  /** Applies changes to documents and indexes, or throws DUPLICATE_KEY and changes nothing. */
  private commit(changes: Change[]): void {
    if (changes.length === 0) return;
    const indexes = [...this.indexes.values()];
    const changed = new Set(changes.map((c) => c.id));
    const keyed = changes.map((change) => {
      if (!change.before && this.docs.has(change.id)) {
        throw new StorageError("DUPLICATE_KEY", `duplicate key in index _id_ (_id: ${JSON.stringify(change.id)})`, "_id_");
      }
      return {
        change,
        before: change.before ? indexes.map((index) => index.keysOf(change.before!)) : null,
        after: change.after ? indexes.map((index) => index.keysOf(change.after!)) : null,
      };
    });
    indexes.forEach((index, i) => {
      if (!index.unique || index === this.idIndex) return;
      const claimed = new Map<string, string>();
      for (const { change, before, after } of keyed) {
        const k = after?.[i];
        if (!k || (before && sameKeys(before[i], k))) continue;
        for (const key of k.keys) {
          const other = claimed.get(key);
          if (other !== undefined && other !== change.id) throw duplicate(index);
          claimed.set(key, change.id);
          const owner = index.owner(key);
          if (owner !== undefined && owner !== change.id && !changed.has(owner)) throw duplicate(index);
        }
      }
    });
    // An index whose keys did not change for a document is left alone (a counter bump touches no index).
    for (const { change, before, after } of keyed) {
      if (!before) continue;
      indexes.forEach((index, i) => {
        if (!after || !sameKeys(before[i], after[i])) index.remove(change.before!, before[i]);
      });
      this.docs.delete(change.id);
    }
    for (const { change, before, after } of keyed) {
      if (after) {
        this.docs.set(change.id, change.after!);
        indexes.forEach((index, i) => {
          if (!before || !sameKeys(before[i], after[i])) index.add(change.after!, after[i]);
        });
        this.records.push({ put: change.after! });
      } else {
        this.records.push({ del: change.id });
      }
    }
  }
}

type IndexKeys = ReturnType<Index["keysOf"]>;

function sameKeys(a: IndexKeys, b: IndexKeys): boolean {
  if (a === null || b === null) return a === b;
  if (a.keys.length !== b.keys.length || (a.entry === null) !== (b.entry === null)) return false;
  for (let i = 0; i < a.keys.length; i++) if (a.keys[i] !== b.keys[i]) return false;
  return true;
}

function duplicate(index: Index): StorageError {
  return new StorageError("DUPLICATE_KEY", `duplicate key in unique index ${index.spec.name}`, index.spec.name);
}

function sortComparator(sort: [string, SortDirection][]): (a: Doc, b: Doc) => number {
  const last = sort[sort.length - 1][1];
  return (a, b) => {
    for (const [field, direction] of sort) {
      const c = compareValues(getPath(a, field), getPath(b, field));
      if (c !== 0) return c * direction;
    }
    return (a._id < b._id ? -1 : a._id > b._id ? 1 : 0) * last;
  };
}
