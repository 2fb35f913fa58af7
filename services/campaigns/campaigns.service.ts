/**
 * Campaigns: campaigns, steps, recipients, launch/sequence scheduling, message snapshots, replies.
 * Transport only: `started()` builds the rules once (createCampaigns in campaigns.logic.ts, the composition
 * root) and each handler hands its params to them. (Skeleton: storage and health are in place; the campaign features arrive with their issue.)
 */
import type { Service, ServiceSchema, ServiceSettingSchema } from "moleculer";
import { storageMixin, type StorageMixinThis } from "../../shared/mixins/storage.mixin";
import { createCampaigns, type Campaigns } from "./campaigns.logic";

interface CampaignsVars extends StorageMixinThis {
  campaigns: Campaigns;
}

type This = Service<ServiceSettingSchema> & CampaignsVars;

const CampaignsService: ServiceSchema<ServiceSettingSchema, Record<string, never>, CampaignsVars, This> = {
  name: "campaigns",
  mixins: [storageMixin("campaigns")],

  actions: {},

  async started() {
    this.campaigns = await createCampaigns({ db: this.db, bus: this.broker, logger: this.logger });
  },
};

export = CampaignsService;
