/**
 * What the billing rules depend on, handed in explicitly: this service's store, the official Stripe client
 * (null when the Stripe keys are not set), the webhook's signing secret, how a payment change reaches
 * profile-lists, a logger and a clock.
 */
import type { ServiceBroker } from "moleculer";
import Stripe from "stripe";
import type { PaymentChange } from "../../shared/contracts/billing";
import { natsUrlOf } from "../../shared/events/channels";
import { publishEvent } from "../../shared/events/durable";
import type { BillingStore } from "./billing.store";

export interface Logger {
  info(...args: unknown[]): void;
  warn(...args: unknown[]): void;
  error(...args: unknown[]): void;
}

export interface StripeSettings {
  STRIPE_SECRET_KEY?: string;
  STRIPE_WEBHOOK_SECRET?: string;
  STRIPE_API_URL?: string;
}

/** Hands a payment change to profile-lists; resolves once it can no longer be lost. */
export type DeliverPaymentChange = (change: PaymentChange) => Promise<void>;

export interface Deps {
  store: BillingStore;
  /** Null when billing is not configured. */
  stripe: Stripe | null;
  webhookSecret: string | null;
  deliver: DeliverPaymentChange;
  logger: Logger;
  /** Unix seconds. */
  now: () => number;
}

/** Below the broker's request timeout, so a slow Stripe answers as a 503 of ours rather than a timeout. */
const STRIPE_TIMEOUT_MS = 4_000;

/** The settings billing cannot work without, by name (never their values). */
export function missingStripeSettings(settings: StripeSettings): string[] {
  return (["STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET"] as const).filter((name) => !settings[name]);
}

/**
 * The official client, or null when a Stripe setting is missing: a checkout whose payment no verified
 * webhook could ever report would take the customer's money and never grant access.
 */
export function stripeClientOf(settings: StripeSettings): Stripe | null {
  if (!settings.STRIPE_SECRET_KEY || missingStripeSettings(settings).length > 0) return null;
  const config: Stripe.StripeConfig = { maxNetworkRetries: 1, timeout: STRIPE_TIMEOUT_MS, appInfo: { name: "store-crm" } };
  if (settings.STRIPE_API_URL) {
    const url = new URL(settings.STRIPE_API_URL);
    const protocol = url.protocol === "http:" ? "http" : "https";
    Object.assign(config, { host: url.hostname, port: url.port || (protocol === "http" ? 80 : 443), protocol });
  }
  return new Stripe(settings.STRIPE_SECRET_KEY, config);
}

/**
 * Over NATS, a change is published to JetStream (`billing.payment-changed`) and is safe once stored there:
 * profile-lists applies it when it can, even if it is down now. In one process (`npm start`) durable events
 * do not exist (the in-process adapter neither stores nor retries), so billing calls profile-lists
 * directly and the webhook answers only after the change is applied; a failure is a 5xx, and Stripe retries.
 */
export function paymentDeliveryOf(bus: ServiceBroker): DeliverPaymentChange {
  if (natsUrlOf(bus.options.transporter)) return (change) => publishEvent(bus, "billing.payment-changed", change);
  return async (change) => {
    await bus.call("profile-lists.applyPaymentChange", change);
  };
}
