/**
 * The SDK's HTTP core: JSON requests against the gateway, the contract's error body turned into a
 * `CrmApiError`, query strings encoded the way the API expects (arrays and objects as JSON text).
 */

export interface ErrorBody {
  statusCode: number;
  error: string;
  message: string;
  validationErrors?: { field: string; error: string }[];
}

/** Any non-2xx answer. `code` is the contract's error code (`VALIDATION_ERROR`, `NOT_FOUND`, ...). */
export class CrmApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly validationErrors: { field: string; error: string }[];
  readonly retryAfter?: number;
  readonly requestId?: string;
  /** A 401 for the bearer credential itself (`WWW-Authenticate: ... error="invalid_token"`), not a wrong code. */
  readonly tokenRejected: boolean;

  constructor(body: ErrorBody, headers?: Headers) {
    super(body.message);
    this.name = "CrmApiError";
    this.status = body.statusCode;
    this.code = body.error;
    this.validationErrors = body.validationErrors ?? [];
    const retryAfter = headers?.get("retry-after");
    if (retryAfter) this.retryAfter = Number(retryAfter);
    this.requestId = headers?.get("x-request-id") ?? undefined;
    this.tokenRejected = this.status === 401 && /error="invalid_token"/.test(headers?.get("www-authenticate") ?? "");
  }
}

/** The request never got an HTTP answer: connection refused or reset, DNS failure, or `timeoutMs` passed. */
export class CrmNetworkError extends Error {
  readonly code = "NETWORK_ERROR";

  constructor(url: string, cause: unknown) {
    // The abort of AbortSignal.timeout is a DOMException: not always an `instanceof Error` across realms.
    const reason = (cause as { name?: unknown })?.name === "TimeoutError" ? "no answer in time" : describeCause(cause);
    super(`Could not reach the CRM API at ${url}: ${reason}`, { cause });
    this.name = "CrmNetworkError";
  }
}

function describeCause(cause: unknown): string {
  // undici reports "fetch failed" and keeps the socket error (ECONNREFUSED, ENOTFOUND, ...) as its cause.
  const inner = (cause as { cause?: { code?: unknown; message?: unknown } })?.cause;
  if (inner && typeof inner.code === "string") return inner.code;
  return cause instanceof Error ? cause.message : String(cause);
}

/**
 * The contract's code for an error answer that carried no contract body (a proxy's HTML page, say).
 * The reverse of the server's table in shared/errors.ts, kept here so the SDK needs nothing at run time.
 */
const CODE_OF_STATUS: Record<number, string> = {
  400: "VALIDATION_ERROR",
  401: "UNAUTHENTICATED",
  403: "FORBIDDEN",
  404: "NOT_FOUND",
  408: "SERVICE_UNAVAILABLE", // a proxy gave up waiting: worth a retry, like a 503
  409: "CONFLICT",
  413: "PAYLOAD_TOO_LARGE",
  415: "UNSUPPORTED_MEDIA_TYPE",
  429: "RATE_LIMITED",
  500: "INTERNAL",
};

function codeOfStatus(status: number): string {
  return CODE_OF_STATUS[status] ?? (status >= 500 ? "SERVICE_UNAVAILABLE" : "VALIDATION_ERROR");
}

export type Query = Record<string, string | number | boolean | unknown[] | Record<string, unknown> | undefined | null>;

/** What a non-JSON body may be: text, a Blob (a File from an `<input type="file">`), or a stream of bytes. */
export type BodyData = string | Blob | ReadableStream<Uint8Array>;

export interface RequestOptions {
  method: "GET" | "POST" | "PUT" | "DELETE";
  path: string;
  query?: Query;
  /** Sent as JSON. */
  body?: unknown;
  /** Sent as is with this content type (e.g. a `text/csv` import), instead of `body`. */
  raw?: { contentType: string; data: BodyData };
  bearer?: string;
  /** This request's own limit instead of the client's (0: none). */
  timeoutMs?: number;
}

export function encodeQuery(query: Query | undefined): string {
  if (!query) return "";
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) {
    if (value === undefined || value === null) continue;
    search.set(key, typeof value === "object" ? JSON.stringify(value) : String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}

export class HttpClient {
  constructor(
    private readonly baseUrl: string,
    private readonly fetchImpl: typeof fetch = fetch,
    /** Gives up on a request (CrmNetworkError) after this long; 0: never. */
    private readonly timeoutMs = 30_000,
  ) {}

  async request<T>({ method, path, query, body, raw, bearer, timeoutMs = this.timeoutMs }: RequestOptions): Promise<T> {
    const headers: Record<string, string> = { accept: "application/json" };
    if (raw) headers["content-type"] = raw.contentType;
    else if (body !== undefined) headers["content-type"] = "application/json";
    if (bearer) headers.authorization = `Bearer ${bearer}`;
    const url = `${this.baseUrl.replace(/\/$/, "")}${path}${encodeQuery(query)}`;
    const init: RequestInit & { duplex?: "half" } = {
      method,
      headers,
      body: raw ? raw.data : body === undefined ? undefined : JSON.stringify(body),
      signal: timeoutMs > 0 ? AbortSignal.timeout(timeoutMs) : undefined,
    };
    // fetch sends a stream body only when told it is half duplex (Node's undici insists; browsers need it too).
    if (raw && typeof raw.data === "object" && "getReader" in raw.data) init.duplex = "half";
    let response: Response;
    let text: string;
    try {
      response = await this.fetchImpl(url, init);
      text = await response.text();
    } catch (err) {
      throw new CrmNetworkError(url.split("?")[0], err);
    }
    const parsed = parseJson(text);
    if (!response.ok) {
      // A proxy in front of the API may answer HTML: still a CrmApiError, with the HTTP status.
      const errorBody = isErrorBody(parsed)
        ? parsed
        : { statusCode: response.status, error: codeOfStatus(response.status), message: response.statusText || `HTTP ${response.status}` };
      throw new CrmApiError(errorBody, response.headers);
    }
    return parsed as T;
  }
}

function parseJson(text: string): unknown {
  if (!text) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function isErrorBody(value: unknown): value is ErrorBody {
  const v = value as Partial<ErrorBody> | undefined;
  return typeof v?.statusCode === "number" && typeof v.error === "string" && typeof v.message === "string";
}
