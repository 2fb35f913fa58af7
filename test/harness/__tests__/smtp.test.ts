/** startSmtpServer: a real SMTP server that nodemailer can deliver to, and a reader for what arrived. */
import nodemailer from "nodemailer";
import { decodeQuotedPrintable, parseMessage, startSmtpServer, type SmtpTestServer } from "../smtp";

describe("startSmtpServer", () => {
  let smtp: SmtpTestServer;

  beforeAll(async () => {
    smtp = await startSmtpServer();
  });
  afterAll(async () => {
    await smtp.close();
  });

  it("receives a multipart message from nodemailer and decodes recipients, subject, text and html", async () => {
    const transport = nodemailer.createTransport(smtp.url);
    const waiting = smtp.waitForMessage((m) => m.to.includes("ada@example.com"));
    await transport.sendMail({
      from: "Store CRM <no-reply@shop.test>",
      to: "Ada <Ada@Example.com>",
      subject: "Votre code: 123456 — bienvenue ✓",
      text: `Your code is 123456.\n${"long line ".repeat(20)}é`,
      html: "<p>Your code is <b>123456</b> — ça marche</p>",
    });
    const mail = await waiting;
    expect(mail.from).toBe("no-reply@shop.test");
    expect(mail.to).toEqual(["ada@example.com"]);
    expect(mail.subject).toBe("Votre code: 123456 — bienvenue ✓");
    expect(mail.text).toBe(`Your code is 123456.\n${"long line ".repeat(20)}é`);
    expect(mail.html).toBe("<p>Your code is <b>123456</b> — ça marche</p>");
    expect(mail.headers["message-id"]).toMatch(/^<.+>$/);
    transport.close();
  });

  it("accepts a login from SMTP_URL and records the user", async () => {
    const transport = nodemailer.createTransport(smtp.url.replace("smtp://", "smtp://mailer:secret@"));
    await transport.sendMail({ from: "a@shop.test", to: "b@shop.test", subject: "hi", text: "plain" });
    const mail = await smtp.waitForMessage((m) => m.to.includes("b@shop.test"));
    expect(mail.user).toBe("mailer");
    expect(mail.text).toBe("plain");
    expect(mail.html).toBe("");
    transport.close();
  });

  it("refuses the next message on failNext() with a temporary error", async () => {
    const transport = nodemailer.createTransport(smtp.url);
    smtp.failNext();
    await expect(transport.sendMail({ from: "a@shop.test", to: "c@shop.test", text: "x" })).rejects.toMatchObject({
      responseCode: 451,
    });
    await transport.sendMail({ from: "a@shop.test", to: "c@shop.test", text: "second" });
    expect((await smtp.waitForMessage((m) => m.to.includes("c@shop.test"))).text).toBe("second");
    transport.close();
  });

  it("rejects waitForMessage after its timeout", async () => {
    await expect(smtp.waitForMessage((m) => m.subject === "never", 100)).rejects.toThrow(/No matching e-mail within 100 ms/);
  });

  it("decodes base64 parts and quoted-printable soft line breaks", () => {
    const raw = [
      "Subject: =?UTF-8?B?SGVsbG8g8J+RiyB3b3JsZA==?=",
      'Content-Type: multipart/mixed; boundary="b1"',
      "",
      "--b1",
      "Content-Type: text/plain; charset=utf-8",
      "Content-Transfer-Encoding: base64",
      "",
      Buffer.from("héllo base64").toString("base64"),
      "--b1",
      "Content-Type: text/plain; name=a.txt",
      "Content-Disposition: attachment; filename=a.txt",
      "",
      "attached",
      "--b1--",
      "",
    ].join("\r\n");
    expect(parseMessage(raw)).toMatchObject({ subject: "Hello 👋 world", text: "héllo base64", html: "" });
    expect(decodeQuotedPrintable("a=3D1 and a very=\r\n long line =C3=A9")).toBe("a=1 and a very long line é");
  });
});
