import type { AuthToken } from "../../../shared/contracts/auth";
import type { AccessResult, ImportResult, Membership, ProfileList, ProfileListMember } from "../../../shared/contracts/profile-lists";
import type { ConnectResult, Profile } from "../../../shared/contracts/profiles";
import { uuidv7 } from "../../../shared/ids";
import { profileListRoutes } from "../../../shared/routes/profile-lists";
import { routesNeverAnswered, undocumentedAnswers } from "../../../test/harness/documented";
import { deleteStreams, httpClient, startCluster, type Cluster, type HttpClient, type ObservedExchange } from "../../../test/harness";
import { LINK_ORIGIN, mailerStandIn, newStoreId, type MailerStandIn } from "./helpers";

const ADMIN_KEY = "crm_sk_profile_lists_http_test_key";

describe("profile-list routes over HTTP and NATS", () => {
  let cluster: Cluster;
  let http: HttpClient;
  let admin: HttpClient;
  const mailer: MailerStandIn = { templates: new Map(), sent: [], codes: new Map(), down: false };
  const store = newStoreId();
  const lists = `/v1/stores/${store}/profile-lists`;
  const storefront = `/v1/storefront/${store}/profile-lists`;
  const exchanges: ObservedExchange[] = [];

  beforeAll(async () => {
    // billing runs without Stripe keys here: paid subscribe answers its 503 (paid.test.ts and test/e2e-paid.test.ts cover the configured flow).
    cluster = await startCluster(["gateway", "auth", "profiles", "profile-lists", "billing", mailerStandIn(mailer)], {
      env: {
        JWT_SECRET: "profile-lists-http-test-secret-0123456789",
        CRM_ADMIN_API_KEY: ADMIN_KEY,
        LINK_ORIGINS: LINK_ORIGIN,
        PUBLIC_URL: "https://crm.shop.example",
        IMPORT_BODY_LIMIT: "256kb",
        STRIPE_SECRET_KEY: undefined,
        STRIPE_WEBHOOK_SECRET: undefined,
      },
    });
    http = httpClient(cluster.url!, {}, (exchange) => exchanges.push(exchange));
    admin = http.with({ authorization: `Bearer ${ADMIN_KEY}` });
  }, 60_000);

  afterAll(async () => {
    await cluster?.stop();
    if (cluster) await deleteStreams(cluster.channelPrefix);
  });

  async function session(email: string, storeId = store) {
    const init = await http.post<AuthToken>(`/v1/stores/${storeId}/profiles/initialize`, {});
    const connected = await http.with({ authorization: `Bearer ${init.body.access_token}` }).post<ConnectResult>(`/v1/stores/${storeId}/profiles/connect`, { email });
    return { id: connected.body.id, client: http.with({ authorization: `Bearer ${connected.body.token.access_token}` }) };
  }

  it("admin: create (409 on a taken key), get, find, update (400 naming type), 401 without the key", async () => {
    expect((await http.post(lists, { key: "news" })).status).toBe(401);
    const created = await admin.post<ProfileList>(lists, { key: "news", name: "Newsletter" });
    expect(created.status).toBe(200);
    expect((await admin.post(lists, { key: "news" })).status).toBe(409);
    expect((await admin.post(lists, { key: "bad key" })).status).toBe(400);
    expect((await admin.get<ProfileList>(`${lists}/${created.body.id}`)).body.key).toBe("news");
    const found = await admin.get<{ items: ProfileList[] }>(lists, { query: { query: "newsl", ids: JSON.stringify([created.body.id]), status: "active" } });
    expect(found.body.items.map((l) => l.id)).toEqual([created.body.id]);
    const bad = await admin.put(`${lists}/${created.body.id}`, {
      type: { type: "paid", prices: [{ currency: "usd", amount: 1, providers: [{ type: "stripe", id: "p" }] }] },
    });
    expect(bad.status).toBe(400);
    expect(bad.body.validationErrors.map((e: { field: string }) => e.field)).toEqual(["type"]);
    expect((await admin.put<ProfileList>(`${lists}/${created.body.id}`, { description: "weekly" })).body.description).toBe("weekly");
    expect((await admin.get(`/v1/stores/${newStoreId()}/profile-lists/${created.body.id}`)).status).toBe(404);
  });

  it("storefront: subscribe (403 for another profile, 401 without a session, 400/503 for a paid list), confirm, access, unsubscribe", async () => {
    const template = uuidv7();
    mailer.templates.set(template, store);
    const list = (await admin.post<ProfileList>(lists, { key: "double", type: { type: "confirmation", confirm_template_id: template } })).body;
    const paid = (
      await admin.post<ProfileList>(lists, {
        key: "paid",
        type: { type: "paid", prices: [{ currency: "usd", amount: 100, providers: [{ type: "stripe", id: "price_1" }] }] },
      })
    ).body;
    const me = await session("http-sub@example.com");
    const other = await session("http-other@example.com");

    expect((await http.post(`${storefront}/${list.id}/subscribe`, { profile_id: me.id, confirm_url: `${LINK_ORIGIN}/c` })).status).toBe(401);
    expect((await other.client.post(`${storefront}/${list.id}/subscribe`, { profile_id: me.id, confirm_url: `${LINK_ORIGIN}/c` })).status).toBe(403);
    expect((await me.client.post(`${storefront}/${list.id}/subscribe`, { profile_id: me.id, confirm_url: "https://evil.example/c" })).status).toBe(400);
    const noPrice = await me.client.post(`${storefront}/${paid.id}/subscribe`, { profile_id: me.id });
    expect(noPrice.status).toBe(400);
    expect(noPrice.body.validationErrors.map((e: { field: string }) => e.field)).toEqual(["price_id"]);
    const checkout = { profile_id: me.id, price_id: "price_1", success_url: `${LINK_ORIGIN}/ok`, cancel_url: `${LINK_ORIGIN}/no` };
    const unconfigured = await me.client.post(`${storefront}/${paid.id}/subscribe`, checkout);
    expect(unconfigured.status).toBe(503);
    expect(unconfigured.body.message).toMatch(/billing is not configured/);
    expect(unconfigured.headers["retry-after"]).toBe("3600"); // a setting, not an outage of seconds

    const sub = await me.client.post<{ membership: Membership }>(`${storefront}/${list.id}/subscribe`, { profile_id: me.id, confirm_url: `${LINK_ORIGIN}/c` });
    expect(sub.status).toBe(200);
    expect(sub.body.membership.status).toBe("pending");
    const again = await me.client.post(`${storefront}/${list.id}/subscribe`, { profile_id: me.id, confirm_url: `${LINK_ORIGIN}/c` });
    expect(again.status).toBe(429);
    expect(Number(again.headers["retry-after"])).toBeGreaterThan(0);

    const mail = mailer.sent.find((m) => m.to === "http-sub@example.com")!;
    const token = new URL(String(mail.vars.confirm_url)).searchParams.get("token")!;
    expect((await http.post(`${storefront}/${list.id}/confirm`, { token: "x".repeat(40) })).status).toBe(400);
    expect((await http.post<Membership>(`${storefront}/${list.id}/confirm`, { token })).body.status).toBe("active");
    expect((await me.client.get<AccessResult>(`${storefront}/${list.id}/access`)).body.has_access).toBe(true);
    expect((await http.get(`${storefront}/${list.id}/access`)).status).toBe(401);

    expect((await other.client.post(`${storefront}/${list.id}/unsubscribe`, { profile_id: me.id })).status).toBe(403);
    const left = await me.client.post<{ membership: Membership }>(`${storefront}/${list.id}/unsubscribe`, {});
    expect(left.body.membership.status).toBe("unsubscribed");
    expect((await me.client.get<AccessResult>(`${storefront}/${list.id}/access`)).body.has_access).toBe(false);
  });

  it("one-click unsubscribe (RFC 8058): the mail's link takes a form body with no session; a form body elsewhere is 415", async () => {
    const template = uuidv7();
    mailer.templates.set(template, store);
    const one = (await admin.post<ProfileList>(lists, { key: "oneclick", type: { type: "confirmation", confirm_template_id: template } })).body;
    const two = (await admin.post<ProfileList>(lists, { key: "oneclick2", type: { type: "confirmation", confirm_template_id: template } })).body;
    const me = await session("http-oneclick@example.com");
    await me.client.post(`${storefront}/${one.id}/subscribe`, { profile_id: me.id, confirm_url: `${LINK_ORIGIN}/c` });
    await me.client.post(`${storefront}/${two.id}/subscribe`, { profile_id: me.id, confirm_url: `${LINK_ORIGIN}/c` });
    const [first, second] = mailer.sent.filter((m) => m.to === "http-oneclick@example.com").map((m) => new URL(m.list_unsubscribe.url));
    const post = (url: URL, init: RequestInit) => fetch(`${cluster.url}${url.pathname}${url.search}`, { method: "POST", ...init });

    const form = await post(first, { headers: { "content-type": "application/x-www-form-urlencoded" }, body: "List-Unsubscribe=One-Click" });
    expect(form.status).toBe(200);
    expect(((await form.json()) as { membership: Membership }).membership.status).toBe("unsubscribed");
    const boundary = "----crmtest";
    const multipart = `--${boundary}\r\nContent-Disposition: form-data; name="List-Unsubscribe"\r\n\r\nOne-Click\r\n--${boundary}--\r\n`;
    const viaMultipart = await post(second, { headers: { "content-type": `multipart/form-data; boundary=${boundary}` }, body: multipart });
    expect(viaMultipart.status).toBe(200);
    expect((await me.client.get<AccessResult>(`${storefront}/${two.id}/access`)).body.membership?.status).toBe("unsubscribed");
    // No body at all, and the JSON form of the same: the token in the query is enough.
    expect((await post(first, {})).status).toBe(200);
    expect((await http.post(`${first.pathname}${first.search}`, {})).status).toBe(200);
    // A form body on a route that takes none.
    const elsewhere = await fetch(`${cluster.url}${storefront}/${one.id}/confirm`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: "token=abc",
    });
    expect(elsewhere.status).toBe(415);
    expect((await http.post(`/v1/storefront/${newStoreId()}/profile-lists/${one.id}/unsubscribe`, { token: first.searchParams.get("token") })).status).toBe(404);
  });

  it("admin members: add, list, remove", async () => {
    const list = (await admin.post<ProfileList>(lists, { key: "members" })).body;
    const p = await session("http-member@example.com");
    const added = await admin.post<Membership>(`${lists}/${list.id}/profiles/${p.id}`, {});
    expect(added.body).toMatchObject({ status: "active", source: "admin" });
    expect((await admin.post<Membership>(`${lists}/${list.id}/profiles/${p.id}`, {})).body).toEqual(added.body);
    const page = await admin.get<{ items: ProfileListMember[]; cursor: string | null }>(`${lists}/${list.id}/profiles`, { query: { status: "active" } });
    expect(page.body.items.map((m) => m.profile.email)).toEqual(["http-member@example.com"]);
    // ?at_period_end=true is for a running paid subscription only.
    const atPeriodEnd = await admin.delete(`${lists}/${list.id}/profiles/${p.id}`, { query: { at_period_end: "true" } });
    expect(atPeriodEnd.status).toBe(400);
    expect(atPeriodEnd.body.validationErrors.map((e: { field: string }) => e.field)).toEqual(["at_period_end"]);
    expect((await admin.delete(`${lists}/${list.id}/profiles/${p.id}`, { query: { at_period_end: "maybe" } })).status).toBe(400);
    expect((await admin.delete(`${lists}/${list.id}/profiles/${p.id}`)).body).toEqual({ deleted: true });
    expect((await admin.delete(`${lists}/${list.id}/profiles/${p.id}`)).status).toBe(404);
    expect((await p.client.get<AccessResult>(`${storefront}/${list.id}/access`)).body.has_access).toBe(false);
  });

  it("import: JSON rows, a streamed text/csv body (BOM, CRLF, quotes), 413 past IMPORT_BODY_LIMIT (declared or chunked), 415, another store's list", async () => {
    const list = (await admin.post<ProfileList>(lists, { key: "imported" })).body;
    const url = `${lists}/${list.id}/profiles/import`;
    const json = await admin.post<ImportResult>(url, { rows: [{ email: "imp1@example.com", fields: { "crm.tier": "gold" } }, { email: "nope" }] });
    expect(json.status).toBe(200);
    expect(json.body).toMatchObject({ rows_total: 2, profiles_created: 1, profiles_added: 1, rows_failed: 1, errors: [{ row: 2, field: "email" }] });

    const csv = '\ufeffEmail,Name\r\nimp1@example.com,"Doe, Jane"\r\nimp2@example.com,"Bob ""B"""\r\n';
    const streamed = await admin.post<ImportResult>(url, csv, { headers: { "content-type": "text/csv; charset=utf-8" }, query: { email_column: "Email" } });
    expect(streamed.status).toBe(200);
    expect(streamed.body).toEqual({
      rows_total: 2,
      profiles_created: 1,
      profiles_updated: 1,
      profiles_added: 1,
      profiles_updated_in_list: 0,
      rows_failed: 0,
      errors: [],
    });
    expect((await admin.get<ProfileList>(`${lists}/${list.id}`)).body.member_count).toBe(2);

    const big = `email\n${"x".repeat(300 * 1024)}@example.com\n`;
    const declared = await admin.post(url, big, { headers: { "content-type": "text/csv" } });
    expect(declared.status).toBe(413);
    expect((declared.body as { message: string }).message).toBe("Request body is too large: at most 256 KB (IMPORT_BODY_LIMIT)");
    // No Content-Length: the limit is met while the body streams to the service over NATS.
    const chunks = [Buffer.from("email\n"), ...Array.from({ length: 40 }, (_, i) => Buffer.from(`chunked${i}${"y".repeat(8 * 1024)}@example.com\n`))];
    const chunked = await fetch(`${cluster.url}${url}`, {
      method: "POST",
      headers: { authorization: `Bearer ${ADMIN_KEY}`, "content-type": "text/csv" },
      body: new ReadableStream<Uint8Array>({
        pull(controller) {
          const next = chunks.shift();
          if (next) controller.enqueue(next);
          else controller.close();
        },
      }),
      duplex: "half",
    } as RequestInit);
    expect(chunked.status).toBe(413);
    // The rows read before the limit are imported (batches are written as the body streams): the answer says so.
    const tooLarge = (await chunked.json()) as { statusCode: number; error: string; message: string };
    expect(tooLarge).toMatchObject({ statusCode: 413, error: "PAYLOAD_TOO_LARGE" });
    const told =
      /^Request body is too large: at most 256 KB \(IMPORT_BODY_LIMIT\)\. The (\d+) rows before it were imported \(0 profiles created, 0 updated, 0 added to the list, (\d+) failed\); the rest of the body was not read\./.exec(
        tooLarge.message,
      );
    expect(told).not.toBeNull();
    // Each row's address has a local part over 64 characters: every row read failed, and none was added.
    expect(Number(told?.[1])).toBeGreaterThan(0);
    expect(told?.[2]).toBe(told?.[1]);
    expect((await admin.get<ProfileList>(`${lists}/${list.id}`)).body.member_count).toBe(2);

    expect((await admin.post(url, "email\nx@example.com", { headers: { "content-type": "text/plain" } })).status).toBe(415);
    expect((await admin.post(`/v1/stores/${newStoreId()}/profile-lists/${list.id}/profiles/import`, { rows: [{ email: "x@example.com" }] })).status).toBe(404);
  });

  it("imports profiles without a list (the profile-lists engine): rows upserted by e-mail, taxonomies merged, list counters 0", async () => {
    const profilesBase = `/v1/stores/${store}/profiles`;
    const csv = "email,crm.tier\r\nimport-a@example.com,gold\r\nimport-b@example.com,silver\r\n";
    const first = await admin.post(`${profilesBase}/import`, csv, { headers: { "content-type": "text/csv" } });
    expect(first.status).toBe(200);
    expect(first.body).toEqual({ rows_total: 2, profiles_created: 2, profiles_updated: 0, profiles_added: 0, profiles_updated_in_list: 0, rows_failed: 0, errors: [] });
    const second = await admin.post(`${profilesBase}/import`, {
      rows: [
        { email: "IMPORT-A@example.com", fields: { "crm.tier": "platinum" } },
        { email: "import-b@example.com", fields: { "crm.tier": "silver" } },
      ],
    });
    expect(second.body).toMatchObject({ rows_total: 2, profiles_created: 0, profiles_updated: 1 });
    const found = await admin.get<{ items: Profile[] }>(profilesBase, { query: { query: "import-a" } });
    expect(found.body.items.map((p) => p.taxonomies)).toEqual([[{ taxonomy_id: "crm", fields: [expect.objectContaining({ key: "tier", value: "platinum" })] }]]);
  });

  // Last on purpose: checks every answer the tests above received.
  it("answered every request of this suite in the documented shape (the OpenAPI document's schemas)", () => {
    expect(undocumentedAnswers(exchanges)).toEqual([]);
    expect(routesNeverAnswered(exchanges, profileListRoutes)).toEqual([]);
  });
});
