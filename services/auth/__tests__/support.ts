/**
 * Test support for the auth service: a fake clock, a broker running auth + mailer on in-memory storage,
 * and readers for the login-code e-mails caught by the harness SMTP server (test/harness/smtp.ts).
 */
import { ServiceBroker, type Service } from "moleculer";
import { resetConfig } from "../../../shared/config";
import type { Database } from "../../../shared/storage/port";
import { ZodValidator } from "../../../shared/validation";
import type { CapturedMail } from "../../../test/harness/smtp";
import AuthService from "../auth.service";
import MailerService from "../../mailer/mailer.service";
import type { AuthLimits } from "../limits";

/** The login code in a caught message. */
export function codeIn(mail: CapturedMail | undefined): string {
  const match = /Your login code is:\s+(\d{6})/.exec(mail?.text ?? "");
  if (!match) throw new Error("no login code in the message");
  return match[1];
}

/** The newest of `mails` (an SMTP server's `messages` or `refused`) sent to `email`. */
export function lastMailTo(mails: CapturedMail[], email: string): CapturedMail | undefined {
  return [...mails].reverse().find((m) => m.to.includes(email.toLowerCase()));
}

export interface FakeClock {
  now: () => number;
  advance(seconds: number): void;
  set(seconds: number): void;
}

export function fakeClock(start = 1_900_000_000): FakeClock {
  let t = start;
  return { now: () => t, advance: (s) => (t += s), set: (s) => (t = s) };
}

export interface AuthHarness {
  broker: ServiceBroker;
  clock: FakeClock;
  /** The auth service's database (to check what is stored). */
  db(): Database;
}

/**
 * A broker with auth (fake clock, optional limits) and, unless `mailer: false`, the mailer sending to
 * `smtpUrl`. Env: in-memory storage, a fixed JWT secret.
 */
export async function startAuth(opts: { smtpUrl?: string; limits?: Partial<AuthLimits>; mailer?: boolean; env?: Record<string, string> } = {}): Promise<AuthHarness> {
  process.env.STORAGE = "memory";
  process.env.JWT_SECRET = "test-secret-0123456789abcdef0123456789abcdef";
  delete process.env.JWT_KEYS;
  if (opts.smtpUrl) process.env.SMTP_URL = opts.smtpUrl;
  else delete process.env.SMTP_URL;
  for (const [k, v] of Object.entries(opts.env ?? {})) process.env[k] = v;
  resetConfig();
  const clock = fakeClock();
  const broker = new ServiceBroker({ transporter: null, logger: false, validator: new ZodValidator({}) });
  broker.createService({ ...AuthService, settings: { ...AuthService.settings, now: clock.now, limits: opts.limits } });
  if (opts.mailer !== false) broker.createService(MailerService);
  await broker.start();
  for (const k of Object.keys(opts.env ?? {})) delete process.env[k];
  return {
    broker,
    clock,
    db: () => (broker.getLocalService("auth") as Service & { db: Database }).db,
  };
}

/** Every document of every auth collection, as one JSON text (to prove a secret is not stored). */
export async function dumpAuthDb(db: Database): Promise<string> {
  const names = ["sessions", "refresh_tokens", "codes", "limits", "api_keys"];
  const all = await Promise.all(names.map((n) => db.collection(n).find({}, { limit: 1000 })));
  return JSON.stringify(all);
}

/** The error a promise rejects with (fails the test when it resolves). */
export { errorOf as rejection } from "../../../test/harness/errors";
