/**
 * Data out: the one mapper per wire object. Only the fields listed here ever leave the service, so a
 * stored field (locks, search keys) cannot slip out by accident.
 */
import type { SessionInfo, VerificationCodeInfo } from "../../shared/contracts/auth";
import type { OrderLink, Profile } from "../../shared/contracts/profiles";
import type { OrderLinkDoc, ProfileDoc } from "./profiles.store";

export interface ProfileExtras {
  sessions?: SessionInfo[];
  codes?: VerificationCodeInfo[];
  /** Empty taxonomies, promo usage, sessions and codes (the unverified-session guard). */
  redacted?: boolean;
}

export function toProfile(doc: ProfileDoc, extras: ProfileExtras = {}): Profile {
  const redacted = extras.redacted === true;
  return {
    id: doc._id,
    store_id: doc.store_id,
    email: doc.email ?? null,
    verified: doc.verified,
    status: doc.status,
    taxonomies: redacted ? [] : doc.taxonomies.map((t) => ({ taxonomy_id: t.taxonomy_id, fields: t.fields.map((f) => ({ ...f })) })),
    promo_usage: redacted ? [] : doc.promo_usage.map((p) => ({ promo_code_id: p.promo_code_id, uses: p.uses })),
    auth_tokens: redacted
      ? []
      : (extras.sessions ?? []).map((s) => ({ id: s.id, created_at: s.created_at, expires_at: s.expires_at, last_used_at: s.last_used_at, is_verified: s.is_verified })),
    verification_codes: redacted
      ? []
      : (extras.codes ?? []).map((c) => ({ id: c.id, created_at: c.created_at, expires_at: c.expires_at, used: c.used, attempts: c.attempts })),
    created_at: doc.created_at,
    updated_at: doc.updated_at,
  };
}

export function toOrderLink(doc: OrderLinkDoc): OrderLink {
  return {
    order_id: doc.order_id,
    profile_id: doc.profile_id,
    total: doc.total ?? null,
    currency: doc.currency ?? null,
    created_at: doc.created_at,
    linked_at: doc.linked_at,
  };
}
