/**
 * The composition root of the billing service: builds its rules once from explicit dependencies (its
 * database, the Stripe settings, how payment changes reach profile-lists, a logger, a clock). The rules
 * live in checkout.ts (Checkout Sessions), subscriptions.ts (a subscription's state, cancelling) and
 * webhooks.ts (Stripe's events).
 */
import type { ServiceBroker } from "moleculer";
import type Stripe from "stripe";
import { nowSeconds } from "../../shared/ids";
import type { Database } from "../../shared/storage/port";
import { BillingStore } from "./billing.store";
import { createCheckout, expireCheckout } from "./checkout";
import { type DeliverPaymentChange, type Deps, type Logger, missingStripeSettings, paymentDeliveryOf, type StripeSettings, stripeClientOf } from "./deps";
import { cancelSubscription } from "./subscriptions";
import { handleWebhook, replayStripeEvent } from "./webhooks";

export interface BillingSetup {
  db: Database;
  bus: ServiceBroker;
  logger: Logger;
  settings: StripeSettings;
  /** Unix seconds; tests pass a fake. */
  now?: () => number;
  /** Tests may hand in their own client or delivery. */
  stripe?: Stripe | null;
  deliver?: DeliverPaymentChange;
}

export type Billing = Awaited<ReturnType<typeof createBilling>>;

export async function createBilling(setup: BillingSetup) {
  const store = new BillingStore(setup.db);
  await store.ensureIndexes();
  const missing = missingStripeSettings(setup.settings);
  const deps: Deps = {
    store,
    stripe: setup.stripe !== undefined ? setup.stripe : stripeClientOf(setup.settings),
    webhookSecret: setup.settings.STRIPE_WEBHOOK_SECRET ?? null,
    deliver: setup.deliver ?? paymentDeliveryOf(setup.bus),
    logger: setup.logger,
    now: setup.now ?? nowSeconds,
  };
  type Params<F extends (deps: Deps, p: never) => unknown> = Parameters<F>[1];
  return {
    deps,
    store,
    /** Both Stripe settings are set: paid lists work. */
    configured: deps.stripe !== null && missing.length === 0,
    /** The variables that are unset (names only), for the start-up warning. */
    missingSettings: missing,
    createCheckout: (p: Params<typeof createCheckout>) => createCheckout(deps, p),
    expireCheckout: (p: Params<typeof expireCheckout>) => expireCheckout(deps, p),
    cancelSubscription: (p: Params<typeof cancelSubscription>) => cancelSubscription(deps, p),
    handleWebhook: (p: Params<typeof handleWebhook>) => handleWebhook(deps, p),
    replayStripeEvent: (p: Params<typeof replayStripeEvent>) => replayStripeEvent(deps, p),
    /** Forgets handled event ids older than any redelivery (the service runs it hourly). */
    purgeEvents: () => store.purgeEvents(deps.now()),
  };
}
