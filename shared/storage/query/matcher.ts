/**
 * Compiled filters and sort orders with MongoDB's semantics, for adapters that evaluate (part of) a
 * filter themselves: mingo for the general case, a fast path for plain equality, `$in` and `$type` filters.
 */
import type { Doc, Filter, SortDirection } from "../port";
import { mingoPredicate } from "./update";
import { compareValues, getPath, isHashable, isPlainObject, pathValues } from "./values";

export type Matcher = (doc: Doc) => boolean;

/** A scalar a fast-path condition may hold: equal under `===` exactly when MongoDB calls it equal. */
function isPlainScalar(value: unknown): boolean {
  return value !== null && isHashable(value) && !(value instanceof Date) && !Number.isNaN(value);
}

/** `$type` aliases whose values `typeof` tells apart. */
const TYPEOF_OF_ALIAS: Record<string, string> = { string: "string", number: "number", bool: "boolean" };

interface FastCondition {
  accepts: (v: unknown) => boolean;
  /** Whether an array matches when one of its elements is accepted (equality and `$in` do). */
  elements: boolean;
}

/**
 * A condition on one field that needs no mingo: `{ f: v }`, `{ f: { $eq: v } }`, `{ f: { $in: [...] } }`
 * of plain scalars, and `{ f: { $type: "string" | "number" | "bool" } }` on a top-level field, answered as
 * mingo answers it (the value itself, never an array's elements, and NaN is not a number); else null.
 */
function fastCondition(key: string, value: unknown): FastCondition | null {
  if (key.startsWith("$")) return null;
  if (isPlainObject(value) && Object.keys(value).length === 1) {
    if ("$eq" in value) return isPlainScalar(value.$eq) ? equalTo([value.$eq]) : null;
    if ("$in" in value) return Array.isArray(value.$in) && value.$in.every(isPlainScalar) ? equalTo(value.$in) : null;
    if ("$type" in value && !key.includes(".") && typeof value.$type === "string" && Object.hasOwn(TYPEOF_OF_ALIAS, value.$type)) {
      const type = TYPEOF_OF_ALIAS[value.$type];
      return { accepts: (v) => typeof v === type && !Number.isNaN(v), elements: false };
    }
    return null;
  }
  return isPlainScalar(value) ? equalTo([value]) : null;
}

function equalTo(values: unknown[]): FastCondition {
  const accepted = new Set(values);
  return { accepts: (v) => accepted.has(v), elements: true };
}

/**
 * Compiles a (validated) filter to a predicate. Equality, `$in` and `$type` conditions skip mingo: they
 * are most partial indexes' filters, checked for every document written.
 */
export function compileFilter(filter: Filter): Matcher {
  const keys = Object.keys(filter);
  if (keys.length === 0) return () => true;
  const simple: { key: string; parts: string[] | null; condition: FastCondition }[] = [];
  for (const key of keys) {
    const condition = fastCondition(key, filter[key]);
    if (!condition) return mingoPredicate(filter);
    simple.push({ key, parts: key.includes(".") ? key.split(".") : null, condition });
  }
  return (doc) => {
    for (const { key, parts, condition } of simple) {
      const { accepts, elements } = condition;
      if (parts === null) {
        const v = (doc as Record<string, unknown>)[key];
        if (accepts(v)) continue;
        if (elements && Array.isArray(v) && v.some(accepts)) continue;
        return false;
      }
      const found: unknown[] = [];
      pathValues(doc, parts, found);
      if (!found.some(accepts)) return false;
    }
    return true;
  };
}

/** What an array sorts by in MongoDB: its smallest element ascending, its largest descending. */
function sortKey(value: unknown, direction: SortDirection): unknown {
  if (!Array.isArray(value) || value.length === 0) return value;
  return value.reduce((best, v) => (compareValues(v, best) * direction > 0 ? v : best));
}

/** A comparator for a sort specification, ties broken by `_id` in the last field's direction. */
export function sortComparator(sort: [string, SortDirection][]): (a: Doc, b: Doc) => number {
  const last = sort[sort.length - 1][1];
  return (a, b) => {
    for (const [field, direction] of sort) {
      const c = compareValues(sortKey(getPath(a, field), -direction as SortDirection), sortKey(getPath(b, field), -direction as SortDirection));
      if (c !== 0) return c * direction;
    }
    return (a._id < b._id ? -1 : a._id > b._id ? 1 : 0) * last;
  };
}

/** True for documents strictly after the keyset position `after` in the order (field, _id) × direction. */
export function afterKeyset(field: string, direction: SortDirection, after: { value: unknown; id: string }): Matcher {
  return (doc) => {
    let c = field === "_id" ? 0 : compareValues(getPath(doc, field), after.value);
    if (c === 0) c = doc._id < after.id ? -1 : doc._id > after.id ? 1 : 0;
    return direction === 1 ? c > 0 : c < 0;
  };
}
