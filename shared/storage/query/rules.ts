/**
 * The query-language subset of the storage port, enforced identically by both adapters: filters and
 * updates are checked before they reach mingo or the MongoDB driver, so an operator the port does not
 * list, an `undefined` value or a prototype-polluting path fails with StorageError("INVALID_QUERY")
 * on every adapter. Also derives the equality constraints a filter implies (for index lookups and for
 * seeding an upserted document).
 */
import type { Filter, Update } from "../port";
import { StorageError } from "../port";
import { isHashable, isPlainObject, setPath } from "./values";

const FIELD_OPERATORS = new Set(["$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$exists", "$not", "$elemMatch", "$regex", "$options"]);
const UPDATE_OPERATORS = new Set(["$set", "$unset", "$inc", "$push", "$addToSet", "$pull", "$setOnInsert"]);
const FORBIDDEN_SEGMENTS = new Set(["__proto__", "constructor", "prototype"]);

export function invalidQuery(message: string): StorageError {
  return new StorageError("INVALID_QUERY", message);
}

/** The argument of `dropIndexes`: index names. */
export function checkIndexNames(names: unknown): asserts names is string[] {
  if (!Array.isArray(names) || names.some((name) => typeof name !== "string")) throw invalidQuery("dropIndexes takes an array of index names");
}

function hasOperatorKey(v: Record<string, unknown>): boolean {
  for (const k in v) if (k.startsWith("$")) return true;
  return false;
}

/** An object whose keys are operators (`{ $gt: 1 }`), as opposed to a literal value. */
export function isOperatorObject(v: unknown): v is Record<string, unknown> {
  return isPlainObject(v) && hasOperatorKey(v);
}

function checkPath(path: string, what: string): void {
  if (path.length === 0 || path.startsWith("$")) throw invalidQuery(`invalid ${what} path "${path}"`);
  for (const segment of path.split(".")) {
    if (segment.length === 0 || FORBIDDEN_SEGMENTS.has(segment)) throw invalidQuery(`invalid ${what} path "${path}"`);
  }
}

function checkLiteral(value: unknown, path: string): void {
  if (value === undefined) throw invalidQuery(`undefined value for "${path}" (filters take validated values only)`);
  if (value instanceof RegExp) throw invalidQuery(`regular expression value for "${path}": use $regex with escapeRegex`);
  if (typeof value === "function" || typeof value === "symbol" || typeof value === "bigint") {
    throw invalidQuery(`unsupported value type for "${path}"`);
  }
}

/** Throws INVALID_QUERY unless `filter` stays inside the port's subset. `partial` also allows `$type`. */
export function validateFilter(filter: unknown, partial = false): asserts filter is Filter {
  if (!isPlainObject(filter)) throw invalidQuery("a filter must be a plain object");
  for (const key of Object.keys(filter)) {
    const value = filter[key];
    if (key === "$and" || key === "$or") {
      if (!Array.isArray(value) || value.length === 0) throw invalidQuery(`${key} takes a non-empty array of filters`);
      for (const sub of value) validateFilter(sub, partial);
    } else if (key.startsWith("$")) {
      throw invalidQuery(`unsupported filter operator ${key}`);
    } else {
      checkPath(key, "filter");
      validateCondition(value, key, partial);
    }
  }
}

function validateCondition(value: unknown, path: string, partial: boolean): void {
  if (!isOperatorObject(value)) {
    checkLiteral(value, path);
    return;
  }
  const ops = Object.keys(value);
  if (ops.some((op) => !op.startsWith("$"))) throw invalidQuery(`"${path}" mixes operators and fields`);
  for (const op of ops) {
    const operand = value[op];
    switch (op) {
      case "$eq":
      case "$ne":
      case "$gt":
      case "$gte":
      case "$lt":
      case "$lte":
        checkLiteral(operand, path);
        break;
      case "$in":
      case "$nin":
        if (!Array.isArray(operand)) throw invalidQuery(`${op} on "${path}" takes an array`);
        for (const item of operand) checkLiteral(item, path);
        break;
      case "$exists":
        if (typeof operand !== "boolean") throw invalidQuery(`$exists on "${path}" takes a boolean`);
        break;
      case "$not":
        if (!isOperatorObject(operand)) throw invalidQuery(`$not on "${path}" takes an operator object`);
        validateCondition(operand, path, partial);
        break;
      case "$elemMatch":
        if (!isPlainObject(operand)) throw invalidQuery(`$elemMatch on "${path}" takes an object`);
        if (isOperatorObject(operand) && Object.keys(operand).every((k) => FIELD_OPERATORS.has(k))) validateCondition(operand, path, partial);
        else validateFilter(operand, partial);
        break;
      case "$regex":
        if (typeof operand !== "string") throw invalidQuery(`$regex on "${path}" takes a string (built with escapeRegex)`);
        break;
      case "$options":
        if (typeof operand !== "string" || !/^[ims]*$/.test(operand) || !("$regex" in value)) {
          throw invalidQuery(`$options on "${path}" takes flags i, m, s next to $regex`);
        }
        break;
      case "$type":
        if (!partial || (typeof operand !== "string" && typeof operand !== "number")) throw invalidQuery(`unsupported filter operator $type`);
        break;
      default:
        throw invalidQuery(`unsupported filter operator ${op}`);
    }
  }
}

// What MongoDB takes in a partialFilterExpression besides equality and $and/$or.
const PARTIAL_OPERATORS = new Set(["$eq", "$gt", "$gte", "$lt", "$lte", "$type", "$exists", "$in"]);

function checkPartialOperators(filter: Filter, index: string): void {
  for (const [key, value] of Object.entries(filter)) {
    if (key === "$and" || key === "$or") {
      for (const sub of value as Filter[]) checkPartialOperators(sub, index);
    } else if (isOperatorObject(value)) {
      for (const [op, operand] of Object.entries(value)) {
        if (!PARTIAL_OPERATORS.has(op) || (op === "$exists" && operand !== true)) {
          throw invalidQuery(`index ${index}: MongoDB does not take ${op === "$exists" ? "$exists: false" : op} in a partial filter`);
        }
      }
    }
  }
}

/**
 * Throws INVALID_QUERY unless `filter` is a partial-index filter both adapters take: the port's filter
 * subset (plus `$type`), limited to what MongoDB accepts in a partialFilterExpression. Checked by the
 * embedded store too, so a spec that works in tests cannot fail on a MongoDB server.
 */
export function validatePartialFilter(filter: unknown, index: string): asserts filter is Filter {
  validateFilter(filter, true);
  checkPartialOperators(filter, index);
}

/**
 * Checks an update and returns it without `undefined` fields (the MongoDB adapter drops them too,
 * with `ignoreUndefined`). Throws INVALID_QUERY for anything outside the port's operators.
 */
export function normalizeUpdate(update: unknown): Update {
  if (!isPlainObject(update)) throw invalidQuery("an update must be a plain object of operators");
  const ops = Object.keys(update);
  if (ops.length === 0) throw invalidQuery("an update needs at least one operator");
  const out: Record<string, Record<string, unknown>> = {};
  const paths: string[] = [];
  for (const op of ops) {
    if (!UPDATE_OPERATORS.has(op)) throw invalidQuery(`unsupported update operator ${op}`);
    const operand = update[op];
    if (!isPlainObject(operand)) throw invalidQuery(`${op} takes an object of fields`);
    const fields: Record<string, unknown> = {};
    for (const path of Object.keys(operand)) {
      const value = operand[path];
      if (value === undefined) continue;
      checkPath(path, "update");
      if (op !== "$setOnInsert" && (path === "_id" || path.startsWith("_id."))) throw invalidQuery("_id cannot be updated");
      validateUpdateValue(op, path, value);
      fields[path] = value;
      paths.push(path);
    }
    out[op] = fields;
  }
  const sorted = [...paths].sort();
  for (let i = 1; i < sorted.length; i++) {
    if (sorted[i] === sorted[i - 1] || sorted[i].startsWith(`${sorted[i - 1]}.`)) {
      throw invalidQuery(`updating the path "${sorted[i]}" would conflict with "${sorted[i - 1]}"`);
    }
  }
  return out as Update;
}

function validateUpdateValue(op: string, path: string, value: unknown): void {
  switch (op) {
    case "$inc":
      if (typeof value !== "number" || !Number.isFinite(value)) throw invalidQuery(`$inc on "${path}" takes a finite number`);
      return;
    case "$push":
    case "$addToSet":
      if (isOperatorObject(value)) {
        const keys = Object.keys(value).filter((key) => !(op === "$push" && key === "$slice"));
        if (keys.length !== 1 || keys[0] !== "$each" || !Array.isArray(value.$each)) {
          throw invalidQuery(`${op} on "${path}" takes a value or { $each: [...] }${op === "$push" ? " (with $slice: <integer> to keep that many)" : ""}`);
        }
        if ("$slice" in value && !Number.isSafeInteger(value.$slice)) throw invalidQuery(`$slice on "${path}" takes an integer`);
        for (const item of value.$each) checkLiteral(item, path);
        return;
      }
      checkLiteral(value, path);
      return;
    case "$pull":
      if (isOperatorObject(value)) validateCondition(value, path, false);
      else if (isPlainObject(value)) validateFilter(value);
      else checkLiteral(value, path);
      return;
    default:
      checkLiteral(value, path);
  }
}

/**
 * For each field the filter fixes by equality (directly, with `$eq`, `$in`, or inside `$and`), the
 * values a matching document must hold one of. Only hashable values are reported.
 */
export function equalityValues(filter: Filter, out = new Map<string, unknown[]>()): Map<string, unknown[]> {
  for (const key of Object.keys(filter)) {
    const value = filter[key];
    if (key === "$and") {
      for (const sub of value as Filter[]) equalityValues(sub, out);
      continue;
    }
    if (key.startsWith("$")) continue;
    let values: unknown[] | undefined;
    if (isHashable(value) && !Number.isNaN(value)) values = [value];
    else if (isOperatorObject(value)) {
      if ("$eq" in value && isHashable(value.$eq) && !Number.isNaN(value.$eq)) values = [value.$eq];
      else if (Array.isArray(value.$in) && value.$in.every((v) => isHashable(v) && !Number.isNaN(v))) values = value.$in;
    }
    if (values && (!out.has(key) || out.get(key)!.length > values.length)) out.set(key, values);
  }
  return out;
}

/** The document an upsert starts from: the filter's equality fields (as MongoDB seeds it). */
export function upsertSeed(filter: Filter, out: Record<string, unknown> = {}): Record<string, unknown> {
  for (const key of Object.keys(filter)) {
    const value = filter[key];
    if (key === "$and") {
      for (const sub of value as Filter[]) upsertSeed(sub, out);
      continue;
    }
    if (key.startsWith("$")) continue;
    if (!isOperatorObject(value)) setPath(out, key, value);
    else if ("$eq" in value && Object.keys(value).length === 1) setPath(out, key, value.$eq);
  }
  return out;
}

/** The top-level fields a filter reads (undefined when it uses `$or`, whose fields are not all fixed). */
export function filterFields(filter: Filter, out = new Set<string>()): Set<string> | undefined {
  for (const key of Object.keys(filter)) {
    if (key === "$and") {
      for (const sub of filter[key] as Filter[]) if (!filterFields(sub, out)) return undefined;
    } else if (key.startsWith("$")) return undefined;
    else out.add(key);
  }
  return out;
}

/** Bounds on one field's values that every match must fall within, of one type (MongoDB's type bracketing). */
export interface RangeBounds {
  lower?: { value: unknown; inclusive: boolean };
  upper?: { value: unknown; inclusive: boolean };
  /**
   * Both bounds come from one condition (an anchored regex), so one array element meets both. With
   * separate conditions (`$gte` and `$lt`) on an array field, different elements may meet each.
   */
  oneElement: boolean;
}

const REGEX_SPECIAL = new Set([".", "*", "+", "?", "^", "$", "{", "}", "(", ")", "|", "[", "]"]);

/**
 * The literal text every match of an anchored `$regex` starts with (`^abc` -> "abc"); "" when the
 * pattern is not anchored or case-insensitive / multiline (then it bounds nothing).
 */
export function regexPrefix(pattern: string, options = ""): string {
  if (!pattern.startsWith("^") || /[im]/.test(options)) return "";
  let prefix = "";
  for (let i = 1; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === "\\") {
      const next = pattern[i + 1];
      if (next === undefined || /[A-Za-z0-9]/.test(next)) break; // \d, \w, \b ...: a class, not a literal
      prefix += next;
      i++;
    } else if (c === "*" || c === "?" || c === "{") {
      // The last literal is optional: drop it, and a whole surrogate pair rather than half of one.
      return /[\ud800-\udbff][\udc00-\udfff]$/.test(prefix) ? prefix.slice(0, -2) : prefix.slice(0, -1);
    } else if (REGEX_SPECIAL.has(c)) break;
    else prefix += c;
  }
  return pattern.includes("|") ? "" : prefix; // an alternation may match elsewhere
}

/** The smallest string greater than every string that starts with `prefix` (by code point); undefined when there is none. */
function prefixEnd(prefix: string): string | undefined {
  const points = [...prefix];
  while (points.length > 0) {
    const last = points.pop()!.codePointAt(0)!;
    // Past U+10FFFF there is nothing; a surrogate code point is not a character to step onto.
    if (last < 0x10ffff && last + 1 !== 0xd800) return points.join("") + String.fromCodePoint(last + 1);
  }
  return undefined;
}

/**
 * The range the filter's comparisons and anchored regexes put `field` in (top level and `$and`), when
 * its bounds are of one type; undefined when there is none.
 */
export function rangeBounds(filter: Filter, field: string): RangeBounds | undefined {
  const bounds: RangeBounds = { oneElement: false };
  const tighten = (side: "lower" | "upper", value: unknown, inclusive: boolean) => {
    const cur = bounds[side];
    if (!cur) bounds[side] = { value, inclusive };
    else if (typeof cur.value === typeof value && (side === "lower" ? (value as number) > (cur.value as number) : (value as number) < (cur.value as number)))
      bounds[side] = { value, inclusive };
  };
  const visit = (f: Filter) => {
    for (const [key, value] of Object.entries(f)) {
      if (key === "$and") for (const sub of value as Filter[]) visit(sub);
      if (key !== field || !isOperatorObject(value)) continue;
      for (const [op, operand] of Object.entries(value)) {
        if (!isHashable(operand) || operand === null) continue;
        if (op === "$gt" || op === "$gte") tighten("lower", operand, op === "$gte");
        if (op === "$lt" || op === "$lte") tighten("upper", operand, op === "$lte");
        if (op.startsWith("$gt") || op.startsWith("$lt")) bounds.oneElement = false;
      }
      if (typeof value.$regex === "string") {
        const prefix = regexPrefix(value.$regex, typeof value.$options === "string" ? value.$options : "");
        const end = prefix ? prefixEnd(prefix) : undefined;
        if (prefix && !bounds.lower && !bounds.upper) {
          bounds.lower = { value: prefix, inclusive: true };
          if (end !== undefined) bounds.upper = { value: end, inclusive: false };
          bounds.oneElement = true;
        } else if (prefix) {
          tighten("lower", prefix, true);
          if (end !== undefined) tighten("upper", end, false);
          bounds.oneElement = false;
        }
      }
    }
  };
  visit(filter);
  if (!bounds.lower && !bounds.upper) return undefined;
  const types = [bounds.lower, bounds.upper].filter(Boolean).map((b) => (b!.value instanceof Date ? "date" : typeof b!.value));
  return types.every((t) => t === types[0]) ? bounds : undefined;
}
