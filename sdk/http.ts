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

  constructor(body: ErrorBody, headers?: Headers) {
    super(body.message);
    this.name = "CrmApiError";
    this.status = body.statusCode;
    this.code = body.error;
    this.validationErrors = body.validationErrors ?? [];
    const retryAfter = headers?.get("retry-after");
    if (retryAfter) this.retryAfter = Number(retryAfter);
    this.requestId = headers?.get("x-request-id") ?? undefined;
  }
}

export type Query = Record<string, string | number | boolean | unknown[] | Record<string, unknown> | undefined | null>;

export interface RequestOptions {
  method: "GET" | "POST" | "PUT" | "DELETE";
  path: string;
  query?: Query;
  body?: unknown;
  bearer?: string;
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
  ) {}

  async request<T>({ method, path, query, body, bearer }: RequestOptions): Promise<T> {
    const headers: Record<string, string> = { accept: "application/json" };
    if (body !== undefined) headers["content-type"] = "application/json";
    if (bearer) headers.authorization = `Bearer ${bearer}`;
    const response = await this.fetchImpl(`${this.baseUrl.replace(/\/$/, "")}${path}${encodeQuery(query)}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    const parsed = parseJson(text);
    if (!response.ok) {
      // A proxy in front of the API may answer HTML: still a CrmApiError, with the HTTP status.
      const errorBody = isErrorBody(parsed)
        ? parsed
        : { statusCode: response.status, error: response.status >= 500 ? "SERVICE_UNAVAILABLE" : "INTERNAL", message: response.statusText || `HTTP ${response.status}` };
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
