/**
 * The SDK's profile-list, import and e-mail-template methods against a fake fetch: every route of the
 * tables in shared/routes with the method the spec names (`sdk:`), each call's method, path, query, body
 * and credential (admin key, profile session, none), and the `text/csv` import bodies. The same methods
 * against the real system are in test/e2e-sdk-lists.test.ts.
 */
import { authRoutes } from "../../shared/routes/auth";
import { mailerRoutes } from "../../shared/routes/mailer";
import { profileListRoutes } from "../../shared/routes/profile-lists";
import { profileRoutes } from "../../shared/routes/profiles";
import type { RouteDef } from "../../shared/routes/types";
import { type AuthToken, CrmApiError, type CrmClient, createCrmClient, memoryTokenStore } from "..";

const STORE = "0190c5d2-1111-7000-8000-00000000cafe";
const LIST = "0190c5d2-2222-7000-8000-000000000001";
const PROFILE = "0190c5d2-3333-7000-8000-000000000002";
const TEMPLATE = "0190c5d2-4444-7000-8000-000000000003";
const API_KEY = "admin-key";

interface Sent {
  method: string;
  url: URL;
  headers: Record<string, string>;
  text: string;
  duplex?: string;
}

interface Answer {
  status?: number;
  body?: unknown;
}

/** A fetch that records each request (its body read to text) and answers JSON. */
function fakeFetch(answer: (req: Sent) => Answer = () => ({ body: {} })) {
  const sent: Sent[] = [];
  const impl = (async (input: string | URL | Request, init: RequestInit & { duplex?: string } = {}) => {
    const body = init.body ?? null;
    const req: Sent = {
      method: init.method ?? "GET",
      url: new URL(String(input)),
      headers: Object.fromEntries(new Headers(init.headers).entries()),
      text: body === null ? "" : await new Response(body).text(),
      duplex: init.duplex,
    };
    sent.push(req);
    const { status = 200, body: answerBody } = answer(req);
    return new Response(answerBody === undefined ? "" : JSON.stringify(answerBody), { status, headers: { "content-type": "application/json" } });
  }) as typeof fetch;
  return { impl, sent };
}

function session(profileId = PROFILE, access = "access-1", refresh = "refresh-1"): AuthToken {
  const now = Math.floor(Date.now() / 1000);
  return {
    id: "0190c5d2-5555-7000-8000-000000000004",
    profile_id: profileId,
    access_token: access,
    refresh_token: refresh,
    token_type: "Bearer",
    access_expires_at: now + 900,
    refresh_expires_at: now + 86_400,
    created_at: now,
    is_verified: false,
  };
}

/** A client with the admin key (null: none) and a profile session (null: none). */
function client(fetchImpl: typeof fetch, token: AuthToken | null = session(), apiKey: string | null = API_KEY) {
  return createCrmClient({ baseUrl: "http://crm.test/", storeId: STORE, apiKey: apiKey ?? undefined, tokens: memoryTokenStore(token), fetch: fetchImpl });
}

/** The function at a route's `sdk:` name ("sdk.crm.profileList.profiles.find()") in a client, if there is one. */
function methodAt(sdk: CrmClient, name: string): unknown {
  const parts = name.replace(/\(\)$/, "").split(".").slice(1);
  let at: unknown = sdk;
  for (const part of parts) at = (at as Record<string, unknown> | undefined)?.[part];
  return at;
}

type Credential = "admin" | "session" | "none";

/** One SDK call per route: what it calls, and the credential, query and JSON body it must send. */
interface Call {
  call: (sdk: CrmClient) => Promise<unknown>;
  path: string;
  credential: Credential;
  query?: Record<string, string>;
  body?: unknown;
}

const lists = `/v1/stores/${STORE}/profile-lists`;
const storefront = `/v1/storefront/${STORE}/profile-lists`;
const templates = `/v1/stores/${STORE}/email-templates`;

/** Keyed by the route's method and documented path. */
const CALLS: Record<string, Call> = {
  "POST /v1/stores/{storeId}/profile-lists": {
    call: (sdk) => sdk.crm.profileList.create({ key: "news", name: "News", type: { type: "confirmation", confirm_template_id: TEMPLATE } }),
    path: lists,
    credential: "admin",
    body: { key: "news", name: "News", type: { type: "confirmation", confirm_template_id: TEMPLATE } },
  },
  "GET /v1/stores/{storeId}/profile-lists": {
    call: (sdk) => sdk.crm.profileList.find({ ids: [LIST], status: "active", query: "ne", limit: 10, cursor: "c1" }),
    path: lists,
    credential: "admin",
    query: { ids: JSON.stringify([LIST]), status: "active", query: "ne", limit: "10", cursor: "c1" },
  },
  "GET /v1/stores/{storeId}/profile-lists/{id}": { call: (sdk) => sdk.crm.profileList.get({ id: LIST }), path: `${lists}/${LIST}`, credential: "admin" },
  "PUT /v1/stores/{storeId}/profile-lists/{id}": {
    call: (sdk) => sdk.crm.profileList.update({ id: LIST, name: "Weekly", description: null, status: "archived" }),
    path: `${lists}/${LIST}`,
    credential: "admin",
    body: { name: "Weekly", description: null, status: "archived" },
  },
  "GET /v1/stores/{storeId}/profile-lists/{id}/profiles": {
    call: (sdk) => sdk.crm.profileList.profiles.find({ id: LIST, status: "active", limit: 5, cursor: "c2" }),
    path: `${lists}/${LIST}/profiles`,
    credential: "admin",
    query: { status: "active", limit: "5", cursor: "c2" },
  },
  "POST /v1/stores/{storeId}/profile-lists/{id}/profiles/{profileId}": {
    call: (sdk) => sdk.crm.profileList.profiles.add({ id: LIST, profileId: PROFILE }),
    path: `${lists}/${LIST}/profiles/${PROFILE}`,
    credential: "admin",
    body: {},
  },
  "DELETE /v1/stores/{storeId}/profile-lists/{id}/profiles/{profileId}": {
    call: (sdk) => sdk.crm.profileList.profiles.remove({ id: LIST, profileId: PROFILE, at_period_end: true }),
    path: `${lists}/${LIST}/profiles/${PROFILE}`,
    credential: "admin",
    query: { at_period_end: "true" },
  },
  "POST /v1/stores/{storeId}/profile-lists/{id}/profiles/import": {
    call: (sdk) => sdk.crm.profileList.importProfiles({ id: LIST, rows: [{ email: "ada@example.com", fields: { color: "teal" } }] }),
    path: `${lists}/${LIST}/profiles/import`,
    credential: "admin",
    body: { rows: [{ email: "ada@example.com", fields: { color: "teal" } }] },
  },
  "POST /v1/stores/{storeId}/profiles/import": {
    call: (sdk) => sdk.crm.importProfiles({ csv: "mail\nada@example.com\n", email_column: "mail" }),
    path: `/v1/stores/${STORE}/profiles/import`,
    credential: "admin",
    body: { csv: "mail\nada@example.com\n", email_column: "mail" },
  },
  "POST /v1/storefront/{storeId}/profile-lists/{id}/subscribe": {
    call: (sdk) => sdk.crm.profileList.subscribe({ id: LIST, confirm_url: "https://shop.test/confirm" }),
    path: `${storefront}/${LIST}/subscribe`,
    credential: "session",
    body: { profile_id: PROFILE, confirm_url: "https://shop.test/confirm" },
  },
  "POST /v1/storefront/{storeId}/profile-lists/{id}/confirm": {
    call: (sdk) => sdk.crm.profileList.confirm({ id: LIST, token: "t".repeat(32) }),
    path: `${storefront}/${LIST}/confirm`,
    credential: "none",
    body: { token: "t".repeat(32) },
  },
  "GET /v1/storefront/{storeId}/profile-lists/{id}/access": {
    call: (sdk) => sdk.crm.profileList.checkAccess({ id: LIST }),
    path: `${storefront}/${LIST}/access`,
    credential: "session",
  },
  "POST /v1/storefront/{storeId}/profile-lists/{id}/unsubscribe": {
    call: (sdk) => sdk.crm.profileList.unsubscribe({ id: LIST }),
    path: `${storefront}/${LIST}/unsubscribe`,
    credential: "session",
    body: {},
  },
  "POST /v1/stores/{storeId}/email-templates": {
    call: (sdk) => sdk.crm.emailTemplate.create({ key: "confirm", subject: "Confirm {{list.name}}", html: "<p>{{confirm_url}}</p>", text: null }),
    path: templates,
    credential: "admin",
    body: { key: "confirm", subject: "Confirm {{list.name}}", html: "<p>{{confirm_url}}</p>", text: null },
  },
  "GET /v1/stores/{storeId}/email-templates": {
    call: (sdk) => sdk.crm.emailTemplate.find({ ids: [TEMPLATE], status: "active", query: "conf", limit: 3 }),
    path: templates,
    credential: "admin",
    query: { ids: JSON.stringify([TEMPLATE]), status: "active", query: "conf", limit: "3" },
  },
  "GET /v1/stores/{storeId}/email-templates/{id}": { call: (sdk) => sdk.crm.emailTemplate.get({ id: TEMPLATE }), path: `${templates}/${TEMPLATE}`, credential: "admin" },
  "PUT /v1/stores/{storeId}/email-templates/{id}": {
    call: (sdk) => sdk.crm.emailTemplate.update({ id: TEMPLATE, status: "archived" }),
    path: `${templates}/${TEMPLATE}`,
    credential: "admin",
    body: { status: "archived" },
  },
  "DELETE /v1/stores/{storeId}/email-templates/{id}": {
    call: (sdk) => sdk.crm.emailTemplate.delete({ id: TEMPLATE }),
    path: `${templates}/${TEMPLATE}`,
    credential: "admin",
  },
  "POST /v1/stores/{storeId}/email-templates/{id}/preview": {
    call: (sdk) => sdk.crm.emailTemplate.preview({ id: TEMPLATE, vars: { list: { name: "News" } } }),
    path: `${templates}/${TEMPLATE}/preview`,
    credential: "admin",
    body: { vars: { list: { name: "News" } } },
  },
};

const COVERED: RouteDef[] = [...profileListRoutes, ...mailerRoutes];

function credentialOf(req: Sent): Credential | string {
  const auth = req.headers.authorization;
  if (auth === undefined) return "none";
  if (auth === `Bearer ${API_KEY}`) return "admin";
  if (auth === "Bearer access-1") return "session";
  return auth;
}

describe("SDK profile lists, imports and e-mail templates", () => {
  it("has a method at every name the route tables give (sdk.crm.profileList.profiles.find(), ...)", () => {
    const sdk = client(fakeFetch().impl);
    const named = [...authRoutes, ...profileRoutes, ...profileListRoutes, ...mailerRoutes].filter((r) => r.sdk);
    expect(named.map((r) => r.sdk)).toEqual(
      expect.arrayContaining(["sdk.crm.profileList.create()", "sdk.crm.profileList.profiles.find()", "sdk.crm.importProfiles()", "sdk.crm.profileList.checkAccess()"]),
    );
    expect(named.filter((r) => typeof methodAt(sdk, r.sdk!) !== "function").map((r) => r.sdk)).toEqual([]);
  });

  it.each(COVERED.map((r) => [`${r.method} ${r.path}`, r] as const))("%s: method, path, query, body and credential", async (key, route) => {
    const call = CALLS[key];
    expect(call).toBeDefined();
    if (route.sdk) expect(methodAt(client(fakeFetch().impl), route.sdk)).toBeInstanceOf(Function);
    const { impl, sent } = fakeFetch();
    await call.call(client(impl));
    expect(sent).toHaveLength(1);
    const [req] = sent;
    expect(req.method).toBe(route.method);
    expect(req.url.pathname).toBe(call.path);
    expect(new RegExp(`^${route.path.replace(/\{\w+\}/g, "[^/]+")}$`).test(req.url.pathname)).toBe(true);
    expect(Object.fromEntries(req.url.searchParams)).toEqual(call.query ?? {});
    // The route's own kind of credential: an admin route never gets a session, a storefront route never the key.
    expect(credentialOf(req)).toBe(call.credential);
    const expected: Record<RouteDef["auth"], Credential[]> = { admin: ["admin"], profile: ["session"], "optional-profile": ["session", "none"], public: ["none"] };
    expect(expected[route.auth]).toContain(call.credential);
    if (call.body === undefined) {
      expect(req.text).toBe("");
      expect(req.headers["content-type"]).toBeUndefined();
    } else {
      expect(req.headers["content-type"]).toBe("application/json");
      expect(JSON.parse(req.text)).toEqual(call.body);
    }
  });

  it("sends a csvBody as text/csv (text, Blob or stream), with email_column in the query string", async () => {
    const csv = "mail,color\nada@example.com,teal\ngrace@example.com,red\n";
    const bytes = new TextEncoder().encode(csv);
    const bodies = [
      csv,
      new Blob([csv], { type: "application/octet-stream" }),
      new ReadableStream<Uint8Array>({
        start(controller) {
          controller.enqueue(bytes.slice(0, 10));
          controller.enqueue(bytes.slice(10));
          controller.close();
        },
      }),
    ];
    const { impl, sent } = fakeFetch(() => ({ body: { rows_total: 2 } }));
    const sdk = client(impl);
    for (const csvBody of bodies) {
      await expect(sdk.crm.profileList.importProfiles({ id: LIST, csvBody, email_column: "mail" })).resolves.toEqual({ rows_total: 2 });
    }
    await sdk.crm.importProfiles({ csvBody: csv });
    expect(sent.map((r) => [r.method, r.url.pathname + r.url.search, r.headers["content-type"], r.headers.authorization, r.text])).toEqual([
      ["POST", `${lists}/${LIST}/profiles/import?email_column=mail`, "text/csv", `Bearer ${API_KEY}`, csv],
      ["POST", `${lists}/${LIST}/profiles/import?email_column=mail`, "text/csv", `Bearer ${API_KEY}`, csv],
      ["POST", `${lists}/${LIST}/profiles/import?email_column=mail`, "text/csv", `Bearer ${API_KEY}`, csv],
      ["POST", `/v1/stores/${STORE}/profiles/import`, "text/csv", `Bearer ${API_KEY}`, csv],
    ]);
    // A stream is sent half duplex (what fetch requires of a stream body); text and Blobs are not streams.
    expect(sent.map((r) => r.duplex)).toEqual([undefined, undefined, "half", undefined]);
  });

  it("imports need the admin key, and send nothing without it", async () => {
    const { impl, sent } = fakeFetch();
    const sdk = client(impl, session(), null);
    await expect(sdk.crm.profileList.importProfiles({ id: LIST, csvBody: "email\na@example.com\n" })).rejects.toThrow(/needs an admin API key/);
    await expect(sdk.crm.importProfiles({ rows: [] })).rejects.toThrow(/needs an admin API key/);
    await expect(sdk.crm.emailTemplate.get({ id: TEMPLATE })).rejects.toThrow(/needs an admin API key/);
    expect(sent).toEqual([]);
  });

  it("subscribe sends the profile_id it is given, else the session's; with no session at all it sends nothing", async () => {
    const { impl, sent } = fakeFetch();
    await client(impl).crm.profileList.subscribe({ id: LIST, profile_id: "0190c5d2-3333-7000-8000-0000000000ff", price_id: "p1", success_url: "s", cancel_url: "c" });
    expect(JSON.parse(sent[0].text)).toEqual({ profile_id: "0190c5d2-3333-7000-8000-0000000000ff", price_id: "p1", success_url: "s", cancel_url: "c" });
    await expect(client(impl, null).crm.profileList.subscribe({ id: LIST })).rejects.toThrow(/No profile session/);
    expect(sent).toHaveLength(1);
  });

  it("unsubscribe with a mail's token sends no session, even when there is one", async () => {
    const { impl, sent } = fakeFetch();
    await client(impl).crm.profileList.unsubscribe({ id: LIST, token: "u".repeat(40) });
    expect(sent[0].url.pathname).toBe(`${storefront}/${LIST}/unsubscribe`);
    expect(sent[0].headers.authorization).toBeUndefined();
    expect(JSON.parse(sent[0].text)).toEqual({ token: "u".repeat(40) });
  });

  it("a storefront POST refused with 401 is refreshed once and sent again with the same body", async () => {
    const { impl, sent } = fakeFetch((req) => {
      if (req.url.pathname.endsWith("/auth/refresh")) return { body: session(PROFILE, "access-2", "refresh-2") };
      if (req.headers.authorization === "Bearer access-1") return { status: 401, body: { statusCode: 401, error: "UNAUTHENTICATED", message: "expired" } };
      return { body: { membership: { status: "active" }, checkout_url: null } };
    });
    const sdk = client(impl);
    await expect(sdk.crm.profileList.subscribe({ id: LIST })).resolves.toMatchObject({ checkout_url: null });
    expect(sent.map((r) => [r.url.pathname, r.headers.authorization, r.text])).toEqual([
      [`${storefront}/${LIST}/subscribe`, "Bearer access-1", JSON.stringify({ profile_id: PROFILE })],
      [`/v1/stores/${STORE}/profiles/auth/refresh`, undefined, JSON.stringify({ refresh_token: "refresh-1" })],
      [`${storefront}/${LIST}/subscribe`, "Bearer access-2", JSON.stringify({ profile_id: PROFILE })],
    ]);
    expect(sdk.tokens.get()?.access_token).toBe("access-2");
  });

  it("checkAccess without a session is the API's 401, as a CrmApiError", async () => {
    const { impl, sent } = fakeFetch(() => ({ status: 401, body: { statusCode: 401, error: "UNAUTHENTICATED", message: "A profile session is required" } }));
    const err = await client(impl, null)
      .crm.profileList.checkAccess({ id: LIST })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CrmApiError);
    expect((err as CrmApiError).code).toBe("UNAUTHENTICATED");
    expect(sent.map((r) => r.headers.authorization)).toEqual([undefined]);
  });

  it("encodes ids in paths", async () => {
    const { impl, sent } = fakeFetch();
    await client(impl).crm.profileList.get({ id: "a/b?c" });
    expect(sent[0].url.pathname).toBe(`${lists}/a%2Fb%3Fc`);
  });
});

describe("SDK import timeout", () => {
  /** A fetch that never answers: it rejects when the request's signal gives up, like fetch does. */
  const silent = (async (_input: string | URL | Request, init: RequestInit = {}) =>
    new Promise<Response>((_resolve, reject) => init.signal?.addEventListener("abort", () => reject(init.signal?.reason)))) as typeof fetch;

  async function elapsed(call: Promise<unknown>): Promise<number> {
    const started = Date.now();
    const err = await call.catch((e: unknown) => e);
    expect((err as Error).name).toBe("CrmNetworkError");
    return Date.now() - started;
  }

  it("waits importTimeoutMs for an import (the server takes minutes for a big file), timeoutMs for the rest", async () => {
    const sdk = createCrmClient({ baseUrl: "http://crm.test", storeId: STORE, apiKey: API_KEY, fetch: silent, timeoutMs: 50, importTimeoutMs: 400 });
    expect(await elapsed(sdk.crm.profileList.get({ id: LIST }))).toBeLessThan(350);
    expect(await elapsed(sdk.crm.profileList.importProfiles({ id: LIST, csvBody: "email\n" }))).toBeGreaterThanOrEqual(390);
    expect(await elapsed(sdk.crm.importProfiles({ rows: [] }))).toBeGreaterThanOrEqual(390);
  });
});
