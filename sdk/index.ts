/**
 * The typed TypeScript client of the CRM API, named as the public docs name it (`sdk.crm.create()`,
 * `sdk.crm.verify()`, ...). Profile sessions are kept in a `TokenStore`: `initialize`, `connect`,
 * `verify` and `refreshToken` save the token they get, and profile calls send it: an expired access
 * token is refreshed first, `getMe` refreshes once on a 401, a session that cannot be refreshed is
 * dropped (so the shopper can log in again), and `verify` is never retried (a retry would spend a try
 * of the code).
 *
 *   const sdk = createCrmClient({ baseUrl: "http://localhost:3000", storeId });
 *   await sdk.crm.requestCode({ email: "ada@example.com" });
 *   const token = await sdk.crm.verify({ email: "ada@example.com", code: "123456" });
 *   const me = await sdk.crm.getMe();
 */
import type { AuthToken, ConnectResult, OrderLink, Profile, ProfileStatus, TaxonomyEntryInput, TaxonomyQuery } from "./types";
import { CrmApiError, HttpClient, type Query } from "./http";

export { CrmApiError, CrmNetworkError } from "./http";
export type * from "./types";

export interface Page<T> {
  items: T[];
  cursor: string | null;
}

/** Where the SDK keeps the current profile session (memory by default; use localStorage in a browser). */
export interface TokenStore {
  get(): AuthToken | null;
  set(token: AuthToken | null): void;
}

export function memoryTokenStore(initial: AuthToken | null = null): TokenStore {
  let token = initial;
  return { get: () => token, set: (next) => (token = next) };
}

export interface CrmClientOptions {
  baseUrl: string;
  storeId: string;
  /** Admin API key, for the admin routes (server side only: never ship it to a browser). */
  apiKey?: string;
  tokens?: TokenStore;
  fetch?: typeof fetch;
  /** A request with no answer after this long fails with CrmNetworkError (default 30000; 0: no limit). */
  timeoutMs?: number;
}

export interface FindProfilesParams {
  query?: string;
  taxonomy_query?: TaxonomyQuery[];
  status?: ProfileStatus;
  limit?: number;
  cursor?: string;
  sort_field?: "created_at" | "updated_at" | "email" | "createdAt" | "updatedAt";
  sort_direction?: "asc" | "desc";
}

export function createCrmClient(options: CrmClientOptions) {
  const http = new HttpClient(options.baseUrl, options.fetch, options.timeoutMs);
  const tokens = options.tokens ?? memoryTokenStore();
  const store = `/v1/stores/${encodeURIComponent(options.storeId)}`;

  const admin = async <T>(method: "GET" | "POST" | "PUT" | "DELETE", path: string, body?: unknown, query?: Query) => {
    if (!options.apiKey) throw new Error("This call needs an admin API key (createCrmClient({ apiKey }))");
    return http.request<T>({ method, path: `${store}${path}`, body, query, bearer: options.apiKey });
  };

  const refreshToken = async (params: { refresh_token?: string } = {}): Promise<AuthToken> => {
    const refresh_token = params.refresh_token ?? tokens.get()?.refresh_token;
    if (!refresh_token) throw new Error("No refresh token: call initialize(), connect() or verify() first");
    const token = await http.request<AuthToken>({ method: "POST", path: `${store}/profiles/auth/refresh`, body: { refresh_token } });
    tokens.set(token);
    return token;
  };

  /** True when the access token is past (or within 30 s of) its expiry. */
  const accessExpired = (token: AuthToken) => token.access_expires_at - 30 <= Math.floor(Date.now() / 1000);

  /** The current session, refreshed first when its access token has expired; dropped when it cannot be. */
  const currentToken = async (): Promise<AuthToken | null> => {
    const token = tokens.get();
    if (!token || !accessExpired(token)) return token;
    try {
      return await refreshToken();
    } catch (err) {
      if (!(err instanceof CrmApiError && err.status === 401)) throw err;
      tokens.set(null); // revoked or expired: forget it
      return null;
    }
  };

  /**
   * A public route that takes an optional session (connect, auth/code, auth/verify). A 401 for the
   * session itself (`tokenRejected`: revoked, merged away) drops it and retries anonymously, since a
   * storefront must always be able to log in again; the gateway refused it before any code was tried.
   * Any other 401 of verify (a wrong code) is never retried: a retry would spend another try.
   */
  const withOptionalSession = async <T>(path: string, body: unknown, { retryAnonymous }: { retryAnonymous: boolean }): Promise<T> => {
    const token = await currentToken();
    const send = (bearer?: string) => http.request<T>({ method: "POST", path: `${store}${path}`, body, bearer });
    try {
      return await send(token?.access_token);
    } catch (err) {
      if (!(err instanceof CrmApiError) || err.status !== 401 || !token || !(retryAnonymous || err.tokenRejected)) throw err;
      tokens.set(null);
      return send();
    }
  };

  /** A route that needs the session: refreshed once on a 401; the session is dropped when that fails too. */
  const withSession = async <T>(method: "GET" | "POST", path: string): Promise<T> => {
    const send = (token: AuthToken | null) => http.request<T>({ method, path: `${store}${path}`, bearer: token?.access_token });
    const token = await currentToken();
    try {
      return await send(token);
    } catch (err) {
      if (!(err instanceof CrmApiError) || err.status !== 401 || !tokens.get()?.refresh_token) throw err;
      let refreshed: AuthToken;
      try {
        refreshed = await refreshToken();
      } catch (refreshErr) {
        if (refreshErr instanceof CrmApiError && refreshErr.status === 401) tokens.set(null);
        throw err;
      }
      return send(refreshed);
    }
  };

  const crm = {
    // Admin
    create: (params: { email: string; taxonomies?: TaxonomyEntryInput[] }) => admin<Profile>("POST", "/profiles", params),
    get: (params: { id: string }) => admin<Profile>("GET", `/profiles/${encodeURIComponent(params.id)}`),
    find: (params: FindProfilesParams = {}) => admin<Page<Profile>>("GET", "/profiles", undefined, { ...params }),
    update: ({ id, ...body }: { id: string; email?: string; taxonomies?: TaxonomyEntryInput[]; status?: ProfileStatus }) =>
      admin<Profile>("PUT", `/profiles/${encodeURIComponent(id)}`, body),
    merge: ({ id, source_id }: { id: string; source_id: string }) => admin<Profile>("POST", `/profiles/${encodeURIComponent(id)}/merge`, { source_id }),
    orders: ({ id, ...query }: { id: string; limit?: number; cursor?: string }) =>
      admin<Page<OrderLink>>("GET", `/profiles/${encodeURIComponent(id)}/orders`, undefined, query),
    revokeToken: ({ id, tokenId }: { id: string; tokenId: string }) =>
      admin<{ deleted: true }>("DELETE", `/profiles/${encodeURIComponent(id)}/sessions/${encodeURIComponent(tokenId)}`),
    revokeAllTokens: ({ id }: { id: string }) => admin<{ deleted: true; revoked: number }>("DELETE", `/profiles/${encodeURIComponent(id)}/sessions`),

    // Public (profile sessions)
    initialize: async (): Promise<AuthToken> => {
      const token = await http.request<AuthToken>({ method: "POST", path: `${store}/profiles/initialize`, body: {} });
      tokens.set(token);
      return token;
    },
    connect: async (params: { email: string }): Promise<ConnectResult> => {
      const result = await withOptionalSession<ConnectResult>("/profiles/connect", params, { retryAnonymous: true });
      tokens.set(result.token);
      return result;
    },
    requestCode: (params: { email: string }) => withOptionalSession<{ sent: true }>("/profiles/auth/code", params, { retryAnonymous: true }),
    verify: async (params: { email: string; code: string }): Promise<AuthToken> => {
      const token = await withOptionalSession<AuthToken>("/profiles/auth/verify", params, { retryAnonymous: false });
      tokens.set(token);
      return token;
    },
    refreshToken,
    getMe: () => withSession<Profile>("GET", "/profiles/me"),
    /** Forget the local session (the server-side session stays until it expires or is revoked). */
    signOut: () => tokens.set(null),
  };

  return { crm, tokens };
}

export type CrmClient = ReturnType<typeof createCrmClient>;
