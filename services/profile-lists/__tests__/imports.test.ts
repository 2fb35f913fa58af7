/**
 * The import engine through the service's action: JSON rows, csv text and a streamed CSV; row errors with
 * their numbers; exact counts; taxonomies merged; a second run changing nothing; memberships (pending
 * activated, unsubscribed not re-added); member_count; paid lists refused; store isolation; batches.
 */
import type { IncomingMessage } from "node:http";
import { Readable } from "node:stream";
import { setImmediate } from "node:timers/promises";
import { limitedBodyStream } from "../../../gateway/request";
import { type ImportResult, type Membership, type ProfileList, type ProfileListMember, MAX_IMPORT_ERRORS } from "../../../shared/contracts/profile-lists";
import type { Profile } from "../../../shared/contracts/profiles";
import { uuidv7 } from "../../../shared/ids";
import { journalBatch, recordInserted } from "../counts";
import { IMPORT_BATCH_ROWS } from "../imports";
import { gatewayOnFreePort, gatewayUrl, httpClient, startBroker, waitFor } from "../../../test/harness";
import { errorOf, LINK_ORIGIN, mailerStandIn, newStoreId, shopper, startLists, type ListsEnv } from "./helpers";

let env: ListsEnv;
beforeAll(async () => {
  env = await startLists();
});
afterAll(() => env?.stop());

const call = <T>(action: string, params: Record<string, unknown>, opts?: object) => env.broker.call(action, params, opts) as Promise<T>;
const adminMeta = { meta: { ip: "198.51.100.4", userAgent: "import-script/1.0" } };
const importInto = (store: string, listId: string | undefined, body: Record<string, unknown>, stream?: Readable) =>
  call<ImportResult>("profile-lists.importProfiles", { store_id: store, ...(listId ? { id: listId } : {}), ...body }, { ...adminMeta, ...(stream ? { stream } : {}) });
const createList = (store: string, key: string, type?: unknown) => call<ProfileList>("profile-lists.create", { store_id: store, key, ...(type ? { type } : {}) });
const getList = (l: ProfileList) => call<ProfileList>("profile-lists.get", { store_id: l.store_id, id: l.id });
const members = (l: ProfileList, status?: string) =>
  call<{ items: ProfileListMember[] }>("profile-lists.members", { store_id: l.store_id, id: l.id, limit: 100, ...(status ? { status } : {}) });
const profilesOf = (store: string, query: string) => call<{ items: Profile[] }>("profiles.find", { store_id: store, query, limit: 100 });

/** The status and the first field a refused call names. */
async function refusal(call: Promise<unknown>) {
  const err = await errorOf(call);
  return { code: err.code, field: err.data?.validationErrors?.[0]?.field };
}

const empty: Omit<ImportResult, "rows_total"> = { profiles_created: 0, profiles_updated: 0, profiles_added: 0, profiles_updated_in_list: 0, rows_failed: 0, errors: [] };

describe("profile-lists.importProfiles", () => {
  it("imports JSON rows into a list: profiles created, active members with source and consent import, member_count exact", async () => {
    const store = newStoreId();
    const list = await createList(store, "vip");
    const result = await importInto(store, list.id, {
      rows: [
        { email: "ada@example.com", fields: { first_name: "Ada", "crm.tier": "gold", "crm.orders": 3 } },
        { email: "grace@example.com", taxonomies: [{ taxonomy_id: "crm", fields: [{ key: "tier", type: "text", value: "silver" }] }] },
      ],
    });
    expect(result).toEqual({ ...empty, rows_total: 2, profiles_created: 2, profiles_added: 2 });
    expect((await getList(list)).member_count).toBe(2);
    const page = await members(list);
    expect(page.items).toHaveLength(2);
    for (const { membership } of page.items) {
      expect(membership).toMatchObject({ status: "active", source: "import", consent: { method: "import", ip: "198.51.100.4", user_agent: "import-script/1.0" } });
    }
    const [ada] = (await profilesOf(store, "ada@example.com")).items;
    expect(ada.taxonomies).toEqual([
      { taxonomy_id: "import", fields: [expect.objectContaining({ key: "first_name", type: "text", value: "Ada" })] },
      {
        taxonomy_id: "crm",
        fields: [expect.objectContaining({ key: "tier", type: "text", value: "gold" }), expect.objectContaining({ key: "orders", type: "number", value: 3 })],
      },
    ]);
  });

  it("the same rows again change nothing; changed values count as updated and are merged into the profile's own", async () => {
    const store = newStoreId();
    const list = await createList(store, "again");
    const rows = [
      { email: "one@example.com", fields: { "crm.tier": "gold", city: "Oslo" } },
      { email: "two@example.com", fields: { "crm.tier": "silver" } },
    ];
    await importInto(store, list.id, { rows });
    const [before] = (await profilesOf(store, "one@example.com")).items;
    expect(await importInto(store, list.id, { rows })).toEqual({ ...empty, rows_total: 2 });

    const changed = await importInto(store, list.id, { rows: [{ email: "ONE@example.com", fields: { "crm.tier": "platinum" } }, rows[1]] });
    expect(changed).toEqual({ ...empty, rows_total: 2, profiles_updated: 1 });
    const [after] = (await profilesOf(store, "one@example.com")).items;
    const fieldsOf = (p: Profile, taxonomy: string) => p.taxonomies.find((t) => t.taxonomy_id === taxonomy)?.fields;
    expect(fieldsOf(after, "crm")).toEqual([{ ...fieldsOf(before, "crm")![0], value: "platinum" }]); // same field id, new value
    expect(fieldsOf(after, "import")).toEqual(fieldsOf(before, "import")); // untouched fields stay
    expect((await getList(list)).member_count).toBe(2);
  });

  it("a file that gives one address twice with other values, imported again, changes nothing (the last row's values stay)", async () => {
    const store = newStoreId();
    const list = await createList(store, "twice");
    const rows = [
      { email: "twice@example.com", fields: { "crm.tier": "gold" } },
      { email: "other@example.com" },
      { email: "TWICE@example.com", fields: { "crm.tier": "silver" } },
    ];
    expect(await importInto(store, list.id, { rows })).toEqual({ ...empty, rows_total: 3, profiles_created: 2, profiles_added: 2 });
    const [before] = (await profilesOf(store, "twice@example.com")).items;
    for (let run = 0; run < 2; run++) expect(await importInto(store, list.id, { rows })).toEqual({ ...empty, rows_total: 3 });
    const [after] = (await profilesOf(store, "twice@example.com")).items;
    expect(after).toEqual(before);
    expect(after.taxonomies.find((t) => t.taxonomy_id === "crm")?.fields).toEqual([expect.objectContaining({ key: "tier", value: "silver" })]);
  });

  it("reports bad rows with their number and field, and imports the others", async () => {
    const store = newStoreId();
    const result = await importInto(store, undefined, {
      rows: [
        { email: "ok1@example.com" },
        { email: "not-an-email" },
        "a string",
        { email: { $ne: null } },
        { email: "ok2@example.com", fields: { "crm.x": { nested: 1 } } },
        { email: "ok3@example.com" },
        { name: "no e-mail" },
        { email: "ok4@example.com", fields: { note: null } },
      ],
    });
    expect(result).toMatchObject({ rows_total: 8, profiles_created: 2, profiles_added: 0, rows_failed: 6 });
    expect(result.errors.map((e) => [e.row, e.field])).toEqual([
      [2, "email"],
      [3, "row"],
      [4, "email"],
      [5, "fields.crm.x"],
      [7, "email"],
      [8, "fields.note"],
    ]);
    // The messages say what to send.
    expect(result.errors[3].message).toBe("expected string, number or boolean, received object");
    expect(result.errors[4].message).toBe("required");
    expect(result.errors[5].message).toBe("expected string, number or boolean, received null");
    expect((await profilesOf(store, "ok")).items.map((p) => p.email).sort()).toEqual(["ok1@example.com", "ok3@example.com"]);
  });

  it("reports a row whose fields, folded into taxonomies, break a profile's limits (checked by profiles.upsertMany), and imports the others", async () => {
    const store = newStoreId();
    const list = await createList(store, "limits");
    const longKey = `crm.${"k".repeat(101)}`;
    const result = await importInto(store, list.id, {
      rows: [
        { email: "fine1@example.com", fields: { "crm.tier": "gold" } },
        { email: "longkey@example.com", fields: { [longKey]: "x" } },
        {
          email: "toobig@example.com",
          taxonomies: [{ taxonomy_id: "crm", fields: [{ key: "a", type: "text", value: "v".repeat(1000) }] }],
          fields: Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`t${i}.note`, "é".repeat(1000)])),
        },
        { email: "fine2@example.com", fields: { "crm.tier": "silver" } },
      ],
    });
    expect(result).toMatchObject({ rows_total: 4, profiles_created: 2, profiles_added: 2, rows_failed: 2 });
    expect(result.errors.map((e) => [e.row, e.field])).toEqual([
      [2, "taxonomies.0.fields.0.key"],
      [3, "taxonomies"],
    ]);
    expect(result.errors[1].message).toMatch(/64 KB/);
    expect((await members(list)).items).toHaveLength(2);
    expect((await profilesOf(store, "longkey")).items).toEqual([]);
  });

  it("reads CSV (text and stream): BOM, CRLF, quoted commas, quotes and newlines, blank rows, a custom e-mail column, rows it cannot parse", async () => {
    const store = newStoreId();
    const list = await createList(store, "csv");
    // Blank rows (an empty line, spaces, a spreadsheet's row of empty cells) are skipped and not counted.
    const csv =
      '\ufeffE-Mail,Name,crm.note\r\nq1@example.com,"Doe, Jane","said ""hi""\nthen left"\r\n\r\n   \r\n,,\r\nbroken@example.com,bad"quote,x\r\nq2@example.com,Bob,\r\n';
    const fromText = await importInto(store, list.id, { csv, email_column: "E-Mail" });
    expect(fromText).toMatchObject({ rows_total: 3, profiles_created: 2, profiles_added: 2, rows_failed: 1 });
    expect(fromText.errors).toEqual([{ row: 2, field: "csv", message: expect.stringContaining("Invalid Opening Quote") }]);
    const [q1] = (await profilesOf(store, "q1@")).items;
    expect(q1.taxonomies).toEqual([
      { taxonomy_id: "import", fields: [expect.objectContaining({ key: "Name", value: "Doe, Jane" })] },
      { taxonomy_id: "crm", fields: [expect.objectContaining({ key: "note", value: 'said "hi"\nthen left' })] },
    ]);

    const streamed = await importInto(store, list.id, { email_column: "E-Mail" }, Readable.from([Buffer.from(csv.slice(0, 30)), Buffer.from(csv.slice(30))]));
    expect(streamed).toEqual({ ...empty, rows_total: 3, rows_failed: 1, errors: fromText.errors });
  });

  it("reports a CSV row that is not UTF-8 (a Latin-1 export) instead of storing it garbled, and imports the others", async () => {
    const store = newStoreId();
    const latin1 = Buffer.concat([Buffer.from("email,name\nok@example.com,Jose\nlatin@example.com,Jos"), Buffer.from([0xe9]), Buffer.from("\nnext@example.com,Ana\n")]);
    const result = await importInto(store, undefined, {}, Readable.from([latin1]));
    expect(result).toMatchObject({
      rows_total: 3,
      profiles_created: 2,
      rows_failed: 1,
      errors: [{ row: 2, field: "csv", message: expect.stringMatching(/not valid UTF-8/) }],
    });
    expect((await profilesOf(store, "latin@example.com")).items).toEqual([]);
    const latinHeader = Buffer.concat([Buffer.from("email,pr"), Buffer.from([0xe9]), Buffer.from("nom\nok@example.com,Ana\n")]);
    expect(await refusal(importInto(store, undefined, {}, Readable.from([latinHeader])))).toMatchObject({ code: 400, field: "csv" });
  });

  it("finds the e-mail column in any case; refuses a CSV without it, an empty one, a duplicated column, and no source at all (400s naming the field)", async () => {
    const store = newStoreId();
    expect(await refusal(importInto(store, undefined, { csv: "mail,name\na@x.com,A\n" }))).toMatchObject({ code: 400, field: "email_column" });
    // Another case of the name is the column when one column has it ("Email" from a spreadsheet), and ambiguous when two do.
    expect(await importInto(store, undefined, { csv: "Name,Email\nA,case@x.com\n" })).toMatchObject({ rows_total: 1, profiles_created: 1, rows_failed: 0 });
    expect(await refusal(importInto(store, undefined, { csv: "EMAIL,Email\ncase@x.com,case@x.com\n" }))).toMatchObject({ code: 400, field: "email_column" });
    expect(await refusal(importInto(store, undefined, { csv: "" }))).toMatchObject({ code: 400, field: "csv" });
    expect(await refusal(importInto(store, undefined, { csv: "email,a,a\n" }))).toMatchObject({ code: 400, field: "csv" });
    // A column that names no field is refused at the header, not reported on every row.
    const noField = await errorOf(importInto(store, undefined, { csv: "email,crm.\na@x.com,1\n" }));
    expect(noField.data.validationErrors).toEqual([{ field: "csv", error: expect.stringContaining('the column "crm." names no field') }]);
    expect(await refusal(importInto(store, undefined, {}))).toMatchObject({ code: 400, field: "rows" });
    expect(await refusal(importInto(store, undefined, { rows: [], csv: "email\n" }))).toMatchObject({ code: 400, field: "rows" });
    expect(await refusal(importInto(store, undefined, { rows: [] }, Readable.from(["email\n"])))).toMatchObject({ code: 400, field: "rows" });
  });

  it("activates a pending member (consent import), keeps a member with access, does not re-add one who unsubscribed (reported)", async () => {
    const store = newStoreId();
    const template = uuidv7();
    env.mailer.templates.set(template, store);
    const list = await createList(store, "double", { type: "confirmation", confirm_template_id: template });
    const pending = await shopper(env.broker, store, "pending@example.com");
    await call("profile-lists.subscribe", { store_id: store, id: list.id, profile_id: pending.profileId, confirm_url: `${LINK_ORIGIN}/c` }, { meta: pending.meta });
    const gone = await shopper(env.broker, store, "gone@example.com");
    await call("profile-lists.addMember", { store_id: store, id: list.id, profile_id: gone.profileId });
    await call("profile-lists.unsubscribe", { store_id: store, id: list.id }, { meta: gone.meta });
    await importInto(store, list.id, { rows: [{ email: "member@example.com" }] });
    expect((await getList(list)).member_count).toBe(1);

    const result = await importInto(store, list.id, { rows: [{ email: "pending@example.com" }, { email: "gone@example.com" }, { email: "member@example.com" }] });
    expect(result).toMatchObject({ rows_total: 3, profiles_added: 0, profiles_updated_in_list: 1, rows_failed: 1 });
    expect(result.errors).toEqual([{ row: 2, field: "email", message: expect.stringContaining("unsubscribed") }]);
    expect((await getList(list)).member_count).toBe(2);
    const statuses = Object.fromEntries((await members(list)).items.map((m) => [m.profile.email, m.membership.status]));
    expect(statuses).toEqual({ "pending@example.com": "active", "gone@example.com": "unsubscribed", "member@example.com": "active" });
    // The pending member's access comes from the import: its consent says so, the unconfirmed signup is kept in the history.
    const activated = (await members(list)).items.find((m) => m.profile.email === "pending@example.com")?.membership;
    expect(activated).toMatchObject({ source: "import", consent: { method: "import" }, consent_history: [{ method: "signup", confirmed_at: null }] });
  });

  it("imports more rows than a batch in several batches with exact counts; a row repeated later counts once as created", async () => {
    const store = newStoreId();
    const list = await createList(store, "big");
    const n = IMPORT_BATCH_ROWS * 2 + 500;
    const lines = ["email,score"];
    for (let i = 0; i < n; i++) lines.push(`bulk${i}@example.com,${i % 7}`);
    lines.push("bulk0@example.com,0"); // the same row again, in the last batch
    const result = await importInto(store, list.id, { csv: lines.join("\n") });
    expect(result).toEqual({ ...empty, rows_total: n + 1, profiles_created: n, profiles_added: n });
    expect((await getList(list)).member_count).toBe(n);
    const again = await importInto(store, list.id, { csv: lines.join("\n") });
    expect(again).toEqual({ ...empty, rows_total: n + 1 });
  });

  it("counts a profile once per batch however many of its rows there are; refuses control characters in a value and a __proto__ column", async () => {
    const store = newStoreId();
    await importInto(store, undefined, { rows: [{ email: "old@example.com" }] });
    const result = await importInto(store, undefined, {
      rows: [
        { email: "new@example.com", fields: { a: "1" } },
        { email: "NEW@example.com", fields: { b: "2" } },
        { email: "old@example.com", fields: { a: "1" } },
        { email: "old@example.com", fields: { b: "2" } },
        { email: "ctl@example.com", fields: { note: "bell\u0007" } },
        { email: "tab@example.com", fields: { note: "a\tb\nc" } },
      ],
    });
    expect(result).toMatchObject({ rows_total: 6, profiles_created: 2, profiles_updated: 1, rows_failed: 1, errors: [{ row: 5, field: "fields.note" }] });
    expect(await refusal(importInto(store, undefined, { csv: "email,__proto__\nx@example.com,1\n" }))).toMatchObject({ code: 400, field: "csv" });
  });

  it("lists at most MAX_IMPORT_ERRORS errors while rows_failed counts them all", async () => {
    const store = newStoreId();
    const rows = Array.from({ length: MAX_IMPORT_ERRORS + 5 }, () => ({ email: "nope" }));
    const result = await importInto(store, undefined, { rows });
    expect(result.rows_failed).toBe(MAX_IMPORT_ERRORS + 5);
    expect(result.errors).toHaveLength(MAX_IMPORT_ERRORS);
  });

  it("refuses a paid list (400) and another store's list (404), writing nothing", async () => {
    const store = newStoreId();
    const paid = await createList(store, "paid", { type: "paid", prices: [{ currency: "usd", amount: 500, providers: [{ type: "stripe", id: "price_x" }] }] });
    expect(await refusal(importInto(store, paid.id, { rows: [{ email: "p@example.com" }] }))).toMatchObject({ code: 400, field: "id" });
    const other = newStoreId();
    const theirs = await createList(other, "theirs");
    expect(await refusal(importInto(store, theirs.id, { rows: [{ email: "p@example.com" }] }))).toMatchObject({ code: 404 });
    expect((await profilesOf(store, "p@example.com")).items).toEqual([]);
    expect((await getList(theirs)).member_count).toBe(0);
  });

  it("keeps member_count exact when imports of overlapping rows run at once", async () => {
    const store = newStoreId();
    const list = await createList(store, "race");
    const rows = Array.from({ length: 300 }, (_, i) => ({ email: `race${i}@example.com` }));
    const results = await Promise.all([
      importInto(store, list.id, { rows }),
      importInto(store, list.id, { rows: rows.slice(100) }),
      importInto(store, list.id, { rows }),
    ]);
    expect(results.reduce((sum, r) => sum + r.profiles_created, 0)).toBe(300);
    expect(results.reduce((sum, r) => sum + r.profiles_added, 0)).toBe(300);
    expect(results.every((r) => r.rows_failed === 0)).toBe(true);
    expect((await getList(list)).member_count).toBe(300);
    const memberships = (await members(list)).items.length + 0;
    expect(memberships).toBe(100); // a page of 100 (the first)
    const active: Membership[] = [];
    let cursor: string | null = null;
    do {
      const page: { items: ProfileListMember[]; cursor: string | null } = await call("profile-lists.members", {
        store_id: store,
        id: list.id,
        limit: 100,
        ...(cursor ? { cursor } : {}),
      });
      active.push(...page.items.map((m) => m.membership));
      cursor = page.cursor;
    } while (cursor);
    expect(active).toHaveLength(300);
  });
});

/** A membership as an import batch inserts it (to play a writer that dies mid-batch). */
function importedMember(store: string, listId: string, profileId: string) {
  const now = env.clock.now;
  const consent = { method: "import" as const, ip: null, user_agent: null, at: now, confirmed_at: null, confirmed_ip: null };
  return {
    _id: uuidv7(),
    store_id: store,
    profile_list_id: listId,
    profile_id: profileId,
    status: "active" as const,
    source: "import" as const,
    consent,
    consent_history: [],
    payment: null,
    start_date: now,
    end_date: null,
    created_at: now,
    updated_at: now,
  };
}

describe("an import killed between writing its members and counting them", () => {
  it("leaves a journal entry that recovery settles: member_count ends exact", async () => {
    const store = newStoreId();
    const list = await createList(store, "crash");
    await importInto(store, list.id, { rows: [{ email: "before@example.com" }] });
    const { deps } = env.service.profileLists;
    const ref = { store_id: store, profile_list_id: list.id };
    const docs = [1, 2, 3].map(() => importedMember(store, list.id, uuidv7()));
    // The writer journals the batch and inserts two of its three members, then dies.
    await journalBatch(
      deps,
      ref,
      docs.map((d) => d._id),
    );
    await deps.store.memberships.bulkWrite(docs.slice(0, 2).map((document) => ({ insertOne: { document } })));
    expect((await getList(list)).member_count).toBe(1);
    expect(await env.service.profileLists.recoverCounts()).toBe(0); // not stale yet: the writer may still be running
    env.clock.now += 61;
    expect(await env.service.profileLists.recoverCounts()).toBe(1);
    expect((await getList(list)).member_count).toBe(3);
    expect(await env.service.profileLists.recoverCounts()).toBe(0);
    expect(await deps.store.countJournal.count({ store_id: store })).toBe(0);
  });

  it("after the insert was recorded, a member removed before recovery still ends with member_count exact", async () => {
    const store = newStoreId();
    const list = await createList(store, "crash-removed");
    const { deps } = env.service.profileLists;
    const ref = { store_id: store, profile_list_id: list.id };
    const profiles = await Promise.all([1, 2, 3].map((i) => shopper(env.broker, store, `crash${i}@example.com`)));
    const docs = profiles.map((p) => importedMember(store, list.id, p.profileId));
    const op = await journalBatch(
      deps,
      ref,
      docs.map((d) => d._id),
    );
    await deps.store.memberships.bulkWrite(docs.map((document) => ({ insertOne: { document } })));
    await recordInserted(deps, op, 3);
    // The writer dies here. An admin removes one of the three before recovery runs.
    await call("profile-lists.removeMember", { store_id: store, id: list.id, profile_id: profiles[0].profileId });
    env.clock.now += 61;
    expect(await env.service.profileLists.recoverCounts()).toBe(1);
    expect((await getList(list)).member_count).toBe(2);
  });
});

describe("an import in one process (gateway and services on one broker, no bus)", () => {
  it("lets the process serve other requests between batches (a file already in memory never waits for I/O by itself)", async () => {
    const key = "crm_sk_one_process_import_key";
    const broker = await startBroker({
      services: [gatewayOnFreePort(), "auth", "profiles", "profile-lists", mailerStandIn({ templates: new Map(), sent: [], codes: new Map(), down: false })],
      storage: "memory",
      env: { JWT_SECRET: "one-process-import-secret", CRM_ADMIN_API_KEY: key, PORT: "0" },
    });
    try {
      const admin = httpClient(gatewayUrl(broker), { authorization: `Bearer ${key}` });
      const store = newStoreId();
      const list = (await admin.post<ProfileList>(`/v1/stores/${store}/profile-lists`, { key: "busy" })).body;
      const csv = `email\n${Array.from({ length: 10_000 }, (_, i) => `b${i}@x.io`).join("\n")}\n`;
      let imported = false;
      const importing = admin.post<ImportResult>(`/v1/stores/${store}/profile-lists/${list.id}/profiles/import`, { csv }).then((res) => {
        imported = true;
        return res;
      });
      await waitFor(async () => (await admin.get<ProfileList>(`/v1/stores/${store}/profile-lists/${list.id}`)).body.member_count > 0, "the import's first batch");
      expect(imported).toBe(false); // the read above was answered while the import went on
      expect((await importing).body).toMatchObject({ rows_total: 10_000, profiles_added: 10_000 });
    } finally {
      await broker.stop();
    }
  }, 60_000);
});

describe("a CSV the parser cannot read past a point", () => {
  it("names the row, and says the parser's line counts the file's lines", async () => {
    const store = newStoreId();
    const err = await errorOf(importInto(store, undefined, { csv: 'email,name\na@example.com,"Ann\nb@example.com,Bob\n' }));
    expect(err.data.validationErrors).toEqual([
      { field: "csv", error: expect.stringMatching(/^row 1: Quote Not Closed.* at line 3 of the file \(counting every line\)$/) },
    ]);
  });

  it.each([
    ["a cell over the record size limit", `x${"y".repeat(300 * 1024)}`],
    ["a quote closed in the middle of a field", '"bad"x'],
  ])("%s: the rows before it are imported, the answer is a 400 naming the row, nothing after it is guessed", async (_what, cell) => {
    const store = newStoreId();
    const list = await createList(store, "unreadable");
    const lines = ["email,note"];
    for (let i = 1; i <= 3000; i++) lines.push(i === 1500 ? `bad${i}@example.com,${cell}` : `r${i}@example.com,ok`);
    const err = await errorOf(importInto(store, list.id, { csv: lines.join("\n") }));
    expect(err.code).toBe(400);
    expect(err.data.validationErrors).toEqual([{ field: "csv", error: expect.stringMatching(/^row 1500: /) }]);
    expect(err.message).toContain("The 1499 rows before it were imported (1499 profiles created, 0 updated, 1499 added to the list, 0 failed)");
    expect((await getList(list)).member_count).toBe(1499);
    const rest = lines.filter((_, i) => i === 0 || i > 1500);
    expect(await importInto(store, list.id, { csv: rest.join("\n") })).toMatchObject({ rows_total: 1500, profiles_created: 1500, rows_failed: 0 });

    // The same file streamed in 16 KB chunks (as a text/csv body arrives) stops at the same row.
    const again = await createList(store, "unreadable-streamed");
    const body = Buffer.from(lines.join("\n"));
    const chunks = Array.from({ length: Math.ceil(body.length / 16_384) }, (_, i) => body.subarray(i * 16_384, (i + 1) * 16_384));
    const streamed = await errorOf(importInto(store, again.id, {}, Readable.from(chunks)));
    expect(streamed.data.validationErrors).toEqual([{ field: "csv", error: expect.stringMatching(/^row 1500: /) }]);
    expect((await getList(again)).member_count).toBe(1499);
  });
});

describe("a streamed body that passes IMPORT_BODY_LIMIT half way", () => {
  it("is 413 saying how many rows were imported before the limit, and those rows are there", async () => {
    const store = newStoreId();
    const list = await createList(store, "limited");
    // What the gateway hands the action for a text/csv body without Content-Length: it fails once 4 KB went through.
    const chunks = [
      Buffer.from("email\n"),
      ...Array.from({ length: 20 }, (_, c) => Buffer.from(Array.from({ length: 20 }, (_, i) => `lim${c}-${i}@example.com\n`).join(""))),
    ];
    // The chunks come a turn of the event loop apart, as a body arrives over a network.
    const arriving = Readable.from(
      (async function* () {
        for (const chunk of chunks) {
          await setImmediate();
          yield chunk;
        }
      })(),
    );
    const body = limitedBodyStream(Object.assign(arriving, { headers: {} }) as unknown as IncomingMessage, 4 * 1024);
    const err = await errorOf(importInto(store, list.id, {}, body as unknown as Readable));
    expect(err).toMatchObject({ code: 413, type: "PAYLOAD_TOO_LARGE" });
    const told =
      /^Request body is too large: at most 4 KB \(IMPORT_BODY_LIMIT\)\. The (\d+) rows before it were imported \((\d+) profiles created, 0 updated, (\d+) added to the list, 0 failed\)/.exec(
        err.message,
      );
    expect(told).not.toBeNull();
    const imported = Number(told?.[1]);
    expect(imported).toBeGreaterThan(0);
    expect(imported).toBeLessThan(400);
    expect([Number(told?.[2]), Number(told?.[3])]).toEqual([imported, imported]);
    expect((await getList(list)).member_count).toBe(imported);
  });
});
