/**
 * How an index's values become SQLite columns. Each indexed field is two columns, a type rank `t` and a
 * value `v`, so that SQLite's ordering of (t, v) is MongoDB's BSON order across types (null < numbers <
 * strings < objects < arrays < booleans < dates) and, within one type, its order of values: numbers as
 * numbers, strings by code point (SQLite's BINARY collation compares UTF-8 bytes, as MongoDB does),
 * dates by their milliseconds. Null and a missing field are the same key (as in a MongoDB index), and
 * `v` is never NULL, so a unique index refuses two documents that both lack the field.
 */
import type { Doc, IndexSpec } from "../port";
import { invalidQuery } from "../query/rules";
import { EMPTY_ARRAY, pathValues } from "../query/values";

export type KeyColumn = number | string;

const RANK = {
  emptyArray: 5,
  null: 10,
  nan: 15,
  number: 20,
  string: 30,
  object: 40,
  array: 50,
  boolean: 80,
  date: 90,
} as const;

/** The (t, v) pair of one value, in BSON order. */
export function keyOf(value: unknown): [number, KeyColumn] {
  switch (typeof value) {
    case "string":
      return [RANK.string, value];
    case "number":
      return Number.isNaN(value) ? [RANK.nan, 0] : [RANK.number, value];
    case "boolean":
      return [RANK.boolean, value ? 1 : 0];
    case "undefined":
      return [RANK.null, 0];
    case "symbol":
      return value === EMPTY_ARRAY ? [RANK.emptyArray, 0] : [RANK.null, 0];
    default:
      if (value === null) return [RANK.null, 0];
      if (value instanceof Date) return [RANK.date, value.getTime()];
      if (Array.isArray(value)) return [RANK.array, JSON.stringify(value)];
      return [RANK.object, JSON.stringify(value)];
  }
}

/** What one index holds of a document: its key tuples (several when a field is an array). */
export interface IndexedKeys {
  /** Flattened (t, v, t, v, ...) per key tuple, deduplicated. */
  tuples: KeyColumn[][];
  /** True when an indexed field held an array (the index is then multikey). */
  multikey: boolean;
}

export class IndexKeys {
  readonly fields: string[];
  private readonly parts: string[][];

  constructor(readonly spec: IndexSpec) {
    this.fields = Object.keys(spec.keys);
    this.parts = this.fields.map((f) => f.split("."));
  }

  /** The key tuples of `doc`, one per combination of array elements (MongoDB's multikey rule). */
  of(doc: Doc): IndexedKeys {
    let multikey = false;
    /** The top-level field of the first array met (fields under one array, like items.sku and items.qty, are one array). */
    let arrayRoot: string | undefined;
    let tuples: KeyColumn[][] = [[]];
    for (const parts of this.parts) {
      const found: unknown[] = [];
      if (pathValues(doc, parts, found)) {
        // MongoDB refuses such a document: the keys of two arrays would be their cross product.
        if (arrayRoot !== undefined && arrayRoot !== parts[0]) throw invalidQuery(`index ${this.spec.name}: cannot index parallel arrays (${this.fields.join(", ")})`);
        arrayRoot = parts[0];
        multikey = true;
      }
      if (found.length === 1) {
        // One value (no array, or an array of one): every tuple grows by its key, no duplicates to drop.
        const [rank, value] = keyOf(found[0]);
        for (const tuple of tuples) tuple.push(rank, value);
        continue;
      }
      const seen = new Set<string>();
      const next: KeyColumn[][] = [];
      for (const value of found) {
        const key = keyOf(value);
        const id = `${key[0]}:${typeof key[1]}:${key[1]}`;
        if (seen.has(id)) continue;
        seen.add(id);
        for (const prefix of tuples) next.push([...prefix, key[0], key[1]]);
      }
      tuples = next;
    }
    return { tuples, multikey };
  }
}

/** True when two documents give an index the same keys (a write that needs no index change). */
export function sameKeys(a: IndexedKeys, b: IndexedKeys): boolean {
  if (a.tuples.length !== b.tuples.length) return false;
  for (let i = 0; i < a.tuples.length; i++) {
    const x = a.tuples[i];
    const y = b.tuples[i];
    for (let j = 0; j < x.length; j++) if (x[j] !== y[j]) return false;
  }
  return true;
}
