/**
 * The spec's Profile Lists, driven only through the typed SDK against the real system: every service on
 * its own broker over the real NATS bus, HTTP through the gateway, mail read from a real SMTP server.
 * A back office (admin key) writes a confirmation template, creates a standard and a confirmation list,
 * imports profiles (JSON rows, a text/csv body) and pages through the members; a storefront session
 * subscribes, checks access and unsubscribes; the double opt-in link is confirmed and the mail's
 * unsubscribe token used, both without a session. Every answer the SDK got is checked against the
 * documented shapes at the end.
 */
import { randomUUID } from "node:crypto";
import { createCrmClient, CrmApiError, type CrmClient, type ProfileList } from "../sdk";
import { mailerRoutes } from "../shared/routes/mailer";
import { profileListRoutes } from "../shared/routes/profile-lists";
import { routesNeverAnswered, undocumentedAnswers } from "./harness/documented";
import { deleteStreams, startCluster, startSmtpServer, type Cluster, type ObservedExchange, type SmtpTestServer } from "./harness";

const PLATFORM_KEY = `e2e-sdk-lists-${randomUUID()}`;
const SHOP = "https://yoursite.com";
const PUBLIC_URL = "https://crm.yoursite.com";

async function apiError(promise: Promise<unknown>): Promise<CrmApiError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(CrmApiError);
  return err as CrmApiError;
}

describe("Profile lists through the SDK, over NATS through the gateway", () => {
  let cluster: Cluster;
  let smtp: SmtpTestServer;
  let admin: CrmClient;
  const storeId = randomUUID();
  /** Every answer any SDK client of this suite got (checked last against the documented shapes). */
  const exchanges: ObservedExchange[] = [];

  /** The global fetch, recording each answer as the harness's documented-shape check reads it. */
  const recordingFetch = (async (input: string | URL | Request, init?: RequestInit) => {
    const response = await fetch(input, init);
    const text = await response.clone().text();
    let body: unknown = text;
    if ((response.headers.get("content-type") ?? "").includes("json") && text) body = JSON.parse(text);
    const headers: Record<string, string> = {};
    response.headers.forEach((value, key) => {
      headers[key] = value;
    });
    exchanges.push({ method: init?.method ?? "GET", path: new URL(String(input)).pathname, response: { status: response.status, headers, body, text } });
    return response;
  }) as typeof fetch;

  /** A storefront client (no admin key) with a session store of its own. */
  const storefront = () => createCrmClient({ baseUrl: cluster.url!, storeId, fetch: recordingFetch });

  beforeAll(async () => {
    smtp = await startSmtpServer();
    cluster = await startCluster(["gateway", "auth", "profiles", "profile-lists", "mailer"], {
      env: { SMTP_URL: smtp.url, JWT_SECRET: `e2e-${randomUUID()}`, CRM_ADMIN_API_KEY: PLATFORM_KEY, LINK_ORIGINS: SHOP, PUBLIC_URL },
    });
    admin = createCrmClient({ baseUrl: cluster.url!, storeId, apiKey: PLATFORM_KEY, fetch: recordingFetch });
  }, 60_000);

  afterAll(async () => {
    await cluster?.stop();
    if (cluster) await deleteStreams(cluster.channelPrefix);
    await smtp?.close();
  });

  /** A standard list and a confirmation list (with a template of its own) under keys ending in `suffix`. */
  async function createLists(suffix: string): Promise<{ standard: ProfileList; confirmation: ProfileList; templateId: string }> {
    const text = "Hi {{profile.email}}, confirm {{list.name}}: {{confirm_url}}\nUnsubscribe: {{unsubscribe_url}}";
    const template = await admin.crm.emailTemplate.create({ key: `confirm-${suffix}`, subject: "Confirm {{list.name}}", html: `<p>${text}</p>`, text });
    const standard = await admin.crm.profileList.create({ key: `news-${suffix}`, name: `News ${suffix}` });
    const confirmation = await admin.crm.profileList.create({
      key: `weekly-${suffix}`,
      name: `Weekly ${suffix}`,
      description: "double opt-in",
      type: { type: "confirmation", confirm_template_id: template.id },
    });
    return { standard, confirmation, templateId: template.id };
  }

  it("e-mail templates: create, get, find, update, preview (strict about missing vars), delete", async () => {
    const created = await admin.crm.emailTemplate.create({
      key: "welcome",
      subject: "Welcome to {{list.name}}",
      html: "<p>Hello {{profile.email}}</p>",
      text: "Hello {{profile.email}}",
    });
    expect(created).toMatchObject({ store_id: storeId, key: "welcome", name: "welcome", status: "active", text: "Hello {{profile.email}}" });
    await expect(admin.crm.emailTemplate.get({ id: created.id })).resolves.toEqual(created);

    const found = await admin.crm.emailTemplate.find({ query: "welc" });
    expect(found.items.map((t) => t.id)).toEqual([created.id]);
    expect((await admin.crm.emailTemplate.find({ ids: [created.id], status: "archived" })).items).toEqual([]);

    const updated = await admin.crm.emailTemplate.update({ id: created.id, name: "Welcome mail", html: "<p>Hello {{profile.email}} <b>{{list.name}}</b></p>" });
    expect(updated).toMatchObject({ id: created.id, name: "Welcome mail", key: "welcome" });

    const rendered = await admin.crm.emailTemplate.preview({ id: created.id, vars: { profile: { email: "ada@example.com" }, list: { name: "<News>" } } });
    expect(rendered).toEqual({ subject: "Welcome to <News>", html: "<p>Hello ada@example.com <b>&lt;News&gt;</b></p>", text: "Hello ada@example.com" });
    const missing = await apiError(admin.crm.emailTemplate.preview({ id: created.id }));
    expect(missing.status).toBe(400);
    expect(missing.validationErrors.map((e) => e.field)).toContain("vars");

    const taken = await apiError(admin.crm.emailTemplate.create({ key: "welcome", subject: "x", html: "x" }));
    expect(taken.code).toBe("CONFLICT");
    await expect(admin.crm.emailTemplate.delete({ id: created.id })).resolves.toEqual({ deleted: true });
    expect((await apiError(admin.crm.emailTemplate.get({ id: created.id }))).code).toBe("NOT_FOUND");
  });

  it("admin: creates a standard and a confirmation list, finds, gets and updates them", async () => {
    const { standard, confirmation, templateId } = await createLists("admin");
    expect(standard).toMatchObject({ store_id: storeId, key: "news-admin", status: "active", type: { type: "standard" }, member_count: 0, description: null });
    expect(confirmation).toMatchObject({ type: { type: "confirmation", confirm_template_id: templateId }, confirm_template_missing: false, member_count: 0 });

    await expect(admin.crm.profileList.get({ id: standard.id })).resolves.toEqual(standard);
    const both = await admin.crm.profileList.find({ ids: [standard.id, confirmation.id] });
    expect(both.items.map((l) => l.id).sort()).toEqual([standard.id, confirmation.id].sort());
    expect((await admin.crm.profileList.find({ query: "weekly-adm" })).items.map((l) => l.id)).toEqual([confirmation.id]);

    const renamed = await admin.crm.profileList.update({ id: standard.id, name: "Daily news", status: "draft" });
    expect(renamed).toMatchObject({ id: standard.id, name: "Daily news", status: "draft", type: { type: "standard" } });
    expect((await admin.crm.profileList.find({ ids: [standard.id, confirmation.id], status: "draft" })).items.map((l) => l.id)).toEqual([standard.id]);

    expect((await apiError(admin.crm.profileList.create({ key: "news-admin" }))).code).toBe("CONFLICT");
    const changeKind = await apiError(admin.crm.profileList.update({ id: standard.id, type: { type: "confirmation" } }));
    expect(changeKind.status).toBe(400);
    expect(changeKind.validationErrors.map((e) => e.field)).toContain("type");
    // A storefront client has no admin key: it sends nothing.
    await expect(storefront().crm.profileList.get({ id: standard.id })).rejects.toThrow(/needs an admin API key/);
  });

  it("admin: adds and removes a member by profile id", async () => {
    const { standard } = await createLists("members");
    const profile = await admin.crm.create({ email: "added@example.com" });
    const membership = await admin.crm.profileList.profiles.add({ id: standard.id, profileId: profile.id });
    expect(membership).toMatchObject({ profile_list_id: standard.id, profile_id: profile.id, status: "active", source: "admin", consent: { method: "admin" } });
    // Already present: answered unchanged.
    await expect(admin.crm.profileList.profiles.add({ id: standard.id, profileId: profile.id })).resolves.toEqual(membership);
    expect((await admin.crm.profileList.get({ id: standard.id })).member_count).toBe(1);

    await expect(admin.crm.profileList.profiles.remove({ id: standard.id, profileId: profile.id })).resolves.toEqual({ deleted: true });
    expect((await admin.crm.profileList.get({ id: standard.id })).member_count).toBe(0);
    expect((await admin.crm.profileList.profiles.find({ id: standard.id, status: "active" })).items).toEqual([]);
  });

  it("admin: imports profiles with JSON rows and with a text/csv body, then pages through the members", async () => {
    const { standard, confirmation } = await createLists("import");

    const fromRows = await admin.crm.profileList.importProfiles({
      id: standard.id,
      rows: [{ email: "ada@example.com", fields: { color: "teal" } }, { email: "grace@example.com" }],
    });
    expect(fromRows).toEqual({ rows_total: 2, profiles_created: 2, profiles_updated: 0, profiles_added: 2, profiles_updated_in_list: 0, rows_failed: 0, errors: [] });
    expect((await admin.crm.profileList.get({ id: standard.id })).member_count).toBe(2);

    // The same rows again change nothing: an unchanged row counts in none of the counters.
    const again = await admin.crm.profileList.importProfiles({ id: standard.id, rows: [{ email: "ADA@example.com", fields: { color: "teal" } }] });
    expect(again).toMatchObject({ rows_total: 1, profiles_created: 0, profiles_updated: 0, profiles_added: 0, profiles_updated_in_list: 0, rows_failed: 0 });

    // A text/csv body (email_column in the query string): ada's data changes, linus is new, a bad row is reported.
    const fromCsv = await admin.crm.profileList.importProfiles({
      id: confirmation.id,
      csvBody: "mail,color\nada@example.com,red\nlinus@example.com,blue\nnot-an-address,green\n",
      email_column: "mail",
    });
    expect(fromCsv).toMatchObject({ rows_total: 3, profiles_created: 1, profiles_updated: 1, profiles_added: 2, profiles_updated_in_list: 0, rows_failed: 1 });
    expect(fromCsv.errors).toEqual([expect.objectContaining({ row: 3 })]);

    // Members, oldest first, a page at a time; imported members are active with source import.
    const first = await admin.crm.profileList.profiles.find({ id: confirmation.id, limit: 1 });
    expect(first.items).toHaveLength(1);
    expect(first.cursor).toEqual(expect.any(String));
    const second = await admin.crm.profileList.profiles.find({ id: confirmation.id, limit: 1, cursor: first.cursor! });
    expect(second.cursor).toBeNull();
    const members = [...first.items, ...second.items];
    expect(members.map((m) => m.profile.email).sort()).toEqual(["ada@example.com", "linus@example.com"]);
    for (const { profile, membership } of members) {
      expect(membership).toMatchObject({ profile_list_id: confirmation.id, profile_id: profile.id, status: "active", source: "import", consent: { method: "import" } });
    }
    const ada = members.find((m) => m.profile.email === "ada@example.com")!.profile;
    expect(ada.taxonomies).toEqual([{ taxonomy_id: "import", fields: [expect.objectContaining({ key: "color", type: "text", value: "red" })] }]);
    expect((await admin.crm.profileList.profiles.find({ id: standard.id })).items.map((m) => m.profile.email).sort()).toEqual(["ada@example.com", "grace@example.com"]);

    // Without a list (POST /profiles/import): profiles only, the list counters at 0; a Blob body this time.
    const noList = await admin.crm.importProfiles({ csvBody: new Blob(["email\nada@example.com\nnew-reader@example.com\n"]) });
    expect(noList).toEqual({ rows_total: 2, profiles_created: 1, profiles_updated: 0, profiles_added: 0, profiles_updated_in_list: 0, rows_failed: 0, errors: [] });
    expect((await admin.crm.find({ query: "new-reader@" })).items.map((p) => p.email)).toEqual(["new-reader@example.com"]);
    // A stream body goes out chunked, with no length known up front.
    const bytes = new TextEncoder().encode("email\nstream-reader@example.com\nnew-reader@example.com\n");
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(bytes.subarray(0, 12));
        controller.enqueue(bytes.subarray(12));
        controller.close();
      },
    });
    await expect(admin.crm.importProfiles({ csvBody: stream })).resolves.toMatchObject({ rows_total: 2, profiles_created: 1, profiles_updated: 0, rows_failed: 0 });
    expect((await admin.crm.profileList.get({ id: standard.id })).member_count).toBe(2);
  });

  it("storefront: a session subscribes to the standard list (access at once), checks access, unsubscribes (access false)", async () => {
    const { standard } = await createLists("storefront");
    const sdk = storefront();
    await expect(sdk.crm.profileList.checkAccess({ id: standard.id })).rejects.toMatchObject({ status: 401, code: "UNAUTHENTICATED" });

    await sdk.crm.initialize();
    const { id: profileId } = await sdk.crm.connect({ email: "shopper@example.com" });
    await expect(sdk.crm.profileList.checkAccess({ id: standard.id })).resolves.toEqual({ has_access: false, membership: null });

    // profile_id is the session's own when left out.
    const subscribed = await sdk.crm.profileList.subscribe({ id: standard.id });
    expect(subscribed).toMatchObject({ checkout_url: null, membership: { profile_id: profileId, status: "active", source: "signup", consent: { method: "signup" } } });
    const access = await sdk.crm.profileList.checkAccess({ id: standard.id });
    expect(access).toMatchObject({ has_access: true, membership: { id: subscribed.membership.id, status: "active" } });
    expect((await admin.crm.profileList.get({ id: standard.id })).member_count).toBe(1);

    // A session acts for its own profile only.
    const other = await admin.crm.create({ email: "someone-else@example.com" });
    expect(await apiError(sdk.crm.profileList.subscribe({ id: standard.id, profile_id: other.id }))).toMatchObject({ status: 403, code: "FORBIDDEN" });

    const left = await sdk.crm.profileList.unsubscribe({ id: standard.id });
    expect(left.membership).toMatchObject({ id: subscribed.membership.id, status: "unsubscribed" });
    await expect(sdk.crm.profileList.checkAccess({ id: standard.id })).resolves.toMatchObject({ has_access: false, membership: { status: "unsubscribed" } });
    expect((await admin.crm.profileList.get({ id: standard.id })).member_count).toBe(0);
  });

  it("storefront: double opt-in, confirmed and unsubscribed with the mailed tokens and no session", async () => {
    const { confirmation } = await createLists("optin");
    const sdk = storefront();
    await sdk.crm.initialize();
    const { id: profileId } = await sdk.crm.connect({ email: "reader@example.com" });

    const pending = await sdk.crm.profileList.subscribe({ id: confirmation.id, profile_id: profileId, confirm_url: `${SHOP}/confirm` });
    expect(pending).toMatchObject({ checkout_url: null, membership: { status: "pending", profile_id: profileId } });
    await expect(sdk.crm.profileList.checkAccess({ id: confirmation.id })).resolves.toMatchObject({ has_access: false, membership: { status: "pending" } });

    const mail = await smtp.waitForMessage((m) => m.to.includes("reader@example.com"), 15_000);
    expect(mail.subject).toBe("Confirm Weekly optin");
    const link = new URL(/https:\/\/yoursite\.com\/confirm\?\S+/.exec(mail.text)![0]);
    expect(link.searchParams.get("profile_list_id")).toBe(confirmation.id);
    const token = link.searchParams.get("token")!;

    // The confirmation page has no session: the token is the credential.
    const page = storefront();
    const confirmed = await page.crm.profileList.confirm({ id: confirmation.id, token });
    expect(confirmed).toMatchObject({ id: pending.membership.id, status: "active", consent: { method: "double_opt_in", confirmed_at: expect.any(Number) } });
    expect(await apiError(page.crm.profileList.confirm({ id: confirmation.id, token }))).toMatchObject({ status: 400 });
    await expect(sdk.crm.profileList.checkAccess({ id: confirmation.id })).resolves.toMatchObject({ has_access: true, membership: { status: "active" } });

    // The mail's List-Unsubscribe link carries a token that works without a session.
    const unsubscribeUrl = new URL(/<([^>]+)>/.exec(mail.headers["list-unsubscribe"])![1]);
    expect(unsubscribeUrl.pathname).toBe(`/v1/storefront/${storeId}/profile-lists/${confirmation.id}/unsubscribe`);
    const left = await page.crm.profileList.unsubscribe({ id: confirmation.id, token: unsubscribeUrl.searchParams.get("token")! });
    expect(left.membership).toMatchObject({ id: pending.membership.id, status: "unsubscribed" });
    await expect(sdk.crm.profileList.checkAccess({ id: confirmation.id })).resolves.toMatchObject({ has_access: false, membership: { status: "unsubscribed" } });
  });

  // Last on purpose: checks every answer the tests above received.
  it("every answer the SDK got was in the documented shape, and every list, import and template route answered", () => {
    expect(exchanges.length).toBeGreaterThan(40);
    expect(undocumentedAnswers(exchanges)).toEqual([]);
    expect(routesNeverAnswered(exchanges, [...profileListRoutes, ...mailerRoutes])).toEqual([]);
  });
});
