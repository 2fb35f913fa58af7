/**
 * Profile lists: lists, memberships, subscribe/confirm/access/unsubscribe, import.
 * (Skeleton: storage and health are in place; the list features arrive with their issue.)
 */
import type { ServiceSchema } from "moleculer";
import { storageMixin } from "../../shared/mixins/storage.mixin";

const ProfileListsService: ServiceSchema = {
  name: "profile-lists",
  mixins: [storageMixin("profile-lists")],
};

export = ProfileListsService;
