/**
 * The profiles service (Moleculer schema): profiles, guest sessions and connect, magic-code login,
 * search, merge, order links. Transport only: each handler maps `ctx` to a rule in profiles.logic.ts.
 * On start it creates its indexes and recovers merges a crash interrupted (then re-checks every minute).
 */
import type { Context, Service, ServiceBroker, ServiceSchema, ServiceSettingSchema } from "moleculer";
import type { z } from "zod";
import type { RequestMeta } from "../../shared/contracts/common";
import { ProfileActions } from "../../shared/contracts/profiles";
import { durableChannel, publishEvent } from "../../shared/events/durable";
import { nowSeconds } from "../../shared/ids";
import { storageMixin, type StorageMixinThis } from "../../shared/mixins/storage.mixin";
import { zodParams } from "../../shared/validation";
import * as logic from "./profiles.logic";
import { recoverMerges } from "./profiles.merge";
import { linkOrder } from "./profiles.orders";
import { authClient, type ProfilesDeps } from "./profiles.ports";
import { ProfilesStore } from "./profiles.store";

type P<K extends keyof typeof ProfileActions> = Context<z.infer<(typeof ProfileActions)[K]>, RequestMeta>;


/** How often merges left unfinished (a dead instance, auth down) are retried. */
const RECOVERY_INTERVAL_MS = 60_000;
/** How long one recovery pass waits for the auth service to appear. */
const AUTH_WAIT_MS = 30_000;

interface ProfilesVars extends StorageMixinThis {
  store: ProfilesStore;
  recoveryTimer?: NodeJS.Timeout;
  /** The running recovery pass, if any (tests await it). */
  recovering?: Promise<void>;
  stopping?: boolean;
}

interface ProfilesMethods {
  deps(via: Context | ServiceBroker): ProfilesDeps;
  recover(): Promise<void>;
  authAvailable(): Promise<boolean>;
}

export type ProfilesService = Service & ProfilesVars & ProfilesMethods;

/** Reads are safe to retry on a transient failure (the broker's retry policy is opt-in per action). */
const retryable = { retryPolicy: { enabled: true } };

const ProfilesServiceSchema: ServiceSchema<ServiceSettingSchema, ProfilesMethods, ProfilesVars> = {
  name: "profiles",
  mixins: [storageMixin("profiles")],

  actions: {
    create: {
      params: zodParams(ProfileActions.create),
      handler(ctx: P<"create">) {
        return logic.createProfile(this.deps(ctx), ctx.params);
      },
    },
    get: {
      ...retryable,
      params: zodParams(ProfileActions.get),
      handler(ctx: P<"get">) {
        return logic.getProfile(this.deps(ctx), ctx.params);
      },
    },
    find: {
      ...retryable,
      params: zodParams(ProfileActions.find),
      handler(ctx: P<"find">) {
        return logic.findProfiles(this.deps(ctx), ctx.params);
      },
    },
    update: {
      params: zodParams(ProfileActions.update),
      handler(ctx: P<"update">) {
        return logic.updateProfile(this.deps(ctx), ctx.params);
      },
    },
    merge: {
      params: zodParams(ProfileActions.merge),
      handler(ctx: P<"merge">) {
        return logic.mergeInto(this.deps(ctx), ctx.params);
      },
    },
    revokeSession: {
      params: zodParams(ProfileActions.revokeSession),
      handler(ctx: P<"revokeSession">) {
        return logic.revokeSession(this.deps(ctx), ctx.params);
      },
    },
    revokeAllSessions: {
      params: zodParams(ProfileActions.revokeAllSessions),
      handler(ctx: P<"revokeAllSessions">) {
        return logic.revokeAllSessions(this.deps(ctx), ctx.params);
      },
    },
    listOrders: {
      ...retryable,
      params: zodParams(ProfileActions.listOrders),
      handler(ctx: P<"listOrders">) {
        return logic.listOrders(this.deps(ctx), ctx.params);
      },
    },
    recordPromoUse: {
      params: zodParams(ProfileActions.recordPromoUse),
      handler(ctx: P<"recordPromoUse">) {
        return logic.recordPromoUse(this.deps(ctx), ctx.params);
      },
    },
    initialize: {
      params: zodParams(ProfileActions.initialize),
      handler(ctx: P<"initialize">) {
        return logic.initializeGuest(this.deps(ctx), ctx.params);
      },
    },
    connect: {
      params: zodParams(ProfileActions.connect),
      handler(ctx: P<"connect">) {
        return logic.connect(this.deps(ctx), ctx.params, ctx.meta.auth);
      },
    },
    verify: {
      params: zodParams(ProfileActions.verify),
      handler(ctx: P<"verify">) {
        return logic.verify(this.deps(ctx), ctx.params, ctx.meta.auth, ctx.meta.ip);
      },
    },
    me: {
      ...retryable,
      params: zodParams(ProfileActions.me),
      handler(ctx: P<"me">) {
        return logic.me(this.deps(ctx), ctx.params, ctx.meta.auth);
      },
    },
  },

  channels: {
    "order.created": durableChannel("order.created", {
      group: "profiles",
      key: (p) => `${p.store_id}:${p.order_id}`,
      async handler(this: ProfilesService, payload, ctx) {
        await linkOrder(this.deps(ctx), payload);
      },
    }),
  },

  methods: {
    deps(this: ProfilesService, via: Context | ServiceBroker): ProfilesDeps {
      return {
        store: this.store,
        auth: authClient(via),
        events: { profileMerged: (payload) => publishEvent(via, "profile.merged", payload) },
        logger: this.logger,
        now: nowSeconds,
      };
    },

    /** One recovery pass at a time. Finishing a merge needs the auth service: wait for it (until stopped). */
    recover(this: ProfilesService): Promise<void> {
      if (this.recovering) return this.recovering;
      const run = async () => {
        try {
          const unfinished = await this.store.merges.count({ state: { $in: ["pending", "running"] } });
          if (unfinished === 0 || !(await this.authAvailable())) return;
          const result = await recoverMerges(this.deps(this.broker));
          if (result.completed || result.undone || result.failed) this.logger.info("merge recovery:", result);
        } catch (err) {
          this.logger.warn("merge recovery did not finish; will retry:", (err as Error)?.message ?? err);
        } finally {
          this.recovering = undefined;
        }
      };
      this.recovering = run();
      return this.recovering;
    },

    async authAvailable(this: ProfilesService): Promise<boolean> {
      const deadline = Date.now() + AUTH_WAIT_MS;
      while (!this.stopping) {
        // nodeID is optional at run time (any node); the typings say otherwise.
        if (this.broker.registry.hasService("auth", undefined as unknown as string)) return true;
        if (Date.now() > deadline) return false;
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
      return false;
    },
  },

  async started(this: ProfilesService) {
    this.store = new ProfilesStore(this.db);
    await this.store.ensureIndexes();
    this.stopping = false;
    // In the background: the auth service may start after us.
    void this.recover();
    this.recoveryTimer = setInterval(() => void this.recover(), RECOVERY_INTERVAL_MS);
    this.recoveryTimer.unref();
  },

  async stopped(this: ProfilesService) {
    this.stopping = true;
    if (this.recoveryTimer) clearInterval(this.recoveryTimer);
    await this.recovering;
  },
};

export = ProfilesServiceSchema;
