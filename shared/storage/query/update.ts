/**
 * The port's update operators applied to a copy of a document, with MongoDB's rules: `$inc` only on
 * numbers, `$push`/`$addToSet`/`$pull` only on arrays, `$addToSet` adds each distinct value once, an
 * update that changes nothing reports "not modified". (mingo's updater rebuilds its operator context
 * on every call, which cost ~30 µs per write; these seven operators are simple enough to own.)
 *
 * Also holds the filter matcher: mingo's Query with a context of only the port's query operators,
 * so compiling a filter does not copy mingo's whole operator table.
 */
import { Context } from "mingo/core";
import { Query } from "mingo/query";
import { $and, $not, $or } from "mingo/operators/query/logical";
import { $eq, $gt, $gte, $in, $lt, $lte, $ne, $nin } from "mingo/operators/query/comparison";
import { $elemMatch } from "mingo/operators/query/array";
import { $exists, $type } from "mingo/operators/query/element";
import { $regex } from "mingo/operators/query/evaluation";
import type { Doc, Filter, Update } from "../port";
import { invalidQuery, isOperatorObject } from "./rules";
import { cloneValue, compareValues, isPlainObject } from "./values";

const QUERY_CONTEXT = Context.init({
  query: { $and, $or, $not, $eq, $gt, $gte, $in, $lt, $lte, $ne, $nin, $elemMatch, $exists, $type, $regex },
});

/** A compiled mingo predicate over the port's (already validated) filter subset. */
export function mingoPredicate(filter: Filter): (doc: unknown) => boolean {
  try {
    const query = new Query(filter, { context: QUERY_CONTEXT, scriptEnabled: false });
    return (doc) => query.test(doc as Record<string, unknown>);
  } catch (err) {
    throw invalidQuery(`invalid filter: ${(err as Error).message}`);
  }
}

function deepEqual(a: unknown, b: unknown): boolean {
  return compareValues(a, b) === 0 && (typeof a === typeof b || a == null || b == null) && (a === null) === (b === null);
}

type Container = Record<string, unknown> | unknown[];

/** The object holding the last segment of `path`, creating objects on the way when `create`. */
function parentOf(doc: Record<string, unknown>, parts: string[], create: boolean): Container | undefined {
  let cur: Container = doc;
  for (let i = 0; i < parts.length - 1; i++) {
    const part = parts[i];
    let next: unknown;
    if (Array.isArray(cur)) {
      if (!/^\d+$/.test(part)) throw invalidQuery(`cannot use the part "${part}" of "${parts.join(".")}" to traverse an array`);
      next = cur[Number(part)];
    } else next = cur[part];
    if (next === undefined || next === null) {
      if (!create) return undefined;
      if (next === null) throw invalidQuery(`cannot create field "${parts[i + 1]}" in the null "${parts.slice(0, i + 1).join(".")}"`);
      next = {};
      if (Array.isArray(cur)) cur[Number(part)] = next;
      else cur[part] = next;
    } else if (typeof next !== "object") {
      if (!create) return undefined;
      throw invalidQuery(`cannot create field "${parts[i + 1]}" in the non-object "${parts.slice(0, i + 1).join(".")}"`);
    }
    cur = next as Container;
  }
  return cur;
}

function read(container: Container, key: string): unknown {
  return Array.isArray(container) ? (/^\d+$/.test(key) ? container[Number(key)] : undefined) : container[key];
}

function write(container: Container, key: string, value: unknown): void {
  if (Array.isArray(container)) {
    if (!/^\d+$/.test(key)) throw invalidQuery(`cannot set "${key}" on an array`);
    const i = Number(key);
    while (container.length < i) container.push(null);
    container[i] = value;
  } else if (key === "__proto__") {
    Object.defineProperty(container, key, { value, enumerable: true, writable: true, configurable: true });
  } else container[key] = value;
}

/** Does `element` match a `$pull` condition (a value, an operator object, or a sub-filter)? */
function pullMatcher(condition: unknown): (element: unknown) => boolean {
  if (isOperatorObject(condition)) {
    const test = mingoPredicate({ v: condition });
    return (element) => test({ v: element });
  }
  if (isPlainObject(condition)) {
    const test = mingoPredicate(condition);
    return (element) => isPlainObject(element) && test(element);
  }
  return (element) => deepEqual(element, condition);
}

/**
 * A new copy of `doc` with `update` applied, or null when nothing changed (unless `inserting`). On
 * insert `$setOnInsert` applies as `$set` (its `_id` too); otherwise it is ignored.
 */
export function applyUpdate(doc: Doc, update: Update, inserting: boolean): Doc | null {
  const next = cloneValue(doc) as Doc;
  let modified = false;
  const each = (op: keyof Update, fn: (container: Container, key: string, value: unknown, path: string) => void, create = true) => {
    const fields = update[op];
    if (!fields) return;
    for (const path of Object.keys(fields)) {
      const parts = path.split(".");
      const container = parentOf(next, parts, create);
      if (container) fn(container, parts[parts.length - 1], (fields as Record<string, unknown>)[path], path);
    }
  };
  const set = (container: Container, key: string, value: unknown) => {
    if (!deepEqual(read(container, key), value) || read(container, key) === undefined) {
      write(container, key, cloneValue(value));
      modified = true;
    }
  };

  if (inserting) each("$setOnInsert", set);
  each("$set", set);
  each(
    "$unset",
    (container, key) => {
      if (read(container, key) === undefined) return;
      if (Array.isArray(container)) container[Number(key)] = null;
      else delete container[key];
      modified = true;
    },
    false,
  );
  each("$inc", (container, key, by, path) => {
    const cur = read(container, key);
    if (cur === undefined) {
      write(container, key, by);
      modified = true;
    } else if (typeof cur !== "number") {
      throw invalidQuery(`cannot apply $inc to the non-numeric field "${path}"`);
    } else if (by !== 0) {
      write(container, key, cur + (by as number));
      modified = true;
    }
  });
  const arrayAt = (container: Container, key: string, op: string, path: string): unknown[] => {
    const cur = read(container, key);
    if (cur === undefined) {
      const created: unknown[] = [];
      write(container, key, created);
      modified = true;
      return created;
    }
    if (!Array.isArray(cur)) throw invalidQuery(`cannot apply ${op} to the non-array field "${path}"`);
    return cur;
  };
  const items = (value: unknown): unknown[] => (isOperatorObject(value) && Array.isArray(value.$each) ? value.$each : [value]);
  each("$push", (container, key, value, path) => {
    const arr = arrayAt(container, key, "$push", path);
    for (const item of items(value)) {
      arr.push(cloneValue(item));
      modified = true;
    }
    // As MongoDB's $slice: a negative n keeps the last |n| elements, a positive one the first n.
    const slice = isOperatorObject(value) ? value.$slice : undefined;
    if (typeof slice !== "number") return;
    const kept = slice < 0 ? arr.slice(Math.max(0, arr.length + slice)) : arr.slice(0, slice);
    if (kept.length === arr.length) return;
    arr.splice(0, arr.length, ...kept);
    modified = true;
  });
  each("$addToSet", (container, key, value, path) => {
    const arr = arrayAt(container, key, "$addToSet", path);
    for (const item of items(value)) {
      if (arr.some((existing) => deepEqual(existing, item))) continue;
      arr.push(cloneValue(item));
      modified = true;
    }
  });
  each(
    "$pull",
    (container, key, condition, path) => {
      const cur = read(container, key);
      if (cur === undefined) return;
      if (!Array.isArray(cur)) throw invalidQuery(`cannot apply $pull to the non-array field "${path}"`);
      const matches = pullMatcher(condition);
      const kept = cur.filter((element) => !matches(element));
      if (kept.length !== cur.length) {
        write(container, key, kept);
        modified = true;
      }
    },
    false,
  );
  return modified || inserting ? next : null;
}
