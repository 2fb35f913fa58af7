/**
 * Documents are stored as JSON text. JSON has no date, so a Date is written as `{"$date": <ms>}` and
 * read back as a Date (MongoDB's extended JSON spelling; field names starting with `$` are not valid
 * document fields in MongoDB either). `undefined` fields are dropped, as the MongoDB driver drops them.
 */
import type { Doc } from "../port";

const DATE_TAG = '"$date"';

export function encodeDoc(doc: Doc): string {
  return JSON.stringify(doc, function (this: Record<string, unknown>, key: string, value: unknown) {
    const raw = this[key];
    return raw instanceof Date ? { $date: raw.getTime() } : value;
  });
}

export function decodeDoc<T extends Doc>(text: string): T {
  const doc = JSON.parse(text) as T;
  return text.includes(DATE_TAG) ? (reviveDates(doc) as T) : doc;
}

function reviveDates(value: unknown): unknown {
  if (value === null || typeof value !== "object") return value;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) value[i] = reviveDates(value[i]);
    return value;
  }
  const obj = value as Record<string, unknown>;
  const keys = Object.keys(obj);
  if (keys.length === 1 && keys[0] === "$date" && typeof obj.$date === "number") return new Date(obj.$date);
  for (const key of keys) obj[key] = reviveDates(obj[key]);
  return obj;
}
