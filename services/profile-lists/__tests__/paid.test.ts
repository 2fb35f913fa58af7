/**
 * Paid lists in profile-lists, with the real billing service and the official stripe client pointed at the
 * Stripe stand-in: subscribe (the Checkout Session Stripe saw, pending membership, the same session for a
 * double click, validation before anything is made), admin removal (now, or at the period's end) and
 * unsubscribe ending the payment at Stripe, access lapsing at end_date without an event, merges, and a
 * deployment without Stripe keys.
 */
import type { CheckoutResult } from "../../../shared/contracts/billing";
import type { ProfileList, ProfileListMember } from "../../../shared/contracts/profile-lists";
import { publishEvent } from "../../../shared/events/durable";
import { waitFor } from "../../../test/harness/wait";
import {
  access,
  CANCEL_URL,
  deliver,
  errorOf,
  LINK_ORIGIN,
  memberCount,
  newStoreId,
  type PaidEnv,
  paidList,
  payer,
  sessionOf,
  startPaid,
  SUCCESS_URL,
  subscribe,
  subscribeAndPay,
} from "../../billing/__tests__/helpers";

let env: PaidEnv;
beforeAll(async () => {
  env = await startPaid();
});
afterAll(() => env?.stop());

const sessionCreates = () => env.stripe.requests.filter((r) => r.method === "POST" && r.path === "/v1/checkout/sessions");
const members = (list: ProfileList) =>
  env.broker.call<{ items: ProfileListMember[] }, object>("profile-lists.members", { store_id: list.store_id, id: list.id }).then((page) => page.items);
const remove = (list: ProfileList, profileId: string, extra: Record<string, unknown> = {}) =>
  env.broker.call("profile-lists.removeMember", { store_id: list.store_id, id: list.id, profile_id: profileId, ...extra });

describe("profile-lists.subscribe (paid list)", () => {
  it("creates a Checkout Session for the price (subscription mode for a recurring price) and answers its URL with a pending membership", async () => {
    const store = newStoreId();
    const list = await paidList(env, store);
    const who = await payer(env, store, "checkout@example.com");
    const answer = await subscribe(env, list, who);
    const session = sessionOf(env, answer);

    expect(answer.checkout_url).toBe(session.url);
    expect(answer.membership).toMatchObject({
      status: "pending",
      source: "signup",
      consent: { method: "checkout", ip: "203.0.113.7", user_agent: "jest-browser/1.0" },
      payment: { provider: "stripe", price_id: "monthly", checkout_session_id: session.id, subscription_id: null, customer_id: null, current_period_end: null },
      start_date: null,
      end_date: null,
    });
    const metadata = { store_id: store, profile_list_id: list.id, profile_id: who.profileId, membership_id: answer.membership.id };
    const request = sessionCreates().at(-1)!;
    expect(request.body).toEqual({
      mode: "subscription",
      line_items: [{ price: "price_monthly", quantity: "1" }],
      success_url: SUCCESS_URL,
      cancel_url: CANCEL_URL,
      client_reference_id: answer.membership.id,
      customer_email: "checkout@example.com",
      metadata,
      subscription_data: { metadata },
    });
    expect(request.idempotencyKey).toMatch(new RegExp(`^crm-checkout-${answer.membership.id}-`));
    expect(await access(env, list, who)).toMatchObject({ has_access: false, membership: { status: "pending" } });
    expect(await memberCount(env, list)).toBe(0);
  });

  it("a one-off price (no interval) is a payment-mode session; price_id may be the Stripe price id", async () => {
    const store = newStoreId();
    const list = await paidList(env, store);
    const who = await payer(env, store, "once@example.com");
    const answer = await subscribe(env, list, who, { price_id: "price_lifetime" });
    expect(answer.membership.payment?.price_id).toBe("lifetime");
    expect(sessionCreates().at(-1)!.body).toMatchObject({ mode: "payment", line_items: [{ price: "price_lifetime" }], customer_creation: "always" });
    expect(sessionCreates().at(-1)!.body).not.toHaveProperty("subscription_data");
  });

  it("a double click gets the same session (sequential and concurrent), with one session made at Stripe", async () => {
    const store = newStoreId();
    const list = await paidList(env, store);
    const who = await payer(env, store, "double@example.com");
    const before = env.stripe.sessions.size;
    const createsBefore = sessionCreates().length;
    const [a, b] = await Promise.all([subscribe(env, list, who), subscribe(env, list, who)]);
    const c = await subscribe(env, list, who);
    expect(new Set([a, b, c].map((x) => x.checkout_url)).size).toBe(1);
    expect(new Set([a, b, c].map((x) => x.membership.id)).size).toBe(1);
    expect(env.stripe.sessions.size).toBe(before + 1);
    // Every create asked with the one key (a repeat billing knows is answered by a retrieve).
    expect(
      new Set(
        sessionCreates()
          .slice(createsBefore)
          .map((r) => r.idempotencyKey),
      ).size,
    ).toBe(1);
  });

  it("another price (or other return URLs) while pending: a new session, and the previous one is expired at Stripe", async () => {
    const store = newStoreId();
    const list = await paidList(env, store);
    const who = await payer(env, store, "switch@example.com");
    const first = await subscribe(env, list, who);
    const second = await subscribe(env, list, who, { price_id: "lifetime" });
    expect(second.membership.id).toBe(first.membership.id);
    expect(second.checkout_url).not.toBe(first.checkout_url);
    expect(second.membership.payment).toMatchObject({ price_id: "lifetime" });
    expect(sessionOf(env, first).status).toBe("expired");
    // The previous session's expiry event does not expire the membership (it is not its session any more).
    await deliver(env, env.stripe.event("checkout.session.expired", sessionOf(env, first)));
    expect((await access(env, list, who)).membership).toMatchObject({
      status: "pending",
      payment: { checkout_session_id: second.membership.payment!.checkout_session_id },
    });
  });

  it("validates price_id, success_url and cancel_url (400 naming each) before anything is made", async () => {
    const store = newStoreId();
    const list = await paidList(env, store);
    const who = await payer(env, store, "invalid@example.com");
    const before = env.stripe.requests.length;
    const fieldOf = async (extra: Record<string, unknown>) => {
      const err = await errorOf(subscribe(env, list, who, extra));
      expect(err).toMatchObject({ type: "VALIDATION_ERROR", code: 400 });
      return err.data.validationErrors.map((e: { field: string }) => e.field);
    };
    expect(await fieldOf({ price_id: undefined })).toEqual(["price_id"]);
    expect(await fieldOf({ price_id: "price_unknown" })).toEqual(["price_id"]);
    expect(await fieldOf({ success_url: undefined })).toEqual(["success_url"]);
    expect(await fieldOf({ success_url: "https://evil.example/ok" })).toEqual(["success_url"]);
    expect(await fieldOf({ cancel_url: "http://shop.example/no" })).toEqual(["cancel_url"]);
    expect(await fieldOf({ cancel_url: undefined })).toEqual(["cancel_url"]);
    expect(env.stripe.requests.length).toBe(before);
    expect((await access(env, list, who)).membership).toBeNull();
  });

  it("a profile with access gets its membership back and no new session", async () => {
    const store = newStoreId();
    const list = await paidList(env, store);
    const who = await payer(env, store, "member@example.com");
    await subscribeAndPay(env, list, who);
    const before = sessionCreates().length;
    const again = await subscribe(env, list, who);
    expect(again).toMatchObject({ checkout_url: null, membership: { status: "active" } });
    expect(sessionCreates().length).toBe(before);
  });

  it("after an expired checkout, subscribing again starts a new checkout (a new session, the old consent in history)", async () => {
    const store = newStoreId();
    const list = await paidList(env, store);
    const who = await payer(env, store, "retry@example.com");
    const first = await subscribe(env, list, who);
    await deliver(env, env.stripe.event("checkout.session.expired", { ...sessionOf(env, first), status: "expired" }));
    const second = await subscribe(env, list, who);
    expect(second.membership).toMatchObject({ id: first.membership.id, status: "pending", consent_history: [{ method: "checkout" }] });
    expect(second.membership.payment?.checkout_session_id).not.toBe(first.membership.payment?.checkout_session_id);
    expect(second.checkout_url).toEqual(expect.any(String));
  });

  it("a session Stripe already expired (its webhook still on the way) is not handed out again", async () => {
    const store = newStoreId();
    const list = await paidList(env, store);
    const who = await payer(env, store, "stale@example.com");
    const first = await subscribe(env, list, who);
    sessionOf(env, first).status = "expired"; // expired at Stripe, no event yet
    const second = await subscribe(env, list, who);
    expect(second.checkout_url).toEqual(expect.any(String));
    expect(second.membership.payment?.checkout_session_id).not.toBe(first.membership.payment?.checkout_session_id);
  });

  it("Stripe down: 503, and the membership it made is gone again", async () => {
    const store = newStoreId();
    const list = await paidList(env, store);
    const who = await payer(env, store, "outage@example.com");
    env.stripe.failing = true;
    try {
      expect(await errorOf(subscribe(env, list, who))).toMatchObject({ type: "SERVICE_UNAVAILABLE", data: { reason: "PAYMENT_PROVIDER_UNAVAILABLE" } });
    } finally {
      env.stripe.failing = false;
    }
    expect((await access(env, list, who)).membership).toBeNull();
    expect((await subscribe(env, list, who)).checkout_url).toEqual(expect.any(String));
  });
});

describe("ending a paid membership", () => {
  it("admin removal cancels the subscription at Stripe now: access ends at once; the later subscription.deleted changes nothing", async () => {
    const store = newStoreId();
    const list = await paidList(env, store);
    const who = await payer(env, store, "removed@example.com");
    const { subscription } = await subscribeAndPay(env, list, who);
    expect(await memberCount(env, list)).toBe(1);
    await expect(remove(list, who.profileId)).resolves.toEqual({ deleted: true });
    expect(env.stripe.requests.at(-1)).toMatchObject({ method: "DELETE", path: `/v1/subscriptions/${subscription!.id}` });
    expect(subscription!.status).toBe("canceled");
    expect(await access(env, list, who)).toEqual({ has_access: false, membership: null });
    expect(await memberCount(env, list)).toBe(0);
    await expect(deliver(env, env.stripe.event("customer.subscription.deleted", subscription))).resolves.toEqual({ received: true });
    expect(await access(env, list, who)).toEqual({ has_access: false, membership: null });
  });

  it("admin removal ?at_period_end=true: cancellation_scheduled with access until end_date; the later events agree; access lapses at end_date", async () => {
    const store = newStoreId();
    const list = await paidList(env, store);
    const who = await payer(env, store, "period-end@example.com");
    const { subscription } = await subscribeAndPay(env, list, who);
    const periodEnd = subscription!.items.data[0].current_period_end;
    await expect(remove(list, who.profileId, { at_period_end: "true" })).resolves.toEqual({ deleted: true });
    expect(env.stripe.requests.at(-1)).toMatchObject({ method: "POST", path: `/v1/subscriptions/${subscription!.id}`, body: { cancel_at_period_end: "true" } });
    expect(await access(env, list, who)).toMatchObject({ has_access: true, membership: { status: "cancellation_scheduled", end_date: periodEnd } });
    await deliver(env, env.stripe.event("customer.subscription.updated", subscription));
    expect((await members(list)).map((m) => [m.membership.status, m.membership.end_date])).toEqual([["cancellation_scheduled", periodEnd]]);
    expect(await memberCount(env, list)).toBe(1);

    // The period ends: access ends at read time, with no event, and the sweep settles member_count.
    env.clock.now = periodEnd + 1;
    try {
      expect(await access(env, list, who)).toMatchObject({ has_access: false, membership: { status: "cancellation_scheduled" } });
      const service = env.broker.getLocalService("profile-lists") as unknown as { profileLists: { endLapsedCancellations(): Promise<number> } };
      expect(await service.profileLists.endLapsedCancellations()).toBeGreaterThanOrEqual(1);
      expect(await access(env, list, who)).toMatchObject({ has_access: false, membership: { status: "cancelled", end_date: periodEnd } });
      expect(await memberCount(env, list)).toBe(0);
      env.stripe.updateSubscription(subscription!.id, { status: "canceled" });
      await deliver(env, env.stripe.event("customer.subscription.deleted", subscription));
      expect(await memberCount(env, list)).toBe(0);
    } finally {
      env.clock.now = Math.floor(Date.now() / 1000);
    }
  });

  it("?at_period_end=true without a running subscription (a free member, a one-off payment) is 400, changing nothing", async () => {
    const store = newStoreId();
    const list = await paidList(env, store);
    const who = await payer(env, store, "one-off@example.com");
    await subscribeAndPay(env, list, who, "lifetime");
    expect(await errorOf(remove(list, who.profileId, { at_period_end: true }))).toMatchObject({
      type: "VALIDATION_ERROR",
      data: { validationErrors: [{ field: "at_period_end" }] },
    });
    expect(await access(env, list, who)).toMatchObject({ has_access: true });
  });

  it("removing a pending member expires its open checkout, so it cannot be paid any more", async () => {
    const store = newStoreId();
    const list = await paidList(env, store);
    const who = await payer(env, store, "pending-removed@example.com");
    const answer = await subscribe(env, list, who);
    await expect(remove(list, who.profileId)).resolves.toEqual({ deleted: true });
    expect(sessionOf(env, answer).status).toBe("expired");
  });

  it("Stripe refusing to answer stops the removal (503) with nothing changed", async () => {
    const store = newStoreId();
    const list = await paidList(env, store);
    const who = await payer(env, store, "keep@example.com");
    await subscribeAndPay(env, list, who);
    env.stripe.failing = true;
    try {
      expect((await errorOf(remove(list, who.profileId))).type).toBe("SERVICE_UNAVAILABLE");
    } finally {
      env.stripe.failing = false;
    }
    expect(await access(env, list, who)).toMatchObject({ has_access: true, membership: { status: "active" } });
  });

  it("unsubscribing from a paid list cancels the subscription at Stripe: access ends, no more charges", async () => {
    const store = newStoreId();
    const list = await paidList(env, store);
    const who = await payer(env, store, "leaver@example.com");
    const { subscription } = await subscribeAndPay(env, list, who);
    await env.broker.call("profile-lists.unsubscribe", { store_id: store, id: list.id }, { meta: who.meta });
    expect(subscription!.status).toBe("canceled");
    expect(await access(env, list, who)).toMatchObject({ has_access: false, membership: { status: "unsubscribed" } });
    // Its deletion event leaves the member's own choice as it is.
    await deliver(env, env.stripe.event("customer.subscription.deleted", subscription));
    expect((await access(env, list, who)).membership?.status).toBe("unsubscribed");
    expect(await memberCount(env, list)).toBe(0);
  });
});

describe("payment changes that race (from a review)", () => {
  it("an older change that read the membership before a newer one was applied does not overwrite it", async () => {
    const store = newStoreId();
    const list = await paidList(env, store);
    const who = await payer(env, store, "race@example.com");
    const { subscription } = await subscribeAndPay(env, list, who);
    const [member] = await members(list);
    const { payment, end_date } = member.membership;
    const change = (version: number, periodEnd: number) => ({
      store_id: store,
      profile_list_id: list.id,
      membership_id: member.membership.id,
      stripe_event_id: `evt_race_${version}`,
      kind: "subscription_changed",
      version,
      status: "active",
      checkout_session_id: payment!.checkout_session_id,
      price_id: payment!.price_id,
      subscription_id: subscription!.id,
      customer_id: payment!.customer_id,
      current_period_end: periodEnd,
      end_date: null,
    });
    const base = Math.floor(Date.now() / 1000) + 10;
    const newer = change(base + 50, (end_date ?? base) + 2000);
    const older = change(base + 10, (end_date ?? base) + 100);
    // Both read the membership before either writes; the newer one writes first.
    await Promise.all([env.broker.call("profile-lists.applyPaymentChange", newer), env.broker.call("profile-lists.applyPaymentChange", older)]);
    const [after] = await members(list);
    expect(after.membership.payment?.current_period_end).toBe(newer.current_period_end);
  });
});

describe("merges", () => {
  it("a paid membership moves to the target profile with its payment (the same Stripe customer), and its events still apply", async () => {
    const store = newStoreId();
    const list = await paidList(env, store);
    const source = await payer(env, store, "merge-source@example.com");
    const target = await payer(env, store, "merge-target@example.com");
    const { session, subscription } = await subscribeAndPay(env, list, source);
    await env.broker.call("profile-lists.addMember", { store_id: store, id: list.id, profile_id: target.profileId });
    // Both have access: the paid one stays (a free membership never makes a subscription lose its member).
    await publishEvent(env.broker, "profile.merged", { store_id: store, source_id: source.profileId, target_id: target.profileId });
    const moved = await waitFor(async () => {
      const items = await members(list);
      return items.length === 1 && items[0].membership.profile_id === target.profileId && items[0];
    }, "the paid membership to move to the target");
    expect(moved.membership.payment).toMatchObject({ customer_id: session.customer, subscription_id: subscription!.id });
    expect(await memberCount(env, list)).toBe(1);
    env.stripe.updateSubscription(subscription!.id, { cancel_at_period_end: true });
    await deliver(env, env.stripe.event("customer.subscription.updated", subscription));
    expect((await access(env, list, target)).membership?.status).toBe("cancellation_scheduled");
  });
});

describe("billing not configured (no STRIPE_SECRET_KEY)", () => {
  let bare: PaidEnv;
  beforeAll(async () => {
    bare = await startPaid({ configured: false });
  });
  afterAll(() => bare?.stop());

  it("paid subscribe is a 503 saying so, leaving no membership; health says not_configured; free lists work", async () => {
    const store = newStoreId();
    const list = await paidList(bare, store);
    const who = await payer(bare, store, "unconfigured@example.com");
    const err = await errorOf(subscribe(bare, list, who));
    expect(err).toMatchObject({ type: "SERVICE_UNAVAILABLE", code: 503, data: { reason: "BILLING_NOT_CONFIGURED" } });
    expect(err.message).toMatch(/billing is not configured/);
    expect((await access(bare, list, who)).membership).toBeNull();
    await expect(bare.broker.call("billing.health")).resolves.toEqual({ status: "not_configured" });
    const webhook = await errorOf(bare.broker.call("billing.handleStripeWebhook", { payload: "{}", signature: "t=1,v1=x" }));
    expect(webhook.type).toBe("SERVICE_UNAVAILABLE");
    const free = await bare.broker.call<ProfileList, object>("profile-lists.create", { store_id: store, key: "free" });
    await expect(subscribe(bare, free, who, { price_id: undefined })).resolves.toMatchObject({ checkout_url: null, membership: { status: "active" } });
  });

  it("billing's own checkout action answers the same 503", async () => {
    const err = await errorOf(
      bare.broker.call<CheckoutResult, object>("billing.createCheckout", {
        store_id: newStoreId(),
        profile_list_id: newStoreId(),
        profile_id: newStoreId(),
        membership_id: newStoreId(),
        attempt: "a",
        price: { id: "p", stripe_price_id: "price_p", mode: "payment" },
        success_url: `${LINK_ORIGIN}/ok`,
        cancel_url: `${LINK_ORIGIN}/no`,
      }),
    );
    expect(err).toMatchObject({ type: "SERVICE_UNAVAILABLE", data: { reason: "BILLING_NOT_CONFIGURED" } });
  });
});
