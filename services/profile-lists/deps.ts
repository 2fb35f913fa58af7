/**
 * What the profile-lists rules depend on, handed in explicitly: this service's store, the profiles, mailer
 * and billing services (called through their actions, never imported), the link signer and limits, a logger
 * and a clock.
 */
import type { z } from "zod";
import type { BillingActions, CheckoutResult, SubscriptionState } from "../../shared/contracts/billing";
import type { Profile, TaxonomyEntryInput, UpsertRowResult } from "../../shared/contracts/profiles";
import type { MailLimiter, UnsubscribeLinks } from "./links";
import type { ProfileListsStore } from "./profile-lists.store";

/** Anything that can call an action: a Context or the broker. */
export interface ActionCaller {
  call(action: string, params?: unknown): Promise<unknown>;
}

export interface ProfileRef {
  id: string;
  email: string | null;
  verified: boolean;
}

export interface ProfilesClient {
  /** `profiles.lookup` -> { id, email, verified } | 404 */
  lookup(p: { store_id: string; id: string }): Promise<ProfileRef>;
  /** `profiles.getMany` -> the store's Profiles among `ids` */
  getMany(p: { store_id: string; ids: string[] }): Promise<Profile[]>;
  /** `profiles.upsertMany` -> one result per row, in order (imports) */
  upsertMany(p: { store_id: string; rows: Array<{ email: string; taxonomies: TaxonomyEntryInput[] }> }): Promise<{ results: UpsertRowResult[] }>;
}

export interface TemplateMail {
  store_id: string;
  template_id: string;
  to: string;
  vars: Record<string, unknown>;
  list_unsubscribe: { url: string };
}

export interface MailerClient {
  /** `mailer.templateStatus` -> { usable, archived } */
  templateStatus(p: { store_id: string; template_id: string }): Promise<{ usable: boolean; archived: boolean }>;
  /** `mailer.sendTemplate` -> { message_id }; 404 with data.reason TEMPLATE_NOT_FOUND when the template is gone. */
  sendTemplate(p: TemplateMail): Promise<{ message_id: string }>;
}

export interface BillingClient {
  /** `billing.createCheckout` -> a Checkout Session (the same one for the same request); 503 when billing is not configured. */
  createCheckout(p: z.input<typeof BillingActions.createCheckout>): Promise<CheckoutResult>;
  /** `billing.cancelSubscription` -> the subscription's state once cancelled (now, or at its period's end). */
  cancelSubscription(p: z.input<typeof BillingActions.cancelSubscription>): Promise<SubscriptionState>;
  /** `billing.expireCheckout` -> { expired } (false: it was not open any more). */
  expireCheckout(p: z.input<typeof BillingActions.expireCheckout>): Promise<{ expired: boolean }>;
}

export function profilesClient(caller: ActionCaller): ProfilesClient {
  return {
    lookup: (p) => caller.call("profiles.lookup", p) as Promise<ProfileRef>,
    getMany: (p) => caller.call("profiles.getMany", p) as Promise<Profile[]>,
    upsertMany: (p) => caller.call("profiles.upsertMany", p) as Promise<{ results: UpsertRowResult[] }>,
  };
}

export function mailerClient(caller: ActionCaller): MailerClient {
  return {
    templateStatus: (p) => caller.call("mailer.templateStatus", p) as Promise<{ usable: boolean; archived: boolean }>,
    sendTemplate: (p) => caller.call("mailer.sendTemplate", p) as Promise<{ message_id: string }>,
  };
}

export function billingClient(caller: ActionCaller): BillingClient {
  return {
    createCheckout: (p) => caller.call("billing.createCheckout", p) as Promise<CheckoutResult>,
    cancelSubscription: (p) => caller.call("billing.cancelSubscription", p) as Promise<SubscriptionState>,
    expireCheckout: (p) => caller.call("billing.expireCheckout", p) as Promise<{ expired: boolean }>,
  };
}

export interface Logger {
  info(...args: unknown[]): void;
  warn(...args: unknown[]): void;
  error(...args: unknown[]): void;
}

export interface Deps {
  store: ProfileListsStore;
  profiles: ProfilesClient;
  mailer: MailerClient;
  billing: BillingClient;
  unsubscribeLinks: UnsubscribeLinks;
  limiter: MailLimiter;
  /** Origins `confirm_url`, `success_url` and `cancel_url` may point at. */
  linkOrigins: Set<string>;
  /** Where the public reaches the gateway (unsubscribe links). */
  publicUrl: string;
  logger: Logger;
  /** Unix seconds. */
  now: () => number;
}

export interface Page<T> {
  items: T[];
  cursor: string | null;
}

/** Who asked, from ctx.meta (the gateway sets them). */
export interface Caller {
  auth?: import("../../shared/contracts/common").AuthPrincipal;
  ip?: string;
  userAgent?: string;
}
