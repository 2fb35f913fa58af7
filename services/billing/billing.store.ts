/**
 * The billing service's collections and indexes, through the storage port:
 *   stripe_events  one per Stripe event id handled (delivered to profile-lists, or not ours to handle):
 *                  a repeat of the id is acknowledged without doing anything again
 *   checkouts      one per Checkout Session billing created, under the idempotency key it was created
 *                  with (unique), so a repeated request is known as such
 */
import type { Collection, Database, Doc } from "../../shared/storage/port";

export interface StripeEventDoc extends Doc {
  type: string;
  /** Whether it changed a payment (false: a type or an object this system does not handle). */
  handled: boolean;
  /** The event's own `created`. */
  created: number;
  done_at: number;
}

export interface CheckoutDoc extends Doc {
  idempotency_key: string;
  store_id: string;
  membership_id: string;
  /** The list's price id (what the membership's payment names). */
  price_id: string;
  created_at: number;
}

/** How long a handled event id is remembered: Stripe retries a delivery for up to three days. */
export const STRIPE_EVENT_RETENTION_SECONDS = 35 * 24 * 60 * 60;

export class BillingStore {
  readonly events: Collection<StripeEventDoc>;
  readonly checkouts: Collection<CheckoutDoc>;

  constructor(readonly db: Database) {
    this.events = db.collection<StripeEventDoc>("stripe_events");
    this.checkouts = db.collection<CheckoutDoc>("checkouts");
  }

  async ensureIndexes(): Promise<void> {
    await this.events.createIndexes([{ name: "stripe_events_done_at", keys: { done_at: 1 } }]);
    await this.checkouts.createIndexes([{ name: "checkouts_idempotency_key", keys: { idempotency_key: 1 }, unique: true }]);
  }

  /** Forgets handled event ids no delivery can repeat any more. */
  purgeEvents(now: number): Promise<number> {
    return this.events.deleteMany({ done_at: { $lt: now - STRIPE_EVENT_RETENTION_SECONDS } });
  }
}
