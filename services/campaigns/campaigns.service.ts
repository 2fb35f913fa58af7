/**
 * Campaigns: campaigns, steps, recipients, launch/sequence scheduling, message snapshots, replies.
 * (Skeleton: storage and health are in place; the campaign features arrive with their issue.)
 */
import type { ServiceSchema } from "moleculer";
import { storageMixin } from "../../shared/mixins/storage.mixin";

const CampaignsService: ServiceSchema = {
  name: "campaigns",
  mixins: [storageMixin("campaigns")],
};

export = CampaignsService;
