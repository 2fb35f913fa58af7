/**
 * Test set-up for the profiles service: a real broker (no transporter) holding profiles + the real auth
 * and mailer services, login-code mail caught by a real SMTP server, the embedded store in memory (or in
 * a temp folder for restart tests). Helpers turn a token into the gateway's `ctx.meta.auth`.
 */
import type { ServiceBroker, ServiceSchema } from "moleculer";
import type { AuthToken, SessionPrincipal } from "../../../shared/contracts/auth";
import type { AuthPrincipal } from "../../../shared/contracts/common";
import { uuidv7 } from "../../../shared/ids";
import { startBroker } from "../../../test/harness/broker";
import { startSmtpServer, type SmtpTestServer } from "../../../test/harness/smtp";
import { waitFor } from "../../../test/harness/wait";
import type { ProfilesService } from "../profiles.service";

export interface ProfilesEnv {
  broker: ServiceBroker;
  smtp: SmtpTestServer;
  /** The running profiles service instance (its store, recovery). */
  service: ProfilesService;
  stop(): Promise<void>;
}

export interface StartOptions {
  storage?: "memory" | { dataDir: string };
  /** Extra services on the same broker (e.g. an event probe). */
  extra?: ServiceSchema[];
  smtp?: SmtpTestServer;
}

export async function startProfiles(options: StartOptions = {}): Promise<ProfilesEnv> {
  const smtp = options.smtp ?? (await startSmtpServer());
  const broker = await startBroker({
    services: ["auth", "mailer", "profiles", ...(options.extra ?? [])],
    storage: options.storage ?? "memory",
    env: { SMTP_URL: smtp.url, JWT_SECRET: "profiles-test-secret", CURSOR_SECRET: "profiles-test-cursor-secret" },
  });
  const service = broker.getLocalService("profiles") as unknown as ProfilesService;
  return {
    broker,
    smtp,
    service,
    async stop() {
      await broker.stop();
      if (!options.smtp) await smtp.close();
    },
  };
}

export const newStoreId = () => uuidv7();

/** What the gateway puts in `ctx.meta.auth` for a request carrying this access token. */
export async function metaFor(broker: ServiceBroker, storeId: string, token: AuthToken): Promise<{ auth: AuthPrincipal }> {
  const principal = (await broker.call("auth.authenticate", { store_id: storeId, access_token: token.access_token })) as SessionPrincipal;
  return { auth: { kind: "profile", ...principal } };
}

/** Asks for a login code for `email` and reads it from the e-mail the SMTP server caught. */
export async function loginCode(env: ProfilesEnv, storeId: string, email: string, meta?: object): Promise<string> {
  const since = env.smtp.messages.length;
  await env.broker.call("auth.requestCode", { store_id: storeId, email }, meta ? { meta } : undefined);
  const mail = await env.smtp.waitForMessage((m) => env.smtp.messages.indexOf(m) >= since && m.to.includes(email.toLowerCase()), 5000);
  const code = /\b(\d{6})\b/.exec(mail.text)?.[1];
  if (!code) throw new Error(`no code in the mail to ${email}`);
  return code;
}

export { errorOf } from "../../../test/harness/errors";

/** Resolves with `check()`'s value once it is truthy; fails after `timeoutMs` (the harness's waitFor). */
export function eventually<T>(check: () => Promise<T> | T, timeoutMs = 5000): Promise<NonNullable<T>> {
  return waitFor(check, "the condition", { timeoutMs }) as Promise<NonNullable<T>>;
}
