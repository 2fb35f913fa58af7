/**
 * The profiles service (Moleculer schema): profiles, guest sessions and connect, magic-code login,
 * search, merge, order links. Transport only: `started()` builds the rules once (createProfiles in
 * profiles.logic.ts, the composition root) and each handler hands its params to them.
 * On start it creates its indexes and recovers merges a crash interrupted (then re-checks every minute).
 */
import type { Context, Service, ServiceSchema, ServiceSettingSchema } from "moleculer";
import type { z } from "zod";
import type { RequestMeta } from "../../shared/contracts/common";
import { ProfileActions } from "../../shared/contracts/profiles";
import { durableChannel } from "../../shared/events/durable";
import { storageMixin, type StorageMixinThis } from "../../shared/mixins/storage.mixin";
import { zodParams } from "../../shared/validation";
import { createProfiles, type Profiles } from "./profiles.logic";

type P<K extends keyof typeof ProfileActions> = Context<z.infer<(typeof ProfileActions)[K]>, RequestMeta>;

/** How often merges left unfinished (a dead instance, auth down) are retried. */
const RECOVERY_INTERVAL_MS = 60_000;
/** How long one recovery pass waits for the auth service to appear. */
const AUTH_WAIT_MS = 30_000;

interface ProfilesVars extends StorageMixinThis {
  profiles: Profiles;
  recoveryTimer?: NodeJS.Timeout;
  /** The running recovery pass, if any (tests await it). */
  recovering?: Promise<void>;
  stopping?: boolean;
}

interface ProfilesMethods {
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
        return this.profiles.create(ctx.params);
      },
    },
    get: {
      ...retryable,
      params: zodParams(ProfileActions.get),
      handler(ctx: P<"get">) {
        return this.profiles.get(ctx.params);
      },
    },
    find: {
      ...retryable,
      params: zodParams(ProfileActions.find),
      handler(ctx: P<"find">) {
        return this.profiles.find(ctx.params);
      },
    },
    update: {
      params: zodParams(ProfileActions.update),
      handler(ctx: P<"update">) {
        return this.profiles.update(ctx.params);
      },
    },
    merge: {
      params: zodParams(ProfileActions.merge),
      handler(ctx: P<"merge">) {
        return this.profiles.merge(ctx.params);
      },
    },
    revokeSession: {
      params: zodParams(ProfileActions.revokeSession),
      handler(ctx: P<"revokeSession">) {
        return this.profiles.revokeSession(ctx.params);
      },
    },
    revokeAllSessions: {
      params: zodParams(ProfileActions.revokeAllSessions),
      handler(ctx: P<"revokeAllSessions">) {
        return this.profiles.revokeAllSessions(ctx.params);
      },
    },
    listOrders: {
      ...retryable,
      params: zodParams(ProfileActions.listOrders),
      handler(ctx: P<"listOrders">) {
        return this.profiles.listOrders(ctx.params);
      },
    },
    recordPromoUse: {
      params: zodParams(ProfileActions.recordPromoUse),
      handler(ctx: P<"recordPromoUse">) {
        return this.profiles.recordPromoUse(ctx.params);
      },
    },
    initialize: {
      params: zodParams(ProfileActions.initialize),
      handler(ctx: P<"initialize">) {
        return this.profiles.initialize(ctx.params);
      },
    },
    connect: {
      params: zodParams(ProfileActions.connect),
      handler(ctx: P<"connect">) {
        return this.profiles.connect(ctx.params, ctx.meta.auth);
      },
    },
    verify: {
      params: zodParams(ProfileActions.verify),
      handler(ctx: P<"verify">) {
        return this.profiles.verify(ctx.params, ctx.meta.auth, ctx.meta.ip);
      },
    },
    lookup: {
      ...retryable,
      params: zodParams(ProfileActions.lookup),
      handler(ctx: P<"lookup">) {
        return this.profiles.lookup(ctx.params);
      },
    },
    getMany: {
      ...retryable,
      params: zodParams(ProfileActions.getMany),
      handler(ctx: P<"getMany">) {
        return this.profiles.getMany(ctx.params);
      },
    },
    upsertMany: {
      params: zodParams(ProfileActions.upsertMany),
      handler(ctx: P<"upsertMany">) {
        return this.profiles.upsertMany(ctx.params);
      },
    },
    me: {
      ...retryable,
      params: zodParams(ProfileActions.me),
      handler(ctx: P<"me">) {
        return this.profiles.me(ctx.params, ctx.meta.accessToken);
      },
    },
  },

  channels: {
    "order.created": durableChannel("order.created", {
      group: "profiles",
      key: (p) => `${p.store_id}:${p.order_id}`,
      async handler(this: ProfilesService, payload, _ctx) {
        await this.profiles.linkOrder(payload);
      },
    }),
  },

  methods: {
    /** One recovery pass at a time. Finishing a merge needs the auth service: wait for it (until stopped). */
    recover(this: ProfilesService): Promise<void> {
      if (this.recovering) return this.recovering;
      const run = async () => {
        try {
          const unfinished = await this.profiles.unfinishedMerges();
          if (unfinished === 0 || !(await this.authAvailable())) return;
          const result = await this.profiles.recoverMerges();
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
    this.profiles = await createProfiles({ db: this.db, bus: this.broker, logger: this.logger });
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
