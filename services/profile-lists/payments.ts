/**
 * Paid lists: subscribe through Stripe Checkout (billing creates the session), what billing's payment
 * changes do to a membership, and ending a paid membership (admin removal, unsubscribe) at Stripe first.
 *
 * A checkout is one `checkout_attempt` of a membership: subscribing again while it is pending asks billing
 * with the same attempt (Stripe then answers the same session for the same request: a double click is one
 * session); an ended or expired membership starts a new attempt. Payment changes (see PaymentChange in
 * shared/contracts/billing.ts) are applied by compare-and-set like every other change of a membership, so
 * member_count stays exact, and only when they are not older than the last one applied (`payment_version`).
 */
import type { CheckoutResult, PaymentChange, SubscriptionState } from "../../shared/contracts/billing";
import type { AuthPrincipal } from "../../shared/contracts/common";
import type { Membership, MembershipStatus, Payment, Price } from "../../shared/contracts/profile-lists";
import { uuidv7 } from "../../shared/ids";
import type { Update } from "../../shared/storage/port";
import type { Caller, Deps } from "./deps";
import { checkLink } from "./links";
import { changeMembership, fileConsent, findMembership, hasAccess, insertMembership, newConsent, newMembership } from "./memberships";
import { ProfileListsErrors } from "./profile-lists.errors";
import { toMembership } from "./profile-lists.mapper";
import type { ListDoc, MembershipDoc } from "./profile-lists.store";

/** Statuses that grant access by themselves (a scheduled cancellation until its end_date). */
const grantsAccess = (status: MembershipStatus) => status === "active" || status === "cancellation_scheduled";

export interface PaidSubscribeParams {
  store_id: string;
  id: string;
  profile_id: string;
  price_id?: string;
  success_url?: string;
  cancel_url?: string;
}

/** The list's price named by `price_id`: its `id` or its Stripe price id. */
export function priceOf(list: ListDoc, priceId: string | undefined): { price: Price; stripePriceId: string } {
  if (list.type.type !== "paid") throw new Error("priceOf: not a paid list");
  if (!priceId) throw ProfileListsErrors.priceIdRequired();
  for (const price of list.type.prices) {
    const stripe = price.providers.find((provider) => provider.type === "stripe");
    if (stripe && (price.id === priceId || stripe.id === priceId)) return { price, stripePriceId: stripe.id };
  }
  throw ProfileListsErrors.unknownPrice();
}

function returnUrl(deps: Deps, url: string | undefined, field: "success_url" | "cancel_url"): string {
  if (!url) throw ProfileListsErrors.checkoutUrlRequired(field);
  return checkLink(url, deps.linkOrigins, field).href;
}

/** What a checkout asks Stripe for, the same on every pass of subscribePaid. */
interface CheckoutOrder {
  price: Price;
  stripePriceId: string;
  successUrl: string;
  cancelUrl: string;
  email: string | null;
}

/**
 * Subscribe to a paid list: a profile with access gets its membership back (no new session); otherwise the
 * membership is `pending` with its `payment` filled in, and the answer carries the Checkout Session's URL.
 */
export async function subscribePaid(
  deps: Deps,
  list: ListDoc,
  p: PaidSubscribeParams,
  session: Extract<AuthPrincipal, { kind: "profile" }>,
  caller: Caller,
): Promise<{ membership: Membership; checkout_url: string | null }> {
  const { price, stripePriceId } = priceOf(list, p.price_id);
  const successUrl = returnUrl(deps, p.success_url, "success_url");
  const cancelUrl = returnUrl(deps, p.cancel_url, "cancel_url");
  const profile = await deps.profiles.lookup({ store_id: p.store_id, id: p.profile_id });
  const order: CheckoutOrder = { price, stripePriceId, successUrl, cancelUrl, email: profile.email };
  const redacted = !session.is_verified && profile.verified;
  const answer = (doc: MembershipDoc, checkoutUrl: string | null) => ({ membership: toMembership(doc, { redacted }), checkout_url: checkoutUrl });

  for (let attempt = 0; attempt < 5; attempt++) {
    const existing = await findMembership(deps, list, p.profile_id);
    if (existing && hasAccess(existing, deps.now())) return answer(existing, null);
    const pending = await pendingCheckout(deps, list, existing, p.profile_id, caller);
    if (!pending) continue;
    const checkout = await checkoutOf(deps, list, pending, order);
    if (checkout.status === "expired") {
      // Stripe answered this attempt's session, expired meanwhile (its event still on the way): the next pass starts a new attempt.
      await changeMembership(
        deps,
        pending.doc,
        { $set: { status: "expired", end_date: deps.now(), updated_at: deps.now() } },
        { checkout_attempt: pending.doc.checkout_attempt },
      );
      continue;
    }
    // Paid already (the webhook on its way makes it active): no second session.
    if (checkout.status === "complete") return answer(pending.doc, null);
    const recorded = await recordCheckout(deps, pending.doc, price.id, checkout);
    if (recorded) return answer(recorded, checkout.checkout_url);
  }
  throw ProfileListsErrors.concurrentUpdate();
}

/** Asks billing for the attempt's Checkout Session; a checkout that could not start leaves no new membership behind. */
async function checkoutOf(deps: Deps, list: ListDoc, pending: { doc: MembershipDoc; inserted: boolean }, order: CheckoutOrder): Promise<CheckoutResult> {
  const { doc } = pending;
  try {
    return await deps.billing.createCheckout({
      store_id: list.store_id,
      profile_list_id: list._id,
      profile_id: doc.profile_id,
      membership_id: doc._id,
      attempt: doc.checkout_attempt ?? doc._id,
      price: { id: order.price.id, stripe_price_id: order.stripePriceId, mode: order.price.interval ? "subscription" : "payment" },
      success_url: order.successUrl,
      cancel_url: order.cancelUrl,
      customer_email: order.email,
      customer_id: doc.payment?.customer_id ?? null,
      previous_session_id: doc.payment?.checkout_session_id ?? null,
    });
  } catch (err) {
    // Billing not configured, Stripe down or refusing: the membership this request made goes again.
    if (pending.inserted) await deps.store.memberships.deleteOne({ _id: doc._id, store_id: doc.store_id, status: "pending", payment: null });
    throw err;
  }
}

/** The session on the pending membership of its attempt; null when the membership changed meanwhile. */
function recordCheckout(deps: Deps, doc: MembershipDoc, priceId: string, checkout: CheckoutResult): Promise<MembershipDoc | null> {
  const payment: Payment = {
    provider: "stripe",
    price_id: priceId,
    checkout_session_id: checkout.checkout_session_id,
    subscription_id: null,
    customer_id: checkout.customer_id ?? doc.payment?.customer_id ?? null,
    current_period_end: null,
  };
  return changeMembership(deps, doc, { $set: { payment, updated_at: deps.now() } }, { checkout_attempt: doc.checkout_attempt });
}

/**
 * The pending membership a checkout belongs to: a new one, the pending one (its attempt again), or an
 * ended one started afresh (a new attempt and consent; the Stripe customer is kept). Null when a
 * concurrent change won.
 */
async function pendingCheckout(
  deps: Deps,
  list: ListDoc,
  existing: MembershipDoc | null,
  profileId: string,
  caller: Caller,
): Promise<{ doc: MembershipDoc; inserted: boolean } | null> {
  const now = deps.now();
  const consent = newConsent("checkout", caller, now);
  if (!existing) {
    const doc: MembershipDoc = { ...newMembership(list, profileId, "pending", "signup", consent, now), checkout_attempt: uuidv7() };
    return (await insertMembership(deps, doc)) ? { doc, inserted: true } : null;
  }
  if (existing.status === "pending" && existing.checkout_attempt) return { doc: existing, inserted: false };
  const customerId = existing.payment?.customer_id ?? null;
  const doc = await changeMembership(deps, existing, {
    $set: {
      status: "pending",
      source: "signup",
      consent,
      checkout_attempt: uuidv7(),
      // The earlier subscription's references go: its late events must not touch the new checkout.
      payment: customerId
        ? {
            provider: "stripe",
            price_id: existing.payment?.price_id ?? "",
            checkout_session_id: null,
            subscription_id: null,
            customer_id: customerId,
            current_period_end: null,
          }
        : null,
      start_date: null,
      end_date: null,
      updated_at: now,
    },
    $push: fileConsent(existing.consent),
  });
  return doc ? { doc, inserted: false } : null;
}

// ---------------------------------------------------------------- payment changes

/**
 * Applies one payment change from billing. A change names its membership by id (checkouts) or by its
 * subscription (subscription changes); one that names nothing here (a membership removed since) is done.
 * Safe to apply twice: the second time finds nothing to change.
 */
export async function applyPaymentChange(deps: Deps, change: PaymentChange): Promise<{ applied: boolean }> {
  for (let attempt = 0; attempt < 5; attempt++) {
    const current = await membershipOfChange(deps, change);
    if (!current) return { applied: false };
    const update = paymentUpdateOf(current, change, deps.now());
    if (!update) return { applied: false };
    // Compare-and-set on the version too: a change that read the membership before a newer one was
    // applied must not overwrite it (it re-reads, and `applies` then turns it down).
    const sameVersion = { payment_version: current.payment_version ?? { $exists: false } };
    if (await changeMembership(deps, current, update, sameVersion)) return { applied: true };
  }
  throw ProfileListsErrors.concurrentUpdate();
}

function membershipOfChange(deps: Deps, change: PaymentChange): Promise<MembershipDoc | null> {
  if (change.kind === "subscription_changed") {
    if (!change.subscription_id) return Promise.resolve(null);
    return deps.store.memberships.findOne({ store_id: change.store_id, "payment.subscription_id": change.subscription_id });
  }
  return deps.store.memberships.findOne({ _id: change.membership_id, store_id: change.store_id, profile_list_id: change.profile_list_id });
}

/** Whether the change is for this membership as it stands, and not older than what it shows. */
function applies(current: MembershipDoc, change: PaymentChange, now: number): boolean {
  if (current.removing || (current.payment_version ?? 0) > change.version) return false;
  switch (change.kind) {
    case "checkout_ended":
      return current.status === "pending" && current.payment?.checkout_session_id === change.checkout_session_id;
    case "checkout_paid":
      // A payment always counts, unless the membership has access through another one already.
      return current.payment?.checkout_session_id === change.checkout_session_id || !hasAccess(current, now);
    case "subscription_changed":
      // A member who unsubscribed had the subscription cancelled then: its later events change nothing.
      return current.status !== "unsubscribed";
  }
}

/** The status and end of access a payment state means now (a scheduled cancellation past its end has ended). */
function accessOf(state: Pick<SubscriptionState, "status" | "end_date">, now: number): { status: MembershipStatus; end_date: number | null } {
  if (state.status === "cancellation_scheduled" && (state.end_date ?? 0) <= now) return { status: "cancelled", end_date: state.end_date ?? now };
  if (state.status === "cancelled" || state.status === "expired") return { status: state.status, end_date: state.end_date ?? now };
  if (state.status === "pending") return { status: "pending", end_date: null };
  return { status: state.status, end_date: state.end_date };
}

/** The write that brings the membership to the change's state; null when it is not for it or changes nothing. */
export function paymentUpdateOf(current: MembershipDoc, change: PaymentChange, now: number): Update | null {
  if (!applies(current, change, now)) return null;
  const { status, end_date } = accessOf(change, now);
  const before = current.payment;
  const payment: Payment = {
    provider: "stripe",
    price_id: change.price_id ?? before?.price_id ?? "",
    checkout_session_id: change.checkout_session_id ?? before?.checkout_session_id ?? null,
    subscription_id: change.subscription_id ?? before?.subscription_id ?? null,
    customer_id: change.customer_id ?? before?.customer_id ?? null,
    current_period_end: change.current_period_end ?? before?.current_period_end ?? null,
  };
  return stateUpdateOf(current, { status, end_date, payment, version: change.version }, now);
}

interface PaidState {
  status: MembershipStatus;
  end_date: number | null;
  payment: Payment;
  version?: number;
}

const PAYMENT_FIELDS = ["provider", "price_id", "checkout_session_id", "subscription_id", "customer_id", "current_period_end"] as const;

function samePayment(a: Payment | null | undefined, b: Payment): boolean {
  return Boolean(a) && PAYMENT_FIELDS.every((field) => (a?.[field] ?? null) === b[field]);
}

/** The write from the membership to `next` (a newer version alone is recorded too); null when nothing would change. */
function stateUpdateOf(current: MembershipDoc, next: PaidState, now: number): Update | null {
  const newer = next.version !== undefined && next.version > (current.payment_version ?? 0);
  const same = current.status === next.status && (current.end_date ?? null) === next.end_date && samePayment(current.payment, next.payment);
  if (same) return newer ? { $set: { payment_version: next.version } } : null;
  const set: Record<string, unknown> = { status: next.status, end_date: next.end_date, payment: next.payment, updated_at: now };
  if (newer) set.payment_version = next.version;
  if (grantsAccess(next.status) && !grantsAccess(current.status)) {
    set.start_date = now;
    // Paying is the confirmation of a checkout's consent.
    if (current.consent.method === "checkout" && current.consent.confirmed_at === null) set["consent.confirmed_at"] = now;
  }
  return { $set: set };
}

/**
 * A subscription's state right after this service asked billing to change it (an admin cancellation),
 * written without waiting for its webhook; the webhook's event then finds it already so.
 */
async function applySubscriptionState(deps: Deps, current: MembershipDoc, state: SubscriptionState): Promise<MembershipDoc | null> {
  const now = deps.now();
  const { status, end_date } = accessOf(state, now);
  const payment: Payment = {
    provider: "stripe",
    price_id: current.payment?.price_id ?? "",
    checkout_session_id: current.payment?.checkout_session_id ?? null,
    subscription_id: state.subscription_id,
    customer_id: state.customer_id ?? current.payment?.customer_id ?? null,
    current_period_end: state.current_period_end ?? current.payment?.current_period_end ?? null,
  };
  const update = stateUpdateOf(current, { status, end_date, payment }, now);
  return update ? changeMembership(deps, current, update) : current;
}

// ---------------------------------------------------------------- ending a paid membership

/**
 * Before a paid membership ends here (admin removal, unsubscribe), it ends at Stripe: its subscription is
 * cancelled now, or its open checkout expired, so nobody is charged for access they no longer have. A
 * failure stops the removal (503), with nothing changed.
 */
export async function endPaymentAtStripe(deps: Deps, current: MembershipDoc): Promise<void> {
  const payment = current.payment;
  if (!payment) return;
  if (payment.subscription_id && current.status !== "cancelled") {
    await deps.billing.cancelSubscription({ store_id: current.store_id, subscription_id: payment.subscription_id, at_period_end: false });
  } else if (current.status === "pending" && payment.checkout_session_id) {
    await deps.billing.expireCheckout({ store_id: current.store_id, checkout_session_id: payment.checkout_session_id });
  }
}

/**
 * Admin removal `?at_period_end=true`: the subscription is cancelled at the end of the period paid for and
 * the membership is `cancellation_scheduled`, with access until `end_date`. 400 without a running subscription.
 */
export async function scheduleCancellation(deps: Deps, current: MembershipDoc): Promise<MembershipDoc | null> {
  const subscriptionId = current.payment?.subscription_id;
  if (!subscriptionId || !hasAccess(current, deps.now())) throw ProfileListsErrors.noSubscription();
  const state = await deps.billing.cancelSubscription({ store_id: current.store_id, subscription_id: subscriptionId, at_period_end: true });
  return applySubscriptionState(deps, current, state);
}

/**
 * Scheduled cancellations whose end_date has passed become `cancelled` (access already ended at read time;
 * this settles member_count without waiting for Stripe's `customer.subscription.deleted`).
 */
export async function endLapsedCancellations(deps: Deps): Promise<number> {
  let ended = 0;
  for (;;) {
    const lapsed = await deps.store.memberships.find({ status: "cancellation_scheduled", end_date: { $lte: deps.now() } }, { limit: 100 });
    let changed = 0;
    for (const m of lapsed) {
      if (await changeMembership(deps, m, { $set: { status: "cancelled", updated_at: deps.now() } })) changed++;
    }
    ended += changed;
    if (lapsed.length < 100 || changed === 0) return ended;
  }
}
