/**
 * The profile-lists service's wire objects (ProfileList, ProfileListType, Membership, ProfileListMember) and
 * the params schemas of its actions, the one place callers and the service agree on. The gateway routes and
 * the OpenAPI document are built from the same schemas.
 */
import { z } from "zod";
import { PaymentChange } from "./billing";
import { CursorParam, Email, fromQueryJson, limitParam, listResult, ONE_LINE, StoreId, Uuid } from "./common";
import { Profile, TaxonomiesInput } from "./profiles";

export const LIST_KEY_RE = /^[A-Za-z0-9_-]{1,64}$/;
export const ListKey = z.string().regex(LIST_KEY_RE, "must be 1-64 letters, digits, hyphens or underscores");

export const ProfileListStatus = z.enum(["active", "draft", "archived"]);
export type ProfileListStatus = z.infer<typeof ProfileListStatus>;

const Interval = z.object({ period: z.enum(["month", "year"]), count: z.number().int().min(1).max(12) });
const PriceProvider = z.object({ type: z.literal("stripe"), id: z.string().trim().min(1).max(255) });
const PriceId = z.string().trim().min(1).max(128);
const Currency = z
  .string()
  .regex(/^[A-Za-z]{3}$/, "must be a 3-letter currency code")
  .overwrite((c) => c.toLowerCase());

export const Price = z.object({
  id: PriceId,
  currency: z.string(),
  amount: z.number().int().min(0),
  interval: Interval.optional(),
  providers: z.array(PriceProvider),
});
export type Price = z.infer<typeof Price>;

/** A price as a caller gives it: `id` is made by the server when absent. */
export const PriceInput = z.object({
  id: PriceId.optional(),
  currency: Currency,
  amount: z.number().int().min(0).max(100_000_000),
  interval: Interval.optional(),
  providers: z.array(PriceProvider).min(1).max(5),
});

export const ProfileListType = z.discriminatedUnion("type", [
  z.object({ type: z.literal("standard") }),
  z.object({ type: z.literal("confirmation"), confirm_template_id: Uuid.nullable() }),
  z.object({ type: z.literal("paid"), prices: z.array(Price) }),
]);
export type ProfileListType = z.infer<typeof ProfileListType>;

export const ProfileListTypeInput = z.discriminatedUnion("type", [
  z.object({ type: z.literal("standard") }),
  z.object({ type: z.literal("confirmation"), confirm_template_id: Uuid.nullable().optional() }),
  z.object({
    type: z.literal("paid"),
    prices: z
      .array(PriceInput)
      .min(1, "a paid list needs at least one price")
      .max(20)
      .refine((prices) => unique(prices.map((p) => p.id).filter((id) => id !== undefined)), "price ids must be unique within the list")
      .refine((prices) => unique(prices.flatMap((p) => p.providers.map((s) => s.id))), "Stripe price ids must be unique within the list"),
  }),
]);
export type ProfileListTypeInput = z.infer<typeof ProfileListTypeInput>;

function unique(values: string[]): boolean {
  return new Set(values).size === values.length;
}

export const ProfileList = z.object({
  id: Uuid,
  store_id: StoreId,
  key: z.string(),
  name: z.string(),
  description: z.string().nullable(),
  status: ProfileListStatus,
  type: ProfileListType,
  member_count: z.number().int().describe("memberships with access"),
  confirm_template_missing: z.boolean().describe("a confirmation list whose template is unset, unknown, of another store or deleted: it behaves as single opt-in"),
  created_at: z.number().int(),
  updated_at: z.number().int(),
});
export type ProfileList = z.infer<typeof ProfileList>;

export const MembershipStatus = z.enum(["pending", "active", "cancellation_scheduled", "cancelled", "expired", "unsubscribed"]);
export type MembershipStatus = z.infer<typeof MembershipStatus>;

export const ConsentMethod = z.enum(["signup", "double_opt_in", "admin", "import", "checkout"]);

export const Consent = z.object({
  method: ConsentMethod,
  ip: z.string().nullable(),
  user_agent: z.string().nullable(),
  at: z.number().int(),
  confirmed_at: z.number().int().nullable(),
  confirmed_ip: z.string().nullable(),
});
export type Consent = z.infer<typeof Consent>;

export const Payment = z.object({
  provider: z.literal("stripe"),
  price_id: z.string().describe("the list's price (its `id`) paid for"),
  checkout_session_id: z.string().nullable(),
  subscription_id: z.string().nullable(),
  customer_id: z.string().nullable(),
  current_period_end: z.number().int().nullable().describe("the end of the period paid for (subscriptions)"),
});
export type Payment = z.infer<typeof Payment>;

export const Membership = z.object({
  id: Uuid,
  store_id: StoreId,
  profile_list_id: Uuid,
  profile_id: Uuid,
  status: MembershipStatus,
  source: z.enum(["signup", "admin", "import", "system"]),
  consent: Consent,
  consent_history: z.array(Consent).describe("earlier consents: of a subscription that was ended and started afresh, and of a merged profile's membership of this list"),
  payment: Payment.nullable(),
  start_date: z.number().int().nullable(),
  end_date: z.number().int().nullable(),
  created_at: z.number().int(),
  updated_at: z.number().int(),
});
export type Membership = z.infer<typeof Membership>;

export const ProfileListMember = z.object({ profile: Profile, membership: Membership });
export type ProfileListMember = z.infer<typeof ProfileListMember>;

export const ProfileListPage = listResult(ProfileList);
export const ProfileListMemberPage = listResult(ProfileListMember);
export const SubscribeResult = z.object({ membership: Membership, checkout_url: z.string().nullable() });
export const AccessResult = z.object({ has_access: z.boolean(), membership: Membership.nullable() });
export type AccessResult = z.infer<typeof AccessResult>;
export const UnsubscribeResult = z.object({ membership: Membership });

/** Control characters other than tab and line breaks (which are text in a CSV cell). */
// biome-ignore lint/suspicious/noControlCharactersInRegex: it finds control characters
const CONTROL_CHARACTERS = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/;

/** A flat field of an import row: `<taxonomy_id>.<key>`, or a bare `<key>` of the IMPORT_TAXONOMY_ID taxonomy. */
export const ImportFieldValue = z.union([
  z
    .string()
    .max(1000)
    .refine((text) => !CONTROL_CHARACTERS.test(text), "must not contain control characters"),
  z.number().finite(),
  z.boolean(),
]);
/** Where an import row's bare field keys (and a CSV file's bare column names) go. */
export const IMPORT_TAXONOMY_ID = "import";

/** One row of an import, checked row by row (a bad row is reported, the others go on). */
export const ImportRow = z.object({
  email: Email,
  taxonomies: TaxonomiesInput.optional(),
  fields: z
    .record(z.string().trim().min(1).max(229), ImportFieldValue)
    .refine((fields) => Object.keys(fields).length <= 100, "at most 100 fields")
    .optional()
    .describe(`flat values: "<taxonomy_id>.<key>" or a bare "<key>" (taxonomy "${IMPORT_TAXONOMY_ID}"); merged into the profile's taxonomies`),
});
export type ImportRow = z.infer<typeof ImportRow>;

/** How long an import call may run (a 50 MB file is a few minutes at worst). */
export const IMPORT_TIMEOUT_MS = 15 * 60_000;

/** The most errors an import answers in `errors` (rows_failed counts them all). */
export const MAX_IMPORT_ERRORS = 1000;

export const ImportError = z.object({ row: z.number().int().describe("counted from 1, the CSV header not counted"), field: z.string(), message: z.string() });
export type ImportError = z.infer<typeof ImportError>;

export const ImportResult = z.object({
  rows_total: z.number().int(),
  profiles_created: z.number().int(),
  profiles_updated: z.number().int().describe("existing profiles whose data changed"),
  profiles_added: z.number().int().describe("new memberships (0 without a list)"),
  profiles_updated_in_list: z.number().int().describe("existing memberships that changed, e.g. re-activated (0 without a list)"),
  rows_failed: z.number().int(),
  errors: z.array(ImportError).describe(`the failed rows, the first ${MAX_IMPORT_ERRORS}`),
});
export type ImportResult = z.infer<typeof ImportResult>;

const ListRef = { store_id: StoreId, id: Uuid };
/** A flag in a query string (`?at_period_end=true`), or a boolean from another service. */
const QueryFlag = z.union([z.boolean(), z.enum(["true", "false"]).transform((flag) => flag === "true")]);
const Text = (max: number) => z.string().trim().max(max);
/** A list's name: one line of text (it goes into mail subjects), no control characters. */
const ListName = Text(200).min(1).regex(ONE_LINE, "must be one line without control characters");
/** An opaque token from an e-mail link. */
const LinkToken = z.string().trim().min(16).max(256);

export const ProfileListsActions = {
  /** `profile-lists.create` (admin) -> ProfileList; 409 when the key is taken in the store. */
  create: z.object({
    store_id: StoreId,
    key: ListKey,
    name: ListName.optional(),
    description: Text(2000).nullable().optional(),
    type: ProfileListTypeInput.default({ type: "standard" }),
  }),
  /** `profile-lists.get` (admin) -> ProfileList */
  get: z.object(ListRef),
  /** `profile-lists.find` (admin) -> { items: ProfileList[], cursor }, newest first. */
  find: z.object({
    store_id: StoreId,
    ids: fromQueryJson(z.array(Uuid).max(100)).optional().describe("JSON array of list ids (or repeated `ids`)"),
    status: ProfileListStatus.optional(),
    query: Text(200).regex(ONE_LINE, "must not contain control characters").optional().describe("a prefix of the key or the name, or of any word in them"),
    limit: limitParam(50),
    cursor: CursorParam,
  }),
  /** `profile-lists.update` (admin) -> ProfileList; the type's kind never changes (400 naming `type`). */
  update: z.object({
    ...ListRef,
    key: ListKey.optional(),
    name: ListName.optional(),
    description: Text(2000).nullable().optional(),
    status: ProfileListStatus.optional(),
    type: ProfileListTypeInput.optional(),
  }),
  /** `profile-lists.members` (admin) -> { items: ProfileListMember[], cursor }, oldest first. */
  members: z.object({ ...ListRef, status: MembershipStatus.optional(), limit: limitParam(50), cursor: CursorParam }),
  /** `profile-lists.addMember` (admin) -> Membership; an existing membership is answered unchanged. */
  addMember: z.object({ ...ListRef, profile_id: Uuid }),
  /**
   * `profile-lists.removeMember` (admin) -> { deleted: true }; access ends at once, and a paid member's Stripe
   * subscription is cancelled first. With `at_period_end`, the subscription is cancelled at its period's end
   * and the membership stays `cancellation_scheduled` until `end_date`.
   */
  removeMember: z.object({
    ...ListRef,
    profile_id: Uuid,
    at_period_end: QueryFlag.default(false).describe("paid members: cancel the subscription at the end of the period paid for, not now"),
  }),
  /** `profile-lists.subscribe` (profile session of `profile_id`) -> { membership, checkout_url }. */
  subscribe: z.object({
    ...ListRef,
    profile_id: Uuid,
    confirm_url: z.string().trim().max(2048).optional().describe("https page (http on localhost) on an allowed origin; the e-mailed link adds token and profile_list_id"),
    price_id: z.string().trim().max(255).optional().describe("paid lists (required there): a price's `id`, or its Stripe price id"),
    success_url: z
      .string()
      .trim()
      .max(2048)
      .optional()
      .describe("paid lists (required there): where Stripe Checkout returns after payment; https (http on localhost) on an allowed origin"),
    cancel_url: z.string().trim().max(2048).optional().describe("paid lists (required there): where Stripe Checkout returns when the customer cancels; same rules"),
  }),
  /** `profile-lists.confirm` (public; the token is the credential) -> Membership */
  confirm: z.object({ ...ListRef, token: LinkToken }),
  /** `profile-lists.access` (profile session) -> { has_access, membership } */
  access: z.object(ListRef),
  /**
   * `profile-lists.importProfiles` (admin) -> ImportResult: upserts profiles by e-mail and, with a list `id`,
   * makes them active members (source import). The rows come as `rows`, as `csv` text, or as a `text/csv`
   * body the gateway streams to the action (`ctx.stream`).
   */
  importProfiles: z.object({
    store_id: StoreId,
    id: Uuid.optional().describe("the list; absent on POST /profiles/import"),
    rows: z.array(z.unknown()).max(100_000).optional().describe("ImportRow objects: { email, taxonomies?, fields? }, each checked on its own"),
    csv: z.string().optional().describe("CSV text with a header row"),
    email_column: z.string().trim().min(1).max(229).optional().describe('the CSV column holding the e-mail (default "email")'),
  }),
  /** `profile-lists.applyPaymentChange` (billing, in one process; over NATS the same change comes as `billing.payment-changed`) -> { applied } */
  applyPaymentChange: PaymentChange,
  /** `profile-lists.unsubscribe` (a session of the profile, or the token of a list mail) -> { membership } */
  unsubscribe: z.object({
    ...ListRef,
    token: LinkToken.optional(),
    profile_id: Uuid.optional().describe("the session's own profile (the default)"),
    "List-Unsubscribe": z.string().max(64).optional().describe("RFC 8058 one-click: `One-Click`"),
  }),
} as const;
