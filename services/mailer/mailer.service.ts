/**
 * The mailer service: sends system e-mail (for now the login-code e-mail) through SMTP when SMTP_URL is
 * set, else into the outbox folder. Transport only: `started()` builds the mailer once (createMailer in
 * mailer.logic.ts, the composition root) and each handler hands its params to it.
 */
import type { Context, Service, ServiceSchema, ServiceSettingSchema } from "moleculer";
import type { z } from "zod";
import { settingsOf } from "../../shared/registry";
import { MailerActions } from "../../shared/contracts/mailer";
import { storageMixin, type StorageMixinThis } from "../../shared/mixins/storage.mixin";
import { zodParams } from "../../shared/validation";
import { createMailer, type MailerApi } from "./mailer.logic";

interface MailerThis extends StorageMixinThis {
  mailer: MailerApi;
}

type This = Service<ServiceSettingSchema> & MailerThis;

const MailerService: ServiceSchema<ServiceSettingSchema, Record<string, never>, MailerThis, This> = {
  name: "mailer",
  mixins: [storageMixin("mailer")],

  actions: {
    sendMagicCode: {
      params: zodParams(MailerActions.sendMagicCode),
      handler(ctx: Context<z.infer<typeof MailerActions.sendMagicCode>>) {
        return this.mailer.sendMagicCode(ctx.params);
      },
    },
  },

  async started() {
    this.mailer = await createMailer({ db: this.db, settings: settingsOf("mailer"), log: this.logger });
    this.logger.info(`mailer: sending through ${this.mailer.transport.name} (${this.mailer.transport.destination})`);
  },

  async stopped() {
    await this.mailer?.close();
  },
};

export = MailerService;
