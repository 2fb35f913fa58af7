/**
 * Billing: Stripe Checkout sessions and signature-checked webhooks, each event applied once.
 * (Skeleton: storage and health are in place; checkout and webhooks arrive with their issue.)
 */
import type { ServiceSchema } from "moleculer";
import { storageMixin } from "../../shared/mixins/storage.mixin";

const BillingService: ServiceSchema = {
  name: "billing",
  mixins: [storageMixin("billing")],
};

export = BillingService;
