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

// ---------------------------------------------------------------------------------------------------
// Profile lists

export type ProfileListStatus = "active" | "draft" | "archived";

export interface PriceInterval {
  period: "month" | "year";
  count: number;
}

export interface PriceProvider {
  type: "stripe";
  /** The Stripe price id. */
  id: string;
}

/** A paid list's price as the API answers it. */
export interface Price {
  id: string;
  currency: string;
  amount: number;
  interval?: PriceInterval;
  providers: PriceProvider[];
}

/** A price as a caller gives it: the server makes `id` when it is left out. */
export interface PriceInput {
  id?: string;
  currency: string;
  amount: number;
  interval?: PriceInterval;
  providers: PriceProvider[];
}

/** standard (single opt-in), confirmation (double opt-in by an e-mail template), or paid (Stripe checkout). */
export type ProfileListType = { type: "standard" } | { type: "confirmation"; confirm_template_id: string | null } | { type: "paid"; prices: Price[] };

export type ProfileListTypeInput = { type: "standard" } | { type: "confirmation"; confirm_template_id?: string | null } | { type: "paid"; prices: PriceInput[] };

export interface ProfileList {
  id: string;
  store_id: string;
  key: string;
  name: string;
  description: string | null;
  status: ProfileListStatus;
  type: ProfileListType;
  /** Memberships with access. */
  member_count: number;
  /** A confirmation list whose template is unset or gone: it behaves as single opt-in. */
  confirm_template_missing: boolean;
  created_at: number;
  updated_at: number;
}

export type MembershipStatus = "pending" | "active" | "cancellation_scheduled" | "cancelled" | "expired" | "unsubscribed";
export type MembershipSource = "signup" | "admin" | "import" | "system";
export type ConsentMethod = "signup" | "double_opt_in" | "admin" | "import" | "checkout";

export interface Consent {
  method: ConsentMethod;
  ip: string | null;
  user_agent: string | null;
  at: number;
  confirmed_at: number | null;
  confirmed_ip: string | null;
}

export interface Payment {
  provider: "stripe";
  price_id: string;
  checkout_session_id: string | null;
  subscription_id: string | null;
  customer_id: string | null;
  current_period_end: number | null;
}

export interface Membership {
  id: string;
  store_id: string;
  profile_list_id: string;
  profile_id: string;
  status: MembershipStatus;
  source: MembershipSource;
  consent: Consent;
  /** Earlier consents (a subscription ended and started afresh, a merged profile's membership). */
  consent_history: Consent[];
  payment: Payment | null;
  start_date: number | null;
  end_date: number | null;
  created_at: number;
  updated_at: number;
}

export interface ProfileListMember {
  profile: Profile;
  membership: Membership;
}

export interface SubscribeResult {
  membership: Membership;
  /** The Stripe Checkout page of a paid list; null otherwise. */
  checkout_url: string | null;
}

export interface AccessResult {
  has_access: boolean;
  membership: Membership | null;
}

export interface UnsubscribeResult {
  membership: Membership;
}

// ---------------------------------------------------------------------------------------------------
// Import

export type ImportFieldValue = string | number | boolean;

/** One row of an import: the profile is upserted by `email`. */
export interface ImportRow {
  email: string;
  taxonomies?: TaxonomyEntryInput[];
  /** Flat values: `"<taxonomy_id>.<key>"`, or a bare `"<key>"` (taxonomy "import"). */
  fields?: Record<string, ImportFieldValue>;
}

export interface ImportError {
  /** Counted from 1, the CSV header not counted. */
  row: number;
  field: string;
  message: string;
}

export interface ImportResult {
  rows_total: number;
  profiles_created: number;
  /** Existing profiles whose data changed. */
  profiles_updated: number;
  /** New memberships (0 without a list). */
  profiles_added: number;
  /** Existing memberships that changed, e.g. re-activated (0 without a list). */
  profiles_updated_in_list: number;
  rows_failed: number;
  /** The failed rows (the first 1000). */
  errors: ImportError[];
}

// ---------------------------------------------------------------------------------------------------
// E-mail templates

export type EmailTemplateStatus = "active" | "archived";

/** subject, html and text are handlebars (html escapes values by default). */
export interface EmailTemplate {
  id: string;
  store_id: string;
  key: string;
  name: string;
  subject: string;
  html: string;
  text: string | null;
  status: EmailTemplateStatus;
  created_at: number;
  updated_at: number;
}

/** What a preview answers: the template rendered with the given vars. */
export interface RenderedTemplate {
  subject: string;
  html: string;
  text: string | null;
}

// ---------------------------------------------------------------------------------------------------
// What the profile-list and e-mail-template methods take (path parameters as the route table names them)

export interface CreateProfileListParams {
  key: string;
  name?: string;
  description?: string | null;
  /** Default `{ type: "standard" }`. */
  type?: ProfileListTypeInput;
}

export interface FindProfileListsParams {
  ids?: string[];
  status?: ProfileListStatus;
  /** A prefix of the key or the name, or of any word in them. */
  query?: string;
  /** 1..100, default 50. */
  limit?: number;
  cursor?: string;
}

export interface UpdateProfileListParams {
  id: string;
  key?: string;
  name?: string;
  description?: string | null;
  status?: ProfileListStatus;
  /** The kind never changes; a paid list's prices may. */
  type?: ProfileListTypeInput;
}

export interface FindListProfilesParams {
  id: string;
  status?: MembershipStatus;
  /** 1..100, default 50. */
  limit?: number;
  cursor?: string;
}

export interface SubscribeParams {
  id: string;
  /** The session's own profile; default: the profile of the current session. */
  profile_id?: string;
  /** Double opt-in: the page the e-mailed link opens (it adds `token` and `profile_list_id`). */
  confirm_url?: string;
  /** Paid lists: the price's `id` or its Stripe price id, and Stripe Checkout's return pages. */
  price_id?: string;
  success_url?: string;
  cancel_url?: string;
}

/** The rows of an import as JSON: `rows`, or `csv` text with a header row. */
export interface ImportJsonParams {
  rows?: ImportRow[];
  csv?: string;
  /** The CSV column holding the e-mail (default "email"). */
  email_column?: string;
  csvBody?: never;
}

/** The rows of an import as a `text/csv` body: text, a Blob/File, or a byte stream (sent as it is read). */
export interface ImportCsvBodyParams {
  csvBody: string | Blob | ReadableStream<Uint8Array>;
  /** The CSV column holding the e-mail (default "email"), sent in the query string. */
  email_column?: string;
  rows?: never;
  csv?: never;
}

export type ImportProfilesParams = ImportJsonParams | ImportCsvBodyParams;

export interface CreateEmailTemplateParams {
  key: string;
  /** Default: the key. */
  name?: string;
  subject: string;
  html: string;
  text?: string | null;
  /** Default "active". */
  status?: EmailTemplateStatus;
}

export interface FindEmailTemplatesParams {
  ids?: string[];
  status?: EmailTemplateStatus;
  /** A prefix of the key or of a word of the name (case-insensitive). */
  query?: string;
  /** 1..100, default 20. */
  limit?: number;
  cursor?: string;
}

export interface UpdateEmailTemplateParams {
  id: string;
  key?: string;
  name?: string;
  subject?: string;
  html?: string;
  text?: string | null;
  status?: EmailTemplateStatus;
}
