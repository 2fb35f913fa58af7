/**
 * Reading an HTTP request safely before anything crosses the bus: the request id, the body (size
 * limit, media type, JSON depth, `__proto__`-style keys stripped) and the action params (query, body
 * and path merged into a fresh object, never with `Object.assign` over a body-controlled prototype).
 */
import type { IncomingMessage } from "node:http";
import { Transform } from "node:stream";
import { randomUUID } from "node:crypto";
import { crmError, validationError } from "../shared/errors";
import { GatewayMessages } from "./errors";

const REQUEST_ID_RE = /^[A-Za-z0-9._:-]{1,128}$/;

/** The caller's `x-request-id` when it is sane, else a fresh one. */
export function requestIdOf(header: string | string[] | undefined): string {
  return typeof header === "string" && REQUEST_ID_RE.test(header) ? header : randomUUID();
}

/** Keys that would reach an object's prototype when assigned; dropped from every body and query. */
const FORBIDDEN_KEYS = new Set(["__proto__", "constructor", "prototype"]);

export const MAX_JSON_DEPTH = 32;

/** `BODY_LIMIT` (`1mb`, `512kb`, `2048`) in bytes. */
export function parseByteSize(value: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(b|kb|mb|gb)?\s*$/i.exec(value);
  if (!m) throw new Error(`BODY_LIMIT must look like "1mb", "512kb" or a byte count, got "${value}"`);
  const unit = (m[2] ?? "b").toLowerCase();
  const factor = { b: 1, kb: 1024, mb: 1024 ** 2, gb: 1024 ** 3 }[unit as "b" | "kb" | "mb" | "gb"];
  return Math.floor(Number(m[1]) * factor);
}

export function hasBody(req: IncomingMessage): boolean {
  if (req.headers["transfer-encoding"] !== undefined) return true;
  const length = req.headers["content-length"];
  return length !== undefined && Number(length) > 0;
}

export type MediaKind = "json" | "csv" | "form" | "multipart" | "other";

/** What the Content-Type says the body is; a charset other than UTF-8 counts as "other". */
export function mediaKindOf(header: string | undefined): MediaKind {
  if (!header) return "other";
  const [type, ...params] = header.split(";").map((part) => part.trim().toLowerCase());
  const charset = params
    .find((p) => p.startsWith("charset="))
    ?.slice("charset=".length)
    .replace(/"/g, "");
  if (charset && charset !== "utf-8" && charset !== "utf8") return "other";
  if (type === "application/json" || /^application\/[a-z0-9.+-]+\+json$/.test(type)) return "json";
  if (type === "text/csv") return "csv";
  if (type === "application/x-www-form-urlencoded") return "form";
  if (type === "multipart/form-data") return "multipart";
  return "other";
}

/**
 * The raw body, at most `limit` bytes (413 beyond, checked on the declared length and while reading; `hint`
 * ends the 413's message, e.g. where a larger body may go).
 */
export function readRawBody(req: IncomingMessage, limit: number, hint = ""): Promise<Buffer> {
  const declared = Number(req.headers["content-length"]);
  if (Number.isFinite(declared) && declared > limit) return Promise.reject(payloadTooLarge(limit, hint));
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let settled = false;
    const fail = (err: Error) => {
      if (settled) return;
      settled = true;
      reject(err);
    };
    req.on("data", (chunk: Buffer) => {
      if (settled) return; // over the limit: Node discards the rest
      size += chunk.length;
      if (size > limit) return fail(payloadTooLarge(limit, hint));
      chunks.push(chunk);
    });
    req.on("end", () => {
      if (settled) return;
      settled = true;
      resolve(Buffer.concat(chunks, size));
    });
    req.on("error", () => fail(crmError("VALIDATION_ERROR", "Request body could not be read", { validationErrors: [] })));
  });
}

/**
 * The body as a stream for the action to read (a large `text/csv` import), failing with 413 once it passes
 * `limit` bytes (checked on the declared length first).
 */
export function limitedBodyStream(req: IncomingMessage, limit: number): Transform {
  const declared = Number(req.headers["content-length"]);
  if (Number.isFinite(declared) && declared > limit) throw payloadTooLarge(limit, " (IMPORT_BODY_LIMIT)");
  let size = 0;
  const counted = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      size += chunk.length;
      if (size > limit) done(payloadTooLarge(limit, " (IMPORT_BODY_LIMIT)"));
      else done(null, chunk);
    },
  });
  req.on("error", () => counted.destroy(crmError("VALIDATION_ERROR", "Request body could not be read", { validationErrors: [] })));
  req.on("aborted", () => counted.destroy(crmError("VALIDATION_ERROR", "The request was aborted before its body ended", { validationErrors: [] })));
  return req.pipe(counted);
}

/** A byte count as people write limits: "1 MB", "50 MB", "512 KB". */
export function sizeInWords(bytes: number): string {
  if (bytes >= 1024 * 1024 && bytes % (1024 * 1024) === 0) return `${bytes / (1024 * 1024)} MB`;
  if (bytes >= 1024 && bytes % 1024 === 0) return `${bytes / 1024} KB`;
  return `${bytes} bytes`;
}

function payloadTooLarge(limit: number, hint: string) {
  return crmError("PAYLOAD_TOO_LARGE", `${GatewayMessages.payloadTooLarge}: at most ${sizeInWords(limit)}${hint}`);
}

/** Fails on the first byte sequence that is not UTF-8, instead of replacing it with U+FFFD. A BOM is kept (see parseJsonObject). */
const UTF8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/**
 * A body's bytes as text, strictly UTF-8: a body in another encoding (a Latin-1 `é`) is a 400 naming `body`,
 * never text with replacement characters stored in its place.
 */
export function decodeUtf8(bytes: Uint8Array, what = "JSON"): string {
  try {
    return UTF8.decode(bytes);
  } catch {
    throw validationError("body", "is not valid UTF-8", `${GatewayMessages.notUtf8} ${what} encoded in UTF-8`);
  }
}

/** True when JSON text nests arrays/objects deeper than `max` (a linear scan, no recursion). */
export function jsonDepthExceeds(text: string, max: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) {
        i++; // backslash: skip the escaped character
      } else if (c === 0x22) inString = false;
      continue;
    }
    if (c === 0x22) inString = true;
    else if (c === 0x7b || c === 0x5b) {
      if (++depth > max) return true;
    } else if (c === 0x7d || c === 0x5d) depth--;
  }
  return false;
}

/** A JSON object body: depth-checked, parsed with prototype-reaching keys dropped at every level. */
export function parseJsonObject(body: string): Record<string, unknown> {
  // A UTF-8 BOM (some Windows tools write one) is not part of the JSON text (RFC 8259 §8.1 lets a parser ignore it).
  const text = body.charCodeAt(0) === 0xfeff ? body.slice(1) : body;
  if (jsonDepthExceeds(text, MAX_JSON_DEPTH)) throw validationError("body", `must not nest deeper than ${MAX_JSON_DEPTH} levels`, GatewayMessages.tooDeep);
  let value: unknown;
  try {
    value = JSON.parse(text, (key, v: unknown) => (FORBIDDEN_KEYS.has(key) ? undefined : v));
  } catch {
    throw validationError("body", "malformed JSON", GatewayMessages.malformedJson);
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw validationError("body", "must be a JSON object", GatewayMessages.notAnObject);
  }
  return value as Record<string, unknown>;
}

/** A copy of a parsed query string without prototype-reaching keys (qs nests objects up to 5 levels). */
export function sanitizeQuery(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sanitizeQuery);
  if (value === null || typeof value !== "object") return value;
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(value)) {
    if (!FORBIDDEN_KEYS.has(key)) out[key] = sanitizeQuery((value as Record<string, unknown>)[key]);
  }
  return out;
}

/** Action params: later sources win (body < query < path), copied key by key into a fresh object. */
export function mergeParams(...sources: Array<Record<string, unknown> | undefined>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const source of sources) {
    if (!source) continue;
    for (const key of Object.keys(source)) {
      if (!FORBIDDEN_KEYS.has(key)) out[key] = source[key];
    }
  }
  return out;
}

/** An HTML form body (`application/x-www-form-urlencoded`) as text fields; prototype-reaching keys dropped, a repeated key keeps its last value. */
export function parseFormBody(text: string): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of new URLSearchParams(text)) if (!FORBIDDEN_KEYS.has(key)) out[key] = value;
  return out;
}

/** The text fields of a `multipart/form-data` body (file parts are ignored); 400 without a boundary. */
export function parseMultipartBody(text: string, contentType: string): Record<string, unknown> {
  const boundary = /boundary=(?:"([^"]+)"|([^;\s]+))/i.exec(contentType);
  if (!boundary) throw validationError("body", "multipart body without a boundary");
  const out: Record<string, unknown> = {};
  for (const part of text.split(`--${boundary[1] ?? boundary[2]}`)) {
    const split = part.indexOf("\r\n\r\n");
    if (split === -1) continue;
    const head = part.slice(0, split);
    const name = /content-disposition:\s*form-data;[^\r\n]*?\bname="([^"]*)"/i.exec(head)?.[1];
    if (name === undefined || /\bfilename=/i.test(head) || FORBIDDEN_KEYS.has(name)) continue;
    out[name] = part.slice(split + 4).replace(/\r\n$/, "");
  }
  return out;
}
