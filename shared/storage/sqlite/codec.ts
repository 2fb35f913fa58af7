/**
 * Documents (and index specs) are stored as JSON text. JSON has no date and no NaN or infinities, so
 * they are written in MongoDB's extended JSON spellings, `{"$date": <ms>}` and `{"$numberDouble":
 * "NaN" | "Infinity" | "-Infinity"}`, and read back as a Date and a number (field names starting with
 * `$` are not valid document fields in MongoDB either). `undefined` fields are dropped, as the MongoDB
 * driver drops them.
 */
import type { Doc } from "../port";

/**
 * Where a tagged value may be: `{"$` in JSON text only ever opens an object whose first key starts with `$`
 * (in a string it would read `{\"$`). Documents have no such keys, so one scan for it tells whether to revive.
 */
const TAG_OPENING = '{"$';

export function encodeValue(value: unknown): string {
  // A replacer costs a call per key: most documents hold no Date and no NaN, and are written without one.
  if (!needsTags(value)) return JSON.stringify(value);
  return JSON.stringify(value, function (this: Record<string, unknown>, key: string, json: unknown) {
    const raw = this[key];
    if (raw instanceof Date) return { $date: raw.getTime() };
    if (typeof raw === "number" && !Number.isFinite(raw)) return { $numberDouble: String(raw) };
    return json;
  });
}

/** Whether `value` holds a Date, NaN or an infinity anywhere (what plain JSON cannot write). */
function needsTags(value: unknown): boolean {
  if (typeof value === "number") return !Number.isFinite(value);
  return typeof value === "object" && value !== null && holdsTagged(value);
}

// Object.values, not for...in: documents of many shapes made for...in's keyed reads megamorphic, and
// this check cost more than the JSON.stringify it guards (measured in the import bench's profile).
function holdsTagged(value: object): boolean {
  if (value instanceof Date) return true;
  const values: unknown[] = Array.isArray(value) ? value : Object.values(value);
  for (const v of values) {
    if (typeof v === "number" ? !Number.isFinite(v) : typeof v === "object" && v !== null && holdsTagged(v)) return true;
  }
  return false;
}

export function decodeValue<T>(text: string): T {
  const value = JSON.parse(text) as T;
  return text.includes(TAG_OPENING) ? (revive(value) as T) : value;
}

export const encodeDoc = (doc: Doc): string => encodeValue(doc);
export const decodeDoc = <T extends Doc>(text: string): T => decodeValue<T>(text);

function revive(value: unknown): unknown {
  if (value === null || typeof value !== "object") return value;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) value[i] = revive(value[i]);
    return value;
  }
  const obj = value as Record<string, unknown>;
  const keys = Object.keys(obj);
  if (keys.length === 1 && keys[0] === "$date" && typeof obj.$date === "number") return new Date(obj.$date);
  if (keys.length === 1 && keys[0] === "$numberDouble" && typeof obj.$numberDouble === "string") return Number(obj.$numberDouble);
  for (const key of keys) obj[key] = revive(obj[key]);
  return obj;
}
