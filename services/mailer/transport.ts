/**
 * The one small interface the mailer sends through, and the choice of provider from the
 * configuration: SMTP (pooled nodemailer) when SMTP_URL is set, else the outbox folder. A new provider
 * is one file under transports/.
 */
import path from "node:path";
import type { Config } from "../../shared/config";
import { OutboxTransport } from "./transports/outbox";
import { SmtpTransport } from "./transports/smtp";

export type { MailTransport, OutgoingMail, SendReceipt } from "./transports/types";
import type { MailTransport } from "./transports/types";

export function outboxDir(cfg: Pick<Config, "OUTBOX_DIR" | "DATA_DIR">): string {
  return path.resolve(cfg.OUTBOX_DIR ?? path.join(cfg.DATA_DIR, "outbox"));
}

export function createTransport(cfg: Pick<Config, "SMTP_URL" | "OUTBOX_DIR" | "DATA_DIR">): MailTransport {
  if (cfg.SMTP_URL) return new SmtpTransport(cfg.SMTP_URL);
  return new OutboxTransport(outboxDir(cfg));
}
