/**
 * Test set-up for paid lists: one broker (no transporter) with the real auth, profiles, profile-lists and
 * billing services, the profile-lists tests' mailer stand-in, the embedded store in memory, and the Stripe
 * API stand-in that the official client in billing is pointed at (STRIPE_API_URL). In one process billing
 * hands each payment change straight to profile-lists, so a webhook call returns once it is applied.
 * profile-lists and billing run on a clock the test moves.
 */
import type { ServiceBroker } from "moleculer";
import type { Membership, ProfileList } from "../../../shared/contracts/profile-lists";
import { nowSeconds } from "../../../shared/ids";
import { startBroker } from "../../../test/harness/broker";
import { startStripeStandIn, type CheckoutSessionLike, type StripeStandIn } from "../../../test/harness/stripe";
import { LINK_ORIGIN, mailerStandIn, shopper, type MailerStandIn } from "../../profile-lists/__tests__/helpers";
import { createProfileLists } from "../../profile-lists/profile-lists.logic";
import type { ProfileListsService } from "../../profile-lists/profile-lists.service";
import { createBilling } from "../billing.logic";
import type { BillingService } from "../billing.service";

export { errorOf } from "../../../test/harness/errors";
export { LINK_ORIGIN, newStoreId } from "../../profile-lists/__tests__/helpers";

export const WEBHOOK_SECRET = "whsec_paid_lists_test_secret";
export const SECRET_KEY = "sk_test_paid_lists";
export const SUCCESS_URL = `${LINK_ORIGIN}/paid/success`;
export const CANCEL_URL = `${LINK_ORIGIN}/paid/cancel`;

export interface PaidEnv {
  broker: ServiceBroker;
  stripe: StripeStandIn;
  mailer: MailerStandIn;
  clock: { now: number };
  stop(): Promise<void>;
}

/** The system with billing; `configured: false` leaves STRIPE_SECRET_KEY and STRIPE_WEBHOOK_SECRET unset. */
export async function startPaid({ configured = true } = {}): Promise<PaidEnv> {
  const stripe = await startStripeStandIn();
  const mailer: MailerStandIn = { templates: new Map(), sent: [], codes: new Map(), down: false };
  const stripeEnv = configured
    ? { STRIPE_SECRET_KEY: SECRET_KEY, STRIPE_WEBHOOK_SECRET: WEBHOOK_SECRET, STRIPE_API_URL: stripe.url }
    : { STRIPE_SECRET_KEY: undefined, STRIPE_WEBHOOK_SECRET: undefined, STRIPE_API_URL: undefined };
  const broker = await startBroker({
    services: ["auth", "profiles", "profile-lists", "billing", mailerStandIn(mailer)],
    storage: "memory",
    env: {
      JWT_SECRET: "paid-lists-test-secret",
      CURSOR_SECRET: "paid-lists-test-cursor-secret",
      LINK_ORIGINS: LINK_ORIGIN,
      PUBLIC_URL: "https://crm.shop.example",
      ...stripeEnv,
    },
  });
  const clock = { now: nowSeconds() };
  const now = () => clock.now;
  // The same rules over the same databases, on a clock the test moves.
  const lists = broker.getLocalService("profile-lists") as unknown as ProfileListsService;
  lists.profileLists = await createProfileLists({
    db: lists.db,
    bus: broker,
    logger: lists.logger,
    settings: { LINK_ORIGINS: LINK_ORIGIN, PUBLIC_URL: "https://crm.shop.example", PORT: 3000 },
    now,
  });
  const billing = broker.getLocalService("billing") as unknown as BillingService;
  billing.billing = await createBilling({ db: billing.db, bus: broker, logger: billing.logger, settings: configured ? stripeEnv : {}, now });
  return {
    broker,
    stripe,
    mailer,
    clock,
    stop: async () => {
      await broker.stop();
      await stripe.close();
    },
  };
}

/** A monthly price and a one-off price, each with its Stripe price id. */
export const PRICES = [
  { id: "monthly", currency: "usd", amount: 900, interval: { period: "month", count: 1 }, providers: [{ type: "stripe", id: "price_monthly" }] },
  { id: "lifetime", currency: "usd", amount: 9900, providers: [{ type: "stripe", id: "price_lifetime" }] },
];

export function paidList(env: PaidEnv, storeId: string, key = "premium"): Promise<ProfileList> {
  return env.broker.call("profile-lists.create", { store_id: storeId, key, type: { type: "paid", prices: PRICES } });
}

export type Shopper = Awaited<ReturnType<typeof shopper>>;

/** A connected guest of the store (initialize + connect). */
export function payer(env: PaidEnv, storeId: string, email: string): Promise<Shopper> {
  return shopper(env.broker, storeId, email);
}

export interface SubscribeAnswer {
  membership: Membership;
  checkout_url: string | null;
}

export function subscribe(env: PaidEnv, list: ProfileList, who: Shopper, extra: Record<string, unknown> = {}): Promise<SubscribeAnswer> {
  return env.broker.call(
    "profile-lists.subscribe",
    { store_id: list.store_id, id: list.id, profile_id: who.profileId, price_id: "monthly", success_url: SUCCESS_URL, cancel_url: CANCEL_URL, ...extra },
    { meta: who.meta },
  );
}

export function access(env: PaidEnv, list: ProfileList, who: Shopper): Promise<{ has_access: boolean; membership: Membership | null }> {
  return env.broker.call("profile-lists.access", { store_id: list.store_id, id: list.id }, { meta: who.meta });
}

export async function memberCount(env: PaidEnv, list: ProfileList): Promise<number> {
  return ((await env.broker.call("profile-lists.get", { store_id: list.store_id, id: list.id })) as ProfileList).member_count;
}

/** Delivers a Stripe event to billing's webhook action as Stripe signs it. */
export function deliver(env: PaidEnv, event: Record<string, unknown>, secret = WEBHOOK_SECRET): Promise<{ received: true }> {
  const { body, headers } = env.stripe.webhookRequest(event, secret);
  return env.broker.call("billing.handleStripeWebhook", { payload: body, signature: headers["stripe-signature"] });
}

/** The stand-in's session behind a subscribe answer. */
export function sessionOf(env: PaidEnv, answer: SubscribeAnswer): CheckoutSessionLike {
  const id = answer.membership.payment?.checkout_session_id;
  const session = id ? env.stripe.sessions.get(id) : undefined;
  if (!session) throw new Error(`no Checkout Session for membership ${answer.membership.id}`);
  return session;
}

/** Subscribes and pays: the customer completes the session and Stripe sends `checkout.session.completed`. */
export async function subscribeAndPay(env: PaidEnv, list: ProfileList, who: Shopper, priceId = "monthly") {
  const answer = await subscribe(env, list, who, { price_id: priceId });
  const session = env.stripe.completeSession(sessionOf(env, answer).id);
  await deliver(env, env.stripe.event("checkout.session.completed", session));
  const subscriptionId = session.subscription;
  return { answer, session, subscription: subscriptionId ? env.stripe.subscriptions.get(subscriptionId)! : null };
}
