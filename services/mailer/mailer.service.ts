/**
 * The mailer service: sends system e-mail (the login-code e-mail) and a store's e-mail templates
 * (admin CRUD and preview; `templateStatus` and `sendTemplate` for other services) through SMTP when
 * SMTP_URL is set, else into the outbox folder. Transport only: `started()` builds the mailer once
 * (createMailer in mailer.logic.ts, the composition root) and each handler hands its params to it.
 */
import type { Context, Service, ServiceSchema, ServiceSettingSchema } from "moleculer";
import type { z } from "zod";
import { MailerActions } from "../../shared/contracts/mailer";
import { storageMixin, type StorageMixinThis } from "../../shared/mixins/storage.mixin";
import { settingsOf } from "../../shared/registry";
import { zodParams } from "../../shared/validation";
import { createMailer, type MailerApi } from "./mailer.logic";

interface MailerThis extends StorageMixinThis {
  mailer: MailerApi;
}

type This = Service<ServiceSettingSchema> & MailerThis;
type P<K extends keyof typeof MailerActions> = Context<z.infer<(typeof MailerActions)[K]>>;

/** Reads are safe to retry on a transient failure (the broker's retry policy is opt-in per action). */
const retryable = { retryPolicy: { enabled: true } };

const MailerService: ServiceSchema<ServiceSettingSchema, Record<string, never>, MailerThis, This> = {
  name: "mailer",
  mixins: [storageMixin("mailer")],

  actions: {
    sendMagicCode: {
      params: zodParams(MailerActions.sendMagicCode),
      handler(ctx: P<"sendMagicCode">) {
        return this.mailer.sendMagicCode(ctx.params);
      },
    },
    createTemplate: {
      params: zodParams(MailerActions.createTemplate),
      handler(ctx: P<"createTemplate">) {
        return this.mailer.createTemplate(ctx.params);
      },
    },
    findTemplates: {
      ...retryable,
      params: zodParams(MailerActions.findTemplates),
      handler(ctx: P<"findTemplates">) {
        return this.mailer.findTemplates(ctx.params);
      },
    },
    getTemplate: {
      ...retryable,
      params: zodParams(MailerActions.getTemplate),
      handler(ctx: P<"getTemplate">) {
        return this.mailer.getTemplate(ctx.params);
      },
    },
    updateTemplate: {
      params: zodParams(MailerActions.updateTemplate),
      handler(ctx: P<"updateTemplate">) {
        return this.mailer.updateTemplate(ctx.params);
      },
    },
    deleteTemplate: {
      params: zodParams(MailerActions.deleteTemplate),
      handler(ctx: P<"deleteTemplate">) {
        return this.mailer.deleteTemplate(ctx.params);
      },
    },
    previewTemplate: {
      ...retryable,
      params: zodParams(MailerActions.previewTemplate),
      handler(ctx: P<"previewTemplate">) {
        return this.mailer.previewTemplate(ctx.params);
      },
    },
    templateStatus: {
      ...retryable,
      params: zodParams(MailerActions.templateStatus),
      handler(ctx: P<"templateStatus">) {
        return this.mailer.templateStatus(ctx.params);
      },
    },
    sendTemplate: {
      params: zodParams(MailerActions.sendTemplate),
      handler(ctx: P<"sendTemplate">) {
        return this.mailer.sendTemplate(ctx.params);
      },
    },
  },

  async started() {
    this.mailer = await createMailer({ db: this.db, bus: this.broker, settings: settingsOf("mailer"), log: this.logger });
    this.logger.info(`mailer: sending through ${this.mailer.transport.name} (${this.mailer.transport.destination})`);
    // In the background: the bus may still be connecting; a DELETE asked again publishes too.
    void this.mailer.publishOwedDeletes().catch((err: Error) => this.logger.warn(`mailer: owed email-template.deleted events not published yet: ${err?.message ?? err}`));
  },

  async stopped() {
    await this.mailer?.close();
  },
};

export = MailerService;
