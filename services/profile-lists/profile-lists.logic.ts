/**
 * The composition root of the profile-lists service: builds its rules once from explicit dependencies (its
 * database, the bus for the profiles, mailer and billing actions, its settings, a logger, a clock). The rules
 * live in lists.ts (lists), memberships.ts (subscribe, confirm, access, unsubscribe, admin members, merges)
 * and payments.ts (paid lists: checkout, what billing's payment changes do, ending a paid membership).
 */
import type { ServiceBroker } from "moleculer";
import { nowSeconds } from "../../shared/ids";
import type { Database } from "../../shared/storage/port";
import { type BillingClient, billingClient, type Caller, type Deps, type Logger, mailerClient, profilesClient, type MailerClient, type ProfilesClient } from "./deps";
import { allowedOrigins, linkSecret, MailLimiter, publicUrlOf, UnsubscribeLinks } from "./links";
import { recoverCounts } from "./counts";
import { createList, findLists, getList, markTemplateDeleted, updateList } from "./lists";
import { access, addMember, confirm, listMembers, moveMemberships, removeMember, subscribe, unsubscribe } from "./memberships";
import { applyPaymentChange, endLapsedCancellations } from "./payments";
import { ProfileListsStore } from "./profile-lists.store";
import { importProfiles } from "./imports";

export interface ProfileListsSetup {
  db: Database;
  bus: ServiceBroker;
  logger: Logger;
  settings: { PUBLIC_URL?: string; LINK_ORIGINS?: string; CORS_ORIGINS?: string; PORT: number };
  /** Unix seconds; tests pass a fake. */
  now?: () => number;
  /** Tests may hand in stand-ins for the other services. */
  profiles?: ProfilesClient;
  mailer?: MailerClient;
  billing?: BillingClient;
}

export type ProfileLists = Awaited<ReturnType<typeof createProfileLists>>;

export async function createProfileLists(setup: ProfileListsSetup) {
  const store = new ProfileListsStore(setup.db);
  await store.ensureIndexes();
  const now = setup.now ?? nowSeconds;
  const deps: Deps = {
    store,
    profiles: setup.profiles ?? profilesClient(setup.bus),
    mailer: setup.mailer ?? mailerClient(setup.bus),
    billing: setup.billing ?? billingClient(setup.bus),
    unsubscribeLinks: new UnsubscribeLinks(await linkSecret(store.secrets)),
    limiter: new MailLimiter(store.limits, now),
    linkOrigins: allowedOrigins(setup.settings),
    publicUrl: publicUrlOf(setup.settings),
    logger: setup.logger,
    now,
  };
  type Params<F extends (deps: Deps, p: never, ...rest: never[]) => unknown> = Parameters<F>[1];
  return {
    deps,
    store,
    create: (p: Params<typeof createList>) => createList(deps, p),
    get: (p: Params<typeof getList>) => getList(deps, p),
    find: (p: Params<typeof findLists>) => findLists(deps, p),
    update: (p: Params<typeof updateList>) => updateList(deps, p),
    members: (p: Params<typeof listMembers>) => listMembers(deps, p),
    addMember: (p: Params<typeof addMember>, caller: Caller) => addMember(deps, p, caller),
    removeMember: (p: Params<typeof removeMember>) => removeMember(deps, p),
    subscribe: (p: Params<typeof subscribe>, caller: Caller) => subscribe(deps, p, caller),
    confirm: (p: Params<typeof confirm>, caller: Caller) => confirm(deps, p, caller),
    access: (p: Params<typeof access>, caller: Caller) => access(deps, p, caller),
    unsubscribe: (p: Params<typeof unsubscribe>, caller: Caller) => unsubscribe(deps, p, caller),
    importProfiles: (p: Params<typeof importProfiles>, stream: NodeJS.ReadableStream | undefined, caller: Caller) => importProfiles(deps, p, stream, caller),
    moveMemberships: (p: Params<typeof moveMemberships>) => moveMemberships(deps, p),
    markTemplateDeleted: (p: Params<typeof markTemplateDeleted>) => markTemplateDeleted(deps, p),
    applyPaymentChange: (p: Params<typeof applyPaymentChange>) => applyPaymentChange(deps, p),
    /** Ends scheduled cancellations whose end_date has passed (access already ended at read time; this settles member_count). */
    endLapsedCancellations: () => endLapsedCancellations(deps),
    /** Settles member_count changes (and removals) a dead writer left; the service runs it at start and every minute. */
    recoverCounts: () => recoverCounts(deps),
  };
}
