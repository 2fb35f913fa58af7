/** startStripeStandIn: the official stripe client pointed at a local stand-in, and signed webhooks. */
import Stripe from "stripe";
import { decodeForm, startStripeStandIn, type StripeStandIn } from "../stripe";

describe("startStripeStandIn", () => {
  let standIn: StripeStandIn;
  let stripe: Stripe;

  beforeAll(async () => {
    standIn = await startStripeStandIn();
    stripe = new Stripe("sk_test_standin", { ...standIn.clientOptions, maxNetworkRetries: 0 });
  });
  afterAll(async () => {
    await standIn.close();
  });

  it("creates a Checkout Session the client parses, echoing metadata, e-mail and line items", async () => {
    const session = await stripe.checkout.sessions.create({
      mode: "subscription",
      customer_email: "ada@example.com",
      success_url: "https://shop.test/ok",
      cancel_url: "https://shop.test/cancel",
      line_items: [{ price: "price_123", quantity: 2 }],
      metadata: { store_id: "s1", profile_id: "p1" },
    });
    expect(session).toMatchObject({
      object: "checkout.session",
      status: "open",
      mode: "subscription",
      customer_email: "ada@example.com",
      metadata: { store_id: "s1", profile_id: "p1" },
      payment_status: "unpaid",
    });
    expect(session.id).toMatch(/^cs_test_/);
    expect(session.url).toBe(`${standIn.url}/c/pay/${session.id}`);
    expect(session.line_items?.data[0]).toMatchObject({ quantity: 2, price: { id: "price_123" } });

    const request = standIn.requests.at(-1)!;
    expect(request).toMatchObject({ method: "POST", path: "/v1/checkout/sessions" });
    expect(request.body).toMatchObject({ line_items: [{ price: "price_123", quantity: "2" }], metadata: { profile_id: "p1" } });
    expect(request.headers.authorization).toBe("Bearer sk_test_standin");
  });

  it("retrieves a session, completes it, and answers 404 for an unknown id", async () => {
    const created = await stripe.checkout.sessions.create({ mode: "payment", line_items: [{ price: "price_1", quantity: 1 }] });
    standIn.completeSession(created.id);
    const fetched = await stripe.checkout.sessions.retrieve(created.id);
    expect(fetched).toMatchObject({ id: created.id, status: "complete", payment_status: "paid" });
    expect(fetched.payment_intent).toMatch(/^pi_test_/);
    await expect(stripe.checkout.sessions.retrieve("cs_test_missing")).rejects.toMatchObject({
      type: "StripeInvalidRequestError",
      statusCode: 404,
      code: "resource_missing",
    });
  });

  it("replays the same answer for the same Idempotency-Key", async () => {
    const params = { mode: "payment" as const, line_items: [{ price: "price_1", quantity: 1 }] };
    const before = standIn.sessions.size;
    const first = await stripe.checkout.sessions.create(params, { idempotencyKey: "key-1" });
    const second = await stripe.checkout.sessions.create(params, { idempotencyKey: "key-1" });
    expect(second.id).toBe(first.id);
    expect(standIn.sessions.size).toBe(before + 1);
    expect(standIn.requests.at(-1)?.idempotencyKey).toBe("key-1");
  });

  it("refuses a request without a secret key and a session without mode", async () => {
    const res = await fetch(`${standIn.url}/v1/checkout/sessions/x`);
    expect(res.status).toBe(401);
    await expect(stripe.checkout.sessions.create({ line_items: [{ price: "p", quantity: 1 }] } as never)).rejects.toMatchObject({
      statusCode: 400,
      param: "mode",
    });
  });

  it("signs webhook payloads that stripe.webhooks.constructEvent accepts (and rejects when tampered)", () => {
    const session = [...standIn.sessions.values()][0];
    const event = standIn.event("checkout.session.completed", session, "evt_test_1");
    const { body, headers } = standIn.webhookRequest(event, "whsec_test");
    const parsed = stripe.webhooks.constructEvent(body, headers["stripe-signature"], "whsec_test");
    expect(parsed).toMatchObject({ id: "evt_test_1", type: "checkout.session.completed", data: { object: { id: session.id } } });
    expect(() => stripe.webhooks.constructEvent(body.replace("evt_test_1", "evt_test_2"), headers["stripe-signature"], "whsec_test")).toThrow(/signature/i);
    expect(() => stripe.webhooks.constructEvent(body, standIn.signWebhook(body, "whsec_other"), "whsec_test")).toThrow(/signature/i);
  });

  it("completing a subscription-mode session creates its subscription (with subscription_data.metadata); retrieve, update and cancel it", async () => {
    const created = await stripe.checkout.sessions.create({
      mode: "subscription",
      line_items: [{ price: "price_month", quantity: 1 }],
      subscription_data: { metadata: { membership_id: "m1" } },
    });
    const session = standIn.completeSession(created.id);
    const sub = await stripe.subscriptions.retrieve(String(session.subscription));
    expect(sub).toMatchObject({ status: "active", cancel_at_period_end: false, customer: session.customer, metadata: { membership_id: "m1" } });
    expect(sub.items.data[0]).toMatchObject({ price: { id: "price_month" }, current_period_end: expect.any(Number) });

    await expect(stripe.subscriptions.update(sub.id, { cancel_at_period_end: true })).resolves.toMatchObject({ cancel_at_period_end: true });
    const cancelled = await stripe.subscriptions.cancel(sub.id);
    expect(cancelled).toMatchObject({ status: "canceled", ended_at: expect.any(Number) });
    await expect(stripe.subscriptions.cancel(sub.id)).rejects.toMatchObject({ type: "StripeInvalidRequestError", statusCode: 400 });
    await expect(stripe.subscriptions.retrieve("sub_test_missing")).rejects.toMatchObject({ statusCode: 404, code: "resource_missing" });

    const before = sub.items.data[0].current_period_end;
    const invoice = standIn.renewSubscription(sub.id) as { parent: { subscription_details: { subscription: string } } };
    expect(invoice.parent.subscription_details.subscription).toBe(sub.id);
    expect(standIn.subscriptions.get(sub.id)!.items.data[0].current_period_end).toBe(before + 30 * 24 * 3600);
  });

  it("answers events by id (a snapshot of the object when the event was made), and 503 while failing", async () => {
    const event = standIn.event("customer.created", { id: "cus_1", object: "customer" }, "evt_test_fetch", 1_700_000_000);
    await expect(stripe.events.retrieve("evt_test_fetch")).resolves.toMatchObject({ id: event.id, created: 1_700_000_000, data: { object: { id: "cus_1" } } });
    await expect(stripe.events.retrieve("evt_test_missing")).rejects.toMatchObject({ statusCode: 404 });
    standIn.failing = true;
    try {
      await expect(stripe.events.retrieve("evt_test_fetch")).rejects.toMatchObject({ type: "StripeAPIError", statusCode: 503 });
    } finally {
      standIn.failing = false;
    }
  });

  it("decodes Stripe's bracketed form encoding", () => {
    expect(decodeForm("a[b][0][c]=1&a[b][1][c]=2&tags[0]=x&plain=y")).toEqual({
      a: { b: [{ c: "1" }, { c: "2" }] },
      tags: ["x"],
      plain: "y",
    });
  });
});
