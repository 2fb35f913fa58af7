/**
 * Profile lists: lists, memberships, subscribe/confirm/access/unsubscribe (paid lists through billing's
 * Stripe Checkout), admin members; consumes `profile.merged` (memberships move), `email-template.deleted`
 * (lists fall back to single opt-in) and `billing.payment-changed` (paid memberships follow their payment).
 * Transport only: `started()` builds the rules once (createProfileLists in profile-lists.logic.ts, the
 * composition root) and each handler hands its params and the caller (ctx.meta) to them.
 */
import type { Context, Service, ServiceSchema, ServiceSettingSchema } from "moleculer";
import type { z } from "zod";
import type { RequestMeta } from "../../shared/contracts/common";
import { ProfileListsActions } from "../../shared/contracts/profile-lists";
import { durableChannel } from "../../shared/events/durable";
import { storageMixin, type StorageMixinThis } from "../../shared/mixins/storage.mixin";
import { settingsOf } from "../../shared/registry";
import { zodParams } from "../../shared/validation";
import { createProfileLists, type ProfileLists } from "./profile-lists.logic";

type P<K extends keyof typeof ProfileListsActions> = Context<z.infer<(typeof ProfileListsActions)[K]>, RequestMeta>;

interface ProfileListsVars extends StorageMixinThis {
  profileLists: ProfileLists;
  recoveryTimer?: NodeJS.Timeout;
}

/** How often member_count changes left by a dead writer are settled (and lapsed paid cancellations ended). */
const RECOVERY_INTERVAL_MS = 60_000;
/**
 * Deliveries of a payment change before it goes to DEAD_LETTER: with the default EVENTS_RETRY_DELAYS
 * (the last wait, 10 min, repeating) about three and a half days, as long as Stripe itself keeps retrying.
 */
const PAYMENT_CHANGE_DELIVERIES = 500;

export type ProfileListsService = Service<ServiceSettingSchema> & ProfileListsVars;

/** Reads are safe to retry on a transient failure. */
const retryable = { retryPolicy: { enabled: true } };
const callerOf = (ctx: Context<unknown, RequestMeta>) => ({ auth: ctx.meta.auth, ip: ctx.meta.ip, userAgent: ctx.meta.userAgent });

const ProfileListsServiceSchema: ServiceSchema<ServiceSettingSchema, Record<string, never>, ProfileListsVars, ProfileListsService> = {
  name: "profile-lists",
  mixins: [storageMixin("profile-lists")],

  actions: {
    create: {
      params: zodParams(ProfileListsActions.create),
      handler(ctx: P<"create">) {
        return this.profileLists.create(ctx.params);
      },
    },
    get: {
      ...retryable,
      params: zodParams(ProfileListsActions.get),
      handler(ctx: P<"get">) {
        return this.profileLists.get(ctx.params);
      },
    },
    find: {
      ...retryable,
      params: zodParams(ProfileListsActions.find),
      handler(ctx: P<"find">) {
        return this.profileLists.find(ctx.params);
      },
    },
    update: {
      params: zodParams(ProfileListsActions.update),
      handler(ctx: P<"update">) {
        return this.profileLists.update(ctx.params);
      },
    },
    members: {
      ...retryable,
      params: zodParams(ProfileListsActions.members),
      handler(ctx: P<"members">) {
        return this.profileLists.members(ctx.params);
      },
    },
    addMember: {
      params: zodParams(ProfileListsActions.addMember),
      handler(ctx: P<"addMember">) {
        return this.profileLists.addMember(ctx.params, callerOf(ctx));
      },
    },
    removeMember: {
      params: zodParams(ProfileListsActions.removeMember),
      handler(ctx: P<"removeMember">) {
        return this.profileLists.removeMember(ctx.params);
      },
    },
    importProfiles: {
      params: zodParams(ProfileListsActions.importProfiles),
      handler(ctx: P<"importProfiles">) {
        // A text/csv body arrives as the call's stream (the gateway streams it).
        return this.profileLists.importProfiles(ctx.params, (ctx.stream ?? undefined) as NodeJS.ReadableStream | undefined, callerOf(ctx));
      },
    },
    subscribe: {
      params: zodParams(ProfileListsActions.subscribe),
      handler(ctx: P<"subscribe">) {
        return this.profileLists.subscribe(ctx.params, callerOf(ctx));
      },
    },
    confirm: {
      params: zodParams(ProfileListsActions.confirm),
      handler(ctx: P<"confirm">) {
        return this.profileLists.confirm(ctx.params, callerOf(ctx));
      },
    },
    access: {
      ...retryable,
      params: zodParams(ProfileListsActions.access),
      handler(ctx: P<"access">) {
        return this.profileLists.access(ctx.params, callerOf(ctx));
      },
    },
    unsubscribe: {
      params: zodParams(ProfileListsActions.unsubscribe),
      handler(ctx: P<"unsubscribe">) {
        return this.profileLists.unsubscribe(ctx.params, callerOf(ctx));
      },
    },
    // Billing's delivery in one process (no JetStream there); over NATS the same change is the event below.
    applyPaymentChange: {
      params: zodParams(ProfileListsActions.applyPaymentChange),
      handler(ctx: P<"applyPaymentChange">) {
        return this.profileLists.applyPaymentChange(ctx.params);
      },
    },
  },

  channels: {
    "profile.merged": durableChannel("profile.merged", {
      group: "profile-lists",
      async handler(this: ProfileListsService, payload) {
        await this.profileLists.moveMemberships(payload);
      },
    }),
    "email-template.deleted": durableChannel("email-template.deleted", {
      group: "profile-lists",
      async handler(this: ProfileListsService, payload) {
        await this.profileLists.markTemplateDeleted(payload);
      },
    }),
    "billing.payment-changed": durableChannel("billing.payment-changed", {
      group: "profile-lists",
      maxRetries: PAYMENT_CHANGE_DELIVERIES,
      async handler(this: ProfileListsService, payload) {
        await this.profileLists.applyPaymentChange(payload);
      },
    }),
  },

  async started() {
    this.profileLists = await createProfileLists({ db: this.db, bus: this.broker, logger: this.logger, settings: settingsOf("profile-lists") });
    const recover = () =>
      this.profileLists
        .recoverCounts()
        .then(
          (settled) => settled > 0 && this.logger.info(`settled ${settled} member_count change(s) left by a stopped instance`),
          (err: Error) => this.logger.warn("member_count recovery did not finish; will retry:", err?.message ?? err),
        )
        .then(() => this.profileLists.endLapsedCancellations())
        .catch((err: Error) => this.logger.warn("ending lapsed paid cancellations did not finish; will retry:", err?.message ?? err));
    void recover();
    this.recoveryTimer = setInterval(recover, RECOVERY_INTERVAL_MS);
    this.recoveryTimer.unref();
  },

  async stopped() {
    if (this.recoveryTimer) clearInterval(this.recoveryTimer);
  },
};

export = ProfileListsServiceSchema;
