/**
 * Compiled filters and sort orders with MongoDB's semantics, for adapters that evaluate (part of) a
 * filter themselves: mingo for the general case, a fast path for plain equality and `$in` filters.
 */
import type { Doc, Filter, SortDirection } from "../port";
import { mingoPredicate } from "./update";
import { compareValues, getPath, isHashable, isPlainObject, pathValues } from "./values";

export type Matcher = (doc: Doc) => boolean;

/** A scalar a fast-path condition may hold: equal under `===` exactly when MongoDB calls it equal. */
function isPlainScalar(value: unknown): boolean {
  return value !== null && isHashable(value) && !(value instanceof Date) && !Number.isNaN(value);
}

/** The values a fast-path condition on one field accepts (`{ f: v }`, `{ f: { $eq: v } }`, `{ f: { $in: [...] } }`), or null. */
function acceptedValues(value: unknown): Set<unknown> | null {
  if (isPlainObject(value) && Object.keys(value).length === 1) {
    if ("$eq" in value) return isPlainScalar(value.$eq) ? new Set([value.$eq]) : null;
    if ("$in" in value) return Array.isArray(value.$in) && value.$in.every(isPlainScalar) ? new Set(value.$in) : null;
    return null;
  }
  return isPlainScalar(value) ? new Set([value]) : null;
}

/** Compiles a (validated) filter to a predicate; equality and `$in` filters of plain scalars skip mingo. */
export function compileFilter(filter: Filter): Matcher {
  const keys = Object.keys(filter);
  if (keys.length === 0) return () => true;
  const simple: { key: string; parts: string[] | null; accepted: Set<unknown> }[] = [];
  for (const key of keys) {
    const accepted = key.startsWith("$") ? null : acceptedValues(filter[key]);
    if (!accepted) return mingoPredicate(filter);
    simple.push({ key, parts: key.includes(".") ? key.split(".") : null, accepted });
  }
  return (doc) => {
    for (const { key, parts, accepted } of simple) {
      if (parts === null) {
        const v = (doc as Record<string, unknown>)[key];
        if (accepted.has(v)) continue;
        if (Array.isArray(v) && v.some((element) => accepted.has(element))) continue;
        return false;
      }
      const found: unknown[] = [];
      pathValues(doc, parts, found);
      if (!found.some((element) => accepted.has(element))) return false;
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
