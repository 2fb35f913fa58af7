/**
 * The mailer's rules for sending: system mail (the login-code e-mail) and a store's templates (rules in
 * mailer.templates.ts), addressed from MAIL_FROM, sent through the configured transport, a send failure
 * turned into a 503 (or a 400 when the server refuses the recipient for good). Logs say where a message
 * went, never what it says. `createMailer` at the end is the composition root.
 */
import { randomUUID } from "node:crypto";
import type { ServiceBroker } from "moleculer";
import type { z } from "zod";
import type { Config } from "../../shared/config";
import type { MailerActions, RenderedTemplate } from "../../shared/contracts/mailer";
import { publishEvent } from "../../shared/events/durable";
import { nowSeconds } from "../../shared/ids";
import type { Database } from "../../shared/storage/port";
import { MailerErrors } from "./mailer.errors";
import { MailerStore } from "./mailer.store";
import {
  createTemplate,
  deleteTemplate,
  findTemplates,
  getTemplate,
  previewTemplate,
  publishOwedDeletes,
  renderForSend,
  type TemplateDeps,
  templateStatus,
  updateTemplate,
} from "./mailer.templates";
import { TemplateCache } from "./template-engine";
import { compileSystemTemplates, type SystemTemplates } from "./templates";
import { createTransport, type MailTransport, type OutgoingMail } from "./transport";

export interface MailerDeps {
  transport: MailTransport;
  templates: SystemTemplates;
  from: string;
  log: { debug(message: string): void; info(message: string): void; warn(message: string): void; error(message: string): void };
}

export interface MagicCodeMail {
  store_id: string;
  to: string;
  code: string;
  expires_in_minutes: number;
}

/** A Message-ID on the sender's domain (falls back to `localhost`). */
export function newMessageId(from: string): string {
  const domain = /@([A-Za-z0-9.-]+)>?\s*$/.exec(from)?.[1] ?? "localhost";
  return `<${randomUUID()}@${domain}>`;
}

type TemplateMail = z.infer<typeof MailerActions.sendTemplate>;

/** RFC 8058 one-click unsubscribe: where to unsubscribe, and that a POST there (no page, no login) does it. */
function listUnsubscribeHeaders(url: string): Record<string, string> {
  return { "List-Unsubscribe": `<${url}>`, "List-Unsubscribe-Post": "List-Unsubscribe=One-Click" };
}

export function buildMagicCodeMail(deps: Pick<MailerDeps, "templates" | "from">, input: MagicCodeMail): OutgoingMail {
  const rendered = deps.templates.magicCode({ code: input.code, expires_in_minutes: input.expires_in_minutes });
  return {
    from: deps.from,
    to: input.to,
    ...rendered,
    messageId: newMessageId(deps.from),
    // Auto-responders should not answer (or loop on) a login code.
    headers: { "Auto-Submitted": "auto-generated", "X-Auto-Response-Suppress": "All" },
  };
}

/** What nodemailer puts on an SMTP failure. */
interface SmtpFailure {
  code?: unknown;
  command?: unknown;
  responseCode?: unknown;
  response?: unknown;
}

/**
 * A permanent refusal of the address itself: a 550-553 answer to RCPT TO (no such mailbox, bad domain,
 * mailbox disabled). A 5.7.x enhanced status there is policy (relay denied, authentication required):
 * the set-up's fault, not the address's. A refused sender (MAIL FROM) or message (DATA) never is.
 */
function isRecipientRefusal(err: SmtpFailure): boolean {
  if (err.code !== "EENVELOPE" || err.command !== "RCPT TO") return false;
  const reply = typeof err.responseCode === "number" ? err.responseCode : 0;
  if (reply < 550 || reply > 553) return false;
  return !/^\d{3}[ -]5\.7\./.test(String(err.response ?? ""));
}

export class Mailer {
  constructor(private readonly deps: MailerDeps) {}

  /** Sends the login-code e-mail -> `{ message_id }`; 503 when the transport fails. */
  sendMagicCode(input: MagicCodeMail): Promise<{ message_id: string }> {
    return this.send(buildMagicCodeMail(this.deps, input), "login code e-mail");
  }

  /** Sends a rendered store template -> `{ message_id }`, with RFC 8058 unsubscribe headers when asked. */
  sendRendered(input: Pick<TemplateMail, "to" | "template_id" | "list_unsubscribe">, rendered: RenderedTemplate): Promise<{ message_id: string }> {
    const mail: OutgoingMail = {
      from: this.deps.from,
      to: input.to,
      subject: rendered.subject,
      html: rendered.html,
      ...(rendered.text === null ? {} : { text: rendered.text }),
      messageId: newMessageId(this.deps.from),
      ...(input.list_unsubscribe ? { headers: listUnsubscribeHeaders(input.list_unsubscribe.url) } : {}),
    };
    return this.send(mail, `template ${input.template_id} e-mail`);
  }

  private async send(mail: OutgoingMail, what: string): Promise<{ message_id: string }> {
    try {
      const receipt = await this.deps.transport.send(mail);
      const line = `e-mail to ${mail.to}, subject "${mail.subject}": ${receipt.destination}`;
      if (this.deps.transport.local) this.deps.log.info(line);
      else this.deps.log.debug(line);
      return { message_id: receipt.messageId };
    } catch (err) {
      throw this.failure(err, mail.to, what);
    }
  }

  /** Logs a send failure in words an operator can act on, and picks the caller's error. */
  private failure(err: unknown, to: string, what: string): Error {
    const { code, responseCode } = err as SmtpFailure;
    const reply = typeof responseCode === "number" ? responseCode : null;
    const via = this.deps.transport.name;
    if (isRecipientRefusal(err as SmtpFailure)) {
      this.deps.log.warn(`${what} to ${to} refused by the ${via} server for this recipient (${reply})`);
      return MailerErrors.recipientRefused();
    }
    if (reply !== null && reply >= 500) {
      // Permanent refusals other than the recipient's are the set-up's: credentials, sender, relay policy.
      this.deps.log.error(`${what} to ${to} refused by the ${via} server (${String(code ?? "")} ${reply}): check SMTP_URL and MAIL_FROM`);
    } else {
      this.deps.log.warn(`${what} to ${to} could not be sent via ${via} (${String(code ?? reply ?? "error")})`);
    }
    return MailerErrors.sendFailed();
  }
}

// ---------------------------------------------------------------- composition root

export interface MailerSetup {
  db: Database;
  /** Publishes `email-template.deleted` (the service's broker, with the channels middleware). */
  bus: ServiceBroker;
  settings: Pick<Config, "SMTP_URL" | "OUTBOX_DIR" | "DATA_DIR" | "MAIL_FROM">;
  log: MailerDeps["log"];
  /** Another provider (tests); default: SMTP when SMTP_URL is set, else the outbox folder. */
  transport?: MailTransport;
  /** Unix seconds; tests pass a fake. */
  now?: () => number;
}

/** Builds the mailer once, from explicit dependencies (the service's `started()` calls it). */
export async function createMailer(setup: MailerSetup) {
  const store = new MailerStore(setup.db);
  await store.ensureIndexes();
  const transport = setup.transport ?? createTransport(setup.settings);
  const mailer = new Mailer({ transport, templates: compileSystemTemplates(), from: setup.settings.MAIL_FROM, log: setup.log });
  const cache = new TemplateCache();
  const templates: TemplateDeps = {
    store,
    cache,
    events: { templateDeleted: (payload) => publishEvent(setup.bus, "email-template.deleted", payload) },
    log: setup.log,
    now: setup.now ?? nowSeconds,
  };
  type Params<K extends keyof typeof MailerActions> = z.infer<(typeof MailerActions)[K]>;
  return {
    store,
    transport,
    /** Compiled templates (tests read `compilations`). */
    cache,
    sendMagicCode: (input: MagicCodeMail) => mailer.sendMagicCode(input),
    createTemplate: (p: Params<"createTemplate">) => createTemplate(templates, p),
    findTemplates: (p: Params<"findTemplates">) => findTemplates(templates, p),
    getTemplate: (p: Params<"getTemplate">) => getTemplate(templates, p),
    updateTemplate: (p: Params<"updateTemplate">) => updateTemplate(templates, p),
    deleteTemplate: (p: Params<"deleteTemplate">) => deleteTemplate(templates, p),
    previewTemplate: (p: Params<"previewTemplate">) => previewTemplate(templates, p),
    templateStatus: (p: Params<"templateStatus">) => templateStatus(templates, p),
    sendTemplate: async (p: TemplateMail) => mailer.sendRendered(p, await renderForSend(templates, p.store_id, p.template_id, p.vars)),
    publishOwedDeletes: () => publishOwedDeletes(templates),
    close: () => transport.close(),
  };
}

export type MailerApi = Awaited<ReturnType<typeof createMailer>>;
