/**
 * How the gateway answers a failure: any error (a service's `crmError`, a Moleculer error, a
 * moleculer-web error, a bug) becomes the contract's status + body, with `Retry-After` for 429/503.
 * Builds on `toErrorBody` (shared/errors.ts) and fills the gaps that only the gateway sees.
 */
import { z } from "zod";
import { ERROR_STATUS, crmError, toErrorBody, type ErrorBody, type ErrorCode } from "../shared/errors";

export interface HttpError {
  status: number;
  body: ErrorBody;
  /** Seconds, sent as `Retry-After` (429 and 503 only). */
  retryAfter?: number;
}

/** Public messages of the errors the gateway raises itself. */
export const GatewayMessages = {
  routeNotFound: "Route not found",
  missingCredentials: "Missing bearer credentials",
  invalidApiKey: "Invalid API key",
  wrongStore: "This API key is not valid for this store",
  rateLimited: "Too many requests",
  payloadTooLarge: "Request body is too large",
  /** Followed by the media types the route takes (unsupportedMediaTypeMessage). */
  unsupportedMediaType: "Request body must be",
  unsupportedEncoding: "Request body must not be compressed (Content-Encoding is not supported)",
  malformedJson: "Request body is not valid JSON",
  /** Followed by what to send: "The body is not valid UTF-8: send JSON encoded in UTF-8". */
  notUtf8: "The body is not valid UTF-8: send",
  tooDeep: "Request body is nested too deeply",
  notAnObject: "Request body must be a JSON object",
  originNotAllowed: "Origin not allowed",
  badPathEncoding: "The URL path is not valid percent-encoding: a % must be followed by two hexadecimal digits (write a literal % as %25)",
} as const;

const DEFAULT_RETRY_AFTER: Partial<Record<ErrorCode, number>> = { RATE_LIMITED: 60, SERVICE_UNAVAILABLE: 5 };

/** Generic public messages for errors that carry only an HTTP status (moleculer-web's own, foreign ones). */
const GENERIC_MESSAGES: Record<ErrorCode, string> = {
  VALIDATION_ERROR: "Bad request",
  UNAUTHENTICATED: "Unauthenticated",
  FORBIDDEN: "Forbidden",
  NOT_FOUND: "Not found",
  CONFLICT: "Conflict",
  PAYLOAD_TOO_LARGE: GatewayMessages.payloadTooLarge,
  UNSUPPORTED_MEDIA_TYPE: "Unsupported media type",
  RATE_LIMITED: GatewayMessages.rateLimited,
  INTERNAL: "Internal server error",
  SERVICE_UNAVAILABLE: "Service temporarily unavailable",
};

const CODE_BY_STATUS = new Map<number, ErrorCode>((Object.entries(ERROR_STATUS) as [ErrorCode, number][]).map(([code, status]) => [status, code]));

/** Moleculer error types that mean "a service behind the gateway is missing or overloaded". */
const UNAVAILABLE_TYPES = new Set(["SERVICE_NOT_FOUND", "SERVICE_NOT_AVAILABLE"]);

interface ErrorLike {
  code?: unknown;
  type?: unknown;
}

/** The contract status, body and Retry-After for any thrown value. Never leaks an internal message. */
export function httpErrorOf(err: unknown): HttpError {
  const e = (err ?? {}) as ErrorLike;
  const type = typeof e.type === "string" ? e.type : undefined;

  // Every gateway route names an existing action, so a missing service is an outage, not a 404.
  if (type && UNAVAILABLE_TYPES.has(type)) return build("SERVICE_UNAVAILABLE", GENERIC_MESSAGES.SERVICE_UNAVAILABLE);

  // moleculer-web could not percent-decode a path parameter (`%ZZ`).
  if (type === "UNABLE_DECODE_PARAM") return build("VALIDATION_ERROR", GatewayMessages.badPathEncoding, { field: "path", error: "is not valid percent-encoding" });

  const mapped = toErrorBody(err);
  if (mapped.error === "INTERNAL" && type !== "INTERNAL") {
    // moleculer-web's other errors (its 503) carry a status but no contract code.
    const byStatus = typeof e.code === "number" ? CODE_BY_STATUS.get(e.code) : undefined;
    if (byStatus && byStatus !== "INTERNAL") return build(byStatus, GENERIC_MESSAGES[byStatus]);
  }
  const { retryAfter, ...body } = mapped;
  return finish(body, retryAfter);
}

function build(code: ErrorCode, message: string, fieldError?: { field: string; error: string }): HttpError {
  const body: ErrorBody = { statusCode: ERROR_STATUS[code], error: code, message };
  if (code === "VALIDATION_ERROR") body.validationErrors = fieldError ? [fieldError] : [];
  return finish(body, undefined);
}

function finish(body: ErrorBody, retryAfter: number | undefined): HttpError {
  const fallback = DEFAULT_RETRY_AFTER[body.error];
  const seconds = fallback === undefined ? undefined : Math.max(1, Math.ceil(retryAfter ?? fallback));
  return { status: body.statusCode, body, retryAfter: seconds };
}

export const unauthenticated = (message: string = GatewayMessages.missingCredentials) => crmError("UNAUTHENTICATED", message);

/** The contract's error body, for the OpenAPI document. */
export const ErrorBodySchema = z
  .object({
    statusCode: z.number().int(),
    error: z.enum(Object.keys(ERROR_STATUS) as [ErrorCode, ...ErrorCode[]]),
    message: z.string(),
    validationErrors: z.array(z.object({ field: z.string(), error: z.string() })).optional(),
  })
  .describe("Error body: the HTTP status, a stable code and a public message");
