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
    const parsed: unknown = text ? JSON.parse(text) : undefined;
    if (!response.ok) {
      const errorBody = (parsed as ErrorBody | undefined) ?? {
        statusCode: response.status,
        error: "INTERNAL",
        message: response.statusText,
      };
      throw new CrmApiError(errorBody, response.headers);
    }
    return parsed as T;
  }
}
