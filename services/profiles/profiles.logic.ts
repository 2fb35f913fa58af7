/**
 * The profile rules: admin CRUD and search, and the public session flows (initialize, connect, code,
 * verify, refresh, me) with the unverified-session guard: an unverified session never sees private data.
 * Plain functions over explicit dependencies; merges live in profiles.merge.ts, order links in profiles.orders.ts.
 */
import type { ServiceBroker } from "moleculer";
import type { AuthToken, DescribedProfileSession, ProfileAuthInfo } from "../../shared/contracts/auth";
import { normalizeEmail, type AuthPrincipal } from "../../shared/contracts/common";
import type { ConnectResult, OrderLink, Profile, ProfileStatus, PromoUsage, TaxonomyEntryInput } from "../../shared/contracts/profiles";
import { decodeCursor, encodeCursor } from "../../shared/cursor";
import { publishEvent } from "../../shared/events/durable";
import { nowSeconds, uuidv7 } from "../../shared/ids";
import { isDuplicateKey, type Database } from "../../shared/storage/port";
import { profilePrincipal } from "../../shared/principal";
import { ProfileErrors } from "./profiles.errors";
import { upsertMany } from "./profiles.import";
import { toOrderLink, toProfile } from "./profiles.mapper";
import { mergeProfiles, recoverMerges } from "./profiles.merge";
import { linkOrder, type OrderCreated } from "./profiles.orders";
import { authClient, type Logger, type ProfilesDeps } from "./profiles.ports";
import { emailFields, profileSort, searchProfiles, type ProfileSearch } from "./profiles.search";
import { PROFILE_EMAIL_INDEX, ProfilesStore, type ProfileDoc } from "./profiles.store";
import { normalizeTaxonomies, searchValuesOf } from "./profiles.taxonomies";

export interface Page<T> {
  items: T[];
  cursor: string | null;
}

type ProfileSession = Extract<AuthPrincipal, { kind: "profile" }>;

// ---------------------------------------------------------------- lookups

export function newProfileDoc(storeId: string, email: string | null, now: number, taxonomies: TaxonomyEntryInput[] = []): ProfileDoc {
  const entries = normalizeTaxonomies(taxonomies);
  return {
    _id: uuidv7(),
    store_id: storeId,
    ...emailFields(email),
    verified: false,
    status: "active",
    taxonomies: entries,
    promo_usage: [],
    search_values: searchValuesOf(entries),
    created_at: now,
    updated_at: now,
  };
}

export function findProfile(deps: ProfilesDeps, storeId: string, id: string): Promise<ProfileDoc | null> {
  return deps.store.profiles.findOne({ _id: id, store_id: storeId });
}

export async function requireProfile(deps: ProfilesDeps, storeId: string, id: string): Promise<ProfileDoc> {
  const doc = await findProfile(deps, storeId, id);
  if (!doc) throw ProfileErrors.profileNotFound();
  return doc;
}

/** The profile that has (or, mid-merge, is about to have) this e-mail. */
export async function findByEmail(deps: ProfilesDeps, storeId: string, email: string): Promise<ProfileDoc | null> {
  const lower = normalizeEmail(email);
  const owner = await deps.store.profiles.findOne({ store_id: storeId, email_lower: lower });
  return owner ?? mergeTargetTaking(deps, storeId, lower);
}

/** How long a lookup waits for a merge to hand its source's e-mail to the target (its steps take ms). */
const MERGE_EMAIL_WAIT_MS = 1_000;

/**
 * Between a merge releasing the source's e-mail and the target taking it (the unique index allows one
 * holder), no profile has the address. A lookup in that gap answers the target, so nothing creates a
 * second profile for the address or hands it to a guest and leaves the merged customer without it.
 */
async function mergeTargetTaking(deps: ProfilesDeps, storeId: string, lower: string): Promise<ProfileDoc | null> {
  const merge = await deps.store.merges.findOne({ state: "running", store_id: storeId, "plan.email_lower": lower });
  if (!merge) return null;
  for (let waited = 0; waited < MERGE_EMAIL_WAIT_MS; waited += 25) {
    await new Promise((resolve) => setTimeout(resolve, 25));
    const owner = await deps.store.profiles.findOne({ store_id: storeId, email_lower: lower });
    if (owner) return owner;
  }
  return findProfile(deps, storeId, merge.target_id); // a stalled merge: recovery gives it the e-mail
}

/** The profile with this e-mail, created (unverified, no taxonomies unless given) when there is none. Race-safe. */
export async function findOrCreateByEmail(
  deps: ProfilesDeps,
  storeId: string,
  email: string,
  taxonomies?: TaxonomyEntryInput[],
): Promise<{ doc: ProfileDoc; created: boolean }> {
  const existing = await findByEmail(deps, storeId, email);
  if (existing) return { doc: existing, created: false };
  return insertForEmail(deps, storeId, email, taxonomies);
}

/** Inserts a profile for an e-mail no profile had; a concurrent insert that won answers its profile. */
async function insertForEmail(deps: ProfilesDeps, storeId: string, email: string, taxonomies?: TaxonomyEntryInput[]): Promise<{ doc: ProfileDoc; created: boolean }> {
  const doc = newProfileDoc(storeId, email, deps.now(), taxonomies);
  try {
    await deps.store.profiles.insertOne(doc);
    return { doc, created: true };
  } catch (err) {
    if (!isDuplicateKey(err)) throw err;
    const winner = await findByEmail(deps, storeId, email);
    if (!winner) throw err;
    return { doc: winner, created: false };
  }
}

/** A profile's wire object, with its sessions and codes from one auth call (none when redacted). */
export async function profileView(deps: ProfilesDeps, doc: ProfileDoc, { redacted = false } = {}): Promise<Profile> {
  if (redacted) return toProfile(doc, { redacted: true });
  const [view] = await profileViews(deps, doc.store_id, [doc]);
  return view;
}

/** Profile wire objects of one store's page, with their sessions and codes fetched in one auth call. */
async function profileViews(deps: ProfilesDeps, storeId: string, docs: ProfileDoc[]): Promise<Profile[]> {
  if (docs.length === 0) return [];
  const info = await deps.auth.describeProfiles({
    store_id: storeId,
    profiles: docs.map((doc) => ({ profile_id: doc._id, email: doc.email })),
  });
  return docs.map((doc) => toProfile(doc, { sessions: info[doc._id]?.sessions ?? [], codes: info[doc._id]?.codes ?? [] }));
}

/** The caller's profile session for this store; none for anonymous or admin callers; 401 for another store's. */
function sessionOf(principal: AuthPrincipal | undefined, storeId: string): ProfileSession | undefined {
  if (principal?.kind !== "profile") return undefined;
  if (principal.store_id !== storeId) throw ProfileErrors.notAuthenticated();
  return principal;
}

// ---------------------------------------------------------------- admin

export async function createProfile(deps: ProfilesDeps, p: { store_id: string; email: string; taxonomies?: TaxonomyEntryInput[] }): Promise<Profile> {
  const existing = await findByEmail(deps, p.store_id, p.email);
  if (existing) return profileView(deps, existing);
  // Asked before the insert, so an auth outage answers 503 with nothing written. A new profile has no
  // sessions yet, but codes requested for its e-mail before it existed are listed.
  const codes = await deps.auth.listCodes({ store_id: p.store_id, email: p.email });
  const { doc, created } = await insertForEmail(deps, p.store_id, p.email, p.taxonomies);
  return created ? toProfile(doc, { sessions: [], codes }) : profileView(deps, doc);
}

export async function getProfile(deps: ProfilesDeps, p: { store_id: string; id: string }): Promise<Profile> {
  return profileView(deps, await requireProfile(deps, p.store_id, p.id));
}

export async function findProfiles(deps: ProfilesDeps, p: ProfileSearch & { store_id: string; limit: number; cursor?: string }): Promise<Page<Profile>> {
  const search: ProfileSearch = {
    query: p.query,
    taxonomy_query: p.taxonomy_query,
    status: p.status,
    sort_field: p.sort_field,
    sort_direction: p.sort_direction,
  };
  // A cursor is only valid for the same store, filters and sort.
  const bound = { scope: "profiles.find", store_id: p.store_id, ...search, query: search.query?.trim() || undefined };
  const after = p.cursor ? decodeCursor(p.cursor, bound) : undefined;
  const sort = profileSort(search);
  const page = await searchProfiles(deps.store.profiles, { storeId: p.store_id, search, limit: p.limit, after });
  const items = await profileViews(deps, p.store_id, page.items);
  const last = page.items[page.items.length - 1];
  const cursor = page.hasMore && last ? encodeCursor({ value: last[sort.field], id: last._id }, bound) : null;
  return { items, cursor };
}

export async function updateProfile(
  deps: ProfilesDeps,
  p: { store_id: string; id: string; email?: string; taxonomies?: TaxonomyEntryInput[]; status?: ProfileStatus },
): Promise<Profile> {
  const current = await requireProfile(deps, p.store_id, p.id);
  if (current.merge_lock) throw ProfileErrors.mergeInProgress();
  const set: Partial<ProfileDoc> = { updated_at: deps.now() };
  const emailChanges = p.email !== undefined && normalizeEmail(p.email) !== current.email_lower;
  if (p.email !== undefined) {
    Object.assign(set, emailFields(p.email));
    if (emailChanges) set.verified = false; // nobody has proved control of a new address
  }
  if (emailChanges && p.email !== undefined) {
    const owner = await findByEmail(deps, p.store_id, p.email);
    if (owner && owner._id !== p.id) throw ProfileErrors.emailTaken();
    // Sessions proved (or were opened for) the old address. Logged out before the change, so an auth
    // outage fails the update instead of leaving them on the moved profile; and again after it (below).
    await deps.auth.revokeProfileSessions({ store_id: p.store_id, profile_id: p.id });
  }
  if (p.taxonomies !== undefined) {
    set.taxonomies = normalizeTaxonomies(p.taxonomies);
    set.search_values = searchValuesOf(set.taxonomies);
  }
  if (p.status !== undefined) set.status = p.status;
  let updated: ProfileDoc | null;
  try {
    updated = await deps.store.profiles.findOneAndUpdate({ _id: p.id, store_id: p.store_id, merge_lock: { $exists: false } }, { $set: set });
  } catch (err) {
    if (isDuplicateKey(err, PROFILE_EMAIL_INDEX) || isDuplicateKey(err)) throw ProfileErrors.emailTaken();
    throw err;
  }
  if (!updated) throw (await findProfile(deps, p.store_id, p.id)) ? ProfileErrors.mergeInProgress() : ProfileErrors.profileNotFound();
  if (emailChanges) {
    // A session issued for the old address while the update ran, and the old address's codes.
    await deps.auth.revokeProfileSessions({ store_id: p.store_id, profile_id: p.id });
    if (current.email) await deps.auth.deleteCodes({ store_id: p.store_id, email: current.email });
  }
  return profileView(deps, updated);
}

export async function mergeInto(deps: ProfilesDeps, p: { store_id: string; id: string; source_id: string }): Promise<Profile> {
  return profileView(deps, await mergeProfiles(deps, p.store_id, p.id, p.source_id));
}

export async function revokeSession(deps: ProfilesDeps, p: { store_id: string; id: string; token_id: string }): Promise<{ deleted: true }> {
  await requireProfile(deps, p.store_id, p.id);
  await deps.auth.revokeSession({ store_id: p.store_id, profile_id: p.id, session_id: p.token_id });
  return { deleted: true };
}

export async function revokeAllSessions(deps: ProfilesDeps, p: { store_id: string; id: string }): Promise<{ deleted: true; revoked: number }> {
  await requireProfile(deps, p.store_id, p.id);
  const { revoked } = await deps.auth.revokeProfileSessions({ store_id: p.store_id, profile_id: p.id });
  return { deleted: true, revoked };
}

export async function listOrders(deps: ProfilesDeps, p: { store_id: string; id: string; limit: number; cursor?: string }): Promise<Page<OrderLink>> {
  await requireProfile(deps, p.store_id, p.id);
  const bound = { scope: "profiles.orders", store_id: p.store_id, profile_id: p.id };
  const after = p.cursor ? decodeCursor(p.cursor, bound) : undefined;
  const page = await deps.store.orderLinks.findPage({
    filter: { store_id: p.store_id, profile_id: p.id },
    sort: { field: "created_at", direction: -1 },
    limit: p.limit,
    after,
  });
  const last = page.items[page.items.length - 1];
  return {
    items: page.items.map(toOrderLink),
    cursor: page.hasMore && last ? encodeCursor({ value: last.created_at, id: last._id }, bound) : null,
  };
}

/** Adds uses of a promo code to a profile (for an order service; merges sum these). */
export async function recordPromoUse(deps: ProfilesDeps, p: { store_id: string; id: string; promo_code_id: string; uses: number }): Promise<PromoUsage> {
  // Compare-and-set on the whole array: no positional operators, so both storage adapters agree.
  for (let attempt = 0; attempt < 20; attempt++) {
    const current = await requireProfile(deps, p.store_id, p.id);
    if (current.merge_lock) throw ProfileErrors.mergeInProgress(); // the merge plan would overwrite it
    const usage = current.promo_usage.map((u) => ({ ...u }));
    const entry = usage.find((u) => u.promo_code_id === p.promo_code_id);
    if (entry) entry.uses += p.uses;
    else usage.push({ promo_code_id: p.promo_code_id, uses: p.uses });
    const updated = await deps.store.profiles.updateOne(
      { _id: p.id, store_id: p.store_id, merge_lock: { $exists: false }, promo_usage: { $eq: current.promo_usage } },
      { $set: { promo_usage: usage, updated_at: deps.now() } },
    );
    if (updated.matched === 1) return { promo_code_id: p.promo_code_id, uses: entry?.uses ?? p.uses };
  }
  throw ProfileErrors.concurrentUpdate();
}

/** The id, e-mail and verified flag of a profile (for other services: lists mail the address and guard unverified sessions). */
export async function lookupProfile(deps: ProfilesDeps, p: { store_id: string; id: string }): Promise<{ id: string; email: string | null; verified: boolean }> {
  const doc = await requireProfile(deps, p.store_id, p.id);
  return { id: doc._id, email: doc.email ?? null, verified: doc.verified };
}

/** The Profiles of a store among `ids`, with one auth call (for other services' admin pages). */
export async function getProfiles(deps: ProfilesDeps, p: { store_id: string; ids: string[] }): Promise<Profile[]> {
  if (p.ids.length === 0) return [];
  const docs = await deps.store.profiles.find({ store_id: p.store_id, _id: { $in: [...new Set(p.ids)] } }, { limit: 100 });
  return profileViews(deps, p.store_id, docs);
}

// ---------------------------------------------------------------- public session flows

/** A guest profile (no e-mail) and an unverified session for it. */
export async function initializeGuest(deps: ProfilesDeps, p: { store_id: string }): Promise<AuthToken> {
  const doc = newProfileDoc(p.store_id, null, deps.now());
  await deps.store.profiles.insertOne(doc);
  try {
    return await deps.auth.issueSession({ store_id: p.store_id, profile_id: doc._id, is_verified: false, email: null });
  } catch (err) {
    await deps.store.profiles.deleteOne({ _id: doc._id, store_id: p.store_id }).catch(() => undefined);
    throw err;
  }
}

/**
 * Attaches an e-mail to the caller; never merges (only `verify`, a proof of the e-mail, does). Anonymous,
 * or a session whose profile has another e-mail: the profile of that e-mail (found or created). A guest
 * session: the guest takes the e-mail when it is free; else the caller gets the profile that has it and
 * the guest stays as it is. The new session is always unverified, so the answer is always redacted.
 */
export async function connect(deps: ProfilesDeps, p: { store_id: string; email: string }, principal?: AuthPrincipal): Promise<ConnectResult> {
  const session = sessionOf(principal, p.store_id);
  const lower = normalizeEmail(p.email);
  let profile: ProfileDoc | null = null;
  const own = session ? await findProfile(deps, p.store_id, session.profile_id) : null;
  if (session && !own) throw ProfileErrors.sessionProfileGone();
  if (own && own.email_lower === lower) profile = own;
  else if (own && own.email_lower === null) profile = await attachEmailToGuest(deps, own, p.email);
  profile ??= (await findOrCreateByEmail(deps, p.store_id, p.email)).doc;
  const token = await deps.auth.issueSession({ store_id: p.store_id, profile_id: profile._id, is_verified: false, email: profile.email ?? null });
  const view = await profileView(deps, profile, { redacted: true });
  return { ...view, token };
}

/** Gives the guest the e-mail; null (the guest unchanged) when another profile has it. */
async function attachEmailToGuest(deps: ProfilesDeps, guest: ProfileDoc, email: string): Promise<ProfileDoc | null> {
  if (await findByEmail(deps, guest.store_id, email)) return null;
  try {
    const updated = await deps.store.profiles.findOneAndUpdate(
      { _id: guest._id, store_id: guest.store_id, email_lower: null, merge_lock: { $exists: false } },
      { $set: { ...emailFields(email), verified: false, updated_at: deps.now() } },
    );
    if (updated) return updated;
    const now = await findProfile(deps, guest.store_id, guest._id);
    throw now?.merge_lock ? ProfileErrors.mergeInProgress() : ProfileErrors.concurrentUpdate();
  } catch (err) {
    if (isDuplicateKey(err)) return null; // someone took the e-mail in between
    throw err;
  }
}

/**
 * Exchanges a code for a verified session. The profile of the e-mail is found or created and marked
 * verified; a guest caller is merged into it (its orders and memberships move, the guest is removed) and
 * its old session revoked. The code is spent first (it is the authorization), so a failed guest merge
 * must not cost the user their login: when the guest cannot be merged now (409/503), it simply stays a
 * separate profile with its session, and the verified session is issued all the same.
 */
export async function verify(
  deps: ProfilesDeps,
  p: { store_id: string; email: string; code: string },
  principal: AuthPrincipal | undefined,
  ip?: string,
): Promise<AuthToken> {
  const session = sessionOf(principal, p.store_id);
  await deps.auth.verifyCode({ store_id: p.store_id, email: p.email, code: p.code, ip });
  let profile = await markVerified(deps, p.store_id, p.email);
  let revokeCaller = session !== undefined;
  if (session && session.profile_id !== profile._id) {
    const caller = await findProfile(deps, p.store_id, session.profile_id);
    if (caller && caller.email_lower === null) {
      try {
        profile = await mergeProfiles(deps, p.store_id, profile._id, caller._id);
      } catch (err) {
        const e = err as { type?: string; data?: { reason?: string }; message?: string };
        deps.logger.warn(`verify: guest ${caller._id} not merged into ${profile._id} now (${e?.data?.reason ?? e?.type ?? e?.message}); it stays a separate profile`);
        revokeCaller = false;
      }
    }
  }
  if (session && revokeCaller) {
    await deps.auth.revokeSession({ store_id: p.store_id, profile_id: session.profile_id, session_id: session.session_id }).catch((err: { type?: string }) => {
      if (err?.type !== "NOT_FOUND") throw err; // already gone with the merged guest
    });
  }
  const token = await deps.auth.issueSession({ store_id: p.store_id, profile_id: profile._id, is_verified: true, email: p.email });
  // An admin may have moved the profile to another address meanwhile (updateProfile revokes sessions
  // after its change; this catches a session issued after that): the proof was for this address only.
  const now = await findProfile(deps, p.store_id, profile._id);
  if (now?.email_lower !== normalizeEmail(p.email)) {
    await deps.auth.revokeSession({ store_id: p.store_id, profile_id: profile._id, session_id: token.id }).catch(() => undefined);
    throw ProfileErrors.concurrentUpdate();
  }
  return token;
}

/** The profile of the e-mail (found or created), marked verified while it still has that e-mail. */
async function markVerified(deps: ProfilesDeps, storeId: string, email: string): Promise<ProfileDoc> {
  for (let attempt = 0; attempt < 3; attempt++) {
    const { doc } = await findOrCreateByEmail(deps, storeId, email);
    if (doc.verified) return doc;
    const updated = await deps.store.profiles.findOneAndUpdate(
      { _id: doc._id, store_id: storeId, email_lower: normalizeEmail(email) },
      { $set: { verified: true, updated_at: deps.now() } },
    );
    if (updated) return updated;
  }
  throw ProfileErrors.concurrentUpdate();
}

/**
 * The profile of the session of `accessToken` (GET /profiles/me, whose token the gateway passes on unread):
 * auth checks the token and, for a verified session, describes its profile's sessions and codes in the same
 * call. Redacted for an unverified session, whether or not the profile was ever verified. A description made
 * for another e-mail than the profile's of now (a session issued without its e-mail, an e-mail changed since)
 * is not used: auth is asked again.
 */
export async function me(deps: ProfilesDeps, p: { store_id: string }, accessToken: string | undefined): Promise<Profile> {
  if (!accessToken) throw ProfileErrors.notAuthenticated();
  const session = await profilePrincipal(p.store_id, accessToken, deps.auth.authenticate, { describe: true });
  const doc = await findProfile(deps, p.store_id, session.profile_id);
  if (!doc) throw ProfileErrors.sessionProfileGone();
  if (!session.is_verified) return toProfile(doc, { redacted: true });
  const described = describedAuthInfo(session, doc);
  return described ? toProfile(doc, described) : profileView(deps, doc);
}

/** The sessions and codes auth described with the session, if it described them for the e-mail the profile has now. */
function describedAuthInfo(session: DescribedProfileSession, doc: ProfileDoc): ProfileAuthInfo | undefined {
  const described = session.described_profile;
  if (!described || described.email !== doc.email_lower) return undefined;
  return { sessions: described.sessions, codes: described.codes };
}

// ---------------------------------------------------------------- composition root

/** What the profiles rules are built from: the service's database, the bus (auth's actions, durable events), a logger, a clock. */
export interface ProfilesSetup {
  db: Database;
  bus: ServiceBroker;
  logger: Logger;
  /** Unix seconds; tests pass a fake. */
  now?: () => number;
}

export type Profiles = Awaited<ReturnType<typeof createProfiles>>;

/** Builds the profiles rules once, from explicit dependencies (the service's `started()` calls it). */
export async function createProfiles(setup: ProfilesSetup) {
  const store = new ProfilesStore(setup.db);
  await store.ensureIndexes();
  const deps: ProfilesDeps = {
    store,
    auth: authClient(setup.bus),
    events: { profileMerged: (payload) => publishEvent(setup.bus, "profile.merged", payload) },
    logger: setup.logger,
    now: setup.now ?? nowSeconds,
  };
  type Params<F extends (deps: ProfilesDeps, p: never, ...rest: never[]) => unknown> = Parameters<F>[1];
  return {
    deps,
    store,
    create: (p: Params<typeof createProfile>) => createProfile(deps, p),
    get: (p: Params<typeof getProfile>) => getProfile(deps, p),
    find: (p: Params<typeof findProfiles>) => findProfiles(deps, p),
    update: (p: Params<typeof updateProfile>) => updateProfile(deps, p),
    merge: (p: Params<typeof mergeInto>) => mergeInto(deps, p),
    revokeSession: (p: Params<typeof revokeSession>) => revokeSession(deps, p),
    revokeAllSessions: (p: Params<typeof revokeAllSessions>) => revokeAllSessions(deps, p),
    listOrders: (p: Params<typeof listOrders>) => listOrders(deps, p),
    recordPromoUse: (p: Params<typeof recordPromoUse>) => recordPromoUse(deps, p),
    initialize: (p: Params<typeof initializeGuest>) => initializeGuest(deps, p),
    connect: (p: Params<typeof connect>, principal?: AuthPrincipal) => connect(deps, p, principal),
    verify: (p: Params<typeof verify>, principal?: AuthPrincipal, ip?: string) => verify(deps, p, principal, ip),
    me: (p: Params<typeof me>, accessToken?: string) => me(deps, p, accessToken),
    lookup: (p: Params<typeof lookupProfile>) => lookupProfile(deps, p),
    getMany: (p: Params<typeof getProfiles>) => getProfiles(deps, p),
    upsertMany: (p: Params<typeof upsertMany>) => upsertMany(deps, p),
    linkOrder: (event: OrderCreated) => linkOrder(deps, event),
    recoverMerges: () => recoverMerges(deps),
    unfinishedMerges: () => store.merges.count({ state: { $in: ["pending", "running"] } }),
  };
}
