/**
 * Stripe Checkout Sessions for paid lists. A session is created with an idempotency key made from the
 * membership, its checkout attempt and every parameter sent, so the same request twice (a double click,
 * a retry after a timeout) gets the same session from Stripe, and a changed request a new one. When a
 * membership's request changes, its previous session is expired first: one open checkout per membership,
 * so nobody pays twice for one membership. A request billing has seen before (its key is recorded) is
 * answered with its session as Stripe has it now: Stripe's own replay would show the session as it was
 * created, open, even after it expired.
 */
import { createHash } from "node:crypto";
import type Stripe from "stripe";
import type { CheckoutResult } from "../../shared/contracts/billing";
import { isDuplicateKey } from "../../shared/storage/port";
import type { Deps } from "./deps";
import { callStripe, idOf, requireStripe } from "./stripe-calls";

export interface CheckoutRequest {
  store_id: string;
  profile_list_id: string;
  profile_id: string;
  membership_id: string;
  attempt: string;
  price: { id: string; stripe_price_id: string; mode: "payment" | "subscription" };
  success_url: string;
  cancel_url: string;
  customer_email?: string | null;
  customer_id?: string | null;
  previous_session_id?: string | null;
}

/** The same membership, attempt and parameters give the same key (Stripe keeps keys for 24 hours). */
export function idempotencyKeyOf(p: CheckoutRequest): string {
  const parameters = [p.attempt, p.price.stripe_price_id, p.price.mode, p.success_url, p.cancel_url, p.customer_email ?? null, p.customer_id ?? null];
  const digest = createHash("sha256").update(JSON.stringify(parameters)).digest("base64url").slice(0, 32);
  return `crm-checkout-${p.membership_id}-${digest}`;
}

function sessionParams(p: CheckoutRequest): Stripe.Checkout.SessionCreateParams {
  const metadata = { store_id: p.store_id, profile_list_id: p.profile_list_id, profile_id: p.profile_id, membership_id: p.membership_id };
  const customer = p.customer_id ? { customer: p.customer_id } : p.customer_email ? { customer_email: p.customer_email } : {};
  // The subscription (or payment) carries the same metadata, so its own events name the membership too.
  const byMode =
    p.price.mode === "subscription"
      ? { subscription_data: { metadata } }
      : { payment_intent_data: { metadata }, ...(p.customer_id ? {} : { customer_creation: "always" as const }) };
  return {
    mode: p.price.mode,
    line_items: [{ price: p.price.stripe_price_id, quantity: 1 }],
    success_url: p.success_url,
    cancel_url: p.cancel_url,
    client_reference_id: p.membership_id,
    metadata,
    ...customer,
    ...byMode,
  };
}

function resultOf(session: Stripe.Checkout.Session): CheckoutResult {
  return {
    checkout_session_id: session.id,
    checkout_url: session.status === "open" ? (session.url ?? null) : null,
    status: session.status === "complete" ? "complete" : session.status === "expired" ? "expired" : "open",
    customer_id: idOf(session.customer),
  };
}

export async function createCheckout(deps: Deps, p: CheckoutRequest): Promise<CheckoutResult> {
  const stripe = requireStripe(deps);
  const key = idempotencyKeyOf(p);
  const repeated = await deps.store.checkouts.findOne({ idempotency_key: key });
  if (repeated) {
    // Stripe would replay the session as it was created; its state now decides (open, paid, or expired).
    const current = await callStripe(
      deps,
      "a Checkout Session retrieve",
      () => stripe.checkout.sessions.retrieve(repeated._id),
      "price_id",
      () => null,
    );
    if (current) return resultOf(current);
  }
  if (p.previous_session_id && p.previous_session_id !== repeated?._id) {
    const previous = await endPreviousSession(deps, p.previous_session_id);
    // Paid meanwhile: its webhook grants access; a second session would take a second payment.
    if (previous?.status === "complete") return resultOf(previous);
  }
  const session = await callStripe(deps, "a Checkout Session create", () => stripe.checkout.sessions.create(sessionParams(p), { idempotencyKey: key }), "price_id");
  try {
    await deps.store.checkouts.insertOne({
      _id: session.id,
      idempotency_key: key,
      store_id: p.store_id,
      membership_id: p.membership_id,
      price_id: p.price.id,
      created_at: deps.now(),
    });
  } catch (err) {
    if (!isDuplicateKey(err)) throw err; // the same request, recorded by a concurrent copy of it
  }
  return resultOf(session);
}

/** Expires the membership's previous session if it is still open; answers it as it ends up (null: unknown to Stripe). */
async function endPreviousSession(deps: Deps, id: string): Promise<Stripe.Checkout.Session | null> {
  const stripe = requireStripe(deps);
  // Stripe refuses to expire a session that is not open: then it is complete or expired already.
  return callStripe(
    deps,
    "a Checkout Session expire",
    () => stripe.checkout.sessions.expire(id),
    "price_id",
    (failure) =>
      failure === "missing"
        ? null
        : callStripe(
            deps,
            "a Checkout Session retrieve",
            () => stripe.checkout.sessions.retrieve(id),
            "price_id",
            () => null,
          ),
  );
}

/** Expires an open session (a pending member removed or unsubscribed); false when it was not open any more. */
export async function expireCheckout(deps: Deps, p: { checkout_session_id: string }): Promise<{ expired: boolean }> {
  const stripe = requireStripe(deps);
  const session = await callStripe(
    deps,
    "a Checkout Session expire",
    () => stripe.checkout.sessions.expire(p.checkout_session_id),
    "checkout_session_id",
    () => null,
  );
  return { expired: session !== null };
}
