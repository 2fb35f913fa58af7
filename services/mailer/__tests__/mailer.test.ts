/** mailer.sendMagicCode: SMTP through a real SMTP server, the outbox folder, failures as 503. */
import { mkdtemp, readFile, readdir, rm, stat } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { ServiceBroker, type Service } from "moleculer";
import { resetConfig } from "../../../shared/config";
import { uuidv7 } from "../../../shared/ids";
import { ZodValidator } from "../../../shared/validation";
import { startSmtpServer, type SmtpTestServer } from "../../../test/harness/smtp";
import MailerService from "../mailer.service";
import { compileSystemTemplates } from "../templates";

async function startMailer(env: Record<string, string | undefined>) {
  process.env.STORAGE = "memory";
  for (const [k, v] of Object.entries(env)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
  resetConfig();
  const broker = new ServiceBroker({ transporter: null, logger: false, validator: new ZodValidator({}) });
  broker.createService(MailerService);
  await broker.start();
  return broker;
}

/** A real SMTP server and a mailer sending to it, both stopped after `run`. */
async function withSmtpMailer(env: Record<string, string | undefined>, run: (sink: SmtpTestServer, broker: ServiceBroker) => Promise<void>) {
  const sink = await startSmtpServer();
  const broker = await startMailer({ SMTP_URL: sink.url, ...env });
  try {
    await run(sink, broker);
  } finally {
    await broker.stop();
    await sink.close();
  }
}

const message = (code = "042917") => ({ store_id: uuidv7(), to: "Ada@Example.com", code, expires_in_minutes: 10 });

describe("mailer.sendMagicCode over SMTP", () => {
  it("sends the login code e-mail (text + HTML) from MAIL_FROM and answers its message id", async () => {
    await withSmtpMailer({ MAIL_FROM: "Shop <login@shop.example>", OUTBOX_DIR: undefined }, async (sink, broker) => {
      const result = await broker.call<{ message_id: string }, unknown>("mailer.sendMagicCode", message());
      expect(result).toEqual({ message_id: expect.stringMatching(/^<[0-9a-f-]{36}@shop\.example>$/) });
      expect(sink.messages).toHaveLength(1);
      const [mail] = sink.messages;
      expect(mail.from).toBe("login@shop.example");
      // nodemailer lower-cases the domain.
      expect(mail.rcptTo).toEqual(["Ada@example.com"]);
      expect(mail.raw).toContain(`Message-ID: ${result.message_id}`);
      expect(mail.raw).toMatch(/^Subject: Your login code\r?$/m);
      expect(mail.raw).toMatch(/Content-Type: text\/plain/);
      expect(mail.raw).toMatch(/Content-Type: text\/html/);
      expect(mail.raw).toMatch(/Your login code is:\s+042917/);
      expect(mail.raw).toMatch(/expires in 10 minutes/);
    });
  });

  it("answers 503 SERVICE_UNAVAILABLE when the SMTP server refuses the message", async () => {
    await withSmtpMailer({}, async (sink, broker) => {
      sink.failNext(1);
      await expect(broker.call("mailer.sendMagicCode", message())).rejects.toMatchObject({ type: "SERVICE_UNAVAILABLE", code: 503 });
      expect(sink.refused).toHaveLength(1);
      expect(sink.messages).toHaveLength(0);
    });
  });

  it("answers a VALIDATION_ERROR on `to`, marked recipient_refused, when the SMTP server refuses the address for good (550)", async () => {
    await withSmtpMailer({}, async (sink, broker) => {
      sink.refuseRecipient(message().to);
      await expect(broker.call("mailer.sendMagicCode", message())).rejects.toMatchObject({
        type: "VALIDATION_ERROR",
        code: 400,
        data: { reason: "recipient_refused", validationErrors: [{ field: "to", error: expect.stringMatching(/refused this address/) }] },
      });
      expect(sink.messages).toHaveLength(0);
    });
  });

  it("answers 503, not an address error, when the server refuses for set-up reasons (relay policy at RCPT, the sender at MAIL FROM, a 4xx)", async () => {
    await withSmtpMailer({}, async (sink, broker) => {
      const refusals: Array<() => void> = [
        () => sink.refuseRecipient(message().to, { code: 554, text: "5.7.1 Relay access denied (test)" }),
        () => sink.refuseRecipient(message().to, { code: 550, text: "5.7.1 Relaying denied (test)" }),
        () => sink.refuseRecipient(message().to, { code: 450, text: "4.2.0 Mailbox busy (test)" }),
        () => sink.refuseSenders(),
      ];
      for (const refuse of refusals) {
        sink.clear();
        refuse();
        await expect(broker.call("mailer.sendMagicCode", message())).rejects.toMatchObject({ type: "SERVICE_UNAVAILABLE", code: 503 });
      }
      expect(sink.messages).toHaveLength(0);
    });
  });

  it("answers 503 when the SMTP server cannot be reached", async () => {
    const sink = await startSmtpServer();
    await sink.close();
    const broker = await startMailer({ SMTP_URL: sink.url });
    try {
      await expect(broker.call("mailer.sendMagicCode", message())).rejects.toMatchObject({ type: "SERVICE_UNAVAILABLE", code: 503 });
    } finally {
      await broker.stop();
    }
  });

  it("rejects values of the wrong type as a validation error", async () => {
    const broker = await startMailer({ SMTP_URL: "smtp://127.0.0.1:9" });
    try {
      for (const bad of [
        { ...message(), to: { $ne: null } },
        { ...message(), code: "12345" },
        { ...message(), expires_in_minutes: "10" },
      ]) {
        await expect(broker.call("mailer.sendMagicCode", bad)).rejects.toMatchObject({ type: "VALIDATION_ERROR" });
      }
    } finally {
      await broker.stop();
    }
  });
});

describe("mailer.sendMagicCode into the outbox (no SMTP_URL)", () => {
  it("writes an .eml file and logs recipient, subject and path, never the code", async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), "crm-outbox-"));
    const broker = await startMailer({ SMTP_URL: undefined, OUTBOX_DIR: dir, MAIL_FROM: "Store CRM <no-reply@localhost>" });
    const lines: string[] = [];
    const service = broker.getLocalService("mailer") as Service;
    const spy = jest.spyOn(service.logger, "info").mockImplementation((...args: unknown[]) => void lines.push(args.map(String).join(" ")));
    try {
      const result = await broker.call<{ message_id: string }, unknown>("mailer.sendMagicCode", message("555123"));
      const files = await readdir(dir);
      expect(files).toHaveLength(1);
      expect(files[0]).toMatch(/\.eml$/);
      const file = path.join(dir, files[0]);
      const raw = await readFile(file, "utf8");
      expect(raw).toContain(`Message-ID: ${result.message_id}`);
      expect(raw).toMatch(/^To: Ada@example\.com\r?$/m);
      expect(raw).toMatch(/Your login code is:\s+555123/);
      expect((await stat(file)).mode & 0o077).toBe(0);
      expect(lines).toHaveLength(1);
      expect(lines[0]).toContain("Ada@Example.com");
      expect(lines[0]).toContain("Your login code");
      expect(lines[0]).toContain(file);
      expect(lines[0]).not.toContain("555123");
    } finally {
      spy.mockRestore();
      await broker.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("login code templates", () => {
  it("escape HTML in the HTML part and refuse a missing variable", () => {
    const templates = compileSystemTemplates();
    const out = templates.magicCode({ code: "<b>", expires_in_minutes: 10 });
    expect(out.html).toContain("&lt;b&gt;");
    expect(out.text).toContain("<b>");
    expect(() => templates.magicCode({ code: "123456" } as never)).toThrow();
  });
});
