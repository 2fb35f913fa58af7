/**
 * Outbox provider (no SMTP_URL): each message is written as an .eml file a developer can open. The
 * folder and files are private to the user running the server, since a login e-mail holds a code.
 */
import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import MailComposer from "nodemailer/lib/mail-composer";
import type { MailTransport, OutgoingMail, SendReceipt } from "./types";

export class OutboxTransport implements MailTransport {
  readonly name = "outbox";
  readonly local = true;

  constructor(readonly dir: string) {}

  get destination(): string {
    return this.dir;
  }

  async send(mail: OutgoingMail): Promise<SendReceipt> {
    const raw = await new MailComposer(mail).compile().build();
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const stamp = new Date().toISOString().replace(/[:.]/g, "-");
    const id = mail.messageId.replace(/^<|>$/g, "").replace(/[^A-Za-z0-9._-]/g, "_");
    const file = path.join(this.dir, `${stamp}-${id}.eml`);
    await writeFile(file, raw, { mode: 0o600, flag: "wx" });
    return { messageId: mail.messageId, destination: file };
  }

  async close(): Promise<void> {}
}
