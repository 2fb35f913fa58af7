/** Building blocks of the wire contract shared by every service's schemas. */
import { z } from "zod";

/**
 * One line of text without control characters: none of C0, DEL or C1 (U+0085 is a line break too), and no
 * line or paragraph separator (U+2028, U+2029). For text that goes into a mail header or a search.
 */
export const ONE_LINE = /^[^\p{Cc}\p{Zl}\p{Zp}]*$/u;

/** What a value is, in the words zod uses in its messages. */
function kindOf(value: unknown): string {
  if (value === null) return "null";
  return Array.isArray(value) ? "array" : typeof value;
}

/**
 * Messages that say what to send where zod's say little: a missing field is "required" (not "expected
 * string, received undefined"), and a value that fits none of a union's types names them ("expected
 * string, number or boolean, received null", not "Invalid input"). Every schema of every process reads
 * this module, so the setting is made once here.
 */
z.config({
  customError: (issue) => {
    if (issue.code === "invalid_type" && issue.input === undefined) return "required";
    if (issue.code !== "invalid_union" || !("errors" in issue) || issue.errors.length === 0) return undefined;
    const expected = issue.errors.map((branch) => (branch.length === 1 && branch[0].code === "invalid_type" && branch[0].path.length === 0 ? branch[0].expected : null));
    if (expected.some((type) => type === null)) return undefined;
    const types = [...new Set(expected)];
    const named = types.length === 1 ? types[0] : `${types.slice(0, -1).join(", ")} or ${types[types.length - 1]}`;
    return `expected ${named}, received ${kindOf(issue.input)}`;
  },
});

/**
 * A UUID, lower-cased: every id has one spelling, so `ABC…` can never name another store or profile.
 * Both cases spelled out (no `i` flag): a JSON Schema `pattern` carries no flags, and OpenAPI must accept
 * the upper case the API accepts.
 */
export const Uuid = z
  .string()
  .regex(/^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/, "must be a UUID")
  .overwrite((id) => id.toLowerCase());
export const StoreId = Uuid;

/** An e-mail address as given (trimmed); compare and index it through `normalizeEmail`. */
export const Email = z
  .string()
  .trim()
  .max(254)
  .pipe(z.email({ message: "must be an e-mail address" }))
  // RFC 5321: a mail server may refuse a longer local part, so such an address could never get a code.
  .refine((email) => email.lastIndexOf("@") <= 64, "must be an e-mail address with at most 64 characters before the @");

export function normalizeEmail(email: string): string {
  return email.trim().toLowerCase();
}

/** `limit` of a list: 1..100, default 20 (profile lists use 50). Query strings arrive as text. */
export function limitParam(defaultLimit = 20) {
  const rule = "must be a whole number from 1 to 100";
  return z.coerce.number({ error: rule }).int({ error: rule }).min(1, { error: rule }).max(100, { error: rule }).default(defaultLimit);
}

export const CursorParam = z.string().max(2048).optional();
export const SortDirection = z.enum(["asc", "desc"]).default("desc");

/**
 * A query-string value that holds an array or object: JSON text (`ids=["a","b"]`, what the public SDK
 * sends) or, for arrays, repeated keys (`ids=a&ids=b`, also one JSON object per key:
 * `taxonomy_query={...}&taxonomy_query={...}`), one JSON object alone, or a single bare value.
 */
export function fromQueryJson<S extends z.ZodType>(schema: S, { wrapSingle = true } = {}) {
  return z.preprocess((value) => {
    if (Array.isArray(value)) return value.map((item) => (typeof item === "string" ? parseJsonText(item) : item));
    if (typeof value !== "string") return value;
    const parsed = parseJsonText(value);
    // One item given alone (`taxonomy_query={...}`, `ids=<id>`) is a list of one, as a repeated key makes a list.
    if (parsed !== value) return wrapSingle && !Array.isArray(parsed) && parsed !== null && typeof parsed === "object" ? [parsed] : parsed;
    return wrapSingle ? [value] : value;
  }, schema);
}

/** JSON text of an array or object, parsed; anything else as it came (the schema reports a bad one). */
function parseJsonText(value: string): unknown {
  const text = value.trim();
  if (!text.startsWith("[") && !text.startsWith("{")) return value;
  try {
    return JSON.parse(text);
  } catch {
    return value;
  }
}

/** `{ "deleted": true }`, what every delete answers. */
export const Deleted = z.object({ deleted: z.literal(true) });

export function listResult<S extends z.ZodType>(item: S) {
  return z.object({ items: z.array(item), cursor: z.string().nullable() });
}

/** Who is calling, set by the gateway in `ctx.meta.auth` after authentication. */
export type AuthPrincipal =
  | { kind: "admin"; store_id: string | "*"; key_id: string }
  | { kind: "profile"; store_id: string; profile_id: string; session_id: string; is_verified: boolean };

/** What the gateway puts in `ctx.meta` for every request. */
export interface RequestMeta {
  auth?: AuthPrincipal;
  /** The bearer access token, unread, on a route whose action checks it itself (`tokenCheckedByAction`). */
  accessToken?: string;
  /** The client's address (proxy-aware only when TRUSTED_PROXIES is set). */
  ip?: string;
  requestId?: string;
  userAgent?: string;
}
