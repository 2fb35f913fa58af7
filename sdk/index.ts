/**
 * The typed TypeScript client of the CRM API, named as the public docs name it (`sdk.crm.create()`,
 * `sdk.crm.verify()`, ...). Profile sessions are kept in a `TokenStore`: `initialize`, `connect`,
 * `verify` and `refreshToken` save the token they get, and profile calls send it: an expired access
 * token is refreshed first, `getMe` and the storefront list calls (`profileList.subscribe`,
 * `checkAccess`, `unsubscribe`) refresh once on a 401, a session that cannot be refreshed is dropped (so
 * the shopper can log in again), and `verify` is never retried (a retry would spend a try of the code).
 * Profile lists are under `sdk.crm.profileList.*` and e-mail templates under `sdk.crm.emailTemplate.*`.
 *
 *   const sdk = createCrmClient({ baseUrl: "http://localhost:3000", storeId });
 *   await sdk.crm.requestCode({ email: "ada@example.com" });
 *   const token = await sdk.crm.verify({ email: "ada@example.com", code: "123456" });
 *   const me = await sdk.crm.getMe();
 */
import type {
  AccessResult,
  AuthToken,
  ConnectResult,
  CreateEmailTemplateParams,
  CreateProfileListParams,
  EmailTemplate,
  FindEmailTemplatesParams,
  FindListProfilesParams,
  FindProfileListsParams,
  ImportProfilesParams,
  ImportResult,
  Membership,
  OrderLink,
  Profile,
  ProfileList,
  ProfileListMember,
  ProfileStatus,
  RenderedTemplate,
  SubscribeParams,
  SubscribeResult,
  TaxonomyEntryInput,
  TaxonomyQuery,
  UnsubscribeResult,
  UpdateEmailTemplateParams,
  UpdateProfileListParams,
} from "./types";
import { CrmApiError, HttpClient, type Query, type RequestOptions } from "./http";

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
  /** The same for imports, which may run for minutes (default 900000, the server's own limit; 0: no limit). */
  importTimeoutMs?: number;
}

const DEFAULT_IMPORT_TIMEOUT_MS = 15 * 60_000;

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
  /** The storefront routes of profile lists (profile sessions, or no credential at all). */
  const storefrontLists = `/v1/storefront/${encodeURIComponent(options.storeId)}/profile-lists`;
  const seg = encodeURIComponent;

  /** An admin route (`path` under the store): `extra` carries a non-JSON body or a longer timeout. */
  const admin = async <T>(
    method: "GET" | "POST" | "PUT" | "DELETE",
    path: string,
    body?: unknown,
    query?: Query,
    extra: Pick<RequestOptions, "raw" | "timeoutMs"> = {},
  ) => {
    if (!options.apiKey) throw new Error("This call needs an admin API key (createCrmClient({ apiKey }))");
    return http.request<T>({ method, path: `${store}${path}`, body, query, ...extra, bearer: options.apiKey });
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

  /**
   * A route that needs the session (`path` from the root: `/v1/...`): refreshed once on a 401; the session
   * is dropped when that fails too. A POST sends `body` (JSON).
   */
  const withSession = async <T>(method: "GET" | "POST", path: string, body?: unknown): Promise<T> => {
    const send = (token: AuthToken | null) => http.request<T>({ method, path, body, bearer: token?.access_token });
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

  /**
   * An import: JSON (`rows` or `csv`), or `csvBody` sent as a `text/csv` body with `email_column` in the
   * query. A big file takes minutes: it waits `importTimeoutMs`, not `timeoutMs`.
   */
  const importProfiles = (path: string, params: ImportProfilesParams) => {
    const timeoutMs = options.importTimeoutMs ?? DEFAULT_IMPORT_TIMEOUT_MS;
    if (params.csvBody === undefined) return admin<ImportResult>("POST", path, params, undefined, { timeoutMs });
    const { csvBody, email_column } = params;
    return admin<ImportResult>("POST", path, undefined, { email_column }, { raw: { contentType: "text/csv", data: csvBody }, timeoutMs });
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
    getMe: () => withSession<Profile>("GET", `${store}/profiles/me`),
    /** Forget the local session (the server-side session stays until it expires or is revoked). */
    signOut: () => tokens.set(null),

    /** Admin: upsert profiles by e-mail, without a list (POST /profiles/import). */
    importProfiles: (params: ImportProfilesParams) => importProfiles("/profiles/import", params),

    profileList: {
      // Admin
      create: (params: CreateProfileListParams) => admin<ProfileList>("POST", "/profile-lists", params),
      get: ({ id }: { id: string }) => admin<ProfileList>("GET", `/profile-lists/${seg(id)}`),
      find: (params: FindProfileListsParams = {}) => admin<Page<ProfileList>>("GET", "/profile-lists", undefined, { ...params }),
      update: ({ id, ...body }: UpdateProfileListParams) => admin<ProfileList>("PUT", `/profile-lists/${seg(id)}`, body),
      /** Upsert profiles by e-mail and make them active members (source import): JSON `rows` or `csv`, or a `text/csv` `csvBody`. */
      importProfiles: ({ id, ...params }: { id: string } & ImportProfilesParams) => importProfiles(`/profile-lists/${seg(id)}/profiles/import`, params),
      profiles: {
        find: ({ id, ...query }: FindListProfilesParams) => admin<Page<ProfileListMember>>("GET", `/profile-lists/${seg(id)}/profiles`, undefined, query),
        add: ({ id, profileId }: { id: string; profileId: string }) => admin<Membership>("POST", `/profile-lists/${seg(id)}/profiles/${seg(profileId)}`, {}),
        /** `at_period_end`: a paid member's subscription is cancelled at the end of the period paid for (access until then). */
        remove: ({ id, profileId, at_period_end }: { id: string; profileId: string; at_period_end?: boolean }) =>
          admin<{ deleted: true }>(
            "DELETE",
            `/profile-lists/${seg(id)}/profiles/${seg(profileId)}`,
            undefined,
            at_period_end === undefined ? undefined : { at_period_end },
          ),
      },

      // Storefront (profile sessions)
      /** Subscribe the session's profile (`profile_id` defaults to it): active, pending a confirmation mail, or a checkout_url for a paid list. */
      subscribe: async ({ id, profile_id, ...body }: SubscribeParams): Promise<SubscribeResult> => {
        const profileId = profile_id ?? (await currentToken())?.profile_id;
        if (!profileId) throw new Error("No profile session: call initialize(), connect() or verify() first");
        return withSession<SubscribeResult>("POST", `${storefrontLists}/${seg(id)}/subscribe`, { profile_id: profileId, ...body });
      },
      /** Whether the session's profile has access to the list. */
      checkAccess: ({ id }: { id: string }) => withSession<AccessResult>("GET", `${storefrontLists}/${seg(id)}/access`),
      /** Confirm a double opt-in subscription with the token of the e-mailed link (no session needed). */
      confirm: ({ id, token }: { id: string; token: string }) =>
        http.request<Membership>({ method: "POST", path: `${storefrontLists}/${seg(id)}/confirm`, body: { token } }),
      /** Unsubscribe: with the `token` of a list e-mail (no session sent), else the session's own profile. */
      unsubscribe: ({ id, token }: { id: string; token?: string }) => {
        const path = `${storefrontLists}/${seg(id)}/unsubscribe`;
        if (token !== undefined) return http.request<UnsubscribeResult>({ method: "POST", path, body: { token } });
        return withSession<UnsubscribeResult>("POST", path, {});
      },
    },

    /** Admin: the store's e-mail templates (handlebars subject, html and text). */
    emailTemplate: {
      create: (params: CreateEmailTemplateParams) => admin<EmailTemplate>("POST", "/email-templates", params),
      get: ({ id }: { id: string }) => admin<EmailTemplate>("GET", `/email-templates/${seg(id)}`),
      find: (params: FindEmailTemplatesParams = {}) => admin<Page<EmailTemplate>>("GET", "/email-templates", undefined, { ...params }),
      update: ({ id, ...body }: UpdateEmailTemplateParams) => admin<EmailTemplate>("PUT", `/email-templates/${seg(id)}`, body),
      delete: ({ id }: { id: string }) => admin<{ deleted: true }>("DELETE", `/email-templates/${seg(id)}`),
      /** Render with `vars`, strictly: a missing variable is a 400 naming `vars`. */
      preview: ({ id, vars = {} }: { id: string; vars?: Record<string, unknown> }) => admin<RenderedTemplate>("POST", `/email-templates/${seg(id)}/preview`, { vars }),
    },
  };

  return { crm, tokens };
}

export type CrmClient = ReturnType<typeof createCrmClient>;
