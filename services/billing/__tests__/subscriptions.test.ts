/** A subscription in membership terms (subscriptionStateOf) and the checkout idempotency key: pure rules. */
import type Stripe from "stripe";
import { type CheckoutRequest, idempotencyKeyOf } from "../checkout";
import { subscriptionStateOf } from "../subscriptions";

const NOW = 1_800_000_000;

function subscription(patch: Partial<Stripe.Subscription> = {}): Stripe.Subscription {
  return {
    id: "sub_1",
    object: "subscription",
    status: "active",
    customer: "cus_1",
    cancel_at_period_end: false,
    cancel_at: null,
    canceled_at: null,
    ended_at: null,
    items: {
      object: "list",
      data: [
        { current_period_start: NOW - 100, current_period_end: NOW + 1000 },
        { current_period_start: NOW - 50, current_period_end: NOW + 2000 },
      ],
    },
    ...patch,
  } as unknown as Stripe.Subscription;
}

describe("subscriptionStateOf", () => {
  it.each([
    ["active", {}, { status: "active", end_date: NOW + 2000 }],
    ["trialing", { status: "trialing" }, { status: "active", end_date: NOW + 2000 }],
    ["past_due (Stripe retrying the renewal)", { status: "past_due" }, { status: "active", end_date: NOW + 2000 }],
    ["cancel at period end", { cancel_at_period_end: true }, { status: "cancellation_scheduled", end_date: NOW + 2000 }],
    ["cancel at a date", { cancel_at: NOW + 500 }, { status: "cancellation_scheduled", end_date: NOW + 500 }],
    ["unpaid", { status: "unpaid" }, { status: "expired", end_date: NOW - 100 }],
    ["paused", { status: "paused" }, { status: "expired", end_date: NOW - 100 }],
    ["incomplete", { status: "incomplete" }, { status: "pending", end_date: null }],
    ["incomplete_expired", { status: "incomplete_expired", ended_at: NOW - 10 }, { status: "expired", end_date: NOW - 10 }],
    ["canceled", { status: "canceled", canceled_at: NOW - 30, ended_at: NOW - 20 }, { status: "cancelled", end_date: NOW - 20 }],
  ] as const)("%s", (_, patch, expected) => {
    expect(subscriptionStateOf(subscription(patch as Partial<Stripe.Subscription>), NOW)).toEqual({
      subscription_id: "sub_1",
      customer_id: "cus_1",
      current_period_end: NOW + 2000,
      ...expected,
    });
  });
});

describe("idempotencyKeyOf", () => {
  const request: CheckoutRequest = {
    store_id: "s",
    profile_list_id: "l",
    profile_id: "p",
    membership_id: "0190c5d2-0000-7000-8000-000000000001",
    attempt: "a1",
    price: { id: "monthly", stripe_price_id: "price_1", mode: "subscription" },
    success_url: "https://shop.example/ok",
    cancel_url: "https://shop.example/no",
    customer_email: "ada@example.com",
  };

  it("is the same for the same request, and another for another attempt, price or URL", () => {
    const key = idempotencyKeyOf(request);
    expect(idempotencyKeyOf({ ...request })).toBe(key);
    expect(key.length).toBeLessThanOrEqual(255);
    for (const changed of [
      { ...request, attempt: "a2" },
      { ...request, price: { ...request.price, stripe_price_id: "price_2" } },
      { ...request, success_url: "https://shop.example/ok2" },
      { ...request, cancel_url: "https://shop.example/no2" },
    ]) {
      expect(idempotencyKeyOf(changed)).not.toBe(key);
    }
  });
});
