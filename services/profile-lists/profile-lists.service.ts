/**
 * Profile lists: lists, memberships, subscribe/confirm/access/unsubscribe, import.
 * Transport only: `started()` builds the rules once (createProfileLists in profile-lists.logic.ts, the composition
 * root) and each handler hands its params to them. (Skeleton: storage and health are in place; the list features arrive with their issue.)
 */
import type { Service, ServiceSchema, ServiceSettingSchema } from "moleculer";
import { storageMixin, type StorageMixinThis } from "../../shared/mixins/storage.mixin";
import { createProfileLists, type ProfileLists } from "./profile-lists.logic";

interface ProfileListsVars extends StorageMixinThis {
  profileLists: ProfileLists;
}

type This = Service<ServiceSettingSchema> & ProfileListsVars;

const ProfileListsService: ServiceSchema<ServiceSettingSchema, Record<string, never>, ProfileListsVars, This> = {
  name: "profile-lists",
  mixins: [storageMixin("profile-lists")],

  actions: {},

  async started() {
    this.profileLists = await createProfileLists({ db: this.db, bus: this.broker, logger: this.logger });
  },
};

export = ProfileListsService;
