import type { EmailTemplate } from "../../../shared/contracts/mailer";
import { uuidv7 } from "../../../shared/ids";
import { mailerRoutes } from "../../../shared/routes/mailer";
import { MailerMessages } from "../mailer.errors";
import { routesNeverAnswered, undocumentedAnswers } from "../../../test/harness/documented";
import { type Cluster, type HttpClient, httpClient, type ObservedExchange, startCluster } from "../../../test/harness";

const ADMIN_KEY = "crm_sk_mailer_http_test_key";

describe("e-mail template routes over HTTP and NATS", () => {
  let cluster: Cluster;
  let http: HttpClient;
  let admin: HttpClient;
  const exchanges: ObservedExchange[] = [];
  const store = uuidv7();
  const base = `/v1/stores/${store}/email-templates`;
  const otherBase = `/v1/stores/${uuidv7()}/email-templates`;
  const template = (key: string, extra: object = {}) => ({
    key,
    subject: "Confirm {{list.name}}",
    html: '<a href="{{confirm_url}}">Confirm</a>',
    text: "Confirm: {{confirm_url}}",
    ...extra,
  });

  beforeAll(async () => {
    cluster = await startCluster(["gateway", "mailer"], {
      env: { SMTP_URL: "smtp://127.0.0.1:9", CRM_ADMIN_API_KEY: ADMIN_KEY, CURSOR_SECRET: "mailer-http-test-cursor-secret" },
    });
    http = httpClient(cluster.url as string, {}, (exchange) => exchanges.push(exchange));
    admin = http.with({ authorization: `Bearer ${ADMIN_KEY}` });
  }, 60_000);

  afterAll(async () => {
    await cluster?.stop();
  });

  it("needs the admin key", async () => {
    expect((await http.get(base)).status).toBe(401);
    expect((await http.post(base, template("anonymous"))).status).toBe(401);
  });

  it("creates, reads, updates, previews and deletes a template", async () => {
    const created = await admin.post<EmailTemplate>(base, template("confirm", { name: "Double opt-in" }));
    expect(created.status).toBe(200);
    expect(created.body).toMatchObject({ store_id: store, key: "confirm", name: "Double opt-in", status: "active", text: "Confirm: {{confirm_url}}" });
    const url = `${base}/${created.body.id}`;
    expect((await admin.get<EmailTemplate>(url)).body).toEqual(created.body);

    const updated = await admin.put<EmailTemplate>(url, { html: "<p>{{profile.email}}</p>", status: "archived" });
    expect(updated.status).toBe(200);
    expect(updated.body).toMatchObject({ html: "<p>{{profile.email}}</p>", status: "archived", subject: created.body.subject });

    const preview = await admin.post(`${url}/preview`, { vars: { list: { name: "News" }, confirm_url: "https://x.example/c?a=1&b=2", profile: { email: "<a@b.c>" } } });
    expect(preview.status).toBe(200);
    expect(preview.body).toEqual({ subject: "Confirm News", html: "<p>&lt;a@b.c&gt;</p>", text: "Confirm: https://x.example/c?a=1&b=2" });
    const missing = await admin.post(`${url}/preview`, { vars: { list: { name: "News" }, confirm_url: "https://x.example/c" } });
    expect(missing.status).toBe(400);
    expect(missing.body).toMatchObject({ error: "VALIDATION_ERROR", validationErrors: [{ field: "vars", error: expect.stringContaining('"email"') }] });

    const deleted = await admin.delete(url);
    expect(deleted.status).toBe(200);
    expect(deleted.body).toEqual({ deleted: true });
    expect((await admin.get(url)).status).toBe(404);
    expect((await admin.delete(url)).status).toBe(404);
  });

  it("answers 409 for a taken key, and 400 naming the field for a bad key, subject, size or a source that does not compile", async () => {
    expect((await admin.post(base, template("taken"))).status).toBe(200);
    const again = await admin.post(base, template("taken"));
    expect(again.status).toBe(409);
    expect(again.body).toMatchObject({ statusCode: 409, error: "CONFLICT" });
    const fieldOf = async (body: object) => {
      const res = await admin.post<{ validationErrors: Array<{ field: string }> }>(base, body);
      expect(res.status).toBe(400);
      return res.body.validationErrors.map((e) => e.field);
    };
    expect(await fieldOf(template("bad key"))).toContain("key");
    expect(await fieldOf(template("crlf", { subject: "Hi\r\nBcc: x@example.com" }))).toContain("subject");
    expect(await fieldOf(template("huge", { text: "x".repeat(256 * 1024 + 1) }))).toContain("text");
    expect(await fieldOf(template("syntax", { html: "<p>{{#each items}}</p>" }))).toEqual(["html"]);
    expect(await fieldOf(template("object", { html: { $ne: null } }))).toContain("html");
    expect((await admin.get(`/v1/stores/not-a-uuid/email-templates`)).status).toBe(400);
  });

  it("answers 400 saying what to fix for a preview that renders too much ({{#each}} nested 7 deep over 10 items), and the process keeps answering", async () => {
    const nested = `${"{{#each @root.a}}".repeat(7)}x${"{{/each}}".repeat(7)}`;
    const created = await admin.post<EmailTemplate>(base, template("nested-loops", { subject: "Loops", html: nested, text: null }));
    expect(created.status).toBe(200);
    const [preview, live] = await Promise.all([
      admin.post(`${base}/${created.body.id}/preview`, { vars: { a: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9] } }),
      http.get("/health/live"),
    ]);
    expect(preview.status).toBe(400);
    expect(preview.body).toMatchObject({
      statusCode: 400,
      error: "VALIDATION_ERROR",
      message: MailerMessages.templateRendersTooMuch,
      validationErrors: [
        { field: "vars", error: "html renders too much: over 10,000 loop iterations (nested {{#each}} over these vars); simplify the loops or the vars" },
      ],
    });
    expect(live.status).toBe(200);
    expect((await admin.post(`${base}/${created.body.id}/preview`, { vars: { a: [0, 1] } })).body).toMatchObject({ html: "x".repeat(128) });
  });

  it("never shows a template of one store to another (404 on every route)", async () => {
    const mine = (await admin.post<EmailTemplate>(base, template("isolated"))).body;
    const theirs = `${otherBase}/${mine.id}`;
    expect((await admin.get(theirs)).status).toBe(404);
    expect((await admin.put(theirs, { subject: "taken over" })).status).toBe(404);
    expect((await admin.post(`${theirs}/preview`, { vars: {} })).status).toBe(404);
    expect((await admin.delete(theirs)).status).toBe(404);
    const list = await admin.get<{ items: EmailTemplate[] }>(otherBase, { query: { ids: [mine.id] } });
    expect(list.status).toBe(200);
    expect(list.body.items).toEqual([]);
    expect((await admin.get<EmailTemplate>(`${base}/${mine.id}`)).body.subject).toBe(mine.subject);
  });

  it("lists with ids (JSON or repeated), status, query, limit and a cursor", async () => {
    const listStore = `/v1/stores/${uuidv7()}/email-templates`;
    const ids: string[] = [];
    for (const key of ["alpha", "beta", "gamma"]) ids.push((await admin.post<EmailTemplate>(listStore, template(key, { name: `${key} letter` }))).body.id);
    await admin.put(`${listStore}/${ids[1]}`, { status: "archived" });
    const keys = (res: { body: { items: EmailTemplate[] } }) => res.body.items.map((t) => t.key);

    const first = await admin.get<{ items: EmailTemplate[]; cursor: string | null }>(listStore, { query: { limit: "2" } });
    expect(keys(first)).toEqual(["gamma", "beta"]);
    const second = await admin.get<{ items: EmailTemplate[]; cursor: string | null }>(listStore, { query: { limit: "2", cursor: first.body.cursor as string } });
    expect(keys(second)).toEqual(["alpha"]);
    expect(second.body.cursor).toBeNull();
    expect((await admin.get(listStore, { query: { limit: "2", status: "active", cursor: first.body.cursor as string } })).status).toBe(400);

    expect(keys(await admin.get(listStore, { query: { ids: [ids[0], ids[2]] } }))).toEqual(["gamma", "alpha"]);
    expect(keys(await admin.get(`${listStore}?ids=${ids[0]}&ids=${ids[1]}`))).toEqual(["beta", "alpha"]);
    expect(keys(await admin.get(listStore, { query: { status: "archived" } }))).toEqual(["beta"]);
    expect(keys(await admin.get(listStore, { query: { query: "LETT" } }))).toEqual(["gamma", "beta", "alpha"]);
    expect(keys(await admin.get(listStore, { query: { query: "gam" } }))).toEqual(["gamma"]);
    expect((await admin.get(listStore, { query: { limit: "0" } })).status).toBe(400);
    expect((await admin.get(listStore, { query: { ids: ["not-a-uuid"] } })).status).toBe(400);
  });

  // Last on purpose: checks every answer the tests above received.
  it("answered every request of this suite in the documented shape (the OpenAPI document's schemas)", () => {
    expect(exchanges.length).toBeGreaterThan(30);
    expect(undocumentedAnswers(exchanges)).toEqual([]);
    expect(routesNeverAnswered(exchanges, mailerRoutes)).toEqual([]);
  });
});
