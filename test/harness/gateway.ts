/** The HTTP side of tests: the gateway on a free port, its base URL, and a tiny JSON client. */
import type { ServiceBroker } from "moleculer";
import { gatewayOnFreePort, gatewayUrl, startBroker, type StartBrokerOptions } from "./broker";

export { gatewayOnFreePort, gatewayUrl };

export interface HttpResponse<T = any> {
  status: number;
  /** Lower-cased header names. */
  headers: Record<string, string>;
  /** Parsed JSON when the response is JSON, else the text. */
  body: T;
  text: string;
}

export interface RequestOptions {
  headers?: Record<string, string>;
  /** Added to the URL; objects and arrays are JSON-encoded, as the public SDK sends them. */
  query?: Record<string, unknown>;
  /** Sent as JSON, or as is when a string/Buffer (set content-type yourself). */
  body?: unknown;
}

export interface HttpClient {
  baseUrl: string;
  request<T = any>(method: string, path: string, options?: RequestOptions): Promise<HttpResponse<T>>;
  get<T = any>(path: string, options?: RequestOptions): Promise<HttpResponse<T>>;
  post<T = any>(path: string, body?: unknown, options?: RequestOptions): Promise<HttpResponse<T>>;
  put<T = any>(path: string, body?: unknown, options?: RequestOptions): Promise<HttpResponse<T>>;
  delete<T = any>(path: string, options?: RequestOptions): Promise<HttpResponse<T>>;
  /** A client with more default headers, e.g. `http.with({ authorization: "Bearer ..." })`. */
  with(headers: Record<string, string>): HttpClient;
}

/** What a client saw, for `onResponse` (e.g. to check every answer against the documented shapes). */
export interface ObservedExchange {
  method: string;
  /** Path without the query string. */
  path: string;
  response: HttpResponse;
}

/**
 * A JSON-in/JSON-out client for `baseUrl` (global fetch; never throws on an HTTP status). `onResponse`
 * sees every answer of this client and of the clients `with()` makes from it.
 */
export function httpClient(baseUrl: string, defaultHeaders: Record<string, string> = {}, onResponse?: (exchange: ObservedExchange) => void): HttpClient {
  const request = async <T>(method: string, path: string, options: RequestOptions = {}): Promise<HttpResponse<T>> => {
    const url = new URL(path, baseUrl);
    for (const [key, value] of Object.entries(options.query ?? {})) {
      if (value === undefined) continue;
      url.searchParams.set(key, typeof value === "string" ? value : JSON.stringify(value));
    }
    const headers: Record<string, string> = { accept: "application/json", ...defaultHeaders, ...options.headers };
    let body: string | Buffer | undefined;
    if (options.body !== undefined) {
      if (typeof options.body === "string" || Buffer.isBuffer(options.body)) body = options.body;
      else {
        body = JSON.stringify(options.body);
        if (!Object.keys(headers).some((h) => h.toLowerCase() === "content-type")) headers["content-type"] = "application/json";
      }
    }
    const res = await fetch(url, { method, headers, body, redirect: "manual" });
    const text = await res.text();
    const responseHeaders: Record<string, string> = {};
    res.headers.forEach((value, key) => {
      responseHeaders[key] = value;
    });
    let parsed: unknown = text;
    if ((responseHeaders["content-type"] ?? "").includes("json") && text) {
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = text;
      }
    }
    const response = { status: res.status, headers: responseHeaders, body: parsed as T, text };
    onResponse?.({ method, path: url.pathname, response });
    return response;
  };
  return {
    baseUrl,
    request,
    get: (path, options) => request("GET", path, options),
    post: (path, body, options) => request("POST", path, { ...options, body }),
    put: (path, body, options) => request("PUT", path, { ...options, body }),
    delete: (path, options) => request("DELETE", path, options),
    with: (headers) => httpClient(baseUrl, { ...defaultHeaders, ...headers }, onResponse),
  };
}

export interface Gateway {
  broker: ServiceBroker;
  url: string;
  http: HttpClient;
  stop(): Promise<void>;
}

/**
 * A broker with the real gateway on a free port plus `services` (names or test doubles): the URL and a
 * client for it. With `transporter`, the gateway joins a bus where other brokers run the services.
 */
export async function startGateway(options: StartBrokerOptions = {}): Promise<Gateway> {
  const broker = await startBroker({
    ...options,
    env: { PORT: "0", ...options.env },
    services: [gatewayOnFreePort(), ...(options.services ?? [])],
  });
  const url = gatewayUrl(broker);
  return { broker, url, http: httpClient(url), stop: () => broker.stop() };
}
