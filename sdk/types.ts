/**
 * The wire objects as plain TypeScript, so the SDK's declarations stand alone (no zod, no paths outside
 * `sdk/`). They mirror the zod contracts in shared/contracts; sdk/__tests__/types.test.ts fails the type
 * check when the two drift apart.
 */

export type ProfileStatus = "active" | "archived";

export interface GeoLocation {
  lat: number;
  lng: number;
}

type FieldValues =
  | { type: "text"; value: string }
  | { type: "number"; value: number }
  | { type: "boolean"; value: boolean }
  | { type: "geo_location"; value: GeoLocation };

export type TaxonomyField = { id: string; key: string } & FieldValues;
/** A field as a caller gives it: the service assigns `id` when it is left out. */
export type TaxonomyFieldInput = { id?: string; key: string } & FieldValues;

export interface TaxonomyEntry {
  taxonomy_id: string;
  fields: TaxonomyField[];
}

export interface TaxonomyEntryInput {
  taxonomy_id: string;
  fields: TaxonomyFieldInput[];
}

export type TaxonomyOperation = "eq" | "ne" | "gt" | "gte" | "lt" | "lte" | "in" | "contains";
type Scalar = string | number | boolean;

export interface TaxonomyCondition {
  key: string;
  type: "text" | "number" | "boolean" | "geo_location";
  /** Default "eq". */
  operation?: TaxonomyOperation;
  value: Scalar | GeoLocation | Scalar[];
}

export interface TaxonomyQuery {
  taxonomy_id: string;
  query: TaxonomyCondition[];
}

export interface PromoUsage {
  promo_code_id: string;
  uses: number;
}

/** Session metadata (never a token value). */
export interface SessionInfo {
  id: string;
  created_at: number;
  expires_at: number;
  last_used_at: number | null;
  is_verified: boolean;
}

/** Login-code metadata (never a code value). */
export interface VerificationCodeInfo {
  id: string;
  created_at: number;
  expires_at: number;
  used: boolean;
  attempts: number;
}

export interface Profile {
  id: string;
  store_id: string;
  email: string | null;
  verified: boolean;
  status: ProfileStatus;
  taxonomies: TaxonomyEntry[];
  promo_usage: PromoUsage[];
  auth_tokens: SessionInfo[];
  verification_codes: VerificationCodeInfo[];
  created_at: number;
  updated_at: number;
}

export interface AuthToken {
  /** The session id. */
  id: string;
  profile_id: string;
  access_token: string;
  refresh_token: string;
  token_type: "Bearer";
  access_expires_at: number;
  refresh_expires_at: number;
  created_at: number;
  is_verified: boolean;
}

/** What `connect` answers: the Profile with the fresh (unverified) session under `token`. */
export interface ConnectResult extends Profile {
  token: AuthToken;
}

export interface OrderLink {
  order_id: string;
  profile_id: string;
  total: number | null;
  currency: string | null;
  created_at: number;
  linked_at: number;
}
