/**
 * Test set-up for the profile-lists service: a real broker (no transporter) holding profile-lists with the
 * real auth and profiles services, a mailer stand-in (templateStatus, sendTemplate: what the mailer's
 * template work will answer, with the mailer's own errors) that records each mail, the embedded store in
 * memory, and a clock the test moves. Sessions come from the real profiles.initialize/connect.
 */
import type { ServiceBroker, ServiceSchema } from "moleculer";
import type { AuthToken, SessionPrincipal } from "../../../shared/contracts/auth";
import type { AuthPrincipal } from "../../../shared/contracts/common";
import type { ConnectResult } from "../../../shared/contracts/profiles";
import { crmError } from "../../../shared/errors";
import { nowSeconds, uuidv7 } from "../../../shared/ids";
import { startBroker } from "../../../test/harness/broker";
import { MailerErrors } from "../../mailer/mailer.errors";
import type { TemplateMail } from "../deps";
import { createProfileLists } from "../profile-lists.logic";
import type { ProfileListsService } from "../profile-lists.service";

export const LINK_ORIGIN = "https://shop.example";

export interface MailerStandIn {
  /** template id -> store id of the templates that exist */
  templates: Map<string, string>;
  sent: TemplateMail[];
  /** Login codes the auth service asked to mail (to -> code). */
  codes: Map<string, string>;
  /** When set, every call fails as a mailer that does not answer. */
  down: boolean;
  /** Templates that throw as they render: a send fails as the mailer's does (a 400 on vars, TEMPLATE_RENDER_FAILED). */
  broken?: Set<string>;
  /** Templates the store archived: not usable, not missing; a send fails as the mailer's does (409 TEMPLATE_ARCHIVED). */
  archived?: Set<string>;
  /** Addresses the mail server refuses for good (a 5xx to RCPT TO): a send fails as the mailer's does. */
  refused?: Set<string>;
}

export function mailerStandIn(state: MailerStandIn): ServiceSchema {
  return {
    name: "mailer",
    actions: {
      sendMagicCode(ctx: { params: { to: string; code: string } }) {
        state.codes.set(ctx.params.to.toLowerCase(), ctx.params.code);
        return { message_id: `${uuidv7()}@test` };
      },
      templateStatus(ctx: { params: { store_id: string; template_id: string } }) {
        if (state.down) throw crmError("SERVICE_UNAVAILABLE", "mailer down");
        const ours = state.templates.get(ctx.params.template_id) === ctx.params.store_id;
        const archived = ours && state.archived?.has(ctx.params.template_id) === true;
        return { usable: ours && !archived, archived };
      },
      sendTemplate(ctx: { params: TemplateMail }) {
        if (state.down) throw crmError("SERVICE_UNAVAILABLE", "mailer down");
        if (state.templates.get(ctx.params.template_id) !== ctx.params.store_id) {
          throw MailerErrors.templateNotFound();
        }
        if (state.archived?.has(ctx.params.template_id)) throw MailerErrors.templateArchived();
        if (state.broken?.has(ctx.params.template_id)) {
          throw MailerErrors.templateRenderFailed("html could not be rendered: unknown helper or misused built-in helper");
        }
        if (state.refused?.has(ctx.params.to.toLowerCase())) throw MailerErrors.recipientRefused();
        state.sent.push(structuredClone(ctx.params));
        return { message_id: `${uuidv7()}@test` };
      },
    },
  };
}

export interface ListsEnv {
  broker: ServiceBroker;
  mailer: MailerStandIn;
  service: ProfileListsService;
  clock: { now: number };
  stop(): Promise<void>;
}

export async function startLists(): Promise<ListsEnv> {
  const mailer: MailerStandIn = { templates: new Map(), sent: [], codes: new Map(), down: false };
  const broker = await startBroker({
    services: ["auth", "profiles", "profile-lists", mailerStandIn(mailer)],
    storage: "memory",
    env: {
      JWT_SECRET: "profile-lists-test-secret",
      CURSOR_SECRET: "profile-lists-test-cursor-secret",
      LINK_ORIGINS: `${LINK_ORIGIN},http://localhost:5173`,
      PUBLIC_URL: "https://crm.shop.example",
    },
  });
  const service = broker.getLocalService("profile-lists") as unknown as ProfileListsService;
  const clock = { now: nowSeconds() };
  // The same rules over the same database, on a clock the test moves.
  service.profileLists = await createProfileLists({
    db: service.db,
    bus: broker,
    logger: service.logger,
    settings: { LINK_ORIGINS: `${LINK_ORIGIN},http://localhost:5173`, PUBLIC_URL: "https://crm.shop.example", PORT: 3000 },
    now: () => clock.now,
  });
  return { broker, mailer, service, clock, stop: () => broker.stop() };
}

export const newStoreId = () => uuidv7();

/** A guest session with an e-mail (initialize + connect, as the spec's flow does) and its ctx.meta. */
export async function shopper(broker: ServiceBroker, storeId: string, email: string, extra: { ip?: string; userAgent?: string } = {}) {
  await broker.call("profiles.initialize", { store_id: storeId });
  const connected = (await broker.call("profiles.connect", { store_id: storeId, email })) as ConnectResult;
  const meta = { ...(await metaFor(broker, storeId, connected.token)), ip: extra.ip ?? "203.0.113.7", userAgent: extra.userAgent ?? "jest-browser/1.0" };
  return { profileId: connected.id, token: connected.token, meta };
}

export async function metaFor(broker: ServiceBroker, storeId: string, token: AuthToken): Promise<{ auth: AuthPrincipal }> {
  const principal = (await broker.call("auth.authenticate", { store_id: storeId, access_token: token.access_token })) as SessionPrincipal;
  return { auth: { kind: "profile", ...principal } };
}

export { errorOf } from "../../../test/harness/errors";

/** The token in a mailed confirm_url. */
export function tokenIn(mail: TemplateMail): { token: string; listId: string; url: URL } {
  const url = new URL(String(mail.vars.confirm_url));
  return { token: url.searchParams.get("token") ?? "", listId: url.searchParams.get("profile_list_id") ?? "", url };
}

/** The token in a mailed List-Unsubscribe URL. */
export function unsubscribeTokenIn(mail: TemplateMail): string {
  return new URL(mail.list_unsubscribe.url).searchParams.get("token") ?? "";
}

/** A verified session for `email` (login code + verify, as a shopper proving the address does). */
export async function verifiedShopper(env: ListsEnv, storeId: string, email: string) {
  await env.broker.call("auth.requestCode", { store_id: storeId, email });
  const code = env.mailer.codes.get(email.toLowerCase());
  const token = (await env.broker.call("profiles.verify", { store_id: storeId, email, code })) as AuthToken;
  return { profileId: token.profile_id, token, meta: { ...(await metaFor(env.broker, storeId, token)), ip: "203.0.113.8", userAgent: "jest-browser/1.0" } };
}
