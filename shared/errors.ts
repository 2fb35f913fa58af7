/**
 * The contract's error codes and the one way services raise them. A service throws `crmError(...)`;
 * the error crosses the bus as a Moleculer error keeping `code` (HTTP status), `type` (contract code)
 * and `data`; the gateway turns it into the contract's body with `toErrorBody`. Decide by `type`,
 * never by `instanceof`: remote errors arrive as plain objects.
 */
import { Errors } from "moleculer";

export const ERROR_STATUS = {
  VALIDATION_ERROR: 400,
  UNAUTHENTICATED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  CONFLICT: 409,
  PAYLOAD_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  RATE_LIMITED: 429,
  INTERNAL: 500,
  SERVICE_UNAVAILABLE: 503,
} as const;

export type ErrorCode = keyof typeof ERROR_STATUS;

export interface FieldError {
  field: string;
  error: string;
}

export interface ErrorData {
  validationErrors?: FieldError[];
  /** Seconds a client should wait (429, 503). */
  retryAfter?: number;
  [key: string]: unknown;
}

export interface ErrorBody {
  statusCode: number;
  error: ErrorCode;
  message: string;
  validationErrors?: FieldError[];
}

/** What `crmError` makes: a Moleculer error whose `type` is a contract code and `code` its HTTP status. */
export interface CrmError extends Error {
  code: number;
  type: string;
  data?: unknown;
  retryable: boolean;
}

/** A client-facing error with a stable code. 5xx codes are marked retryable for the broker. */
export function crmError(code: ErrorCode, message: string, data?: ErrorData): CrmError {
  const status = ERROR_STATUS[code];
  if (status >= 500) return new Errors.MoleculerRetryableError(message, status, code, data);
  return new Errors.MoleculerClientError(message, status, code, data);
}

export function validationError(field: string, error: string, message = "Request validation failed") {
  return crmError("VALIDATION_ERROR", message, { validationErrors: [{ field, error }] });
}

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === "string" && value in ERROR_STATUS;
}

/** Moleculer's own error types that a client caused or may retry, mapped onto contract codes. */
const MOLECULER_TYPES: Record<string, ErrorCode> = {
  VALIDATION_ERROR: "VALIDATION_ERROR",
  NO_TOKEN: "UNAUTHENTICATED",
  INVALID_TOKEN: "UNAUTHENTICATED",
  UNAUTHORIZED: "UNAUTHENTICATED",
  FORBIDDEN: "FORBIDDEN",
  NOT_FOUND: "NOT_FOUND",
  // Every routed action exists; not finding it means its service is not running right now.
  SERVICE_NOT_FOUND: "SERVICE_UNAVAILABLE",
  PAYLOAD_TOO_LARGE: "PAYLOAD_TOO_LARGE",
  UNSUPPORTED_MEDIA_TYPE: "UNSUPPORTED_MEDIA_TYPE",
  RATE_LIMIT: "RATE_LIMITED",
  REQUEST_TIMEOUT: "SERVICE_UNAVAILABLE",
  REQUEST_SKIPPED: "SERVICE_UNAVAILABLE", // a nested call ran out of the request's time budget
  SERVICE_NOT_AVAILABLE: "SERVICE_UNAVAILABLE",
  CIRCUIT_BREAKER_OPEN: "SERVICE_UNAVAILABLE",
  QUEUE_FULL: "SERVICE_UNAVAILABLE",
  SERVICE_UNAVAILABLE: "SERVICE_UNAVAILABLE",
};

interface ErrorLike {
  name?: string;
  message?: string;
  code?: unknown;
  type?: unknown;
  data?: unknown;
}

/** The contract body (and status) for any error: known codes keep their message, the rest become 500. */
export function toErrorBody(err: unknown): ErrorBody & { retryAfter?: number } {
  const e = (err ?? {}) as ErrorLike;
  const type = typeof e.type === "string" ? e.type : undefined;
  const code: ErrorCode | undefined = type && isErrorCode(type) ? type : type ? MOLECULER_TYPES[type] : undefined;
  if (!code || code === "INTERNAL") {
    return { statusCode: 500, error: "INTERNAL", message: "Internal server error" };
  }
  const body: ErrorBody & { retryAfter?: number } = {
    statusCode: ERROR_STATUS[code],
    error: code,
    message: publicMessage(code, type, e.message),
  };
  const data = (e.data ?? undefined) as ErrorData | FieldErrorLike[] | undefined;
  if (code === "VALIDATION_ERROR") body.validationErrors = validationErrorsOf(data);
  if (data && !Array.isArray(data) && typeof data.retryAfter === "number") body.retryAfter = data.retryAfter;
  return body;
}

/** The message a client sees: ours as written; Moleculer's own replaced by a plain one. */
function publicMessage(code: ErrorCode, type: string | undefined, message: string | undefined): string {
  if (code === "SERVICE_UNAVAILABLE" && !isErrorCode(type)) return "Service temporarily unavailable";
  if (code === "VALIDATION_ERROR" && message === "Parameters validation error!") return "Request validation failed";
  return String(message ?? code);
}

interface FieldErrorLike {
  field?: unknown;
  error?: unknown;
  message?: unknown;
}

function validationErrorsOf(data: ErrorData | FieldErrorLike[] | undefined): FieldError[] {
  const list: FieldErrorLike[] = Array.isArray(data) ? data : (data?.validationErrors ?? []);
  return list.map((item) => ({
    field: String(item.field ?? ""),
    error: String(item.error ?? item.message ?? "invalid"),
  }));
}
