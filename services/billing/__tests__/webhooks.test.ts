/**
 * billing.handleStripeWebhook with the real profile-lists, the official stripe client and the Stripe
 * stand-in: signatures (constructEvent, Stripe's tolerance), each event id applied once, events this system
 * does not handle, and each handled event type's effect on the membership, member_count and access,
 * including events that arrive late or out of order.
 */
import type { ProfileList } from "../../../shared/contracts/profile-lists";
import { crmError } from "../../../shared/errors";
import { createBilling } from "../billing.logic";
import type { BillingService } from "../billing.service";
import {
  access,
  deliver,
  errorOf,
  memberCount,
  newStoreId,
  type PaidEnv,
  paidList,
  payer,
  SECRET_KEY,
  type Shopper,
  sessionOf,
  startPaid,
  subscribe,
  subscribeAndPay,
  WEBHOOK_SECRET,
} from "./helpers";

let env: PaidEnv;
beforeAll(async () => {
  env = await startPaid();
});
afterAll(() => env?.stop());

async function paidMember(email: string, priceId = "monthly") {
  const store = newStoreId();
  const list = await paidList(env, store);
  const who = await payer(env, store, email);
  return { list, who, ...(await subscribeAndPay(env, list, who, priceId)) };
}

const stateOf = async (list: ProfileList, who: Shopper) => {
  const answer = await access(env, list, who);
  return { has_access: answer.has_access, status: answer.membership?.status, end_date: answer.membership?.end_date, payment: answer.membership?.payment };
};

describe("billing.handleStripeWebhook: signatures", () => {
  it("refuses a tampered body, another secret, a missing header and a stale timestamp (400), changing nothing", async () => {
    const store = newStoreId();
    const list = await paidList(env, store);
    const who = await payer(env, store, "forged@example.com");
    const answer = await subscribe(env, list, who);
    const event = env.stripe.event("checkout.session.completed", env.stripe.completeSession(sessionOf(env, answer).id));
    const { body, headers } = env.stripe.webhookRequest(event, WEBHOOK_SECRET);
    const call = (payload: string, signature?: string) => env.broker.call("billing.handleStripeWebhook", { payload, signature });

    const refusals = [
      await errorOf(call(body.replace('"paid"', '"PAID"'), headers["stripe-signature"])),
      await errorOf(call(body, env.stripe.signWebhook(body, "whsec_someone_else"))),
      await errorOf(call(body)),
      await errorOf(call(body, env.stripe.signWebhook(body, WEBHOOK_SECRET, Math.floor(Date.now() / 1000) - 301))),
      await errorOf(call(body, "t=1,v1=deadbeef")),
    ];
    for (const err of refusals) {
      expect(err).toMatchObject({ type: "VALIDATION_ERROR", code: 400 });
      expect(JSON.stringify(err)).not.toContain(WEBHOOK_SECRET);
    }
    expect(await stateOf(list, who)).toMatchObject({ has_access: false, status: "pending" });
    // The same event, signed right (within the 300 s tolerance), is applied.
    await expect(call(body, env.stripe.signWebhook(body, WEBHOOK_SECRET, Math.floor(Date.now() / 1000) - 200))).resolves.toEqual({ received: true });
    expect(await stateOf(list, who)).toMatchObject({ has_access: true, status: "active" });
  });
});

describe("billing.handleStripeWebhook: each event id once", () => {
  it("acknowledges a repeat of an event id without asking Stripe or changing anything", async () => {
    const { list, who, session, subscription } = await paidMember("repeat@example.com");
    const completed = env.stripe.event("checkout.session.completed", session);
    await deliver(env, completed);
    expect(await stateOf(list, who)).toMatchObject({ status: "active" });

    env.stripe.updateSubscription(subscription!.id, { cancel_at_period_end: true });
    await deliver(env, env.stripe.event("customer.subscription.updated", subscription));
    const before = env.stripe.requests.length;
    // The first completion's id again (Stripe retried it): acknowledged, nothing asked, nothing changed.
    await expect(deliver(env, completed)).resolves.toEqual({ received: true });
    expect(env.stripe.requests.length).toBe(before);
    expect(await stateOf(list, who)).toMatchObject({ status: "cancellation_scheduled", has_access: true });
    expect(await memberCount(env, list)).toBe(1);
  });

  it("acknowledges events it does not handle, and objects another integration made (no metadata of ours)", async () => {
    await expect(deliver(env, env.stripe.event("customer.created", { id: "cus_test_x", object: "customer" }))).resolves.toEqual({ received: true });
    const store = newStoreId();
    const list = await paidList(env, store);
    const who = await payer(env, store, "foreign@example.com");
    const ours = sessionOf(env, await subscribe(env, list, who));
    // The same kind of object, made by another integration on the Stripe account: no metadata of ours.
    const foreign = env.stripe.completeSession(ours.id, { metadata: {} });
    await expect(deliver(env, env.stripe.event("checkout.session.completed", foreign))).resolves.toEqual({ received: true });
    expect(await stateOf(list, who)).toMatchObject({ has_access: false, status: "pending" });
  });
});

describe("billing.handleStripeWebhook: checkout events", () => {
  it("checkout.session.completed (subscription): active, end_date and payment from the subscription; member_count 1", async () => {
    const { list, who, session, subscription } = await paidMember("completed@example.com");
    const periodEnd = subscription!.items.data[0].current_period_end;
    expect(await stateOf(list, who)).toEqual({
      has_access: true,
      status: "active",
      end_date: periodEnd,
      payment: {
        provider: "stripe",
        price_id: "monthly",
        checkout_session_id: session.id,
        subscription_id: subscription!.id,
        customer_id: session.customer,
        current_period_end: periodEnd,
      },
    });
    expect(await memberCount(env, list)).toBe(1);
    const membership = (await access(env, list, who)).membership!;
    expect(membership.consent).toMatchObject({ method: "checkout", confirmed_at: expect.any(Number) });
    expect(membership.start_date).toEqual(expect.any(Number));
  });

  it("checkout.session.completed (one-off price): active with no end", async () => {
    const { list, who, session } = await paidMember("lifetime@example.com", "lifetime");
    expect(session.mode).toBe("payment");
    expect(await stateOf(list, who)).toMatchObject({
      has_access: true,
      status: "active",
      end_date: null,
      payment: { price_id: "lifetime", subscription_id: null, customer_id: session.customer },
    });
  });

  it("a delayed payment: completed unpaid changes nothing; async_payment_succeeded makes it active, _failed expired", async () => {
    const store = newStoreId();
    const list = await paidList(env, store);
    const paying = await payer(env, store, "async-ok@example.com");
    const failing = await payer(env, store, "async-ko@example.com");
    for (const who of [paying, failing]) {
      const session = env.stripe.completeSession(sessionOf(env, await subscribe(env, list, who, { price_id: "lifetime" })).id, { payment_status: "unpaid" });
      await deliver(env, env.stripe.event("checkout.session.completed", session));
      expect(await stateOf(list, who)).toMatchObject({ has_access: false, status: "pending" });
    }
    const paid = env.stripe.sessions.get((await access(env, list, paying)).membership!.payment!.checkout_session_id!)!;
    await deliver(env, env.stripe.event("checkout.session.async_payment_succeeded", { ...paid, payment_status: "paid" }));
    expect(await stateOf(list, paying)).toMatchObject({ has_access: true, status: "active" });
    const unpaid = env.stripe.sessions.get((await access(env, list, failing)).membership!.payment!.checkout_session_id!)!;
    await deliver(env, env.stripe.event("checkout.session.async_payment_failed", unpaid));
    expect(await stateOf(list, failing)).toMatchObject({ has_access: false, status: "expired" });
    expect(await memberCount(env, list)).toBe(1);
  });

  it("checkout.session.expired: a pending membership expires; an expiry that comes after the payment changes nothing", async () => {
    const store = newStoreId();
    const list = await paidList(env, store);
    const who = await payer(env, store, "expired@example.com");
    const answer = await subscribe(env, list, who);
    const session = sessionOf(env, answer);
    await deliver(env, env.stripe.event("checkout.session.expired", { ...session, status: "expired", url: null }));
    expect(await stateOf(list, who)).toMatchObject({ has_access: false, status: "expired" });

    const { list: other, who: member, session: paidSession } = await paidMember("paid-then-expired@example.com");
    await deliver(env, env.stripe.event("checkout.session.expired", { ...paidSession, status: "expired" }));
    expect(await stateOf(other, member)).toMatchObject({ has_access: true, status: "active" });
  });
});

describe("billing.handleStripeWebhook: subscription events", () => {
  it("customer.subscription.updated: cancel at period end (access until end_date), un-cancel, past_due keeps access, unpaid ends it", async () => {
    const { list, who, subscription } = await paidMember("updates@example.com");
    const sub = subscription!;
    const periodEnd = sub.items.data[0].current_period_end;

    env.stripe.updateSubscription(sub.id, { cancel_at_period_end: true });
    await deliver(env, env.stripe.event("customer.subscription.updated", sub));
    expect(await stateOf(list, who)).toMatchObject({ has_access: true, status: "cancellation_scheduled", end_date: periodEnd });
    expect(await memberCount(env, list)).toBe(1);

    env.stripe.updateSubscription(sub.id, { cancel_at_period_end: false });
    await deliver(env, env.stripe.event("customer.subscription.updated", sub));
    expect(await stateOf(list, who)).toMatchObject({ has_access: true, status: "active", end_date: periodEnd });

    env.stripe.updateSubscription(sub.id, { status: "past_due" });
    await deliver(env, env.stripe.event("customer.subscription.updated", sub));
    expect(await stateOf(list, who)).toMatchObject({ has_access: true, status: "active" });

    env.stripe.updateSubscription(sub.id, { status: "unpaid" });
    await deliver(env, env.stripe.event("customer.subscription.updated", sub));
    expect(await stateOf(list, who)).toMatchObject({ has_access: false, status: "expired" });
    expect(await memberCount(env, list)).toBe(0);
  });

  it("invoice.paid: a renewal moves end_date and current_period_end (and an unpaid subscription paid again is active)", async () => {
    const { list, who, subscription } = await paidMember("renewal@example.com");
    const sub = subscription!;
    const firstEnd = sub.items.data[0].current_period_end;
    env.stripe.updateSubscription(sub.id, { status: "unpaid" });
    await deliver(env, env.stripe.event("customer.subscription.updated", sub));
    expect(await stateOf(list, who)).toMatchObject({ has_access: false, status: "expired" });

    const invoice = env.stripe.renewSubscription(sub.id);
    await deliver(env, env.stripe.event("invoice.paid", invoice));
    const renewed = await stateOf(list, who);
    expect(renewed).toMatchObject({ has_access: true, status: "active", end_date: firstEnd + 30 * 24 * 3600 });
    expect(renewed.payment?.current_period_end).toBe(firstEnd + 30 * 24 * 3600);
    expect(await memberCount(env, list)).toBe(1);
  });

  it("customer.subscription.deleted: cancelled, access ends, member_count drops", async () => {
    const { list, who, subscription } = await paidMember("deleted@example.com");
    env.stripe.updateSubscription(subscription!.id, { status: "canceled" });
    await deliver(env, env.stripe.event("customer.subscription.deleted", subscription));
    expect(await stateOf(list, who)).toMatchObject({ has_access: false, status: "cancelled" });
    expect(await memberCount(env, list)).toBe(0);
  });

  it("out of order: the state is the subscription's as Stripe has it now, and an older event never undoes a newer one", async () => {
    const { list, who, subscription } = await paidMember("order@example.com");
    const sub = subscription!;
    const t = Math.floor(Date.now() / 1000);
    // The newest event first: the cancellation was scheduled.
    env.stripe.updateSubscription(sub.id, { cancel_at_period_end: true });
    await deliver(env, env.stripe.event("customer.subscription.updated", sub, undefined, t + 20));
    // Stripe's state changes again; a late, older event (from before the cancellation) arrives first.
    env.stripe.updateSubscription(sub.id, { cancel_at_period_end: false });
    await deliver(env, env.stripe.event("customer.subscription.updated", { ...sub, cancel_at_period_end: false }, undefined, t + 10));
    expect(await stateOf(list, who)).toMatchObject({ status: "cancellation_scheduled" });
    // The un-cancel's own event (newer) applies.
    await deliver(env, env.stripe.event("customer.subscription.updated", sub, undefined, t + 30));
    expect(await stateOf(list, who)).toMatchObject({ status: "active" });
    // A replay of a stale checkout.session.completed never brings back what the subscription's deletion ended.
    env.stripe.updateSubscription(sub.id, { status: "canceled" });
    await deliver(env, env.stripe.event("customer.subscription.deleted", sub, undefined, t + 40));
    const session = env.stripe.sessions.get((await access(env, list, who)).membership!.payment!.checkout_session_id!)!;
    await deliver(env, env.stripe.event("checkout.session.completed", session, undefined, t));
    expect(await stateOf(list, who)).toMatchObject({ has_access: false, status: "cancelled" });
    expect(await memberCount(env, list)).toBe(0);
  });
});

describe("billing.handleStripeWebhook: never 200 for an event that could be lost", () => {
  it("Stripe not answering the subscription fetch: 503 and nothing recorded, so Stripe's retry applies it", async () => {
    const store = newStoreId();
    const list = await paidList(env, store);
    const who = await payer(env, store, "outage-webhook@example.com");
    const session = env.stripe.completeSession(sessionOf(env, await subscribe(env, list, who)).id);
    const event = env.stripe.event("checkout.session.completed", session);
    env.stripe.failing = true;
    try {
      expect(await errorOf(deliver(env, event))).toMatchObject({ type: "SERVICE_UNAVAILABLE", code: 503 });
    } finally {
      env.stripe.failing = false;
    }
    expect(await stateOf(list, who)).toMatchObject({ has_access: false, status: "pending" });
    await expect(deliver(env, event)).resolves.toEqual({ received: true });
    expect(await stateOf(list, who)).toMatchObject({ has_access: true, status: "active" });
  });

  it("a change profile-lists could not take: the webhook fails (5xx), the event is not recorded, and the retry applies it", async () => {
    const service = env.broker.getLocalService("billing") as unknown as BillingService;
    const working = service.billing;
    let failures = 1;
    service.billing = await createBilling({
      db: service.db,
      bus: env.broker,
      logger: service.logger,
      settings: { STRIPE_SECRET_KEY: SECRET_KEY, STRIPE_WEBHOOK_SECRET: WEBHOOK_SECRET, STRIPE_API_URL: env.stripe.url },
      deliver: async (change) => {
        if (failures-- > 0) throw crmError("SERVICE_UNAVAILABLE", "profile-lists is not answering");
        await env.broker.call("profile-lists.applyPaymentChange", change);
      },
    });
    try {
      const store = newStoreId();
      const list = await paidList(env, store);
      const who = await payer(env, store, "undelivered@example.com");
      const event = env.stripe.event("checkout.session.completed", env.stripe.completeSession(sessionOf(env, await subscribe(env, list, who)).id));
      expect((await errorOf(deliver(env, event))).code).toBe(503);
      expect(await stateOf(list, who)).toMatchObject({ has_access: false });
      await expect(deliver(env, event)).resolves.toEqual({ received: true });
      expect(await stateOf(list, who)).toMatchObject({ has_access: true, status: "active" });
    } finally {
      service.billing = working;
    }
  });
});

describe("billing.replayStripeEvent", () => {
  it("fetches an event Stripe has by id and handles it once; an unknown id is 404", async () => {
    const store = newStoreId();
    const list = await paidList(env, store);
    const who = await payer(env, store, "replay@example.com");
    const session = env.stripe.completeSession(sessionOf(env, await subscribe(env, list, who)).id);
    const event = env.stripe.event("checkout.session.completed", session);
    await expect(env.broker.call("billing.replayStripeEvent", { event_id: event.id })).resolves.toEqual({ event_id: event.id, handled: true });
    expect(await stateOf(list, who)).toMatchObject({ has_access: true });
    await expect(deliver(env, event)).resolves.toEqual({ received: true });
    expect((await errorOf(env.broker.call("billing.replayStripeEvent", { event_id: "evt_test_missing" }))).type).toBe("NOT_FOUND");
  });
});
