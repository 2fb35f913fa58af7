/**
 * The membership rules: subscribe (single and double opt-in), confirm, access, unsubscribe, consent,
 * the mail limits, admin members, member_count under concurrency, merges and store isolation.
 */
import { type AccessResult, type Membership, type ProfileList, type ProfileListMember, ProfileListsActions } from "../../../shared/contracts/profile-lists";
import { publishEvent } from "../../../shared/events/durable";
import { uuidv7 } from "../../../shared/ids";
import { waitFor } from "../../../test/harness/wait";
import { CONSENT_HISTORY_KEPT } from "../memberships";
import { errorOf, LINK_ORIGIN, newStoreId, shopper, startLists, tokenIn, unsubscribeTokenIn, verifiedShopper, type ListsEnv } from "./helpers";

let env: ListsEnv;
beforeAll(async () => {
  env = await startLists();
});
afterAll(() => env?.stop());

type Meta = Awaited<ReturnType<typeof shopper>>["meta"];
const call = <T>(action: string, params: Record<string, unknown>, meta?: object) => env.broker.call(action, params, meta ? { meta } : undefined) as Promise<T>;
const createList = (store: string, key: string, type?: unknown) => call<ProfileList>("profile-lists.create", { store_id: store, key, ...(type ? { type } : {}) });
const getList = (l: ProfileList) => call<ProfileList>("profile-lists.get", { store_id: l.store_id, id: l.id });
const subscribe = (l: ProfileList, profileId: string, meta: Meta | object, extra: Record<string, unknown> = {}) =>
  call<{ membership: Membership; checkout_url: string | null }>("profile-lists.subscribe", { store_id: l.store_id, id: l.id, profile_id: profileId, ...extra }, meta);
const access = (l: ProfileList, meta: Meta) => call<AccessResult>("profile-lists.access", { store_id: l.store_id, id: l.id }, meta);
const confirmUrl = `${LINK_ORIGIN}/confirm`;

/** A confirmation list with a template the mailer has. */
async function doubleOptInList(store: string, key = "news"): Promise<ProfileList> {
  const template = uuidv7();
  env.mailer.templates.set(template, store);
  const list = await createList(store, key, { type: "confirmation", confirm_template_id: template });
  expect(list.confirm_template_missing).toBe(false);
  return list;
}

/** The id of a double opt-in list's confirmation template. */
const confirmTemplateOf = (list: ProfileList) => String(list.type.type === "confirmation" && list.type.confirm_template_id);

const mailsTo = (email: string) => env.mailer.sent.filter((m) => m.to === email);

describe("profile-lists.subscribe (standard list)", () => {
  it("is active at once with consent signup, the request's IP and user agent; member_count counts it", async () => {
    const store = newStoreId();
    const list = await createList(store, "std");
    const s = await shopper(env.broker, store, "std@example.com", { ip: "198.51.100.4", userAgent: "Browser/1" });
    const { membership, checkout_url } = await subscribe(list, s.profileId, s.meta);
    expect(checkout_url).toBeNull();
    expect(membership).toMatchObject({ status: "active", source: "signup", profile_id: s.profileId, profile_list_id: list.id, store_id: store, payment: null });
    expect(membership.consent).toMatchObject({ method: "signup", ip: "198.51.100.4", user_agent: "Browser/1", confirmed_at: null, confirmed_ip: null });
    expect((await getList(list)).member_count).toBe(1);
    // Subscribing again answers the membership unchanged.
    expect((await subscribe(list, s.profileId, s.meta)).membership).toEqual(membership);
    expect((await getList(list)).member_count).toBe(1);
  });

  it("an archived list takes no new member (400 naming id), and answers one who has access unchanged", async () => {
    const store = newStoreId();
    const list = await createList(store, "closing");
    const member = await shopper(env.broker, store, "member@example.com");
    const { membership } = await subscribe(list, member.profileId, member.meta);
    await call("profile-lists.update", { store_id: store, id: list.id, status: "archived" });

    expect(await subscribe(list, member.profileId, member.meta)).toEqual({ membership, checkout_url: null });
    const late = await shopper(env.broker, store, "late@example.com");
    const err = await errorOf(subscribe(list, late.profileId, late.meta));
    expect(err.type).toBe("VALIDATION_ERROR");
    expect(err.data.validationErrors).toEqual([{ field: "id", error: expect.any(String) }]);
    expect((await getList(list)).member_count).toBe(1);
  });

  it("needs the session of profile_id (403 for another profile, 401 without a session); an unverified session may subscribe", async () => {
    const store = newStoreId();
    const list = await createList(store, "std");
    const s = await shopper(env.broker, store, "owner@example.com");
    const other = await shopper(env.broker, store, "other@example.com");
    expect(s.meta.auth).toMatchObject({ kind: "profile", is_verified: false });
    expect((await errorOf(subscribe(list, other.profileId, s.meta))).type).toBe("FORBIDDEN");
    expect((await errorOf(subscribe(list, s.profileId, {}))).type).toBe("UNAUTHENTICATED");
    expect((await subscribe(list, s.profileId, s.meta)).membership.status).toBe("active");
  });

  it("a paid list goes through Stripe Checkout: without price_id it is 400 naming price_id (paid.test.ts covers the rest)", async () => {
    const store = newStoreId();
    const list = await createList(store, "paid", { type: "paid", prices: [{ currency: "usd", amount: 100, providers: [{ type: "stripe", id: "price_x" }] }] });
    const s = await shopper(env.broker, store, "payer@example.com");
    const err = await errorOf(subscribe(list, s.profileId, s.meta));
    expect(err.type).toBe("VALIDATION_ERROR");
    expect(err.data.validationErrors).toEqual([{ field: "price_id", error: expect.any(String) }]);
  });
});

describe("double opt-in", () => {
  it("a template that fails to render is a 503 naming no vars, leaves no membership and sends nothing; once fixed, the subscribe works", async () => {
    const store = newStoreId();
    const list = await doubleOptInList(store, "broken");
    const broken = new Set([confirmTemplateOf(list)]);
    env.mailer.broken = broken;
    const s = await shopper(env.broker, store, "broken-template@example.com");
    try {
      for (let attempt = 0; attempt < 2; attempt++) {
        const err = await errorOf(subscribe(list, s.profileId, s.meta, { confirm_url: confirmUrl }));
        expect(err).toMatchObject({ type: "SERVICE_UNAVAILABLE", code: 503, data: { reason: "CONFIRM_TEMPLATE_BROKEN", retryAfter: 600 } });
        expect(err.message).not.toMatch(/Cannot read|vars/);
        expect(await access(list, s.meta)).toEqual({ has_access: false, membership: null });
      }
      expect(mailsTo("broken-template@example.com")).toEqual([]);
    } finally {
      broken.clear();
    }
    const { membership } = await subscribe(list, s.profileId, s.meta, { confirm_url: confirmUrl });
    expect(membership.status).toBe("pending");
    expect(mailsTo("broken-template@example.com")).toHaveLength(1);
  });

  it("a mail server that refuses the address is a 400 naming profile_id; the membership it created is gone, and a refused re-send leaves the earlier link working", async () => {
    const store = newStoreId();
    const list = await doubleOptInList(store, "refused");
    const refused = new Set(["refused@example.com"]);
    env.mailer.refused = refused;
    const s = await shopper(env.broker, store, "refused@example.com");
    const saved = env.clock.now;
    try {
      const err = await errorOf(subscribe(list, s.profileId, s.meta, { confirm_url: confirmUrl }));
      expect(err).toMatchObject({ type: "VALIDATION_ERROR", code: 400, data: { validationErrors: [{ field: "profile_id", error: expect.any(String) }] } });
      expect(err.message).toMatch(/refused/);
      expect(await access(list, s.meta)).toEqual({ has_access: false, membership: null });

      // Sent once while the server took the address, then refused on the re-send: the first link must keep working.
      refused.clear();
      expect((await subscribe(list, s.profileId, s.meta, { confirm_url: confirmUrl })).membership.status).toBe("pending");
      refused.add("refused@example.com");
      env.clock.now += 61;
      expect(await errorOf(subscribe(list, s.profileId, s.meta, { confirm_url: confirmUrl }))).toMatchObject({ code: 400 });
      expect((await access(list, s.meta)).membership?.status).toBe("pending");
    } finally {
      refused.clear();
      env.clock.now = saved;
    }
    const [mail] = mailsTo("refused@example.com");
    const confirmed = await call<Membership>("profile-lists.confirm", { store_id: store, id: list.id, token: tokenIn(mail).token }, { ip: "192.0.2.9" });
    expect(confirmed.status).toBe("active");
  });

  it("an archived template is not missing: a list saved with it stays double opt-in, a subscribe meanwhile is a 503 leaving nothing, and once it is active again the subscribe mails", async () => {
    const store = newStoreId();
    const list = await doubleOptInList(store, "archived");
    const archived = new Set([confirmTemplateOf(list)]);
    env.mailer.archived = archived;
    const s = await shopper(env.broker, store, "archived-template@example.com");
    try {
      const saved = await call<ProfileList>("profile-lists.update", { store_id: store, id: list.id, name: "renamed", type: list.type });
      expect(saved.confirm_template_missing).toBe(false);
      const err = await errorOf(subscribe(list, s.profileId, s.meta, { confirm_url: confirmUrl }));
      expect(err).toMatchObject({ type: "SERVICE_UNAVAILABLE", code: 503, data: { reason: "CONFIRM_TEMPLATE_ARCHIVED", retryAfter: 600 } });
      expect(err.message).toMatch(/archived/);
      expect(await access(list, s.meta)).toEqual({ has_access: false, membership: null });
      expect((await getList(list)).confirm_template_missing).toBe(false);
    } finally {
      archived.clear();
    }
    const { membership } = await subscribe(list, s.profileId, s.meta, { confirm_url: confirmUrl });
    expect(membership.status).toBe("pending");
    expect(mailsTo("archived-template@example.com")).toHaveLength(1);
  });

  it("a mailer that does not answer is a 503 that keeps the pending membership (the mail may have gone); the next subscribe sends at once", async () => {
    const store = newStoreId();
    const list = await doubleOptInList(store, "offline");
    const s = await shopper(env.broker, store, "mailer-down@example.com");
    env.mailer.down = true;
    try {
      expect(await errorOf(subscribe(list, s.profileId, s.meta, { confirm_url: confirmUrl }))).toMatchObject({ type: "SERVICE_UNAVAILABLE" });
    } finally {
      env.mailer.down = false;
    }
    expect((await access(list, s.meta)).membership?.status).toBe("pending");
    expect((await subscribe(list, s.profileId, s.meta, { confirm_url: confirmUrl })).membership.status).toBe("pending");
    expect(mailsTo("mailer-down@example.com")).toHaveLength(1);
  });

  it("pending, mails a single-use link; confirm makes it active with confirmed_at and the IP", async () => {
    const store = newStoreId();
    const list = await doubleOptInList(store);
    const s = await shopper(env.broker, store, "dbl@example.com");
    const { membership } = await subscribe(list, s.profileId, s.meta, { confirm_url: `${confirmUrl}?utm=x` });
    expect(membership).toMatchObject({ status: "pending", consent: { method: "signup", ip: "203.0.113.7" } });
    expect((await access(list, s.meta)).has_access).toBe(false);
    expect((await getList(list)).member_count).toBe(0);

    const [mail] = mailsTo("dbl@example.com");
    expect(mail).toMatchObject({
      store_id: store,
      vars: { profile: { email: "dbl@example.com", id: s.profileId }, list: { name: "news", key: "news" }, store_id: store },
    });
    const { token, listId, url } = tokenIn(mail);
    expect(url.origin + url.pathname).toBe(confirmUrl);
    expect(url.searchParams.get("utm")).toBe("x");
    expect(listId).toBe(list.id);
    expect(mail.list_unsubscribe.url).toMatch(new RegExp(`^https://crm\\.shop\\.example/v1/storefront/${store}/profile-lists/${list.id}/unsubscribe\\?token=`));
    expect(mail.vars.unsubscribe_url).toBe(mail.list_unsubscribe.url);
    // Only a hash of the token is stored.
    expect(JSON.stringify(await env.service.profileLists.store.memberships.find({ store_id: store }))).not.toContain(token);

    const confirmed = await call<Membership>("profile-lists.confirm", { store_id: store, id: list.id, token }, { ip: "192.0.2.9" });
    // Whoever holds the mail's link sees the membership without the consent's IPs, user agent and history.
    expect(confirmed).toMatchObject({
      status: "active",
      consent: { method: "double_opt_in", ip: null, user_agent: null, confirmed_at: env.clock.now, confirmed_ip: null },
      consent_history: [],
    });
    const seen = await access(list, s.meta);
    expect(seen.has_access).toBe(true);
    expect(seen.membership).toMatchObject({
      id: confirmed.id,
      consent: { method: "double_opt_in", ip: "203.0.113.7", confirmed_at: env.clock.now, confirmed_ip: "192.0.2.9" },
    });
    expect((await getList(list)).member_count).toBe(1);

    // Twice: 400, nothing changed.
    expect((await errorOf(call("profile-lists.confirm", { store_id: store, id: list.id, token }, { ip: "192.0.2.10" }))).type).toBe("VALIDATION_ERROR");
    expect((await access(list, s.meta)).membership).toEqual(seen.membership);
    expect((await getList(list)).member_count).toBe(1);
  });

  it("refuses a forged, expired or other list's token (400) and changes nothing", async () => {
    const store = newStoreId();
    const list = await doubleOptInList(store, "a");
    const other = await doubleOptInList(store, "b");
    const s = await shopper(env.broker, store, "tokens@example.com");
    await subscribe(list, s.profileId, s.meta, { confirm_url: confirmUrl });
    const { token } = tokenIn(mailsTo("tokens@example.com")[0]);
    const refused = async (params: Record<string, unknown>) => (await errorOf(call("profile-lists.confirm", params))).type;
    expect(await refused({ store_id: store, id: list.id, token: `${token.slice(0, -2)}xx` })).toBe("VALIDATION_ERROR");
    expect(await refused({ store_id: store, id: other.id, token })).toBe("VALIDATION_ERROR");
    expect(await refused({ store_id: newStoreId(), id: list.id, token })).toBe("VALIDATION_ERROR");
    const saved = env.clock.now;
    env.clock.now += 7 * 24 * 3600 + 1;
    try {
      expect(await refused({ store_id: store, id: list.id, token })).toBe("VALIDATION_ERROR");
    } finally {
      env.clock.now = saved;
    }
    expect((await access(list, s.meta)).membership?.status).toBe("pending");
    // Still valid within its 7 days.
    await expect(call("profile-lists.confirm", { store_id: store, id: list.id, token })).resolves.toMatchObject({ status: "active" });
  });

  it("checks confirm_url: https (http on localhost) on an allowed origin, no control characters, else 400 and no mail", async () => {
    const store = newStoreId();
    const list = await doubleOptInList(store);
    const s = await shopper(env.broker, store, "links@example.com");
    const withBreak = `${LINK_ORIGIN}/c\r\nBcc: x`; // the URL parser would drop the line break without a word
    for (const bad of ["https://evil.example/confirm", "http://shop.example/confirm", "javascript:alert(1)", "not a url", "https://user:pw@shop.example/x", withBreak]) {
      const err = await errorOf(subscribe(list, s.profileId, s.meta, { confirm_url: bad }));
      expect(err.type).toBe("VALIDATION_ERROR");
      expect(err.data.validationErrors[0].field).toBe("confirm_url");
    }
    expect((await errorOf(subscribe(list, s.profileId, s.meta))).data.validationErrors[0].field).toBe("confirm_url");
    expect(mailsTo("links@example.com")).toHaveLength(0);
    await expect(subscribe(list, s.profileId, s.meta, { confirm_url: "http://localhost:5173/c" })).resolves.toMatchObject({ membership: { status: "pending" } });
  });

  it("re-sends while pending at most once a minute per membership (429 with retryAfter); the newest link works", async () => {
    const store = newStoreId();
    const list = await doubleOptInList(store);
    const s = await shopper(env.broker, store, "resend@example.com");
    await subscribe(list, s.profileId, s.meta, { confirm_url: confirmUrl });
    env.clock.now += 20;
    const err = await errorOf(subscribe(list, s.profileId, s.meta, { confirm_url: confirmUrl }));
    expect(err.type).toBe("RATE_LIMITED");
    expect(err.data.retryAfter).toBe(40);
    expect(mailsTo("resend@example.com")).toHaveLength(1);
    env.clock.now += 41;
    await subscribe(list, s.profileId, s.meta, { confirm_url: confirmUrl });
    const mails = mailsTo("resend@example.com");
    expect(mails).toHaveLength(2);
    await expect(call("profile-lists.confirm", { store_id: store, id: list.id, token: tokenIn(mails[1]).token })).resolves.toMatchObject({ status: "active" });
  });

  it("caps confirmation mail to one address at 5 an hour (across lists), and per client IP", async () => {
    const store = newStoreId();
    const s = await shopper(env.broker, store, "bomb@example.com");
    const lists = await Promise.all([1, 2, 3, 4, 5, 6].map((i) => doubleOptInList(store, `l${i}`)));
    for (const list of lists.slice(0, 5)) await subscribe(list, s.profileId, s.meta, { confirm_url: confirmUrl });
    const err = await errorOf(subscribe(lists[5], s.profileId, s.meta, { confirm_url: confirmUrl }));
    expect(err.type).toBe("RATE_LIMITED");
    expect(err.data.retryAfter).toBeGreaterThan(0);
    expect(mailsTo("bomb@example.com")).toHaveLength(5);
    expect(await env.service.profileLists.store.memberships.count({ store_id: store, profile_list_id: lists[5].id })).toBe(0);

    // Per IP: many addresses from one client.
    const ipStore = newStoreId();
    const list = await doubleOptInList(ipStore);
    let refused = 0;
    for (let i = 0; i < 32; i++) {
      const p = await shopper(env.broker, ipStore, `ip${i}@example.com`, { ip: "198.51.100.99" });
      const outcome = await subscribe(list, p.profileId, p.meta, { confirm_url: confirmUrl }).then(
        () => "ok",
        (e: { type?: string }) => e.type,
      );
      if (outcome === "RATE_LIMITED") refused++;
    }
    expect(refused).toBe(2);
  });

  it("a template unset, deleted or unknown to the mailer never blocks subscribing: single opt-in", async () => {
    const store = newStoreId();
    const unset = await createList(store, "unset", { type: "confirmation", confirm_template_id: null });
    const s = await shopper(env.broker, store, "single@example.com");
    expect((await subscribe(unset, s.profileId, s.meta)).membership).toMatchObject({ status: "active", consent: { method: "signup" } });

    // The mailer lost the template after the list was made: the send's TEMPLATE_NOT_FOUND activates at once and marks the list.
    const list = await doubleOptInList(store, "gone");
    env.mailer.templates.clear();
    expect((await subscribe(list, s.profileId, s.meta, { confirm_url: confirmUrl })).membership.status).toBe("active");
    expect(await getList(list)).toMatchObject({ confirm_template_missing: true, member_count: 1 });

    // Deleted (the event): later subscribers are active at once, no mail.
    const deleted = await doubleOptInList(store, "deleted");
    const template = (deleted.type as { confirm_template_id: string }).confirm_template_id;
    await publishEvent(env.broker, "email-template.deleted", { store_id: store, template_id: template });
    await waitFor(async () => (await getList(deleted)).confirm_template_missing, "the list marked");
    const t = await shopper(env.broker, store, "after-delete@example.com");
    expect((await subscribe(deleted, t.profileId, t.meta)).membership.status).toBe("active");
    expect(mailsTo("after-delete@example.com")).toHaveLength(0);
  });
});

describe("profile-lists.access", () => {
  it("an unverified session of a profile whose e-mail was verified is told no access, may subscribe (redacted) and may not unsubscribe", async () => {
    const store = newStoreId();
    const list = await createList(store, "gated");
    const verified = await verifiedShopper(env, store, "proved@example.com");
    await subscribe(list, verified.profileId, verified.meta);
    expect(await access(list, verified.meta)).toMatchObject({ has_access: true, membership: { status: "active" } });
    const unverified = await shopper(env.broker, store, "proved@example.com"); // connect: same profile, unverified session
    expect(unverified.profileId).toBe(verified.profileId);
    // Anyone can connect with the address: the answer neither opens members-only content nor says who is a member.
    expect(await access(list, unverified.meta)).toEqual({ has_access: false, membership: null });
    // It may still subscribe, and sees the membership without the consent's network details.
    const again = await subscribe(list, unverified.profileId, unverified.meta);
    expect(again.membership).toMatchObject({ status: "active", consent: { ip: null, user_agent: null, confirmed_ip: null }, consent_history: [] });
    // Ending the membership takes proof of the address.
    const err = await errorOf(call("profile-lists.unsubscribe", { store_id: store, id: list.id }, unverified.meta));
    expect(err).toMatchObject({ type: "FORBIDDEN", code: 403, data: { reason: "VERIFICATION_REQUIRED" } });
    expect(err.message).toMatch(/verify it with a code/);
    expect(await access(list, verified.meta)).toMatchObject({ has_access: true, membership: { status: "active" } });
  });
});

describe("profile-lists.unsubscribe", () => {
  it("subscribing and leaving again and again keeps the last CONSENT_HISTORY_KEPT consents, not every one", async () => {
    const store = newStoreId();
    const list = await createList(store, "revolving");
    const s = await shopper(env.broker, store, "revolving@example.com");
    const rounds = CONSENT_HISTORY_KEPT + 5;
    for (let i = 0; i < rounds; i++) {
      await subscribe(list, s.profileId, { ...s.meta, userAgent: `round ${i}` });
      await call("profile-lists.unsubscribe", { store_id: store, id: list.id }, s.meta);
    }
    const { membership } = await subscribe(list, s.profileId, s.meta);
    expect(membership.consent_history).toHaveLength(CONSENT_HISTORY_KEPT);
    expect(membership.consent_history.at(-1)?.user_agent).toBe(`round ${rounds - 1}`);
    expect(membership.consent_history[0]?.user_agent).toBe(`round ${rounds - CONSENT_HISTORY_KEPT}`);
  });

  it("by session: unsubscribed, access ends at once, member_count drops; subscribing again starts a fresh double opt-in", async () => {
    const store = newStoreId();
    const list = await doubleOptInList(store);
    const s = await shopper(env.broker, store, "leaver@example.com");
    await subscribe(list, s.profileId, s.meta, { confirm_url: confirmUrl });
    await call("profile-lists.confirm", { store_id: store, id: list.id, token: tokenIn(mailsTo("leaver@example.com")[0]).token });
    expect((await getList(list)).member_count).toBe(1);

    const { membership } = await call<{ membership: Membership }>("profile-lists.unsubscribe", { store_id: store, id: list.id }, s.meta);
    expect(membership.status).toBe("unsubscribed");
    expect(membership.consent.method).toBe("double_opt_in"); // the consent record is kept
    expect(await access(list, s.meta)).toMatchObject({ has_access: false, membership: { status: "unsubscribed" } });
    expect((await getList(list)).member_count).toBe(0);

    env.clock.now += 120;
    const again = await subscribe(list, s.profileId, s.meta, { confirm_url: confirmUrl });
    expect(again.membership).toMatchObject({ status: "pending", consent: { method: "signup", confirmed_at: null } });
    expect(again.membership.consent_history).toEqual([membership.consent]);
    expect(mailsTo("leaver@example.com")).toHaveLength(2);
  });

  it("a session may only unsubscribe its own profile (403)", async () => {
    const store = newStoreId();
    const list = await createList(store, "std");
    const s = await shopper(env.broker, store, "own@example.com");
    const other = await shopper(env.broker, store, "notme@example.com");
    await subscribe(list, other.profileId, other.meta);
    expect((await errorOf(call("profile-lists.unsubscribe", { store_id: store, id: list.id, profile_id: other.profileId }, s.meta))).type).toBe("FORBIDDEN");
    expect((await access(list, other.meta)).has_access).toBe(true);
  });

  it("by the token of any list mail, without a session (RFC 8058 body field accepted); another list's or store's token is 400", async () => {
    const store = newStoreId();
    const list = await doubleOptInList(store);
    const other = await doubleOptInList(store, "other");
    const s = await shopper(env.broker, store, "oneclick@example.com");
    await subscribe(list, s.profileId, s.meta, { confirm_url: confirmUrl });
    await subscribe(other, s.profileId, s.meta, { confirm_url: confirmUrl });
    const [first, second] = mailsTo("oneclick@example.com");
    await call("profile-lists.confirm", { store_id: store, id: list.id, token: tokenIn(first).token });
    await call("profile-lists.confirm", { store_id: store, id: other.id, token: tokenIn(second).token });
    const token = unsubscribeTokenIn(first);
    const refused = async (params: Record<string, unknown>) => (await errorOf(call("profile-lists.unsubscribe", params))).type;
    expect(await refused({ store_id: store, id: other.id, token })).toBe("VALIDATION_ERROR");
    expect(await refused({ store_id: newStoreId(), id: list.id, token })).toBe("NOT_FOUND"); // the list is not in that store
    expect(await refused({ store_id: store, id: list.id, token: `${token}x` })).toBe("VALIDATION_ERROR");
    // Neither a token nor a session: the answer says both ways.
    const anonymous = await errorOf(call("profile-lists.unsubscribe", { store_id: store, id: list.id }));
    expect(anonymous).toMatchObject({ type: "UNAUTHENTICATED", code: 401 });
    expect(anonymous.message).toMatch(/session, or the token of a list e-mail's unsubscribe link/);

    const done = await call<{ membership: Membership }>("profile-lists.unsubscribe", { store_id: store, id: list.id, token, "List-Unsubscribe": "One-Click" });
    expect(done.membership).toMatchObject({ status: "unsubscribed", consent: { ip: null, user_agent: null, confirmed_ip: null } }); // a link shows no network details
    expect((await access(list, s.meta)).has_access).toBe(false);
    // The other list is untouched.
    expect((await access(other, s.meta)).has_access).toBe(true);
    expect((await getList(other)).member_count).toBe(1);
    // Again: answers the same, nothing moves.
    await call("profile-lists.unsubscribe", { store_id: store, id: list.id, token });
    expect((await getList(list)).member_count).toBe(0);
  });
});

describe("admin members", () => {
  it("add (active, source admin; an existing membership answered unchanged), list by status with cursors, remove ends access", async () => {
    const store = newStoreId();
    const list = await createList(store, "crm");
    const people = await Promise.all([0, 1, 2, 3, 4].map((i) => shopper(env.broker, store, `m${i}@example.com`)));
    const added: Membership[] = [];
    for (const p of people.slice(0, 4)) added.push(await call<Membership>("profile-lists.addMember", { store_id: store, id: list.id, profile_id: p.profileId }));
    expect(added[0]).toMatchObject({ status: "active", source: "admin", consent: { method: "admin" } });
    expect(await call("profile-lists.addMember", { store_id: store, id: list.id, profile_id: people[0].profileId })).toEqual(added[0]);
    await subscribe(list, people[4].profileId, people[4].meta);
    await call("profile-lists.unsubscribe", { store_id: store, id: list.id }, people[4].meta);
    expect((await getList(list)).member_count).toBe(4);

    const pageOf = (params: Record<string, unknown>) =>
      call<{ items: ProfileListMember[]; cursor: string | null }>("profile-lists.members", { store_id: store, id: list.id, ...params });
    const first = await pageOf({ limit: 3 });
    expect(first.items.map((m) => m.profile.id)).toEqual(people.slice(0, 3).map((p) => p.profileId));
    expect(first.items[0].profile).toMatchObject({ email: "m0@example.com" });
    const second = await pageOf({ limit: 3, cursor: first.cursor });
    expect(second.items.map((m) => m.profile.id)).toEqual(people.slice(3).map((p) => p.profileId));
    expect(second.cursor).toBeNull();
    expect((await pageOf({ status: "unsubscribed" })).items.map((m) => m.membership.profile_id)).toEqual([people[4].profileId]);
    expect((await errorOf(pageOf({ status: "active", cursor: first.cursor }))).type).toBe("VALIDATION_ERROR"); // a cursor of another query

    expect(ProfileListsActions.members.parse({ store_id: store, id: list.id }).limit).toBe(50);
    await expect(call("profile-lists.removeMember", { store_id: store, id: list.id, profile_id: people[1].profileId })).resolves.toEqual({ deleted: true });
    expect((await access(list, people[1].meta)).has_access).toBe(false);
    expect((await getList(list)).member_count).toBe(3);
    expect((await errorOf(call("profile-lists.removeMember", { store_id: store, id: list.id, profile_id: people[1].profileId }))).type).toBe("NOT_FOUND");
    expect((await errorOf(call("profile-lists.addMember", { store_id: store, id: list.id, profile_id: uuidv7() }))).type).toBe("NOT_FOUND");
    // An opt-out is not deleted: it is what keeps an import from adding the profile again.
    const optOut = await errorOf(call("profile-lists.removeMember", { store_id: store, id: list.id, profile_id: people[4].profileId }));
    expect(optOut).toMatchObject({ type: "CONFLICT", code: 409, data: { reason: "OPT_OUT_KEPT" } });
    expect((await pageOf({ status: "unsubscribed" })).items.map((m) => m.membership.profile_id)).toEqual([people[4].profileId]);
  });
});

describe("member_count", () => {
  it("stays exact under concurrent joins and leaves (and racing subscribes of one profile)", async () => {
    const store = newStoreId();
    const list = await createList(store, "busy");
    const people = await Promise.all(Array.from({ length: 24 }, (_, i) => shopper(env.broker, store, `c${i}@example.com`)));
    // Everyone joins at once, each twice over.
    await Promise.all(people.flatMap((p) => [subscribe(list, p.profileId, p.meta), subscribe(list, p.profileId, p.meta)]));
    expect((await getList(list)).member_count).toBe(24);
    // Half leave (twice over, session and admin) while the other half join again and get added.
    const leavers = people.slice(0, 12);
    const stayers = people.slice(12);
    const settle = (p: Promise<unknown>) => p.catch((e: { type?: string }) => e.type);
    await Promise.all([
      ...leavers.flatMap((p) => [
        settle(call("profile-lists.unsubscribe", { store_id: store, id: list.id }, p.meta)),
        settle(call("profile-lists.removeMember", { store_id: store, id: list.id, profile_id: p.profileId })),
      ]),
      ...stayers.flatMap((p) => [subscribe(list, p.profileId, p.meta), call("profile-lists.addMember", { store_id: store, id: list.id, profile_id: p.profileId })]),
    ]);
    const withAccess = await env.service.profileLists.store.memberships.count({ store_id: store, profile_list_id: list.id, status: "active" });
    expect(withAccess).toBe(12);
    expect((await getList(list)).member_count).toBe(12);
  });
});

describe("member_count after a crash", () => {
  it("a writer that died between the membership write and the list's $inc is settled by recovery, once", async () => {
    const store = newStoreId();
    const list = await createList(store, "crashy");
    const s = await shopper(env.broker, store, "crash@example.com");
    const lists = env.service.profileLists.store.lists;
    const spy = jest.spyOn(lists, "updateOne").mockImplementationOnce(() => Promise.reject(new Error("process died here")));
    try {
      await errorOf(subscribe(list, s.profileId, s.meta));
    } finally {
      spy.mockRestore();
    }
    expect((await access(list, s.meta)).has_access).toBe(true);
    expect((await getList(list)).member_count).toBe(0); // not applied yet
    expect(await env.service.profileLists.recoverCounts()).toBe(0); // too recent: its writer may still be running
    env.clock.now += 61;
    expect(await env.service.profileLists.recoverCounts()).toBe(1);
    expect(await env.service.profileLists.recoverCounts()).toBe(0);
    expect((await getList(list)).member_count).toBe(1);

    // A removal that died after ending access: recovery removes the document; the count moved once.
    const memberships = env.service.profileLists.store.memberships;
    const del = jest.spyOn(memberships, "deleteOne").mockImplementationOnce(() => Promise.reject(new Error("process died here")));
    try {
      await errorOf(call("profile-lists.removeMember", { store_id: store, id: list.id, profile_id: s.profileId }));
    } finally {
      del.mockRestore();
    }
    expect((await access(list, s.meta)).has_access).toBe(false);
    expect((await getList(list)).member_count).toBe(0);
    env.clock.now += 61;
    await env.service.profileLists.recoverCounts();
    expect(await memberships.count({ store_id: store, profile_list_id: list.id })).toBe(0);
    expect((await getList(list)).member_count).toBe(0);
    // And the profile can join again.
    expect((await subscribe(list, s.profileId, s.meta)).membership.status).toBe("active");
    expect((await getList(list)).member_count).toBe(1);
  });
});

describe("profile.merged", () => {
  it("moves the source's memberships to the target; in a list both were in, the one with access stays and keeps the source's consent", async () => {
    const store = newStoreId();
    const both = await createList(store, "both");
    const onlySource = await createList(store, "only-source");
    const bystanderList = await createList(store, "bystander");
    const source = await shopper(env.broker, store, "source@example.com", { ip: "198.51.100.1" });
    const target = await shopper(env.broker, store, "target@example.com", { ip: "198.51.100.2" });
    const bystander = await shopper(env.broker, store, "bystander@example.com");
    await subscribe(both, source.profileId, source.meta); // source active
    await subscribe(both, target.profileId, target.meta);
    await call("profile-lists.unsubscribe", { store_id: store, id: both.id }, target.meta); // target unsubscribed
    await subscribe(onlySource, source.profileId, source.meta);
    await subscribe(bystanderList, bystander.profileId, bystander.meta);
    expect((await getList(both)).member_count).toBe(1);

    await publishEvent(env.broker, "profile.merged", { store_id: store, source_id: source.profileId, target_id: target.profileId });
    const memberships = env.service.profileLists.store.memberships;
    await waitFor(async () => (await memberships.count({ store_id: store, profile_id: source.profileId })) === 0, "the source's memberships moved");

    const inBoth = await memberships.find({ store_id: store, profile_list_id: both.id });
    expect(inBoth).toHaveLength(1);
    expect(inBoth[0]).toMatchObject({ profile_id: target.profileId, status: "active", consent: { ip: "198.51.100.1" } });
    expect(inBoth[0].consent_history).toEqual([expect.objectContaining({ ip: "198.51.100.2", method: "signup" })]);
    expect(await memberships.find({ store_id: store, profile_list_id: onlySource.id })).toEqual([
      expect.objectContaining({ profile_id: target.profileId, status: "active" }),
    ]);
    expect((await getList(both)).member_count).toBe(1);
    expect((await getList(onlySource)).member_count).toBe(1);
    expect((await access(bystanderList, bystander.meta)).has_access).toBe(true);

    // Applied again (a redelivery, or the consumer re-run): nothing changes.
    await env.service.profileLists.moveMemberships({ store_id: store, source_id: source.profileId, target_id: target.profileId });
    expect(await memberships.find({ store_id: store, profile_list_id: both.id })).toEqual(inBoth);
  });
});

describe("store isolation (memberships)", () => {
  it("a list, membership or token of store A is not usable from store B; another list's operations leave a member alone", async () => {
    const a = newStoreId();
    const b = newStoreId();
    const list = await doubleOptInList(a);
    const s = await shopper(env.broker, a, "iso@example.com");
    const sb = await shopper(env.broker, b, "iso@example.com");
    await subscribe(list, s.profileId, s.meta, { confirm_url: confirmUrl });
    const mail = mailsTo("iso@example.com").at(-1)!;
    const { token } = tokenIn(mail);

    expect((await errorOf(call("profile-lists.subscribe", { store_id: b, id: list.id, profile_id: sb.profileId }, sb.meta))).type).toBe("NOT_FOUND");
    expect((await errorOf(call("profile-lists.access", { store_id: b, id: list.id }, sb.meta))).type).toBe("NOT_FOUND");
    expect((await errorOf(call("profile-lists.confirm", { store_id: b, id: list.id, token }))).type).toBe("VALIDATION_ERROR");
    expect((await errorOf(call("profile-lists.unsubscribe", { store_id: b, id: list.id, token: unsubscribeTokenIn(mail) }))).type).toBe("NOT_FOUND");
    expect((await errorOf(call("profile-lists.addMember", { store_id: b, id: list.id, profile_id: s.profileId }))).type).toBe("NOT_FOUND");
    expect((await errorOf(call("profile-lists.removeMember", { store_id: b, id: list.id, profile_id: s.profileId }))).type).toBe("NOT_FOUND");
    // A session of store A naming store B: 401.
    expect((await errorOf(call("profile-lists.access", { store_id: b, id: list.id }, s.meta))).type).toBe("UNAUTHENTICATED");
    // A profile of store B cannot be added to store A's list.
    expect((await errorOf(call("profile-lists.addMember", { store_id: a, id: list.id, profile_id: sb.profileId }))).type).toBe("NOT_FOUND");

    await call("profile-lists.confirm", { store_id: a, id: list.id, token });
    // Another list of the same store: join, leave, remove there change nothing here.
    const other = await createList(a, "other");
    await subscribe(other, s.profileId, s.meta);
    await call("profile-lists.unsubscribe", { store_id: a, id: other.id }, s.meta);
    await call("profile-lists.addMember", { store_id: a, id: other.id, profile_id: s.profileId });
    expect(await access(list, s.meta)).toMatchObject({ has_access: true, membership: { status: "active" } });
    expect((await getList(list)).member_count).toBe(1);
  });
});
