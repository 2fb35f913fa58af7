/**
 * The billing service's actions (their params schemas and answers) and the payment state it hands to
 * profile-lists, the one place callers and the service agree on. Billing owns every call to Stripe;
 * profile-lists owns memberships and applies what billing reports.
 */
import { z } from "zod";
import { Email, StoreId, Uuid } from "./common";

/** A Stripe object id (`cs_...`, `sub_...`, `cus_...`, `price_...`, `evt_...`). */
export const StripeId = z.string().trim().min(1).max(255);

/** What a payment means for a membership (a subset of the membership statuses). */
export const PaidStatus = z.enum(["pending", "active", "cancellation_scheduled", "cancelled", "expired"]);
export type PaidStatus = z.infer<typeof PaidStatus>;

/** A subscription as Stripe reports it, in membership terms. */
export const SubscriptionState = z.object({
  subscription_id: StripeId,
  customer_id: StripeId.nullable(),
  status: PaidStatus,
  current_period_end: z.number().int().nullable().describe("the end of the period paid for"),
  end_date: z.number().int().nullable().describe("when access ends (or ended); the period end while the subscription runs"),
});
export type SubscriptionState = z.infer<typeof SubscriptionState>;

/**
 * A payment change for one membership, from one Stripe event (the payload of `billing.payment-changed`):
 *   checkout_paid         a Checkout Session was paid: the membership named in its metadata gets access
 *   checkout_ended        a Checkout Session expired, or its delayed payment failed, unpaid
 *   subscription_changed  a subscription changed (renewed, cancel scheduled or undone, past due, deleted)
 * The state is what Stripe reports when billing handles the event (it re-fetches the subscription), and
 * `version` is the event's `created`: profile-lists never lets an older event undo a newer state.
 */
export const PaymentChange = z.object({
  store_id: StoreId,
  profile_list_id: Uuid,
  membership_id: Uuid,
  stripe_event_id: StripeId,
  kind: z.enum(["checkout_paid", "checkout_ended", "subscription_changed"]),
  version: z.number().int().min(0),
  status: PaidStatus,
  checkout_session_id: StripeId.nullable(),
  /** The list's price the checkout was made for (checkouts billing created); null: unchanged. */
  price_id: z.string().min(1).max(128).nullable(),
  subscription_id: StripeId.nullable(),
  customer_id: StripeId.nullable(),
  current_period_end: z.number().int().nullable(),
  end_date: z.number().int().nullable(),
});
export type PaymentChange = z.infer<typeof PaymentChange>;

/** A new or replayed Checkout Session. */
export const CheckoutResult = z.object({
  checkout_session_id: StripeId,
  /** Null once the session is complete or expired. */
  checkout_url: z.string().nullable(),
  status: z.enum(["open", "complete", "expired"]),
  customer_id: StripeId.nullable(),
});
export type CheckoutResult = z.infer<typeof CheckoutResult>;

/** What the webhook answers Stripe (any 2xx is an acknowledgement). */
export const WebhookAck = z.object({ received: z.literal(true) });

/** The largest webhook payload billing reads (the gateway's BODY_LIMIT stops larger ones first). */
const MAX_PAYLOAD_CHARS = 4 * 1024 * 1024;

export const BillingActions = {
  /**
   * `billing.createCheckout` (profile-lists' paid subscribe) -> CheckoutResult. The idempotency key is made
   * from the membership, its checkout attempt and every parameter, so a double click gets the same session
   * and a changed price or URL a new one (the previous open session of the membership is expired first).
   */
  createCheckout: z.object({
    store_id: StoreId,
    profile_list_id: Uuid,
    profile_id: Uuid,
    membership_id: Uuid,
    attempt: z.string().trim().min(1).max(64).describe("the membership's checkout attempt (a new one after an ended or expired checkout)"),
    price: z.object({
      id: z.string().trim().min(1).max(128).describe("the list's price id"),
      stripe_price_id: StripeId,
      mode: z.enum(["payment", "subscription"]),
    }),
    success_url: z.url({ protocol: /^https?$/ }).max(2048),
    cancel_url: z.url({ protocol: /^https?$/ }).max(2048),
    customer_email: Email.nullable().optional(),
    customer_id: StripeId.nullable().optional().describe("the Stripe customer of an earlier payment of this membership (kept across merges)"),
    previous_session_id: StripeId.nullable().optional().describe("the membership's current Checkout Session, expired when this call needs a new one"),
  }),
  /** `billing.cancelSubscription` (admin removal, unsubscribe) -> SubscriptionState after the cancellation. */
  cancelSubscription: z.object({ store_id: StoreId, subscription_id: StripeId, at_period_end: z.boolean().default(false) }),
  /** `billing.expireCheckout` -> { expired } (false when the session was no longer open). */
  expireCheckout: z.object({ store_id: StoreId, checkout_session_id: StripeId }),
  /** `billing.handleStripeWebhook` (POST /v1/webhooks/stripe, raw body) -> { received: true } */
  handleStripeWebhook: z.object({
    payload: z.string().max(MAX_PAYLOAD_CHARS),
    signature: z.string().max(8192).optional(),
  }),
  /** `billing.replayStripeEvent` (operators: an event Stripe stopped retrying) -> { event_id, handled }, fetched from Stripe by id. */
  replayStripeEvent: z.object({ event_id: StripeId }),
} as const;
