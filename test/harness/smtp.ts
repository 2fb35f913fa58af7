/**
 * A real SMTP server for tests (the `smtp-server` package) on 127.0.0.1 and a free port. It accepts any
 * sender, recipient and login, keeps every message, and decodes enough MIME (headers with encoded
 * words, multipart, quoted-printable, base64) to read the recipients, subject, text and HTML.
 */
import type { AddressInfo } from "node:net";
import { SMTPServer } from "smtp-server";

export interface CapturedMail {
  /** Envelope sender (MAIL FROM). */
  from: string;
  /** Envelope recipients (RCPT TO), lower-cased. */
  to: string[];
  /** Envelope recipients exactly as the client sent them (case kept). */
  rcptTo: string[];
  subject: string;
  /** The text/plain part ("" if none). */
  text: string;
  /** The text/html part ("" if none). */
  html: string;
  /** Top-level headers, names lower-cased, values unfolded and decoded. */
  headers: Record<string, string>;
  /** The message as received. */
  raw: string;
  /** The login the client used, if any. */
  user?: string;
}

export interface SmtpTestServer {
  /** What to put in SMTP_URL, e.g. `smtp://127.0.0.1:40123`. */
  url: string;
  port: number;
  messages: CapturedMail[];
  /** Messages refused by `failNext` (received in full, then answered 451), oldest first. */
  refused: CapturedMail[];
  /** The first message (already received or still to come) matching `predicate`; rejects after the timeout (default 15 s). */
  waitForMessage(predicate?: (mail: CapturedMail) => boolean, timeoutMs?: number): Promise<CapturedMail>;
  /** Refuses the next `count` messages at DATA with a temporary failure (451). */
  failNext(count?: number): void;
  /** Refuses this recipient at RCPT TO (default: 550 mailbox unavailable), until `clear()`. */
  refuseRecipient(address: string, reply?: SmtpReply): void;
  /** Refuses every sender at MAIL FROM (default: 553 sender not allowed), until `clear()`. */
  refuseSenders(reply?: SmtpReply): void;
  clear(): void;
  close(): Promise<void>;
}

/** An SMTP error reply: `code` and the text after it (which may start with an enhanced status). */
export interface SmtpReply {
  code: number;
  text: string;
}

const replyError = (reply: SmtpReply) => Object.assign(new Error(reply.text), { responseCode: reply.code });

type Waiter = { predicate: (mail: CapturedMail) => boolean; resolve: (mail: CapturedMail) => void };

export async function startSmtpServer(): Promise<SmtpTestServer> {
  const messages: CapturedMail[] = [];
  const refused: CapturedMail[] = [];
  let waiters: Waiter[] = [];
  let failures = 0;
  const refusedRecipients = new Map<string, SmtpReply>();
  let senderRefusal: SmtpReply | null = null;

  const server = new SMTPServer({
    secure: false,
    authOptional: true,
    allowInsecureAuth: true,
    disabledCommands: ["STARTTLS"],
    logger: false,
    closeTimeout: 200,
    onAuth(auth, _session, callback) {
      callback(null, { user: auth.username });
    },
    onMailFrom(_address, _session, callback) {
      callback(senderRefusal ? replyError(senderRefusal) : undefined);
    },
    onRcptTo(address, _session, callback) {
      const reply = refusedRecipients.get(address.address.toLowerCase());
      callback(reply ? replyError(reply) : undefined);
    },
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on("data", (chunk: Buffer) => chunks.push(chunk));
      stream.on("end", () => {
        const raw = Buffer.concat(chunks).toString("utf8");
        const mail: CapturedMail = {
          ...parseMessage(raw),
          from: session.envelope.mailFrom ? session.envelope.mailFrom.address : "",
          to: session.envelope.rcptTo.map((r) => r.address.toLowerCase()),
          rcptTo: session.envelope.rcptTo.map((r) => r.address),
          raw,
          user: typeof session.user === "string" ? session.user : undefined,
        };
        if (failures > 0) {
          failures -= 1;
          refused.push(mail);
          const err = Object.assign(new Error("Temporary failure (test)"), { responseCode: 451 });
          return callback(err);
        }
        messages.push(mail);
        const matched = waiters.filter((w) => w.predicate(mail));
        waiters = waiters.filter((w) => !matched.includes(w));
        for (const w of matched) w.resolve(mail);
        callback();
      });
    },
  });

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const port = (server.server.address() as AddressInfo).port;

  return {
    url: `smtp://127.0.0.1:${port}`,
    port,
    messages,
    refused,
    waitForMessage(predicate = () => true, timeoutMs = 15_000) {
      const found = messages.find(predicate);
      if (found) return Promise.resolve(found);
      return new Promise((resolve, reject) => {
        const waiter: Waiter = {
          predicate,
          resolve: (mail) => {
            clearTimeout(timer);
            resolve(mail);
          },
        };
        const timer = setTimeout(() => {
          waiters = waiters.filter((w) => w !== waiter);
          reject(new Error(`No matching e-mail within ${timeoutMs} ms (${messages.length} received)`));
        }, timeoutMs);
        waiters.push(waiter);
      });
    },
    failNext(count = 1) {
      failures += count;
    },
    refuseRecipient(address, reply = { code: 550, text: "Mailbox unavailable (test)" }) {
      refusedRecipients.set(address.toLowerCase(), reply);
    },
    refuseSenders(reply = { code: 553, text: "Sender not allowed (test)" }) {
      senderRefusal = reply;
    },
    clear() {
      messages.length = 0;
      refused.length = 0;
      refusedRecipients.clear();
      senderRefusal = null;
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

// --- a small MIME reader: enough for the messages nodemailer builds -----------------------------------

interface Part {
  headers: Record<string, string>;
  body: string;
}

function splitPart(raw: string): Part {
  const normalized = raw.replace(/\r\n/g, "\n");
  const cut = normalized.indexOf("\n\n");
  const head = cut === -1 ? normalized : normalized.slice(0, cut);
  const body = cut === -1 ? "" : normalized.slice(cut + 2);
  const headers: Record<string, string> = {};
  for (const line of head.replace(/\n[ \t]+/g, " ").split("\n")) {
    const colon = line.indexOf(":");
    if (colon <= 0) continue;
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = decodeWords(line.slice(colon + 1).trim());
    headers[name] = headers[name] ? `${headers[name]}, ${value}` : value;
  }
  return { headers, body };
}

/** RFC 2047 encoded words: `=?UTF-8?Q?...?=` and `=?UTF-8?B?...?=`. */
export function decodeWords(value: string): string {
  return value.replace(/(\?=)\s+(=\?)/g, "$1$2").replace(/=\?([^?]+)\?([QqBb])\?([^?]*)\?=/g, (_m, charset: string, encoding: string, text: string) => {
    const bytes = encoding.toUpperCase() === "B" ? Buffer.from(text, "base64") : qpBytes(text.replace(/_/g, " "));
    return bytes.toString(charsetOf(charset));
  });
}

function charsetOf(charset: string | undefined): BufferEncoding {
  const c = (charset ?? "utf-8").toLowerCase();
  return c === "iso-8859-1" || c === "latin1" || c === "us-ascii" ? "latin1" : "utf8";
}

function qpBytes(text: string): Buffer {
  const out: number[] = [];
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (ch === "=" && /^[0-9A-Fa-f]{2}$/.test(text.slice(i + 1, i + 3))) {
      out.push(parseInt(text.slice(i + 1, i + 3), 16));
      i += 2;
    } else {
      out.push(...Buffer.from(ch, "utf8"));
    }
  }
  return Buffer.from(out);
}

/** Quoted-printable body: soft line breaks removed, `=XX` decoded. */
export function decodeQuotedPrintable(text: string, charset?: string): string {
  return qpBytes(text.replace(/=\r?\n/g, "")).toString(charsetOf(charset));
}

function param(header: string | undefined, name: string): string | undefined {
  const match = new RegExp(`${name}\\s*=\\s*(?:"([^"]*)"|([^;\\s]+))`, "i").exec(header ?? "");
  return match ? (match[1] ?? match[2]) : undefined;
}

function decodeBody(part: Part): string {
  const encoding = (part.headers["content-transfer-encoding"] ?? "7bit").toLowerCase();
  const charset = param(part.headers["content-type"], "charset");
  if (encoding === "quoted-printable") return decodeQuotedPrintable(part.body, charset);
  if (encoding === "base64") return Buffer.from(part.body.replace(/\s+/g, ""), "base64").toString(charsetOf(charset));
  return part.body;
}

function collect(part: Part, found: { text: string; html: string }): void {
  const type = (part.headers["content-type"] ?? "text/plain").toLowerCase();
  if (type.startsWith("multipart/")) {
    const boundary = param(part.headers["content-type"], "boundary");
    if (!boundary) return;
    const sections = part.body.split(`--${boundary}`);
    // sections[0] is the preamble; the last one starts with "--" (the closing delimiter).
    for (const section of sections.slice(1)) {
      if (section.startsWith("--")) break;
      collect(splitPart(section.replace(/^\n/, "")), found);
    }
    return;
  }
  if ((part.headers["content-disposition"] ?? "").toLowerCase().startsWith("attachment")) return;
  if (type.startsWith("text/plain") && !found.text) found.text = decodeBody(part).replace(/\n$/, "");
  else if (type.startsWith("text/html") && !found.html) found.html = decodeBody(part).replace(/\n$/, "");
}

/** Headers, subject, text and HTML of a raw RFC 5322 message. */
export function parseMessage(raw: string): Pick<CapturedMail, "headers" | "subject" | "text" | "html"> {
  const top = splitPart(raw);
  const found = { text: "", html: "" };
  collect(top, found);
  return { headers: top.headers, subject: top.headers.subject ?? "", ...found };
}
