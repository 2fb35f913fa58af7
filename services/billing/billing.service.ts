/**
 * Billing: Stripe Checkout Sessions for paid lists, cancelling subscriptions, and Stripe's signature-checked
 * webhook, each event applied once; what a payment means for a membership goes to profile-lists as
 * `billing.payment-changed`. Without STRIPE_SECRET_KEY and STRIPE_WEBHOOK_SECRET it answers 503 "billing is
 * not configured" and its health says `not_configured` (readiness does not fail on it).
 * Transport only: `started()` builds the rules once (createBilling in billing.logic.ts, the composition
 * root) and each handler hands its params to them.
 */
import type { Context, Service, ServiceSchema, ServiceSettingSchema } from "moleculer";
import type { z } from "zod";
import { BillingActions } from "../../shared/contracts/billing";
import { storageMixin, type StorageMixinThis } from "../../shared/mixins/storage.mixin";
import { settingsOf } from "../../shared/registry";
import { zodParams } from "../../shared/validation";
import { type Billing, createBilling } from "./billing.logic";

type P<K extends keyof typeof BillingActions> = Context<z.infer<(typeof BillingActions)[K]>>;

interface BillingVars extends StorageMixinThis {
  billing: Billing;
  purgeTimer?: NodeJS.Timeout;
}

export type BillingService = Service<ServiceSettingSchema> & BillingVars;

const PURGE_INTERVAL_MS = 60 * 60 * 1000;

const BillingServiceSchema: ServiceSchema<ServiceSettingSchema, Record<string, never>, BillingVars, BillingService> = {
  name: "billing",
  mixins: [storageMixin("billing")],

  actions: {
    createCheckout: {
      params: zodParams(BillingActions.createCheckout),
      handler(ctx: P<"createCheckout">) {
        return this.billing.createCheckout(ctx.params);
      },
    },
    expireCheckout: {
      params: zodParams(BillingActions.expireCheckout),
      handler(ctx: P<"expireCheckout">) {
        return this.billing.expireCheckout(ctx.params);
      },
    },
    cancelSubscription: {
      params: zodParams(BillingActions.cancelSubscription),
      handler(ctx: P<"cancelSubscription">) {
        return this.billing.cancelSubscription(ctx.params);
      },
    },
    handleStripeWebhook: {
      params: zodParams(BillingActions.handleStripeWebhook),
      handler(ctx: P<"handleStripeWebhook">) {
        return this.billing.handleWebhook(ctx.params);
      },
    },
    replayStripeEvent: {
      params: zodParams(BillingActions.replayStripeEvent),
      handler(ctx: P<"replayStripeEvent">) {
        return this.billing.replayStripeEvent(ctx.params);
      },
    },
    // Storage answers (as storageMixin's), and whether Stripe is configured: readiness does not fail on that.
    health: {
      visibility: "public",
      async handler() {
        await this.db.ping();
        return { status: this.billing.configured ? "ok" : "not_configured" };
      },
    },
  },

  async started() {
    this.billing = await createBilling({ db: this.db, bus: this.broker, logger: this.logger, settings: settingsOf("billing") });
    if (!this.billing.configured) {
      this.logger.warn(`billing is not configured (${this.billing.missingSettings.join(" and ")} unset): paid lists answer 503`);
    }
    const purge = () => this.billing.purgeEvents().catch((err: Error) => this.logger.warn(`purging handled Stripe events failed: ${err.message}`));
    this.purgeTimer = setInterval(purge, PURGE_INTERVAL_MS);
    this.purgeTimer.unref();
  },

  async stopped() {
    if (this.purgeTimer) clearInterval(this.purgeTimer);
  },
};

export = BillingServiceSchema;
