/**
 * Value helpers of the embedded store: deep copies, MongoDB's cross-type sort order, dotted-path reads
 * and the hash keys its indexes are keyed by.
 */

/** A deep copy of a JSON-like value; `undefined` object fields are dropped (as the file log would). */
export function cloneValue<T>(value: T): T {
  if (value === null || typeof value !== "object") return value;
  if (Array.isArray(value)) {
    const out = new Array(value.length);
    for (let i = 0; i < value.length; i++) {
      const v = value[i];
      out[i] = v === undefined ? null : cloneValue(v);
    }
    return out as T;
  }
  if (value instanceof Date) return new Date(value.getTime()) as T;
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(value)) {
    const v = (value as Record<string, unknown>)[key];
    if (v === undefined) continue;
    if (key === "__proto__") Object.defineProperty(out, key, { value: cloneValue(v), enumerable: true, writable: true, configurable: true });
    else out[key] = cloneValue(v);
  }
  return out as T;
}

/** MongoDB's BSON type order: null/missing < numbers < strings < objects < arrays < booleans < dates. */
function typeRank(v: unknown): number {
  if (v === undefined || v === null) return 1;
  switch (typeof v) {
    case "number":
    case "bigint":
      return 2;
    case "string":
      return 3;
    case "boolean":
      return 8;
    case "object":
      if (Array.isArray(v)) return 5;
      if (v instanceof Date) return 9;
      if (v instanceof RegExp) return 11;
      return 4;
    default:
      return 4;
  }
}

/**
 * Strings in code point order, as MongoDB (and SQLite) compare them: UTF-16 order except that a
 * character above U+FFFF (a surrogate pair) comes after U+E000-U+FFFF, not before.
 */
export function compareStrings(a: string, b: string): number {
  if (a === b) return 0;
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    let x = a.charCodeAt(i);
    let y = b.charCodeAt(i);
    if (x === y) continue;
    if (x >= 0xd800 && y >= 0xd800) {
      x = x <= 0xdfff ? x + 0x2000 : x - 0x800;
      y = y <= 0xdfff ? y + 0x2000 : y - 0x800;
    }
    return x < y ? -1 : 1;
  }
  return a.length < b.length ? -1 : a.length > b.length ? 1 : 0;
}

/** Total order over values, following MongoDB's sort order (strings by code point). */
export function compareValues(a: unknown, b: unknown): number {
  const ta = typeof a;
  if (ta === typeof b) {
    if (ta === "string") return compareStrings(a as string, b as string);
    if (ta === "number" && !Number.isNaN(a) && !Number.isNaN(b)) return (a as number) < (b as number) ? -1 : (a as number) > (b as number) ? 1 : 0;
  }
  const ra = typeRank(a);
  const rb = typeRank(b);
  if (ra !== rb) return ra < rb ? -1 : 1;
  switch (ra) {
    case 1:
      return 0;
    case 2: {
      const x = Number(a);
      const y = Number(b);
      if (x < y) return -1;
      if (x > y) return 1;
      if (x === y) return 0;
      // NaN sorts before every other number.
      return Number.isNaN(x) ? (Number.isNaN(y) ? 0 : -1) : 1;
    }
    case 3:
      return compareStrings(a as string, b as string);
    case 8:
      return a === b ? 0 : a ? 1 : -1;
    case 9:
      return Math.sign((a as Date).getTime() - (b as Date).getTime());
    case 5: {
      const x = a as unknown[];
      const y = b as unknown[];
      const n = Math.min(x.length, y.length);
      for (let i = 0; i < n; i++) {
        const c = compareValues(x[i], y[i]);
        if (c !== 0) return c;
      }
      return Math.sign(x.length - y.length);
    }
    case 11:
      return compareValues(String(a), String(b));
    default: {
      const x = Object.entries(a as object);
      const y = Object.entries(b as object);
      const n = Math.min(x.length, y.length);
      for (let i = 0; i < n; i++) {
        const r = typeRank(x[i][1]) - typeRank(y[i][1]);
        if (r !== 0) return Math.sign(r);
        const k = compareValues(x[i][0], y[i][0]);
        if (k !== 0) return k;
        const c = compareValues(x[i][1], y[i][1]);
        if (c !== 0) return c;
      }
      return Math.sign(x.length - y.length);
    }
  }
}

/** The value at a dotted path, without array expansion (what sorting uses). */
export function getPath(doc: unknown, path: string): unknown {
  if (path.indexOf(".") < 0) return doc === null || typeof doc !== "object" ? undefined : (doc as Record<string, unknown>)[path];
  let cur: unknown = doc;
  for (const part of path.split(".")) {
    if (cur === null || typeof cur !== "object") return undefined;
    cur = (cur as Record<string, unknown>)[part];
  }
  return cur;
}

/**
 * Every value a dotted path reaches, expanding arrays the way MongoDB's multikey indexes do.
 * Returns whether an array was met on the way (the index is then multikey).
 */
export function pathValues(doc: unknown, parts: string[], out: unknown[]): boolean {
  return collect(doc, parts, 0, out);
}

function collect(value: unknown, parts: string[], i: number, out: unknown[]): boolean {
  if (i === parts.length) {
    if (Array.isArray(value)) {
      if (value.length === 0) out.push(EMPTY_ARRAY);
      else for (const el of value) out.push(el);
      return true;
    }
    out.push(value);
    return false;
  }
  if (Array.isArray(value)) {
    const part = parts[i];
    if (/^\d+$/.test(part)) collect(value[Number(part)], parts, i + 1, out);
    for (const el of value) if (el !== null && typeof el === "object" && !Array.isArray(el)) collect(el, parts, i, out);
    return true;
  }
  if (value === null || typeof value !== "object") {
    out.push(undefined);
    return false;
  }
  return collect((value as Record<string, unknown>)[parts[i]], parts, i + 1, out);
}

/** Marker for an empty array in an index: it matches no scalar lookup (as in MongoDB). */
export const EMPTY_ARRAY = Symbol("empty-array");

/** True for values an equality lookup may use a hash index for. */
export function isHashable(v: unknown): boolean {
  return v === null || typeof v === "string" || typeof v === "number" || typeof v === "boolean" || v instanceof Date;
}

/** The hash-index key part of one value: equal keys exactly when MongoDB deems the values equal. */
export function keyPart(v: unknown): string {
  switch (typeof v) {
    case "string":
      return JSON.stringify(v);
    case "number":
      return Object.is(v, -0) ? "n0" : `n${v}`;
    case "boolean":
      return v ? "b1" : "b0";
    case "undefined":
      return "z";
    case "symbol":
      return "e";
    default:
      if (v === null) return "z";
      if (v instanceof Date) return `d${v.getTime()}`;
      return `o${JSON.stringify(v)}`;
  }
}

/** A plain object with no operator keys (a literal value, not an operator expression). */
export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v) && !(v instanceof Date) && !(v instanceof RegExp);
}

/** Sets a dotted path, creating objects on the way (used to seed an upserted document). */
export function setPath(doc: Record<string, unknown>, path: string, value: unknown): void {
  const parts = path.split(".");
  let cur = doc;
  for (let i = 0; i < parts.length - 1; i++) {
    const next = cur[parts[i]];
    if (!isPlainObject(next)) cur[parts[i]] = {};
    cur = cur[parts[i]] as Record<string, unknown>;
  }
  cur[parts[parts.length - 1]] = value;
}
