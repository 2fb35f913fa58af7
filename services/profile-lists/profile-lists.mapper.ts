/**
 * Data out: the one mapper per wire object. Only the fields listed here leave the service, so a stored
 * field (token hashes, search words, send times) cannot slip out by accident.
 */
import type { Consent, Membership, Payment, ProfileList } from "../../shared/contracts/profile-lists";
import type { ListDoc, MembershipDoc } from "./profile-lists.store";

export function toProfileList(doc: ListDoc): ProfileList {
  return {
    id: doc._id,
    store_id: doc.store_id,
    key: doc.key,
    name: doc.name,
    description: doc.description ?? null,
    status: doc.status,
    type: structuredClone(doc.type),
    member_count: Math.max(0, doc.member_count),
    confirm_template_missing: doc.type.type === "confirmation" && doc.confirm_template_missing,
    created_at: doc.created_at,
    updated_at: doc.updated_at,
  };
}

const consentOf = (c: Consent): Consent => ({
  method: c.method,
  ip: c.ip ?? null,
  user_agent: c.user_agent ?? null,
  at: c.at,
  confirmed_at: c.confirmed_at ?? null,
  confirmed_ip: c.confirmed_ip ?? null,
});

const paymentOf = (p: Payment | null | undefined): Payment | null =>
  p
    ? {
        provider: p.provider,
        price_id: p.price_id,
        checkout_session_id: p.checkout_session_id ?? null,
        subscription_id: p.subscription_id ?? null,
        customer_id: p.customer_id ?? null,
        current_period_end: p.current_period_end ?? null,
      }
    : null;

/**
 * `redacted`: without the consent's network details (IPs, user agents) and history, for a caller who has
 * not proved control of the profile's e-mail (an unverified session of a verified profile, a mail link).
 */
export function toMembership(doc: MembershipDoc, { redacted = false } = {}): Membership {
  if (redacted) {
    const open = toMembership(doc);
    return { ...open, consent: { ...open.consent, ip: null, user_agent: null, confirmed_ip: null }, consent_history: [] };
  }
  return {
    id: doc._id,
    store_id: doc.store_id,
    profile_list_id: doc.profile_list_id,
    profile_id: doc.profile_id,
    status: doc.status,
    source: doc.source,
    consent: consentOf(doc.consent),
    consent_history: (doc.consent_history ?? []).map(consentOf),
    payment: paymentOf(doc.payment),
    start_date: doc.start_date ?? null,
    end_date: doc.end_date ?? null,
    created_at: doc.created_at,
    updated_at: doc.updated_at,
  };
}
