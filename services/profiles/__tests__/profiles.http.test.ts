import type { AuthToken } from "../../../shared/contracts/auth";
import type { ConnectResult, OrderLink, Profile } from "../../../shared/contracts/profiles";
import { publishEvent } from "../../../shared/events/durable";
import { profileRoutes } from "../../../shared/routes/profiles";
import {
  deleteStreams,
  httpClient,
  startCluster,
  startSmtpServer,
  type Cluster,
  type HttpClient,
  type ObservedExchange,
  type SmtpTestServer,
} from "../../../test/harness";
import { routesNeverAnswered, undocumentedAnswers } from "../../../test/harness/documented";
import { bySpecificity } from "../../../gateway/gateway.service";
import { allRoutes } from "../../../shared/registry";
import { eventually, newStoreId } from "./helpers";

const ADMIN_KEY = "crm_sk_profiles_http_test_key";

describe("profile routes (table)", () => {
  it("needs no order: the gateway puts literal paths before {id} paths whatever order the lines are in", () => {
    const shuffled = [...allRoutes()].reverse().sort((a, b) => bySpecificity(a.path, b.path));
    for (const method of ["GET", "POST", "PUT", "DELETE"]) {
      const paths = shuffled.filter((r) => r.method === method).map((r) => r.path);
      const firstParam = paths.findIndex((p) => p.includes("/profiles/{id}"));
      if (firstParam === -1) continue;
      expect(paths.slice(firstParam).filter((p) => /\/profiles\/(me|initialize|connect|auth)/.test(p))).toEqual([]);
    }
  });

  it("uses the decided auth kinds", () => {
    const authOf = (method: string, suffix: string) => allRoutes().find((r) => r.method === method && r.path.endsWith(suffix))?.auth;
    expect(authOf("POST", "/profiles/initialize")).toBe("public");
    expect(authOf("POST", "/profiles/connect")).toBe("optional-profile");
    expect(authOf("POST", "/profiles/auth/code")).toBe("optional-profile");
    expect(authOf("POST", "/profiles/auth/verify")).toBe("optional-profile");
    expect(authOf("POST", "/profiles/auth/refresh")).toBe("public");
    expect(authOf("GET", "/profiles/me")).toBe("profile");
    const admin = profileRoutes.filter((r) => !/\/(me|initialize|connect|auth\/\w+)$/.test(r.path));
    expect(admin).toHaveLength(8);
    for (const route of admin) expect(route.auth).toBe("admin");
  });
});

describe("profile routes over HTTP and NATS", () => {
  let cluster: Cluster;
  let smtp: SmtpTestServer;
  let http: HttpClient;
  let admin: HttpClient;
  const store = newStoreId();
  const base = `/v1/stores/${store}/profiles`;
  const bearer = (token: AuthToken) => http.with({ authorization: `Bearer ${token.access_token}` });
  const exchanges: ObservedExchange[] = [];

  beforeAll(async () => {
    smtp = await startSmtpServer();
    cluster = await startCluster(["gateway", "auth", "mailer", "profiles"], {
      env: { SMTP_URL: smtp.url, JWT_SECRET: "profiles-http-test-secret-0123456789", CRM_ADMIN_API_KEY: ADMIN_KEY },
    });
    http = httpClient(cluster.url!, {}, (exchange) => exchanges.push(exchange));
    admin = http.with({ authorization: `Bearer ${ADMIN_KEY}` });
  }, 60_000);

  afterAll(async () => {
    await cluster?.stop();
    if (cluster) await deleteStreams(cluster.channelPrefix);
    await smtp?.close();
  });

  async function codeFor(email: string): Promise<string> {
    const mail = await smtp.waitForMessage((m) => m.to.includes(email), 10_000);
    return /\b(\d{6})\b/.exec(mail.text)![1];
  }

  it("creates, reads, searches and updates profiles with the admin key", async () => {
    expect((await http.post(base, { email: "ada@example.com" })).status).toBe(401);
    const created = await admin.post<Profile>(base, {
      email: "Ada@Example.com",
      taxonomies: [{ taxonomy_id: "tier", fields: [{ key: "level", type: "text", value: "Gold" }] }],
    });
    expect(created.status).toBe(200);
    expect(created.body).toMatchObject({ store_id: store, email: "Ada@Example.com", verified: false });
    const again = await admin.post<Profile>(base, { email: "ada@EXAMPLE.com" });
    expect(again.body.id).toBe(created.body.id);

    expect((await admin.get<Profile>(`${base}/${created.body.id}`)).body.id).toBe(created.body.id);
    const found = await admin.get<{ items: Profile[] }>(base, {
      query: { taxonomy_query: [{ taxonomy_id: "tier", query: [{ key: "level", type: "text", value: "Gold" }] }], sort_field: "createdAt", limit: "10" },
    });
    expect(found.status).toBe(200);
    expect(found.body.items.map((p) => p.id)).toEqual([created.body.id]);

    const updated = await admin.put<Profile>(`${base}/${created.body.id}`, { status: "archived" });
    expect(updated.body.status).toBe("archived");
  });

  it("finds what people type: a prefix of the e-mail from any word on (through the email_words index)", async () => {
    const searchStore = newStoreId();
    const searchBase = `/v1/stores/${searchStore}/profiles`;
    const emails = ["Mary.Jane@x.com", "bob_smith@gmail.com", "alice+news@gmail.com", "jane-doe@corp.example"];
    const idOf = new Map<string, string>();
    for (const email of emails) idOf.set(email, (await admin.post<Profile>(searchBase, { email })).body.id);
    const search = async (query: string) => {
      const res = await admin.get<{ items: Profile[] }>(searchBase, { query: { query, sort_field: "email", sort_direction: "asc" } });
      expect(res.status).toBe(200);
      return res.body.items.map((p) => p.email);
    };
    expect(await search("jane")).toEqual(["jane-doe@corp.example", "Mary.Jane@x.com"]);
    expect(await search("GMAIL")).toEqual(["alice+news@gmail.com", "bob_smith@gmail.com"]);
    expect(await search("smith@g")).toEqual(["bob_smith@gmail.com"]);
    expect(await search("mary.ja")).toEqual(["Mary.Jane@x.com"]);
    expect(await search("news")).toEqual(["alice+news@gmail.com"]);
    expect(await search("ary")).toEqual([]);
    expect(await search(idOf.get("bob_smith@gmail.com")!)).toEqual(["bob_smith@gmail.com"]);
    // A changed e-mail is found by its new words only.
    await admin.put(`${searchBase}/${idOf.get("Mary.Jane@x.com")}`, { email: "mj@newmail.org" });
    expect(await search("jane")).toEqual(["jane-doe@corp.example"]);
    expect(await search("newmail")).toEqual(["mj@newmail.org"]);
  });

  it("takes taxonomy_query as one JSON array, as repeated keys of one JSON object each, or as one object alone", async () => {
    const tagged = (
      await admin.post<Profile>(base, {
        email: "repeat@example.com",
        taxonomies: [
          {
            taxonomy_id: "prefs",
            fields: [
              { key: "color", type: "text", value: "teal" },
              { key: "size", type: "text", value: "xl" },
            ],
          },
        ],
      })
    ).body;
    const color = { taxonomy_id: "prefs", query: [{ key: "color", type: "text", value: "teal" }] };
    const size = { taxonomy_id: "prefs", query: [{ key: "size", type: "text", value: "xl" }] };
    const q = (value: unknown) => `taxonomy_query=${encodeURIComponent(JSON.stringify(value))}`;
    const asArray = await admin.get<{ items: Profile[] }>(`${base}?${q([color, size])}`);
    const repeated = await admin.get<{ items: Profile[] }>(`${base}?${q(color)}&${q(size)}`);
    expect(asArray.status).toBe(200);
    expect(repeated.status).toBe(200);
    expect(asArray.body.items.map((p) => p.id)).toEqual([tagged.id]);
    expect(repeated.body.items.map((p) => p.id)).toEqual([tagged.id]);
    // One object given alone is a list of one.
    const single = await admin.get<{ items: Profile[] }>(`${base}?${q(color)}`);
    expect(single.status).toBe(200);
    expect(single.body.items.map((p) => p.id)).toEqual([tagged.id]);
    const broken = await admin.get(`${base}?taxonomy_query=${encodeURIComponent("{nope")}&${q(size)}`);
    expect(broken.status).toBe(400);
  });

  it("answers the contract's 400 for values of the wrong type and for a cursor of another store", async () => {
    const res = await admin.post(base, { email: { $ne: null } });
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({ statusCode: 400, error: "VALIDATION_ERROR", validationErrors: [expect.objectContaining({ field: "email" })] });
    // A bad path parameter is named as the documented path names it.
    const badTokenId = await admin.delete(`${base}/${newStoreId()}/sessions/abc`);
    expect(badTokenId.status).toBe(400);
    expect(badTokenId.body).toMatchObject({ validationErrors: [expect.objectContaining({ field: "tokenId" })] });
    const proto = await admin.put(`${base}/${newStoreId()}`, JSON.parse('{"__proto__":{"status":"archived"}}'));
    expect(proto.status).toBe(404);

    for (let i = 0; i < 3; i++) await admin.post(base, { email: `page${i}@example.com` });
    const page = await admin.get<{ cursor: string }>(base, { query: { limit: "1" } });
    const otherStore = await admin.get(`/v1/stores/${newStoreId()}/profiles`, { query: { limit: "1", cursor: page.body.cursor } });
    expect(otherStore.status).toBe(400);
    expect(otherStore.body).toMatchObject({ error: "VALIDATION_ERROR" });
    expect((await admin.get(`/v1/stores/${newStoreId()}/profiles/${(await admin.post<Profile>(base, { email: "iso@example.com" })).body.id}`)).status).toBe(404);
  });

  it("runs the checkout flow: initialize, connect, me; a revoked session is refused on its next request", async () => {
    const init = await http.post<AuthToken>(`${base}/initialize`);
    expect(init.status).toBe(200);
    expect(init.body).toMatchObject({ token_type: "Bearer", is_verified: false });
    const me = await bearer(init.body).get<Profile>(`${base}/me`);
    expect(me.body).toMatchObject({ id: init.body.profile_id, email: null });

    const connected = await bearer(init.body).post<ConnectResult>(`${base}/connect`, { email: "shopper@example.com" });
    expect(connected.status).toBe(200);
    expect(connected.body).toMatchObject({ id: init.body.profile_id, email: "shopper@example.com", token: { is_verified: false } });

    expect((await admin.delete(`${base}/${connected.body.id}/sessions/${connected.body.token.id}`)).body).toEqual({ deleted: true });
    expect((await bearer(connected.body.token).get(`${base}/me`)).status).toBe(401);
    expect((await admin.delete(`${base}/${connected.body.id}/sessions`)).body).toMatchObject({ deleted: true });
    const afterRevokeAll = await bearer(init.body).get(`${base}/me`);
    expect(afterRevokeAll.status).toBe(401);
    expect(afterRevokeAll.body).toMatchObject({ statusCode: 401, error: "UNAUTHENTICATED" });
  });

  it("answers 409 for an e-mail another profile has and 401 for a refresh token that is not one", async () => {
    const first = (await admin.post<Profile>(base, { email: "taken@example.com" })).body;
    const second = (await admin.post<Profile>(base, { email: "other@example.com" })).body;
    const conflict = await admin.put(`${base}/${second.id}`, { email: "TAKEN@example.com" });
    expect(conflict.status).toBe(409);
    expect(conflict.body).toMatchObject({ statusCode: 409, error: "CONFLICT" });
    expect((await admin.get<Profile>(`${base}/${first.id}`)).body.email).toBe("taken@example.com");
    const refresh = await http.post(`${base}/auth/refresh`, { refresh_token: "not-a-refresh-token" });
    expect(refresh.status).toBe(401);
    expect(refresh.body).toMatchObject({ error: "UNAUTHENTICATED" });
  });

  it("answers a code request for an address the mail server refuses for good with 400 on email", async () => {
    smtp.refuseRecipient("nobody-here@example.com");
    try {
      const res = await http.post(`${base}/auth/code`, { email: "nobody-here@example.com" });
      expect(res.status).toBe(400);
      expect(res.body).toEqual({
        statusCode: 400,
        error: "VALIDATION_ERROR",
        message: expect.stringMatching(/refused this address/),
        validationErrors: [{ field: "email", error: expect.stringMatching(/refused this address/) }],
      });
    } finally {
      smtp.clear();
    }
  });

  it("tells a refused session apart from a wrong code with WWW-Authenticate (RFC 6750 invalid_token)", async () => {
    const guest = (await http.post<AuthToken>(`${base}/initialize`)).body;
    await bearer(guest).post(`${base}/auth/code`, { email: "challenge@example.com" });
    const code = await codeFor("challenge@example.com");
    const wrongCode = await bearer(guest).post(`${base}/auth/verify`, { email: "challenge@example.com", code: code === "000000" ? "000001" : "000000" });
    expect(wrongCode.status).toBe(401);
    expect(wrongCode.headers["www-authenticate"]).toBe('Bearer realm="crm"');

    expect((await admin.delete(`${base}/${guest.profile_id}/sessions`)).status).toBe(200);
    const revoked = await bearer(guest).post(`${base}/auth/verify`, { email: "challenge@example.com", code });
    expect(revoked.status).toBe(401);
    expect(revoked.headers["www-authenticate"]).toBe('Bearer realm="crm", error="invalid_token"');
    expect((await http.with({ authorization: "Bearer not-a-key" }).get(base)).headers["www-authenticate"]).toMatch(/error="invalid_token"/);
    // The refused session spent no try: the same code still logs in without it.
    expect((await http.post(`${base}/auth/verify`, { email: "challenge@example.com", code })).status).toBe(200);
  });

  it("routes /profiles/me to the session's profile, never to GET /profiles/{id}", async () => {
    expect((await admin.get(`${base}/me`)).status).toBe(401);
    expect((await http.get(`${base}/me`)).status).toBe(401);
  });

  it("logs in with a code, upgrading the guest session, and refreshes the token", async () => {
    const guest = (await http.post<AuthToken>(`${base}/initialize`)).body;
    expect((await bearer(guest).post(`${base}/auth/code`, { email: "login@example.com" })).body).toEqual({ sent: true });
    const code = await codeFor("login@example.com");
    const verified = await bearer(guest).post<AuthToken>(`${base}/auth/verify`, { email: "login@example.com", code });
    expect(verified.status).toBe(200);
    expect(verified.body).toMatchObject({ is_verified: true });
    expect(verified.body.id).not.toBe(guest.id);
    expect((await bearer(guest).get(`${base}/me`)).status).toBe(401);
    expect((await admin.get(`${base}/${guest.profile_id}`)).status).toBe(404);

    const me = await bearer(verified.body).get<Profile>(`${base}/me`);
    expect(me.body).toMatchObject({ email: "login@example.com", verified: true });
    const refreshed = await http.post<AuthToken>(`${base}/auth/refresh`, { refresh_token: verified.body.refresh_token });
    expect(refreshed.status).toBe(200);
    expect(refreshed.body.refresh_token).not.toBe(verified.body.refresh_token);
    expect((await bearer(refreshed.body).get(`${base}/me`)).status).toBe(200);
  });

  it("links order.created from JetStream once, and moves orders on merge", async () => {
    const target = (await admin.post<Profile>(base, { email: "keeper@example.com" })).body;
    const source = (await admin.post<Profile>(base, { email: "dup@example.com" })).body;
    const producer = cluster.brokers.gateway;
    await publishEvent(producer, "order.created", { store_id: store, order_id: "JS-1", profile_id: source.id, total: 9 });
    await publishEvent(producer, "order.created", { store_id: store, order_id: "JS-1", profile_id: target.id, total: 9 });
    await publishEvent(producer, "order.created", { store_id: store, order_id: "JS-2", email: "keeper@example.com" });
    const ordersOf = async (id: string) => (await admin.get<{ items: OrderLink[] }>(`${base}/${id}/orders`)).body.items.map((o) => o.order_id).sort();
    await eventually(async () => (await ordersOf(target.id)).includes("JS-2"), 10_000);
    expect(await ordersOf(source.id)).toEqual(["JS-1"]);

    const merged = await admin.post<Profile>(`${base}/${target.id}/merge`, { source_id: source.id });
    expect(merged.status).toBe(200);
    expect(await ordersOf(target.id)).toEqual(["JS-1", "JS-2"]);
    expect((await admin.get(`${base}/${source.id}`)).status).toBe(404);
    const again = await admin.post(`${base}/${target.id}/merge`, { source_id: source.id });
    expect(again.status).toBe(404);
    expect((await admin.post(`${base}/${target.id}/merge`, { source_id: target.id })).status).toBe(400);
  });

  // Last on purpose: checks every answer the tests above received.
  it("answered every request of this suite in the documented shape (the OpenAPI document's schemas)", () => {
    expect(exchanges.length).toBeGreaterThan(50);
    expect(undocumentedAnswers(exchanges)).toEqual([]);
    expect(routesNeverAnswered(exchanges, profileRoutes)).toEqual([]);
  });
});
