/**
 * The one small interface the mailer sends through, and the choice of provider from the
 * configuration: SMTP (pooled nodemailer) when SMTP_URL is set, else the outbox folder. A new provider
 * is one file under transports/.
 */
import path from "node:path";
import type { Config } from "../../shared/config";
import { OutboxTransport } from "./transports/outbox";
import { SmtpTransport } from "./transports/smtp";

export interface OutgoingMail {
  from: string;
  to: string;
  subject: string;
  text: string;
  html: string;
  /** RFC 5322 Message-ID, angle brackets included. */
  messageId: string;
  headers?: Record<string, string>;
}

export interface SendReceipt {
  messageId: string;
  /** Where the message went, safe to log (never the content). */
  destination: string;
}

export interface MailTransport {
  readonly name: string;
  /** True when mail stays on this machine (the outbox): each send is logged at info for the developer. */
  readonly local: boolean;
  /** Where mail goes, safe to log (an outbox folder, or the SMTP host without credentials). */
  readonly destination: string;
  send(mail: OutgoingMail): Promise<SendReceipt>;
  close(): Promise<void>;
}

export function outboxDir(cfg: Pick<Config, "OUTBOX_DIR" | "DATA_DIR">): string {
  return path.resolve(cfg.OUTBOX_DIR ?? path.join(cfg.DATA_DIR, "outbox"));
}

export function createTransport(cfg: Pick<Config, "SMTP_URL" | "OUTBOX_DIR" | "DATA_DIR">): MailTransport {
  if (cfg.SMTP_URL) return new SmtpTransport(cfg.SMTP_URL);
  return new OutboxTransport(outboxDir(cfg));
}
