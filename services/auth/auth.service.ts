/**
 * The auth service: profile sessions (access/refresh tokens), magic login codes and admin API keys.
 * Transport only: each action validates its params with the contract's zod schema and hands them to
 * the rules (auth.logic.ts). Settings `now` (a clock in unix seconds) and `limits` exist for tests.
 */
import type { Context, Service, ServiceSchema, ServiceSettingSchema } from "moleculer";
import type { z } from "zod";
import { AuthActions } from "../../shared/contracts/auth";
import type { RequestMeta } from "../../shared/contracts/common";
import type { MailerActions } from "../../shared/contracts/mailer";
import { settingsOf } from "../../shared/registry";
import { storageMixin, type StorageMixinThis } from "../../shared/mixins/storage.mixin";
import { zodParams } from "../../shared/validation";
import { createAuth, type Auth } from "./auth.logic";
import type { AuthLimits } from "./limits";

export interface AuthSettings extends ServiceSettingSchema {
  now?: () => number;
  limits?: Partial<AuthLimits>;
  /** How often expired codes, counters and grace pairs are purged (ms). */
  purgeIntervalMs?: number;
}

interface AuthThis extends StorageMixinThis {
  auth: Auth;
  purgeTimer?: NodeJS.Timeout;
}

type This = Service<AuthSettings> & AuthThis;

type P<K extends keyof typeof AuthActions> = Context<z.infer<(typeof AuthActions)[K]>>;

const fastRead = { timeout: 5_000, retryPolicy: { enabled: true } };

const AuthService: ServiceSchema<AuthSettings, Record<string, never>, AuthThis, This> = {
  name: "auth",
  mixins: [storageMixin("auth")],
  settings: { purgeIntervalMs: 60_000 },

  // biome-ignore format: one action per line, so the table reads as a table
  actions: {
    // `fastRead`: asked on every authenticated request, so a call stuck on a node that just died fails
    // after 5 s and is retried (round-robin: on another node) instead of hanging for the request timeout.
    issueSession: { params: zodParams(AuthActions.issueSession), handler(ctx: P<"issueSession">) { return this.auth.sessions.issue(ctx.params); } },
    refreshSession: { params: zodParams(AuthActions.refreshSession), handler(ctx: P<"refreshSession">) { return this.auth.sessions.refresh(ctx.params); } },
    authenticate: { ...fastRead, params: zodParams(AuthActions.authenticate), handler(ctx: P<"authenticate">) { return this.auth.authenticate(ctx.params); } },
    listSessions: { params: zodParams(AuthActions.listSessions), handler(ctx: P<"listSessions">) { return this.auth.sessions.list(ctx.params); } },
    revokeSession: { params: zodParams(AuthActions.revokeSession), handler(ctx: P<"revokeSession">) { return this.auth.sessions.revoke(ctx.params); } },
    revokeProfileSessions: {
      params: zodParams(AuthActions.revokeProfileSessions),
      handler(ctx: P<"revokeProfileSessions">) { return this.auth.sessions.revokeAll(ctx.params); },
    },
    requestCode: {
      params: zodParams(AuthActions.requestCode),
      handler(ctx: P<"requestCode">) {
        const ip = (ctx.meta as RequestMeta).ip ?? ctx.params.ip;
        return this.auth.codes.request({ ...ctx.params, ip }, (message: z.infer<typeof MailerActions.sendMagicCode>) => ctx.call("mailer.sendMagicCode", message));
      },
    },
    verifyCode: { params: zodParams(AuthActions.verifyCode), handler(ctx: P<"verifyCode">) { return this.auth.codes.verify(ctx.params); } },
    describeProfiles: {
      params: zodParams(AuthActions.describeProfiles),
      handler(ctx: P<"describeProfiles">) { return this.auth.describeProfiles(ctx.params); },
    },
    listCodes: { params: zodParams(AuthActions.listCodes), handler(ctx: P<"listCodes">) { return this.auth.codes.list(ctx.params); } },
    deleteCodes: { params: zodParams(AuthActions.deleteCodes), handler(ctx: P<"deleteCodes">) { return this.auth.codes.deleteAll(ctx.params); } },
    createApiKey: { params: zodParams(AuthActions.createApiKey), handler(ctx: P<"createApiKey">) { return this.auth.apiKeys.create(ctx.params); } },
    listApiKeys: { params: zodParams(AuthActions.listApiKeys), handler(ctx: P<"listApiKeys">) { return this.auth.apiKeys.list(ctx.params); } },
    revokeApiKey: { params: zodParams(AuthActions.revokeApiKey), handler(ctx: P<"revokeApiKey">) { return this.auth.apiKeys.revoke(ctx.params); } },
    verifyApiKey: { ...fastRead, params: zodParams(AuthActions.verifyApiKey), handler(ctx: P<"verifyApiKey">) { return this.auth.apiKeys.verify(ctx.params); } },
  },

  async started() {
    this.auth = await createAuth({
      db: this.db,
      config: settingsOf("auth"),
      now: this.settings.now,
      limits: this.settings.limits,
      warn: (message) => this.logger.warn(message),
    });
    const every = this.settings.purgeIntervalMs ?? 60_000;
    this.purgeTimer = setInterval(() => {
      this.auth.purgeExpired().catch((err: Error) => this.logger.warn(`auth: purging expired records failed: ${err.message}`));
    }, every);
    this.purgeTimer.unref();
  },

  async stopped() {
    if (this.purgeTimer) clearInterval(this.purgeTimer);
  },
};

export = AuthService;
