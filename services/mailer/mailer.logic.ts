/**
 * The mailer's rules for system mail (the login-code e-mail for now): render the compiled template,
 * address it from MAIL_FROM, send it through the configured transport, and turn a send failure into
 * a 503 (or a 400 when the server refuses the recipient for good). Logs say where a message went, never
 * what it says.
 */
import { randomUUID } from "node:crypto";
import type { Config } from "../../shared/config";
import type { Database } from "../../shared/storage/port";
import { MailerStore } from "./mailer.store";
import { compileSystemTemplates, type SystemTemplates } from "./templates";
import { createTransport, type MailTransport, type OutgoingMail } from "./transport";
import { MailerErrors } from "./mailer.errors";

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
  async sendMagicCode(input: MagicCodeMail): Promise<{ message_id: string }> {
    const mail = buildMagicCodeMail(this.deps, input);
    try {
      const receipt = await this.deps.transport.send(mail);
      const line = `e-mail to ${mail.to}, subject "${mail.subject}": ${receipt.destination}`;
      if (this.deps.transport.local) this.deps.log.info(line);
      else this.deps.log.debug(line);
      return { message_id: receipt.messageId };
    } catch (err) {
      throw this.failure(err, mail.to);
    }
  }

  /** Logs a send failure in words an operator can act on, and picks the caller's error. */
  private failure(err: unknown, to: string): Error {
    const { code, responseCode } = err as SmtpFailure;
    const reply = typeof responseCode === "number" ? responseCode : null;
    const via = this.deps.transport.name;
    if (isRecipientRefusal(err as SmtpFailure)) {
      this.deps.log.warn(`login code e-mail to ${to} refused by the ${via} server for this recipient (${reply})`);
      return MailerErrors.recipientRefused();
    }
    if (reply !== null && reply >= 500) {
      // Permanent refusals other than the recipient's are the set-up's: credentials, sender, relay policy.
      this.deps.log.error(`login code e-mail to ${to} refused by the ${via} server (${String(code ?? "")} ${reply}): check SMTP_URL and MAIL_FROM`);
    } else {
      this.deps.log.warn(`login code e-mail to ${to} could not be sent via ${via} (${String(code ?? reply ?? "error")})`);
    }
    return MailerErrors.sendFailed();
  }
}

// ---------------------------------------------------------------- composition root

export interface MailerSetup {
  db: Database;
  settings: Pick<Config, "SMTP_URL" | "OUTBOX_DIR" | "DATA_DIR" | "MAIL_FROM">;
  log: MailerDeps["log"];
  /** Another provider (tests); default: SMTP when SMTP_URL is set, else the outbox folder. */
  transport?: MailTransport;
}

/** Builds the mailer once, from explicit dependencies (the service's `started()` calls it). */
export async function createMailer(setup: MailerSetup) {
  const store = new MailerStore(setup.db);
  await store.ensureIndexes();
  const transport = setup.transport ?? createTransport(setup.settings);
  const mailer = new Mailer({ transport, templates: compileSystemTemplates(), from: setup.settings.MAIL_FROM, log: setup.log });
  return {
    store,
    transport,
    sendMagicCode: (input: MagicCodeMail) => mailer.sendMagicCode(input),
    close: () => transport.close(),
  };
}

export type MailerApi = Awaited<ReturnType<typeof createMailer>>;
