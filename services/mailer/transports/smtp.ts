/** SMTP provider: a pooled nodemailer transport, with timeouts well inside the broker's request timeout. */
import nodemailer, { type Transporter } from "nodemailer";
import type { MailTransport, OutgoingMail, SendReceipt } from "./types";

export class SmtpTransport implements MailTransport {
  readonly name = "smtp";
  readonly local = false;
  private readonly transporter: Transporter;
  private readonly host: string;

  constructor(url: string) {
    this.transporter = nodemailer.createTransport({
      url,
      pool: true,
      maxConnections: 5,
      connectionTimeout: 5_000,
      greetingTimeout: 5_000,
      socketTimeout: 7_000,
    });
    this.host = safeHost(url);
  }

  get destination(): string {
    return `smtp://${this.host}`;
  }

  async send(mail: OutgoingMail): Promise<SendReceipt> {
    await this.transporter.sendMail(mail);
    return { messageId: mail.messageId, destination: this.destination };
  }

  async close(): Promise<void> {
    this.transporter.close();
  }
}

/** host:port of an SMTP URL, without credentials (for logs). */
function safeHost(url: string): string {
  try {
    const u = new URL(url);
    return u.port ? `${u.hostname}:${u.port}` : u.hostname;
  } catch {
    return "smtp";
  }
}
