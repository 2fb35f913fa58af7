/**
 * The mailer service: sends system e-mail (for now the login-code e-mail) through SMTP when SMTP_URL is
 * set, else into the outbox folder. Transport only; the rules are in mailer.logic.ts.
 */
import type { Context, Service, ServiceSchema, ServiceSettingSchema } from "moleculer";
import type { z } from "zod";
import { settingsOf } from "../../shared/registry";
import { MailerActions } from "../../shared/contracts/mailer";
import { storageMixin, type StorageMixinThis } from "../../shared/mixins/storage.mixin";
import { zodParams } from "../../shared/validation";
import { Mailer } from "./mailer.logic";
import { compileSystemTemplates } from "./templates";
import { createTransport, type MailTransport } from "./transport";

interface MailerThis extends StorageMixinThis {
  mailer: Mailer;
  transport: MailTransport;
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
    const cfg = settingsOf("mailer");
    this.transport = createTransport(cfg);
    this.mailer = new Mailer({ transport: this.transport, templates: compileSystemTemplates(), from: cfg.MAIL_FROM, log: this.logger });
    this.logger.info(`mailer: sending through ${this.transport.name} (${this.transport.destination})`);
  },

  async stopped() {
    await this.transport?.close();
  },
};

export = MailerService;
