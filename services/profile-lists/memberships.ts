/**
 * The membership rules: subscribe (single or double opt-in; paid lists go on in payments.ts), confirm, access,
 * unsubscribe (session or e-mailed token), admin add/remove/list, and moving memberships when profiles merge.
 *
 * member_count: every status change is a compare-and-set on the membership's status (exactly one writer
 * wins each change) that records the change in access (+1, -1) on the membership; the winner then `$inc`s
 * the list once (counts.ts). No read-modify-write of the count ever happens, so concurrent joins and
 * leaves leave it exact, and a crash between the two writes is settled by the recovery pass.
 */
import { isDeepStrictEqual } from "node:util";
import type { AuthPrincipal } from "../../shared/contracts/common";
import { isRecipientRefused, isTemplateArchived, isTemplateNotFound, isTemplateRenderFailure } from "../../shared/contracts/mailer";
import type { Consent, Membership, MembershipStatus, ProfileListMember } from "../../shared/contracts/profile-lists";
import { decodeCursor, encodeCursor } from "../../shared/cursor";
import { uuidv7 } from "../../shared/ids";
import { isDuplicateKey, type Filter, type Update } from "../../shared/storage/port";
import type { Caller, Deps, Page } from "./deps";
import { CONFIRM_TOKEN_TTL_SECONDS, checkLink, confirmLink, hashToken, MAIL_LIMITS, newConfirmToken } from "./links";
import { requireList } from "./lists";
import { ProfileListsErrors } from "./profile-lists.errors";
import { toMembership } from "./profile-lists.mapper";
import { countOp, NO_OP_IN_FLIGHT, settleCount, waitForOp } from "./counts";
import { endPaymentAtStripe, type PaidSubscribeParams, scheduleCancellation, subscribePaid } from "./payments";
import type { ListDoc, MembershipDoc } from "./profile-lists.store";

/** Statuses that count in member_count (access, until billing ends a scheduled cancellation). */
export const counted = (status: MembershipStatus) => status === "active" || status === "cancellation_scheduled";
/** A membership paid through Stripe (its subscription or one-off payment went through checkout). */
const paidFor = (m: MembershipDoc) => Boolean(m.payment?.subscription_id) || (Boolean(m.payment) && m.status !== "pending");

/** Statuses after which a new subscribe starts a fresh consent. */
const ended = (status: MembershipStatus) => status === "unsubscribed" || status === "cancelled" || status === "expired";

export function hasAccess(doc: Pick<MembershipDoc, "status" | "end_date">, now: number): boolean {
  return doc.status === "active" || (doc.status === "cancellation_scheduled" && (doc.end_date ?? 0) > now);
}

/**
 * Applies `update` when the membership still has `current`'s status (and matches `extra`), recording the
 * change of member_count in the same write, then settles it on the list. Null when another writer changed
 * the membership first (after waiting for that writer's count change to settle).
 */
export async function changeMembership(deps: Deps, current: MembershipDoc, update: Update, extra: Filter = {}): Promise<MembershipDoc | null> {
  const next = (update.$set?.status as MembershipStatus | undefined) ?? current.status;
  const delta = Number(counted(next)) - Number(counted(current.status));
  const op = countOp(delta, deps.now());
  const filter: Filter = {
    _id: current._id,
    store_id: current.store_id,
    status: current.status,
    removing: { $exists: false },
    ...extra,
    ...(delta === 0 ? {} : NO_OP_IN_FLIGHT),
  };
  const updated = await deps.store.memberships.findOneAndUpdate(filter, { ...update, $set: { ...update.$set, ...op } });
  if (!updated) {
    const now = await deps.store.memberships.findOne({ _id: current._id, store_id: current.store_id });
    if (now?.count_op || now?.removing) await waitForOp(deps, now);
    return null;
  }
  await settleCount(deps, updated);
  return stripOp(updated);
}

/** The membership as it is once its count change has settled. */
function stripOp(m: MembershipDoc): MembershipDoc {
  const { count_op: _op, count_delta: _delta, count_op_at: _at, ...rest } = m;
  return rest as MembershipDoc;
}

/** Inserts a new membership (its count change with it) and settles the count; false when a concurrent insert won. */
export async function insertMembership(deps: Deps, doc: MembershipDoc): Promise<boolean> {
  const withOp = { ...doc, ...countOp(Number(counted(doc.status)), deps.now()) };
  try {
    await deps.store.memberships.insertOne(withOp);
  } catch (err) {
    if (isDuplicateKey(err)) return false;
    throw err;
  }
  await settleCount(deps, withOp);
  return true;
}

/** Ends a membership's access and removes it (crash-safe: a removal a dead writer started is finished by recovery). */
async function removeMembership(deps: Deps, current: MembershipDoc): Promise<boolean> {
  const now = deps.now();
  const ending = await changeMembership(deps, current, { $set: { status: "cancelled", removing: true, end_date: now, updated_at: now } });
  if (!ending) return false;
  await deps.store.memberships.deleteOne({ _id: current._id, store_id: current.store_id, removing: true });
  return true;
}

export function findMembership(deps: Deps, list: Pick<ListDoc, "_id" | "store_id">, profileId: string): Promise<MembershipDoc | null> {
  return deps.store.memberships.findOne({ store_id: list.store_id, profile_list_id: list._id, profile_id: profileId });
}

export function newConsent(method: Consent["method"], caller: Caller | undefined, now: number): Consent {
  return { method, ip: caller?.ip ?? null, user_agent: caller?.userAgent ?? null, at: now, confirmed_at: null, confirmed_ip: null };
}

export function newMembership(list: ListDoc, profileId: string, status: MembershipStatus, source: MembershipDoc["source"], consent: Consent, now: number): MembershipDoc {
  return {
    _id: uuidv7(),
    store_id: list.store_id,
    profile_list_id: list._id,
    profile_id: profileId,
    status,
    source,
    consent,
    consent_history: [],
    payment: null,
    start_date: status === "active" ? now : null,
    end_date: null,
    created_at: now,
    updated_at: now,
  };
}

/** The most consents a membership's history keeps (the oldest go first): subscribing and leaving again and again must not grow it for ever. */
export const CONSENT_HISTORY_KEPT = 50;

/** The `$push` that files a replaced consent in the history, keeping the last CONSENT_HISTORY_KEPT. */
export const fileConsent = (replaced: Consent): Update["$push"] => ({ consent_history: { $each: [replaced], $slice: -CONSENT_HISTORY_KEPT } });

/** The caller's profile session for this store: 401 without one (or for another store's). */
function sessionOf(principal: AuthPrincipal | undefined, storeId: string) {
  if (principal?.kind !== "profile" || principal.store_id !== storeId) throw ProfileListsErrors.sessionRequired();
  return principal;
}

/** Whether the session has not proved the e-mail of a profile whose e-mail was proved (it came from `connect`). */
async function unprovenSession(deps: Deps, storeId: string, session: { profile_id: string; is_verified: boolean }): Promise<boolean> {
  return !session.is_verified && (await deps.profiles.lookup({ store_id: storeId, id: session.profile_id })).verified;
}

// ---------------------------------------------------------------- storefront

export interface SubscribeParams extends PaidSubscribeParams {
  confirm_url?: string;
}

/**
 * Subscribe: a standard list (or a confirmation list without a usable template) makes the membership
 * active at once; a confirmation list makes it pending and mails a single-use 7-day link. A member with
 * access is answered unchanged, on a draft or archived list too (which otherwise takes no one); a pending one is
 * re-sent its mail (at most once a minute); an ended one starts a fresh consent. A paid list answers a Stripe
 * Checkout URL (payments.ts).
 */
export async function subscribe(deps: Deps, p: SubscribeParams, caller: Caller): Promise<{ membership: Membership; checkout_url: string | null }> {
  const session = sessionOf(caller.auth, p.store_id);
  if (session.profile_id !== p.profile_id) throw ProfileListsErrors.notYourProfile();
  const list = await requireList(deps, p.store_id, p.id);
  if (list.status !== "active") return memberOfClosedList(deps, list, p.profile_id, session);
  if (list.type.type === "paid") return subscribePaid(deps, list, p, session, caller);
  const templateId = list.type.type === "confirmation" && !list.confirm_template_missing ? list.type.confirm_template_id : null;
  let confirmBase: URL | undefined;
  if (templateId) {
    if (!p.confirm_url) throw ProfileListsErrors.confirmUrlRequired();
    confirmBase = checkLink(p.confirm_url, deps.linkOrigins, "confirm_url");
  }
  const profile = await deps.profiles.lookup({ store_id: p.store_id, id: p.profile_id });
  if (templateId && !profile.email) throw ProfileListsErrors.profileHasNoEmail();

  // A session that has not proved the e-mail of a verified profile does not see its consent details.
  const redacted = !session.is_verified && profile.verified;
  const answer = (doc: MembershipDoc) => ({ membership: toMembership(doc, { redacted }), checkout_url: null });
  for (let attempt = 0; attempt < 5; attempt++) {
    const now = deps.now();
    const existing = await findMembership(deps, list, p.profile_id);
    if (existing && hasAccess(existing, now)) return answer(existing);
    if (!templateId || !confirmBase || !profile.email) {
      const done = await activate(deps, list, existing, p.profile_id, newConsent("signup", caller, now), "signup");
      if (done) return answer(done);
      continue;
    }
    const pending = await startDoubleOptIn(deps, list, existing, { profileId: p.profile_id, email: profile.email, caller, templateId, confirmBase });
    if (pending) return answer(pending);
  }
  throw ProfileListsErrors.concurrentUpdate();
}

/**
 * A draft or archived list takes no new members (400). One who has access is answered unchanged, as an active
 * list answers it: a storefront that repeats a subscribe after the list was archived is told the member still is one.
 */
async function memberOfClosedList(
  deps: Deps,
  list: ListDoc,
  profileId: string,
  session: { profile_id: string; is_verified: boolean },
): Promise<{ membership: Membership; checkout_url: null }> {
  const existing = await findMembership(deps, list, profileId);
  if (!existing || !hasAccess(existing, deps.now())) throw ProfileListsErrors.listNotOpen();
  const redacted = await unprovenSession(deps, list.store_id, session);
  return { membership: toMembership(existing, { redacted }), checkout_url: null };
}

/** Makes the membership active now (inserting it, or from pending/ended); null when a concurrent change won. */
export async function activate(
  deps: Deps,
  list: ListDoc,
  existing: MembershipDoc | null,
  profileId: string,
  consent: Consent,
  source: MembershipDoc["source"],
): Promise<MembershipDoc | null> {
  const now = deps.now();
  if (!existing) {
    const doc = newMembership(list, profileId, "active", source, consent, now);
    return (await insertMembership(deps, doc)) ? doc : null;
  }
  const set: Record<string, unknown> = { status: "active", start_date: now, end_date: null, updated_at: now };
  const update: Update = { $set: set, $unset: { confirm_token_hash: "", confirm_expires_at: "" } };
  // The consent that grants access is recorded: an ended membership's, or a pending one's unconfirmed
  // signup that an import or a later signup replaces (kept in the history).
  if (ended(existing.status) || !isDeepStrictEqual(existing.consent, consent)) {
    set.consent = consent;
    set.source = source;
    update.$push = fileConsent(existing.consent);
  }
  return changeMembership(deps, existing, update);
}

interface DoubleOptIn {
  profileId: string;
  email: string;
  caller: Caller;
  templateId: string;
  confirmBase: URL;
}

/** Puts the membership in `pending` with a fresh token and mails the link; null when a concurrent change won. */
async function startDoubleOptIn(deps: Deps, list: ListDoc, existing: MembershipDoc | null, o: DoubleOptIn): Promise<MembershipDoc | null> {
  const now = deps.now();
  if (existing?.status === "pending" && existing.last_sent_at !== undefined) {
    const wait = existing.last_sent_at + MAIL_LIMITS.resendSeconds - now;
    if (wait > 0) throw ProfileListsErrors.resendTooSoon(wait);
  }
  // Counted before anything is written, so a refused request changes nothing.
  await deps.limiter.hit(list.store_id, "address", o.email, MAIL_LIMITS.perAddress);
  if (o.caller.ip) await deps.limiter.hit(list.store_id, "ip", o.caller.ip, MAIL_LIMITS.perIp);

  const { token, hash } = newConfirmToken();
  const pendingFields = { confirm_token_hash: hash, confirm_expires_at: now + CONFIRM_TOKEN_TTL_SECONDS, last_sent_at: now, updated_at: now };
  let doc: MembershipDoc | null;
  if (!existing) {
    doc = { ...newMembership(list, o.profileId, "pending", "signup", newConsent("signup", o.caller, now), now), ...pendingFields };
    if (!(await insertMembership(deps, doc))) return null;
  } else if (existing.status === "pending") {
    // Re-send: a new link (the previous one stops working), at most once a minute.
    const sentBefore = existing.last_sent_at === undefined ? { last_sent_at: { $exists: false } } : { last_sent_at: existing.last_sent_at };
    doc = await changeMembership(deps, existing, { $set: pendingFields }, sentBefore);
  } else {
    doc = await changeMembership(deps, existing, {
      $set: { ...pendingFields, status: "pending", source: "signup", consent: newConsent("signup", o.caller, now), start_date: null, end_date: null },
      $push: fileConsent(existing.consent),
    });
  }
  if (!doc) return null;
  return sendConfirmation(deps, list, doc, token, o, existing);
}

/**
 * Mails the confirmation link. A template the mailer no longer has turns this into single opt-in.
 * `before` is the membership as it was before this request made it pending (null: this request created it).
 */
async function sendConfirmation(deps: Deps, list: ListDoc, doc: MembershipDoc, token: string, o: DoubleOptIn, before: MembershipDoc | null): Promise<MembershipDoc> {
  const confirmUrl = confirmLink(o.confirmBase, token, list._id);
  const unsubscribeUrl = unsubscribeUrlOf(deps, doc);
  try {
    await deps.mailer.sendTemplate({
      store_id: list.store_id,
      template_id: o.templateId,
      to: o.email,
      vars: {
        profile: { email: o.email, id: doc.profile_id },
        list: { name: list.name, key: list.key },
        confirm_url: confirmUrl,
        unsubscribe_url: unsubscribeUrl,
        store_id: list.store_id,
      },
      list_unsubscribe: { url: unsubscribeUrl },
    });
    return doc;
  } catch (err) {
    if (isTemplateNotFound(err)) {
      await deps.store.lists.updateMany(
        { _id: list._id, store_id: list.store_id, "type.confirm_template_id": o.templateId },
        { $set: { confirm_template_missing: true, updated_at: deps.now() } },
      );
      const active = await activate(deps, list, doc, doc.profile_id, doc.consent, "signup");
      return active ?? ((await findMembership(deps, list, doc.profile_id)) as MembershipDoc);
    }
    await undoUnsent(deps, doc, hashToken(token), before, isTemplateRenderFailure(err) || isRecipientRefused(err) || isTemplateArchived(err));
    if (isTemplateArchived(err)) {
      // Archived is not deleted: the list stays double opt-in, and subscribes wait for the store to make it active again.
      deps.logger.warn(
        `list ${list._id} (store ${list.store_id}): its confirmation template ${o.templateId} is archived; subscribes are refused until it is active again`,
      );
      throw ProfileListsErrors.confirmTemplateArchived();
    }
    if (isTemplateRenderFailure(err)) {
      // The store's template is broken (the caller's input has no part in it): the store has to fix it.
      deps.logger.warn(`list ${list._id} (store ${list.store_id}): its confirmation template ${o.templateId} fails to render: ${renderProblemOf(err)}`);
      throw ProfileListsErrors.confirmTemplateBroken();
    }
    // The mailer's error names its own field (`to`), not one of this request's.
    if (isRecipientRefused(err)) throw ProfileListsErrors.recipientRefused();
    throw err;
  }
}

/**
 * After a failed send. When the mailer refused the mail (none went), what this request wrote is undone: the
 * membership it created is removed, and a re-send's previous link (the one the person holds) works again.
 * Otherwise (a timeout, an outage) the mail may have gone and its link must keep working; only the resend
 * wait is lifted, so that the next try may send at once.
 */
async function undoUnsent(deps: Deps, doc: MembershipDoc, tokenHash: string, before: MembershipDoc | null, refused: boolean): Promise<void> {
  const thisRequests = { _id: doc._id, store_id: doc.store_id, status: "pending", confirm_token_hash: tokenHash };
  if (refused && !before) {
    await deps.store.memberships.deleteOne(thisRequests);
  } else if (refused && before?.status === "pending" && before.confirm_token_hash && before.confirm_expires_at) {
    const previous = { confirm_token_hash: before.confirm_token_hash, confirm_expires_at: before.confirm_expires_at };
    const restore: Update =
      before.last_sent_at === undefined ? { $set: previous, $unset: { last_sent_at: "" } } : { $set: { ...previous, last_sent_at: before.last_sent_at } };
    await deps.store.memberships.updateOne(thisRequests, restore);
  } else {
    await deps.store.memberships.updateOne(thisRequests, { $unset: { last_sent_at: "" } });
  }
}

/** What the mailer said of a template that failed to render (its field error), for the log. */
function renderProblemOf(err: unknown): string {
  const data = (err as { data?: { validationErrors?: Array<{ error?: unknown }> } }).data;
  return String(data?.validationErrors?.[0]?.error ?? (err as Error).message);
}

function unsubscribeUrlOf(deps: Deps, doc: MembershipDoc): string {
  const token = deps.unsubscribeLinks.token(doc.store_id, doc.profile_list_id, doc._id);
  return `${deps.publicUrl}/v1/storefront/${doc.store_id}/profile-lists/${doc.profile_list_id}/unsubscribe?token=${encodeURIComponent(token)}`;
}

/**
 * Confirms a pending double opt-in with its token: active, with confirmed_at and the IP. 400 and no change
 * otherwise. The answer is redacted, as every answer to a mail's link is.
 */
export async function confirm(deps: Deps, p: { store_id: string; id: string; token: string }, caller: Caller): Promise<Membership> {
  const now = deps.now();
  const filter = { confirm_token_hash: hashToken(p.token), store_id: p.store_id, profile_list_id: p.id, status: "pending", confirm_expires_at: { $gt: now } };
  const update = {
    $set: {
      status: "active",
      start_date: now,
      "consent.method": "double_opt_in",
      "consent.confirmed_at": now,
      "consent.confirmed_ip": caller.ip ?? null,
      updated_at: now,
      ...countOp(1, now),
    },
    $unset: { confirm_token_hash: "", confirm_expires_at: "" },
  };
  let updated = await deps.store.memberships.findOneAndUpdate({ ...filter, ...NO_OP_IN_FLIGHT }, update);
  if (!updated) {
    const busy = await deps.store.memberships.findOne(filter);
    if (!busy?.count_op) throw ProfileListsErrors.invalidToken();
    await waitForOp(deps, busy);
    updated = await deps.store.memberships.findOneAndUpdate({ ...filter, ...NO_OP_IN_FLIGHT }, update);
    if (!updated) throw ProfileListsErrors.invalidToken();
  }
  await settleCount(deps, updated);
  // The token is the only credential: its holder is not shown the consent's network details.
  return toMembership(updated, { redacted: true });
}

/**
 * Whether the session's profile has access. An unverified session of a profile whose e-mail was verified
 * is answered "no access" (CONTRACT: such a session may not read the profile's memberships; anyone can
 * `connect` with a member's address, so its answer must not open members-only content or tell who is a member).
 */
export async function access(deps: Deps, p: { store_id: string; id: string }, caller: Caller): Promise<{ has_access: boolean; membership: Membership | null }> {
  const session = sessionOf(caller.auth, p.store_id);
  const list = await requireList(deps, p.store_id, p.id);
  const doc = await findMembership(deps, list, session.profile_id);
  if (!doc || (await unprovenSession(deps, p.store_id, session))) return { has_access: false, membership: null };
  return { has_access: hasAccess(doc, deps.now()), membership: toMembership(doc) };
}

/**
 * Unsubscribe, by the token of a list mail (no session needed) or by a session for its own profile:
 * `unsubscribed`, access ends at once. A token of another store or list is 400.
 */
export async function unsubscribe(
  deps: Deps,
  p: { store_id: string; id: string; token?: string; profile_id?: string },
  caller: Caller,
): Promise<{ membership: Membership }> {
  const list = await requireList(deps, p.store_id, p.id);
  // The link of a mail is shown the membership without its consent details (whoever holds the mail can use it).
  const redacted = Boolean(p.token);
  let current: MembershipDoc | null;
  if (p.token) {
    const membershipId = deps.unsubscribeLinks.membershipOf(p.token, p.store_id, p.id);
    if (!membershipId) throw ProfileListsErrors.invalidToken();
    current = await deps.store.memberships.findOne({ _id: membershipId, store_id: p.store_id, profile_list_id: p.id });
    if (!current) throw ProfileListsErrors.invalidToken();
  } else {
    if (caller.auth?.kind !== "profile") throw ProfileListsErrors.unsubscribeCredentialMissing();
    const session = sessionOf(caller.auth, p.store_id);
    if (p.profile_id && p.profile_id !== session.profile_id) throw ProfileListsErrors.notYourProfile();
    // Anyone can `connect` with an address: ending someone's membership (and a paid one's subscription) takes proof of it.
    if (await unprovenSession(deps, p.store_id, session)) throw ProfileListsErrors.verificationRequired();
    current = await findMembership(deps, list, session.profile_id);
    if (!current) throw ProfileListsErrors.membershipNotFound();
  }
  // A paid member stops paying as they leave (a failure at Stripe is a 503, nothing changed).
  if (current.status !== "unsubscribed") await endPaymentAtStripe(deps, current);
  for (let attempt = 0; attempt < 5 && current; attempt++) {
    if (current.status === "unsubscribed") return { membership: toMembership(current, { redacted }) };
    const now = deps.now();
    const updated = await changeMembership(deps, current, {
      $set: { status: "unsubscribed", end_date: now, updated_at: now },
      $unset: { confirm_token_hash: "", confirm_expires_at: "" },
    });
    if (updated) return { membership: toMembership(updated, { redacted }) };
    current = await deps.store.memberships.findOne({ _id: current._id, store_id: p.store_id });
  }
  if (!current) throw ProfileListsErrors.membershipNotFound();
  throw ProfileListsErrors.concurrentUpdate();
}

// ---------------------------------------------------------------- admin

/** Adds the profile as active (source admin); an existing membership, whatever its state, is answered unchanged. */
export async function addMember(deps: Deps, p: { store_id: string; id: string; profile_id: string }, caller: Caller): Promise<Membership> {
  const list = await requireList(deps, p.store_id, p.id);
  await deps.profiles.lookup({ store_id: p.store_id, id: p.profile_id });
  for (let attempt = 0; attempt < 5; attempt++) {
    const existing = await findMembership(deps, list, p.profile_id);
    if (existing) return toMembership(existing);
    const doc = newMembership(list, p.profile_id, "active", "admin", { ...newConsent("admin", caller, deps.now()) }, deps.now());
    if (await insertMembership(deps, doc)) return toMembership(doc);
  }
  throw ProfileListsErrors.concurrentUpdate();
}

/**
 * Removes the membership; access ends at once and member_count drops when it had access. A paid member's
 * subscription is cancelled at Stripe first (or its open checkout expired). With `at_period_end`, the
 * subscription ends at its period's end instead, and the membership stays `cancellation_scheduled` until then.
 */
export async function removeMember(deps: Deps, p: { store_id: string; id: string; profile_id: string; at_period_end?: boolean }): Promise<{ deleted: true }> {
  const list = await requireList(deps, p.store_id, p.id);
  for (let attempt = 0; attempt < 5; attempt++) {
    const current = await findMembership(deps, list, p.profile_id);
    if (!current) throw ProfileListsErrors.membershipNotFound();
    // The opt-out is the record that keeps an import or an admin from adding the profile again.
    if (current.status === "unsubscribed") throw ProfileListsErrors.optOutKept();
    if (p.at_period_end) {
      if (await scheduleCancellation(deps, current)) return { deleted: true };
      continue;
    }
    await endPaymentAtStripe(deps, current);
    if (await removeMembership(deps, current)) return { deleted: true };
  }
  throw ProfileListsErrors.concurrentUpdate();
}

export async function listMembers(
  deps: Deps,
  p: { store_id: string; id: string; status?: MembershipStatus; limit: number; cursor?: string },
): Promise<Page<ProfileListMember>> {
  await requireList(deps, p.store_id, p.id);
  const bound = { scope: "profile-lists.members", store_id: p.store_id, id: p.id, status: p.status };
  const after = p.cursor ? decodeCursor(p.cursor, bound) : undefined;
  const filter: Filter = { store_id: p.store_id, profile_list_id: p.id };
  if (p.status) filter.status = p.status;
  const page = await deps.store.memberships.findPage({ filter, sort: { field: "created_at", direction: 1 }, limit: p.limit, after });
  const profiles = await deps.profiles.getMany({ store_id: p.store_id, ids: page.items.map((m) => m.profile_id) });
  const byId = new Map(profiles.map((profile) => [profile.id, profile]));
  // A profile gone between its merge and the membership's move is left out of this page.
  const items = page.items.flatMap((m) => {
    const profile = byId.get(m.profile_id);
    return profile ? [{ profile, membership: toMembership(m) }] : [];
  });
  const last = page.items[page.items.length - 1];
  return { items, cursor: page.hasMore && last ? encodeCursor({ value: last.created_at, id: last._id }, bound) : null };
}

// ---------------------------------------------------------------- merge

/**
 * `profile.merged`: the source's memberships move to the target. Where both were members of one list,
 * one membership remains, the one with access (the target's when both or neither have it, unless only the
 * source's is paid: a paying subscription is never dropped for a free membership), and the other's
 * consent (and its history) is added to its history. Safe to run again: a rerun finds nothing of the source
 * left, and history entries are added once.
 */
export async function moveMemberships(deps: Deps, p: { store_id: string; source_id: string; target_id: string }): Promise<{ moved: number; merged: number }> {
  let moved = 0;
  let merged = 0;
  for (;;) {
    const batch = await deps.store.memberships.find({ store_id: p.store_id, profile_id: p.source_id }, { limit: 100 });
    if (batch.length === 0) return { moved, merged };
    for (const source of batch) {
      const target = await deps.store.memberships.findOne({ store_id: p.store_id, profile_list_id: source.profile_list_id, profile_id: p.target_id });
      if (!target) {
        try {
          const done = await deps.store.memberships.updateOne(
            { _id: source._id, store_id: p.store_id, profile_id: p.source_id },
            { $set: { profile_id: p.target_id, updated_at: deps.now() } },
          );
          moved += done.matched;
        } catch (err) {
          if (!isDuplicateKey(err)) throw err; // the target joined meanwhile: merged on the next pass
        }
        continue;
      }
      const now = deps.now();
      const keepSource = hasAccess(source, now) && (!hasAccess(target, now) || (paidFor(source) && !paidFor(target)));
      if (paidFor(source) && paidFor(target) && hasAccess(source, now) && hasAccess(target, now)) {
        deps.logger.warn(
          `merge: profiles ${p.source_id} and ${p.target_id} both pay for list ${source.profile_list_id}; the target's membership stays, subscription ${source.payment?.subscription_id} keeps billing until cancelled in Stripe`,
        );
      }
      const [kept, dropped] = keepSource ? [source, target] : [target, source];
      const history = [...(dropped.consent_history ?? []), dropped.consent].slice(-CONSENT_HISTORY_KEPT);
      await deps.store.memberships.updateOne({ _id: kept._id, store_id: p.store_id }, { $addToSet: { consent_history: { $each: history } }, $set: { updated_at: now } });
      // The other membership goes first (the unique index allows one per list and profile); a lost race is retried next pass.
      if (!(await removeMembership(deps, dropped))) continue;
      if (keepSource) await deps.store.memberships.updateOne({ _id: kept._id, store_id: p.store_id }, { $set: { profile_id: p.target_id } });
      merged++;
    }
  }
}
