/**
 * Stripe's webhook: the raw body is verified against `Stripe-Signature` with STRIPE_WEBHOOK_SECRET (the
 * official `constructEvent`, Stripe's default 300 s tolerance), then each event id is handled once:
 *
 *   checkout.session.completed (paid), .async_payment_succeeded     -> checkout_paid
 *   checkout.session.expired, .async_payment_failed                 -> checkout_ended
 *   customer.subscription.updated, .deleted; invoice.paid (renewal) -> subscription_changed
 *
 * Ordering: Stripe delivers late, twice and out of order, so a subscription's state is never read from the
 * event: billing fetches the subscription from Stripe as it is now (Stripe's advice), and the change carries
 * the event's `created` as its version, which profile-lists compares before applying. A late event thus
 * carries the current state, and an old one cannot undo a newer one.
 *
 * Durability: the answer is 200 only once the change is delivered for good (stored by JetStream, or applied
 * in one process; see deps.ts) and the event id recorded. Anything failing before that is a 5xx, and Stripe
 * sends the event again; a repeat that meets the recorded id is acknowledged and changes nothing.
 */
import type Stripe from "stripe";
import { z } from "zod";
import type { PaymentChange, SubscriptionState } from "../../shared/contracts/billing";
import { StoreId, Uuid } from "../../shared/contracts/common";
import { isDuplicateKey } from "../../shared/storage/port";
import { BillingErrors } from "./billing.errors";
import type { Deps } from "./deps";
import { callStripe, idOf, requireStripe } from "./stripe-calls";
import { fetchSubscription, subscriptionStateOf } from "./subscriptions";

/** What every Stripe event has, and what is read of it before its type is known. */
const StripeEventShape = z.object({
  id: z.string().min(1).max(255),
  type: z.string().min(1).max(255),
  created: z.number(),
  data: z.object({ object: z.record(z.string(), z.unknown()) }),
});

/** The metadata every Checkout Session (and its subscription) of this system carries. */
const MembershipRef = z.object({ store_id: StoreId, profile_list_id: Uuid, membership_id: Uuid });
type MembershipRef = z.infer<typeof MembershipRef>;

/** Null for an object this system did not make (another integration on the same Stripe account). */
function membershipRefOf(metadata: Stripe.Metadata | null | undefined): MembershipRef | null {
  const parsed = MembershipRef.safeParse(metadata ?? {});
  return parsed.success ? parsed.data : null;
}

export async function handleWebhook(deps: Deps, p: { payload: string; signature?: string }): Promise<{ received: true }> {
  const stripe = requireStripe(deps);
  if (!deps.webhookSecret) throw BillingErrors.notConfigured();
  if (!p.signature) throw BillingErrors.signatureMissing();
  let event: Stripe.Event;
  try {
    event = stripe.webhooks.constructEvent(p.payload, p.signature, deps.webhookSecret);
  } catch {
    throw BillingErrors.signatureInvalid();
  }
  // A signed body is the sender's word only that it came with the secret: what it holds is still checked.
  if (!StripeEventShape.safeParse(event).success) throw BillingErrors.notAnEvent();
  await handleEvent(deps, event);
  return { received: true };
}

/** An event Stripe has (by id), handled as if delivered now: for events whose delivery Stripe gave up on. */
export async function replayStripeEvent(deps: Deps, p: { event_id: string }): Promise<{ event_id: string; handled: boolean }> {
  const stripe = requireStripe(deps);
  const event = await callStripe(
    deps,
    "an event retrieve",
    () => stripe.events.retrieve(p.event_id),
    "event_id",
    () => {
      throw BillingErrors.eventNotFound();
    },
  );
  return { event_id: event.id, handled: await handleEvent(deps, event) };
}

/** Handles an event once per id; answers whether it changed a payment. */
export async function handleEvent(deps: Deps, event: Stripe.Event): Promise<boolean> {
  const seen = await deps.store.events.findOne({ _id: event.id });
  if (seen) return seen.handled;
  const change = await paymentChangeOf(deps, event);
  if (change) await deps.deliver(change);
  try {
    await deps.store.events.insertOne({ _id: event.id, type: event.type, handled: change !== null, created: event.created, done_at: deps.now() });
  } catch (err) {
    if (!isDuplicateKey(err)) throw err; // a concurrent delivery of the same event finished first
  }
  return change !== null;
}

/** What the event means for a membership; null when it means nothing to this system. */
export async function paymentChangeOf(deps: Deps, event: Stripe.Event): Promise<PaymentChange | null> {
  switch (event.type) {
    case "checkout.session.completed":
    case "checkout.session.async_payment_succeeded":
      return checkoutPaid(deps, event, event.data.object);
    case "checkout.session.expired":
    case "checkout.session.async_payment_failed":
      return checkoutEnded(deps, event, event.data.object);
    case "customer.subscription.updated":
    case "customer.subscription.deleted":
      return subscriptionChanged(deps, event, event.data.object.id);
    case "invoice.paid":
      return subscriptionChanged(deps, event, subscriptionIdOfInvoice(event.data.object));
    default:
      return null;
  }
}

type StateOf = Omit<SubscriptionState, "subscription_id"> & { subscription_id: string | null };
interface CheckoutOf {
  session: string | null;
  price: string | null;
}

function changeOf(event: Stripe.Event, ref: MembershipRef, kind: PaymentChange["kind"], checkout: CheckoutOf, state: StateOf): PaymentChange {
  return {
    ...ref,
    stripe_event_id: event.id,
    kind,
    version: event.created,
    status: state.status,
    checkout_session_id: checkout.session,
    price_id: checkout.price,
    subscription_id: state.subscription_id,
    customer_id: state.customer_id,
    current_period_end: state.current_period_end,
    end_date: state.end_date,
  };
}

async function checkoutPaid(deps: Deps, event: Stripe.Event, session: Stripe.Checkout.Session): Promise<PaymentChange | null> {
  const ref = membershipRefOf(session.metadata);
  // "unpaid" on completion: a delayed payment method; async_payment_succeeded or _failed follows.
  if (!ref || session.payment_status === "unpaid") return null;
  const checkout = await checkoutOf(deps, session);
  const subscriptionId = idOf(session.subscription);
  if (session.mode === "subscription" && subscriptionId) {
    const sub = await fetchSubscription(deps, subscriptionId);
    if (sub) return changeOf(event, ref, "checkout_paid", checkout, subscriptionStateOf(sub, deps.now()));
  }
  const oneOff = { subscription_id: null, customer_id: idOf(session.customer), status: "active" as const, current_period_end: null, end_date: null };
  return changeOf(event, ref, "checkout_paid", checkout, oneOff);
}

async function checkoutEnded(deps: Deps, event: Stripe.Event, session: Stripe.Checkout.Session): Promise<PaymentChange | null> {
  const ref = membershipRefOf(session.metadata);
  if (!ref) return null;
  const ended = {
    subscription_id: idOf(session.subscription),
    customer_id: idOf(session.customer),
    status: "expired" as const,
    current_period_end: null,
    end_date: null,
  };
  return changeOf(event, ref, "checkout_ended", await checkoutOf(deps, session), ended);
}

/** The session and the list's price it was created for (from billing's own record of it). */
async function checkoutOf(deps: Deps, session: Stripe.Checkout.Session): Promise<CheckoutOf> {
  const created = await deps.store.checkouts.findOne({ _id: session.id });
  return { session: session.id, price: created?.price_id ?? null };
}

async function subscriptionChanged(deps: Deps, event: Stripe.Event, subscriptionId: string | null): Promise<PaymentChange | null> {
  if (!subscriptionId) return null;
  const sub = await fetchSubscription(deps, subscriptionId);
  const ref = membershipRefOf(sub?.metadata);
  if (!sub || !ref) return null;
  return changeOf(event, ref, "subscription_changed", { session: null, price: null }, subscriptionStateOf(sub, deps.now()));
}

/** The subscription an invoice bills (API versions since 2025 name it under `parent`). */
function subscriptionIdOfInvoice(invoice: Stripe.Invoice): string | null {
  const details = invoice.parent?.subscription_details;
  return details ? idOf(details.subscription) : null;
}
