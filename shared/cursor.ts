/**
 * Opaque, tamper-evident pagination cursors. A cursor carries the keyset position (last sort value and
 * id) and a hash of the query it belongs to; it is HMAC-signed, so a forged, edited or foreign-query
 * cursor is rejected with 400 instead of being trusted.
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import { config, keySources } from "./config";
import { validationError } from "./errors";

export interface CursorPosition {
  value: unknown;
  id: string;
}

/** Used when no secret is configured: cursors then hold only within this process (fine for one-process use). */
const processSecret = randomBytes(32).toString("base64url");

/**
 * The signing secrets, the first of which signs and all of which verify: CURSOR_SECRET, else the JWT
 * secrets in `JWT_KEYS` order (so a key rotation leaves cursors of the previous key valid), else
 * JWT_SECRET.
 */
function secrets(): string[] {
  const c = config();
  if (c.CURSOR_SECRET) return [c.CURSOR_SECRET];
  return keySources(c)?.map((source) => source.secret) ?? [processSecret];
}

/** A stable fingerprint of the query a cursor may be used with (store, filters, sort). */
export function queryFingerprint(query: unknown): string {
  return createHash("sha256").update(stableStringify(query)).digest("base64url").slice(0, 16);
}

function sign(payload: string, secret: string): string {
  return createHmac("sha256", secret).update(payload).digest("base64url").slice(0, 22);
}

function signedByAny(payload: string, signature: string): boolean {
  const given = Buffer.from(signature);
  return secrets().some((secret) => {
    const expected = Buffer.from(sign(payload, secret));
    return expected.length === given.length && timingSafeEqual(expected, given);
  });
}

export function encodeCursor(position: CursorPosition, query: unknown): string {
  const payload = Buffer.from(JSON.stringify({ v: position.value, i: position.id, q: queryFingerprint(query) })).toString("base64url");
  return `${payload}.${sign(payload, secrets()[0])}`;
}

/** The position in `cursor`, or a 400 VALIDATION_ERROR when it is malformed, forged or for another query. */
export function decodeCursor(cursor: string, query: unknown): CursorPosition {
  const invalid = () => validationError("cursor", "invalid or expired cursor");
  const [payload, signature, extra] = cursor.split(".");
  if (!payload || !signature || extra !== undefined || !signedByAny(payload, signature)) throw invalid();
  let decoded: { v?: unknown; i?: unknown; q?: unknown };
  try {
    decoded = JSON.parse(Buffer.from(payload, "base64url").toString("utf8"));
  } catch {
    throw invalid();
  }
  const value = decoded.v;
  const sortable = value === null || typeof value === "string" || (typeof value === "number" && Number.isFinite(value));
  if (typeof decoded.i !== "string" || !sortable || decoded.q !== queryFingerprint(query)) throw invalid();
  return { value: decoded.v, id: decoded.i };
}

function stableStringify(value: unknown): string {
  if (value === undefined) return "null";
  if (value === null || typeof value !== "object") return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(stableStringify).join(",")}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${stableStringify(v)}`).join(",")}}`;
}
