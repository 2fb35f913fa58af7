/**
 * A store's e-mail templates through the mailer's actions, on a real broker (embedded store in memory)
 * with a real SMTP server: CRUD, key conflicts, store isolation, strict previews and lenient sends, no
 * prototype access, the compiled-template cache, the render budget (loops, steps, characters), and
 * `templateStatus` / `sendTemplate` as the profile-lists service calls them.
 */
import type { ServiceBroker } from "moleculer";
import { type EmailTemplate, isTemplateRenderFailure, TEMPLATE_RENDER_FAILED } from "../../../shared/contracts/mailer";
import { errorOf } from "../../../test/harness/errors";
import { uuidv7 } from "../../../shared/ids";
import { startBroker, startSmtpServer, type SmtpTestServer } from "../../../test/harness";
import { MailerMessages } from "../mailer.errors";
import type { MailerApi } from "../mailer.logic";
import { MAX_TEMPLATE_EXPRESSIONS } from "../template-engine";

const STORE_A = uuidv7();
const STORE_B = uuidv7();

let broker: ServiceBroker;
let smtp: SmtpTestServer;
let mailer: MailerApi;

beforeAll(async () => {
  smtp = await startSmtpServer();
  broker = await startBroker({
    services: ["mailer"],
    env: { SMTP_URL: smtp.url, MAIL_FROM: "Shop <news@shop.example>", CURSOR_SECRET: "mailer-templates-test-cursor-secret" },
  });
  mailer = (broker.getLocalService("mailer") as unknown as { mailer: MailerApi }).mailer;
});

afterAll(async () => {
  await broker?.stop();
  await smtp?.close();
});

const call = <T = unknown>(action: string, params: object) => broker.call<T, object>(`mailer.${action}`, params);

let keys = 0;
const confirmTemplate = (store_id = STORE_A, extra: object = {}) => ({
  store_id,
  key: `confirm-${++keys}`,
  subject: "Confirm your subscription to {{list.name}}",
  html: '<p>Hello {{profile.email}}, <a href="{{confirm_url}}">confirm</a></p>',
  text: "Hello {{profile.email}}, confirm: {{confirm_url}}",
  ...extra,
});

const create = (params: object) => call<EmailTemplate>("createTemplate", params);

describe("mailer templates: create, get, update, delete", () => {
  it("creates an active template whose name defaults to its key, and reads it back", async () => {
    const input = confirmTemplate();
    const created = await create(input);
    expect(created).toEqual({
      id: expect.stringMatching(/^[0-9a-f-]{36}$/),
      store_id: STORE_A,
      key: input.key,
      name: input.key,
      subject: input.subject,
      html: input.html,
      text: input.text,
      status: "active",
      created_at: expect.any(Number),
      updated_at: created.created_at,
    });
    expect(await call("getTemplate", { store_id: STORE_A, id: created.id })).toEqual(created);
    const noText = await create({ ...confirmTemplate(), text: undefined, name: "No text" });
    expect(noText).toMatchObject({ text: null, name: "No text" });
  });

  it("answers 409 CONFLICT for a key already used in the store, and takes the same key in another store", async () => {
    const input = confirmTemplate();
    await create(input);
    expect(await errorOf(create({ ...input, subject: "Other" }))).toMatchObject({ type: "CONFLICT", code: 409, data: { reason: "TEMPLATE_KEY_TAKEN" } });
    await expect(create({ ...input, store_id: STORE_B })).resolves.toMatchObject({ store_id: STORE_B, key: input.key });
    const other = await create(confirmTemplate());
    expect(await errorOf(call("updateTemplate", { store_id: STORE_A, id: other.id, key: input.key }))).toMatchObject({ type: "CONFLICT", code: 409 });
  });

  it("updates only the given fields, and a rendered preview shows the new text at once", async () => {
    const created = await create(confirmTemplate());
    const vars = { profile: { email: "ada@example.com" }, list: { name: "News" }, confirm_url: "https://shop.example/c" };
    expect((await call<{ subject: string }>("previewTemplate", { store_id: STORE_A, id: created.id, vars })).subject).toBe("Confirm your subscription to News");
    const updated = await call<EmailTemplate>("updateTemplate", { store_id: STORE_A, id: created.id, subject: "Please confirm {{list.name}}", status: "archived" });
    expect(updated).toMatchObject({ subject: "Please confirm {{list.name}}", status: "archived", html: created.html, key: created.key });
    expect((await call<{ subject: string }>("previewTemplate", { store_id: STORE_A, id: created.id, vars })).subject).toBe("Please confirm News");
    expect(await call("updateTemplate", { store_id: STORE_A, id: created.id, text: null })).toMatchObject({ text: null });
  });

  it("deletes a template: { deleted: true }, then 404 everywhere", async () => {
    const created = await create(confirmTemplate());
    expect(await call("deleteTemplate", { store_id: STORE_A, id: created.id })).toEqual({ deleted: true });
    for (const [action, params] of [
      ["getTemplate", { id: created.id }],
      ["updateTemplate", { id: created.id, name: "x" }],
      ["deleteTemplate", { id: created.id }],
      ["previewTemplate", { id: created.id, vars: {} }],
    ] as const) {
      expect(await errorOf(call(action, { store_id: STORE_A, ...params }))).toMatchObject({ type: "NOT_FOUND", code: 404, data: { reason: "TEMPLATE_NOT_FOUND" } });
    }
    expect(await call("templateStatus", { store_id: STORE_A, template_id: created.id })).toEqual({ usable: false, archived: false });
  });
});

describe("mailer templates: validation", () => {
  const tooBig = "x".repeat(256 * 1024 + 1);
  it.each([
    ["a key outside the pattern", { key: "not a key!" }, "key"],
    ["a key over 64 characters", { key: "k".repeat(65) }, "key"],
    ["a subject with a line break", { subject: "Hi\r\nBcc: victim@example.com" }, "subject"],
    ["a subject with a Unicode line separator", { subject: "Hi\u2028there" }, "subject"],
    ["a subject with a C1 control character (U+0085, next line)", { subject: "Hi\u0085there" }, "subject"],
    ["a subject over 998 characters", { subject: "s".repeat(999) }, "subject"],
    ["html over 256 KB", { html: tooBig }, "html"],
    ["text over 256 KB", { text: tooBig }, "text"],
    ["html that is not a string", { html: { type: "Program", body: [] } }, "html"],
    ["a status outside active|archived", { status: "deleted" }, "status"],
  ])("refuses %s (400 naming the field)", async (_what, change, field) => {
    const error = await errorOf(create(confirmTemplate(STORE_A, change)));
    // The broker's params check (422 here; the gateway answers 400, see templates.http.test.ts).
    expect(error).toMatchObject({ type: "VALIDATION_ERROR" });
    expect(error.data.map((e: { field: string }) => e.field)).toContain(field);
  });

  it.each([
    ["subject", "Hello {{name"],
    ["html", "<p>{{#if a}}open block</p>"],
    ["text", "{{/each}}"],
    ["html", "{{> header}}"],
    ["text", "{{log 'x'}}"],
    ["html", "{{unknownHelper profile}}"],
    ["html", "{{helperMissing}}{{blockHelperMissing}}"],
    ["text", "{{#with}}x{{/with}}"],
    ["subject", "{{#each}}x{{/each}}"],
  ])("refuses a %s that does not compile (%s) with a 400 naming it, on create and update", async (field, source) => {
    const onCreate = await errorOf(create(confirmTemplate(STORE_A, { [field]: source })));
    expect(onCreate).toMatchObject({ type: "VALIDATION_ERROR", code: 400, data: { validationErrors: [{ field, error: expect.any(String) }] } });
    const created = await create(confirmTemplate());
    const onUpdate = await errorOf(call("updateTemplate", { store_id: STORE_A, id: created.id, [field]: source }));
    expect(onUpdate).toMatchObject({ type: "VALIDATION_ERROR", code: 400, data: { validationErrors: [{ field }] } });
    expect(await call("getTemplate", { store_id: STORE_A, id: created.id })).toEqual(created);
  });
});

describe("mailer templates: nesting", () => {
  it("takes blocks nested 32 deep and refuses 33 (and 5,000, at once) with a 400 naming the field", async () => {
    const nested = (n: number, block = "if") => `${`{{#${block} a}}`.repeat(n)}x${`{{/${block}}}`.repeat(n)}`;
    expect((await create(confirmTemplate(STORE_A, { html: nested(32) }))).html).toBe(nested(32));
    for (const [field, source] of [
      ["html", nested(33)],
      ["text", nested(5000, "with")],
    ]) {
      const error = await errorOf(create(confirmTemplate(STORE_A, { [field]: source })));
      expect(error).toMatchObject({ type: "VALIDATION_ERROR", data: { validationErrors: [{ field, error: expect.stringMatching(/nest deeper than 32/) }] } });
    }
  });

  it("takes 2,000 {{...}} expressions in a part and refuses 2,001 (and 40,000) with a 400 naming the field", async () => {
    const many = (n: number) => "<p>{{profile.email}}</p>".repeat(n);
    expect((await create(confirmTemplate(STORE_A, { html: many(MAX_TEMPLATE_EXPRESSIONS) }))).status).toBe("active");
    for (const [field, source] of [
      ["html", many(MAX_TEMPLATE_EXPRESSIONS + 1)],
      ["text", "{{x}}".repeat(40_000)],
    ]) {
      const error = await errorOf(create(confirmTemplate(STORE_A, { [field]: source })));
      expect(error).toMatchObject({
        type: "VALIDATION_ERROR",
        data: { validationErrors: [{ field, error: expect.stringMatching(/at most 2,000 \{\{\.\.\.\}\} expressions a part/) }] },
      });
    }
  });
});

describe("mailer templates: store isolation", () => {
  it("a template of store A is 404 from store B on every action, and unusable there", async () => {
    const a = await create(confirmTemplate(STORE_A));
    const fromB = { store_id: STORE_B, id: a.id };
    for (const [action, params] of [
      ["getTemplate", fromB],
      ["updateTemplate", { ...fromB, subject: "hijacked" }],
      ["deleteTemplate", fromB],
      ["previewTemplate", { ...fromB, vars: {} }],
      ["sendTemplate", { store_id: STORE_B, template_id: a.id, to: "x@example.com", vars: {} }],
    ] as const) {
      expect(await errorOf(call(action, params))).toMatchObject({ type: "NOT_FOUND", code: 404, data: { reason: "TEMPLATE_NOT_FOUND" } });
    }
    expect(await call("templateStatus", { store_id: STORE_B, template_id: a.id })).toEqual({ usable: false, archived: false });
    expect(await call("getTemplate", { store_id: STORE_A, id: a.id })).toEqual(a);
    const found = await call<{ items: EmailTemplate[] }>("findTemplates", { store_id: STORE_B, ids: [a.id] });
    expect(found.items).toEqual([]);
  });
});

describe("mailer templates: find", () => {
  const store = uuidv7();
  const made: EmailTemplate[] = [];
  beforeAll(async () => {
    for (const [key, name, status] of [
      ["welcome", "Welcome mail", "active"],
      ["confirm-news", "Newsletter double opt-in", "active"],
      ["confirm-offers", "Offers double opt-in", "archived"],
      ["receipt", "Order receipt", "active"],
      ["WELCOME-2", "Second welcome", "active"],
    ] as const) {
      made.push(await create({ store_id: store, key, name, subject: "s", html: "h", status }));
    }
  });
  const find = (params: object) => call<{ items: EmailTemplate[]; cursor: string | null }>("findTemplates", { store_id: store, ...params });
  const keysOf = (page: { items: EmailTemplate[] }) => page.items.map((t) => t.key);

  it("lists newest first, 20 by default, with a keyset cursor to the end", async () => {
    expect(keysOf(await find({}))).toEqual(["WELCOME-2", "receipt", "confirm-offers", "confirm-news", "welcome"]);
    const seen: string[] = [];
    let cursor: string | null | undefined;
    do {
      const page = await find({ limit: 2, ...(cursor ? { cursor } : {}) });
      expect(page.items.length).toBeLessThanOrEqual(2);
      seen.push(...keysOf(page));
      cursor = page.cursor;
    } while (cursor);
    expect(seen).toEqual(["WELCOME-2", "receipt", "confirm-offers", "confirm-news", "welcome"]);
  });

  it("filters by ids, status and query (a prefix of the key or of a word of the name, any case)", async () => {
    expect(keysOf(await find({ ids: [made[0].id, made[3].id] }))).toEqual(["receipt", "welcome"]);
    expect(keysOf(await find({ status: "archived" }))).toEqual(["confirm-offers"]);
    expect(keysOf(await find({ query: "welc" }))).toEqual(["WELCOME-2", "welcome"]);
    expect(keysOf(await find({ query: "OPT" }))).toEqual(["confirm-offers", "confirm-news"]);
    expect(keysOf(await find({ query: "confirm", status: "active" }))).toEqual(["confirm-news"]);
    expect(keysOf(await find({ query: "newsletter double" }))).toEqual(["confirm-news"]);
    expect(keysOf(await find({ query: ".*" }))).toEqual([]);
  });

  it("cuts a page short when its templates' sources pass 512 KB (an answer must fit a NATS message), and the cursor goes on", async () => {
    const big = uuidv7();
    const html = `<p>${"x".repeat(200 * 1024)}</p>`;
    for (const key of ["b1", "b2", "b3", "b4", "b5"]) await create({ store_id: big, key, subject: "s", html });
    const pages: string[][] = [];
    let cursor: string | null | undefined;
    do {
      const page = await call<{ items: EmailTemplate[]; cursor: string | null }>("findTemplates", { store_id: big, ...(cursor ? { cursor } : {}) });
      pages.push(page.items.map((t) => t.key));
      cursor = page.cursor;
    } while (cursor);
    expect(pages).toEqual([["b5", "b4"], ["b3", "b2"], ["b1"]]);
  });

  it("refuses a cursor of another query, a forged one, and an operator object as a value", async () => {
    const page = await find({ limit: 1 });
    expect(await errorOf(find({ limit: 1, status: "active", cursor: page.cursor }))).toMatchObject({ type: "VALIDATION_ERROR" });
    expect(await errorOf(find({ cursor: `${page.cursor}x` }))).toMatchObject({ type: "VALIDATION_ERROR" });
    expect(await errorOf(find({ query: { $ne: null } }))).toMatchObject({ type: "VALIDATION_ERROR" });
    expect(await errorOf(find({ limit: 101 }))).toMatchObject({ type: "VALIDATION_ERROR" });
  });
});

describe("mailer templates: rendering", () => {
  it("previews strictly: a missing variable is a 400 naming vars", async () => {
    const created = await create(confirmTemplate());
    const error = await errorOf(call("previewTemplate", { store_id: STORE_A, id: created.id, vars: { profile: { email: "a@b.c" }, list: { name: "N" } } }));
    expect(error).toMatchObject({ type: "VALIDATION_ERROR", code: 400, data: { validationErrors: [{ field: "vars", error: expect.stringContaining("confirm_url") }] } });
  });

  it("sends leniently: a missing variable is an empty string", async () => {
    const created = await create(confirmTemplate());
    const to = "lenient@example.com";
    await call("sendTemplate", { store_id: STORE_A, template_id: created.id, to, vars: { profile: { email: to } } });
    const mail = await smtp.waitForMessage((m) => m.to.includes(to));
    expect(mail.subject).toBe("Confirm your subscription to");
    expect(mail.text.trim()).toBe(`Hello ${to}, confirm:`);
    expect(mail.html).toContain('<a href="">confirm</a>');
  });

  it("escapes values in html, not in subject and text", async () => {
    const created = await create(confirmTemplate(STORE_A, { subject: "{{list.name}}", html: "<p>{{list.name}}</p>", text: "{{list.name}}" }));
    const out = await call("previewTemplate", { store_id: STORE_A, id: created.id, vars: { list: { name: `<b>"Tom & Jerry"</b>` } } });
    expect(out).toEqual({ subject: `<b>"Tom & Jerry"</b>`, html: "<p>&lt;b&gt;&quot;Tom &amp; Jerry&quot;&lt;/b&gt;</p>", text: `<b>"Tom & Jerry"</b>` });
  });

  const probes = [
    "{{constructor}}",
    "{{constructor.name}}",
    "{{__proto__}}",
    "{{__proto__.constructor.name}}",
    '{{lookup this "constructor"}}',
    '{{lookup (lookup this "constructor") "name"}}',
    "{{#with this.constructor}}{{name}}{{/with}}",
    "{{#with constructor}}{{#with constructor}}{{name}}{{/with}}{{/with}}",
    "{{toString}}",
    "{{valueOf}}",
    "{{hasOwnProperty}}",
    "{{__defineGetter__}}",
    "{{__lookupGetter__}}",
    "{{profile.constructor.name}}",
    "{{profile.email.constructor.name}}",
    "{{list.items.constructor.name}}",
    '{{#each list.items}}{{lookup this "constructor"}}{{/each}}',
    "{{@root.constructor.name}}",
  ];

  it.each(probes)("leaks nothing through %s, in a preview or a send", async (probe) => {
    const created = await create(confirmTemplate(STORE_A, { subject: `s ${probe}`, html: `<i>${probe}</i>`, text: `t ${probe}` }));
    const vars = { profile: { email: "probe@example.com" }, list: { name: "N", items: [{ a: 1 }] } };
    const leaks = (rendered: string) => /function|Object|native code|\[object|String|Array/.test(rendered);
    try {
      const preview = await call<{ subject: string; html: string; text: string }>("previewTemplate", { store_id: STORE_A, id: created.id, vars });
      expect([preview.subject, preview.html, preview.text].filter(leaks)).toEqual([]);
    } catch (err) {
      // Strict mode may refuse the lookup instead: a 400 naming vars, never a value.
      expect(err).toMatchObject({ type: "VALIDATION_ERROR", data: { validationErrors: [{ field: "vars" }] } });
    }
    const to = `probe-${keys}@example.com`;
    await call("sendTemplate", { store_id: STORE_A, template_id: created.id, to, vars });
    const mail = await smtp.waitForMessage((m) => m.to.includes(to));
    expect(mail.subject).toBe("s");
    expect(mail.html).toBe("<i></i>");
    expect(mail.text.trim()).toBe("t");
  });

  it("compiles each template version once (per mode), and a change drops the compiled version", async () => {
    const created = await create(confirmTemplate());
    const vars = { profile: { email: "c@example.com" }, list: { name: "Cached" }, confirm_url: "https://shop.example/c" };
    const preview = () => call<{ subject: string }>("previewTemplate", { store_id: STORE_A, id: created.id, vars });
    const before = mailer.cache.compilations;
    for (let i = 0; i < 5; i++) await preview();
    expect(mailer.cache.compilations - before).toBe(1);
    for (let i = 0; i < 3; i++) await call("sendTemplate", { store_id: STORE_A, template_id: created.id, to: "c@example.com", vars });
    expect(mailer.cache.compilations - before).toBe(2); // the lenient (send) compile of the same version

    await call("updateTemplate", { store_id: STORE_A, id: created.id, subject: "Version two for {{list.name}}" });
    expect((await preview()).subject).toBe("Version two for Cached");
    expect((await preview()).subject).toBe("Version two for Cached");
    expect(mailer.cache.compilations - before).toBe(3);

    // An update that changes nothing keeps the version (and the compiled template).
    await call("updateTemplate", { store_id: STORE_A, id: created.id, subject: "Version two for {{list.name}}" });
    await preview();
    expect(mailer.cache.compilations - before).toBe(3);

    const sizeWith = mailer.cache.size;
    await call("deleteTemplate", { store_id: STORE_A, id: created.id });
    expect(mailer.cache.size).toBe(sizeWith - 1);
  });
});

describe("mailer templates: render budget", () => {
  const nestedEach = (n: number) => `${"{{#each @root.a}}".repeat(n)}x${"{{/each}}".repeat(n)}`;
  const tenItems = Array.from({ length: 10 }, (_, i) => i);
  const preview = (id: string, vars: object) => call<{ subject: string; html: string; text: string | null }>("previewTemplate", { store_id: STORE_A, id, vars });

  it("answers a preview of {{#each}} nested 7 deep over 10 items (10 million iterations) with a 400 saying what to fix", async () => {
    const created = await create(confirmTemplate(STORE_A, { subject: "Loops", html: nestedEach(7), text: null }));
    const error = await errorOf(preview(created.id, { a: tenItems }));
    expect(error).toMatchObject({
      type: "VALIDATION_ERROR",
      code: 400,
      message: MailerMessages.templateRendersTooMuch,
      data: {
        reason: TEMPLATE_RENDER_FAILED,
        validationErrors: [
          { field: "vars", error: "html renders too much: over 10,000 loop iterations (nested {{#each}} over these vars); simplify the loops or the vars" },
        ],
      },
    });
    // The 32 levels the save check lets through stop the same way.
    const deepest = await create(confirmTemplate(STORE_A, { subject: "Loops", html: nestedEach(32), text: null }));
    expect(await errorOf(preview(deepest.id, { a: tenItems }))).toMatchObject({ code: 400, data: { reason: TEMPLATE_RENDER_FAILED } });
  });

  it("still renders real loops: a few hundred items, nested loops under the limit, and exactly 10,000 iterations", async () => {
    const items = Array.from({ length: 300 }, (_, i) => ({ name: `Item <${i}>`, price: i }));
    const list = await create(
      confirmTemplate(STORE_A, {
        subject: "{{items.length}} items",
        html: "<ul>{{#each items}}<li>{{name}}: {{price}}{{#if @last}} (last){{/if}}</li>{{/each}}</ul>",
        text: "{{#each items}}{{@index}}. {{name}}\n{{/each}}",
      }),
    );
    const out = await preview(list.id, { items });
    expect(out.subject).toBe("300 items");
    expect(out.html.match(/<li>/g)).toHaveLength(300);
    expect(out.html).toContain("<li>Item &lt;299&gt;: 299 (last)</li>");
    expect(out.text?.split("\n").filter(Boolean)).toHaveLength(300);

    const grid = await create(confirmTemplate(STORE_A, { subject: "s", html: nestedEach(3), text: null }));
    expect((await preview(grid.id, { a: tenItems })).html).toBe("x".repeat(1000));

    const limit = await create(confirmTemplate(STORE_A, { subject: "s", html: "{{#each a}}x{{/each}}", text: null }));
    expect((await preview(limit.id, { a: Array(10_000).fill(0) })).html).toHaveLength(10_000);
    expect(await errorOf(preview(limit.id, { a: Array(10_001).fill(0) }))).toMatchObject({
      data: { validationErrors: [{ field: "vars", error: expect.stringContaining("over 10,000 loop iterations") }] },
    });
  });

  it("stops a render that writes over 1,000,000 characters in a part, or takes over 200,000 steps", async () => {
    const big = await create(confirmTemplate(STORE_A, { subject: "s", html: "<p>ok</p>", text: "{{#each a}}{{@root.big}}{{/each}}" }));
    expect(await errorOf(preview(big.id, { a: tenItems, big: "y".repeat(200_000) }))).toMatchObject({
      code: 400,
      data: {
        reason: TEMPLATE_RENDER_FAILED,
        validationErrors: [{ field: "vars", error: "text renders too much: over 1,000,000 characters; shorten the loops, the text or the values in vars" }],
      },
    });
    // A long value repeated without any loop is stopped the same way.
    const repeated = await create(confirmTemplate(STORE_A, { subject: "s", html: "{{big}}".repeat(20), text: null }));
    expect(await errorOf(preview(repeated.id, { big: "<".repeat(100_000) }))).toMatchObject({
      data: { validationErrors: [{ error: expect.stringMatching(/^html renders too much: over 1,000,000 characters/) }] },
    });

    const busy = await create(confirmTemplate(STORE_A, { subject: "s", html: `{{#each a}}${"{{#if @first}}{{/if}}".repeat(30)}{{/each}}`, text: null }));
    expect(await errorOf(preview(busy.id, { a: Array(10_000).fill(0) }))).toMatchObject({
      data: { reason: TEMPLATE_RENDER_FAILED, validationErrors: [{ error: expect.stringMatching(/^html renders too much: over 200,000 steps/) }] },
    });
  });

  it("fails a send of a template over the budget with reason TEMPLATE_RENDER_FAILED, and sends nothing", async () => {
    const created = await create(confirmTemplate(STORE_A, { html: nestedEach(7) }));
    const sent = smtp.messages.length;
    const error = await errorOf(call("sendTemplate", { store_id: STORE_A, template_id: created.id, to: "budget@example.com", vars: { a: tenItems } }));
    expect(error).toMatchObject({
      type: "VALIDATION_ERROR",
      code: 400,
      data: { reason: TEMPLATE_RENDER_FAILED, validationErrors: [{ field: "vars", error: expect.stringContaining("over 10,000 loop iterations") }] },
    });
    expect(isTemplateRenderFailure(error)).toBe(true);
    expect(smtp.messages.length).toBe(sent);
  });

  it("names a call of helperMissing or of an unknown helper as such when the template is saved, not as an internal error", async () => {
    for (const [source, error] of [
      ["{{helperMissing}}", "unknown helper or misused built-in helper: helperMissing (at 1:0)"],
      ["<p>{{#blockHelperMissing}}x{{/blockHelperMissing}}</p>", "unknown helper or misused built-in helper: blockHelperMissing (at 1:3)"],
      ["{{lookup (helperMissing) 'a'}}", "unknown helper or misused built-in helper: helperMissing (at 1:9)"],
      ["{{[helperMissing]}}", "unknown helper or misused built-in helper: helperMissing (at 1:0)"],
      ['{{"blockHelperMissing"}}', "unknown helper or misused built-in helper: blockHelperMissing (at 1:0)"],
      ["{{@helperMissing}}", "unknown helper or misused built-in helper: helperMissing (at 1:0)"],
      ["{{unknownHelper profile}}", "unknown helper or misused built-in helper: unknownHelper (at 1:0)"],
      ["{{each items}}", expect.stringMatching(/^unknown helper or misused built-in helper \(/)],
    ] as const) {
      expect(await errorOf(create(confirmTemplate(STORE_A, { html: source })))).toMatchObject({
        type: "VALIDATION_ERROR",
        code: 400,
        data: { validationErrors: [{ field: "html", error }] },
      });
    }
    // Names that merely look like it are variables.
    expect((await create(confirmTemplate(STORE_A, { html: "{{this.helperMissing}}{{helperMissing.x}}" }))).status).toBe("active");
  });
});

describe("mailer.templateStatus and mailer.sendTemplate (as profile-lists calls them)", () => {
  it("says usable only for an active template of that store, and archived for the store's archived one", async () => {
    const active = await create(confirmTemplate());
    const archived = await create(confirmTemplate(STORE_A, { status: "archived" }));
    expect(await call("templateStatus", { store_id: STORE_A, template_id: active.id })).toEqual({ usable: true, archived: false });
    expect(await call("templateStatus", { store_id: STORE_A, template_id: archived.id })).toEqual({ usable: false, archived: true });
    expect(await call("templateStatus", { store_id: STORE_A, template_id: uuidv7() })).toEqual({ usable: false, archived: false });
    expect(await call("templateStatus", { store_id: STORE_B, template_id: active.id })).toEqual({ usable: false, archived: false });
    expect(await call("templateStatus", { store_id: STORE_B, template_id: archived.id })).toEqual({ usable: false, archived: false });
  });

  it("sends the rendered template over SMTP with the RFC 8058 List-Unsubscribe headers", async () => {
    const created = await create(confirmTemplate());
    const to = "ada@example.com";
    const unsubscribe = `https://crm.example/v1/storefront/${STORE_A}/profile-lists/${uuidv7()}/unsubscribe?token=abc.def`;
    const vars = {
      profile: { email: to, id: uuidv7() },
      list: { name: "Weekly <News>", key: "weekly" },
      confirm_url: "https://shop.example/confirm?token=t1&profile_list_id=l1",
      unsubscribe_url: unsubscribe,
      store_id: STORE_A,
    };
    const result = await call<{ message_id: string }>("sendTemplate", { store_id: STORE_A, template_id: created.id, to, vars, list_unsubscribe: { url: unsubscribe } });
    expect(result).toEqual({ message_id: expect.stringMatching(/^<[0-9a-f-]{36}@shop\.example>$/) });
    const mail = await smtp.waitForMessage((m) => m.to.includes(to) && m.raw.includes(result.message_id));
    expect(mail.from).toBe("news@shop.example");
    expect(mail.subject).toBe("Confirm your subscription to Weekly <News>");
    expect(mail.headers["list-unsubscribe"]).toBe(`<${unsubscribe}>`);
    expect(mail.headers["list-unsubscribe-post"]).toBe("List-Unsubscribe=One-Click");
    expect(mail.html).toContain('href="https://shop.example/confirm?token&#x3D;t1&amp;profile_list_id&#x3D;l1"');
    expect(mail.text).toContain("confirm: https://shop.example/confirm?token=t1&profile_list_id=l1");
  });

  it("sends no List-Unsubscribe header when none is asked for", async () => {
    const created = await create(confirmTemplate());
    const to = "plain@example.com";
    await call("sendTemplate", { store_id: STORE_A, template_id: created.id, to, vars: {} });
    const mail = await smtp.waitForMessage((m) => m.to.includes(to));
    expect(mail.headers["list-unsubscribe"]).toBeUndefined();
    expect(mail.headers["list-unsubscribe-post"]).toBeUndefined();
  });

  it("refuses header injection: a line break in the unsubscribe url is a 400, and one in a subject value stays on the subject line", async () => {
    const created = await create(confirmTemplate());
    for (const url of [
      "https://x.example/u\r\nBcc: victim@example.com",
      "https://x.example/u\nX: y",
      "https://x.example/a b",
      "https://x.example/<u>",
      "javascript:alert(1)",
    ]) {
      const error = await errorOf(call("sendTemplate", { store_id: STORE_A, template_id: created.id, to: "a@example.com", vars: {}, list_unsubscribe: { url } }));
      expect(error).toMatchObject({ type: "VALIDATION_ERROR" });
      expect(error.data.map((e: { field: string }) => e.field)).toContain("list_unsubscribe.url");
    }
    const to = "inject@example.com";
    await call("sendTemplate", { store_id: STORE_A, template_id: created.id, to, vars: { list: { name: "News\r\nBcc: victim@example.com" } } });
    const mail = await smtp.waitForMessage((m) => m.to.includes(to));
    expect(mail.to).toEqual([to]);
    expect(mail.headers.bcc).toBeUndefined();
    expect(mail.subject).toBe("Confirm your subscription to News Bcc: victim@example.com");
  });

  it("answers 404 TEMPLATE_NOT_FOUND for a missing or other store's template, 409 TEMPLATE_ARCHIVED for the store's archived one, and sends nothing", async () => {
    const archived = await create(confirmTemplate(STORE_A, { status: "archived" }));
    const other = await create(confirmTemplate(STORE_B));
    const sent = smtp.messages.length;
    const send = (store_id: string, template_id: string) => errorOf(call("sendTemplate", { store_id, template_id, to: "a@example.com", vars: {} }));
    for (const [store_id, template_id] of [
      [STORE_A, uuidv7()],
      [STORE_A, other.id],
      [STORE_B, archived.id],
    ]) {
      expect(await send(store_id, template_id)).toMatchObject({ type: "NOT_FOUND", code: 404, data: { reason: "TEMPLATE_NOT_FOUND" } });
    }
    expect(await send(STORE_A, archived.id)).toMatchObject({ type: "CONFLICT", code: 409, data: { reason: "TEMPLATE_ARCHIVED" } });
    expect(smtp.messages.length).toBe(sent);
  });

  it("answers 503 when the SMTP server fails, and 400 on `to` when it refuses the address for good", async () => {
    const created = await create(confirmTemplate());
    smtp.failNext(1);
    expect(await errorOf(call("sendTemplate", { store_id: STORE_A, template_id: created.id, to: "fail@example.com", vars: {} }))).toMatchObject({
      type: "SERVICE_UNAVAILABLE",
      code: 503,
    });
    smtp.refuseRecipient("nobody@example.com");
    try {
      expect(await errorOf(call("sendTemplate", { store_id: STORE_A, template_id: created.id, to: "nobody@example.com", vars: {} }))).toMatchObject({
        type: "VALIDATION_ERROR",
        code: 400,
        data: { reason: "recipient_refused", validationErrors: [{ field: "to" }] },
      });
    } finally {
      smtp.clear();
    }
  });
});
