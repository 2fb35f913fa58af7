/**
 * Billing: Stripe Checkout sessions and signature-checked webhooks, each event applied once.
 * Transport only: `started()` builds the rules once (createBilling in billing.logic.ts, the composition
 * root) and each handler hands its params to them. (Skeleton: storage and health are in place; checkout and webhooks arrive with their issue.)
 */
import type { Service, ServiceSchema, ServiceSettingSchema } from "moleculer";
import { storageMixin, type StorageMixinThis } from "../../shared/mixins/storage.mixin";
import { createBilling, type Billing } from "./billing.logic";

interface BillingVars extends StorageMixinThis {
  billing: Billing;
}

type This = Service<ServiceSettingSchema> & BillingVars;

const BillingService: ServiceSchema<ServiceSettingSchema, Record<string, never>, BillingVars, This> = {
  name: "billing",
  mixins: [storageMixin("billing")],

  actions: {},

  async started() {
    this.billing = await createBilling({ db: this.db, bus: this.broker, logger: this.logger });
  },
};

export = BillingService;
