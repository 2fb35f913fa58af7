/**
 * Subscriptions in membership terms, and cancelling one. What access a subscription gives:
 *   active, trialing, past_due      access (past_due: Stripe is retrying the renewal's payment); with a
 *                                   cancellation scheduled, `cancellation_scheduled` until `cancel_at`
 *                                   or the period's end
 *   unpaid, paused                  `expired`: Stripe stopped retrying (or the store paused it); a paid
 *                                   invoice makes it active again
 *   incomplete                      `pending` (the first payment is not done)
 *   incomplete_expired              `expired`
 *   canceled                        `cancelled`
 */
import type Stripe from "stripe";
import type { SubscriptionState } from "../../shared/contracts/billing";
import { BillingErrors } from "./billing.errors";
import type { Deps } from "./deps";
import { callStripe, idOf, requireStripe } from "./stripe-calls";

/** The end of the period paid for (API versions since 2025 keep it on each subscription item). */
function periodEndOf(sub: Stripe.Subscription): number | null {
  const ends = (sub.items?.data ?? []).map((item) => item.current_period_end).filter((end): end is number => typeof end === "number");
  return ends.length > 0 ? Math.max(...ends) : null;
}

function periodStartOf(sub: Stripe.Subscription): number | null {
  const starts = (sub.items?.data ?? []).map((item) => item.current_period_start).filter((start): start is number => typeof start === "number");
  return starts.length > 0 ? Math.min(...starts) : null;
}

export function subscriptionStateOf(sub: Stripe.Subscription, now: number): SubscriptionState {
  const periodEnd = periodEndOf(sub);
  const base = { subscription_id: sub.id, customer_id: idOf(sub.customer), current_period_end: periodEnd };
  switch (sub.status) {
    case "canceled":
      return { ...base, status: "cancelled", end_date: sub.ended_at ?? sub.canceled_at ?? now };
    case "incomplete_expired":
      return { ...base, status: "expired", end_date: sub.ended_at ?? now };
    case "incomplete":
      return { ...base, status: "pending", end_date: null };
    case "unpaid":
    case "paused":
      return { ...base, status: "expired", end_date: periodStartOf(sub) ?? now };
    default:
      if (sub.cancel_at_period_end || sub.cancel_at) return { ...base, status: "cancellation_scheduled", end_date: sub.cancel_at ?? periodEnd };
      return { ...base, status: "active", end_date: periodEnd };
  }
}

/** The subscription as Stripe has it now; null when Stripe has no such subscription. */
export async function fetchSubscription(deps: Deps, id: string): Promise<Stripe.Subscription | null> {
  const stripe = requireStripe(deps);
  return callStripe(
    deps,
    "a subscription retrieve",
    () => stripe.subscriptions.retrieve(id),
    "subscription_id",
    () => null,
  );
}

/**
 * Cancels a subscription now, or at the end of the period paid for, and answers its state afterwards. A
 * subscription that is already cancelled answers its state: cancelling is safe to ask twice.
 */
export async function cancelSubscription(deps: Deps, p: { subscription_id: string; at_period_end: boolean }): Promise<SubscriptionState> {
  const stripe = requireStripe(deps);
  const cancel = () =>
    p.at_period_end ? stripe.subscriptions.update(p.subscription_id, { cancel_at_period_end: true }) : stripe.subscriptions.cancel(p.subscription_id);
  const sub = await callStripe(deps, "a subscription cancel", cancel, "subscription_id", async () => {
    const current = await fetchSubscription(deps, p.subscription_id);
    if (current && current.status !== "canceled") throw BillingErrors.providerRefused("subscription_id");
    return current;
  });
  if (!sub) {
    // Not in this Stripe account (any more): nothing bills, nothing gives access.
    return { subscription_id: p.subscription_id, customer_id: null, status: "cancelled", current_period_end: null, end_date: deps.now() };
  }
  return subscriptionStateOf(sub, deps.now());
}
