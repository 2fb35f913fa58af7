/**
 * The profiles service's wire objects (Profile, TaxonomyEntry, TaxonomyQuery, OrderLink) and the params
 * schemas of its actions. The gateway routes and the OpenAPI document are built from the same schemas.
 */
import { z } from "zod";
import { AuthToken, SessionInfo, VerificationCodeInfo } from "./auth";
import { CursorParam, Email, ONE_LINE, StoreId, Uuid, fromQueryJson, limitParam, listResult } from "./common";

export const ProfileStatus = z.enum(["active", "archived"]);
export type ProfileStatus = z.infer<typeof ProfileStatus>;

export const TaxonomyFieldType = z.enum(["text", "number", "boolean", "geo_location"]);
export type TaxonomyFieldType = z.infer<typeof TaxonomyFieldType>;

export const GeoLocation = z.object({ lat: z.number().min(-90).max(90), lng: z.number().min(-180).max(180) });

const TaxonomyId = z.string().trim().min(1).max(128);
const FieldKey = z.string().trim().min(1).max(100);
const FieldId = z.string().trim().min(1).max(128);
const TextValue = z.string().max(1000);
const NumberValue = z.number().finite();

/** A field as given by a caller: `id` may be omitted (the service assigns one). */
function fieldSchema<I extends z.ZodType>(id: I) {
  return z.discriminatedUnion("type", [
    z.object({ id, key: FieldKey, type: z.literal("text"), value: TextValue }),
    z.object({ id, key: FieldKey, type: z.literal("number"), value: NumberValue }),
    z.object({ id, key: FieldKey, type: z.literal("boolean"), value: z.boolean() }),
    z.object({ id, key: FieldKey, type: z.literal("geo_location"), value: GeoLocation }),
  ]);
}

export const TaxonomyField = fieldSchema(FieldId);
export type TaxonomyField = z.infer<typeof TaxonomyField>;

export const TaxonomyEntry = z.object({ taxonomy_id: TaxonomyId, fields: z.array(TaxonomyField) });
export type TaxonomyEntry = z.infer<typeof TaxonomyEntry>;

export const TaxonomyFieldInput = fieldSchema(FieldId.optional());
export const TaxonomyEntryInput = z.object({
  taxonomy_id: TaxonomyId,
  fields: z
    .array(TaxonomyFieldInput)
    .max(100)
    .refine((fields) => new Set(fields.map((f) => f.key)).size === fields.length, "field keys must be unique within a taxonomy entry"),
});
export type TaxonomyEntryInput = z.infer<typeof TaxonomyEntryInput>;

/** The most a profile's taxonomies may weigh as JSON: a page of 100 profiles stays a few MB at most. */
export const TAXONOMIES_MAX_BYTES = 64 * 1024;

/** Bytes of JSON a field or an entry may take besides its strings: names, punctuation, a number (at most 24), a geo_location. */
const FIELD_JSON_OVERHEAD = 128;
const ENTRY_JSON_OVERHEAD = 64;

/**
 * Whether taxonomies take at most TAXONOMIES_MAX_BYTES as JSON. They are serialized only when a bound
 * says they might not (each UTF-16 unit of a string is at most 6 bytes of JSON, a \u escape): checking
 * every row of an import by serializing it cost more than the rest of its validation.
 */
export function taxonomiesFitJsonLimit(entries: TaxonomyEntryInput[]): boolean {
  let bound = 2; // [ and ]
  for (const entry of entries) {
    bound += ENTRY_JSON_OVERHEAD + 6 * entry.taxonomy_id.length;
    for (const field of entry.fields) {
      bound += FIELD_JSON_OVERHEAD + 6 * (field.key.length + (field.id?.length ?? 0) + (typeof field.value === "string" ? field.value.length : 0));
    }
  }
  return bound <= TAXONOMIES_MAX_BYTES || Buffer.byteLength(JSON.stringify(entries)) <= TAXONOMIES_MAX_BYTES;
}

/** A profile's taxonomies: at most 50 entries, one per taxonomy_id, 64 KB in all. */
export const TaxonomiesInput = z
  .array(TaxonomyEntryInput)
  .max(50)
  .refine((entries) => new Set(entries.map((e) => e.taxonomy_id)).size === entries.length, "taxonomy_id must be unique")
  .refine(taxonomiesFitJsonLimit, "taxonomies must total at most 64 KB of JSON");

export const TaxonomyOperation = z.enum(["eq", "ne", "gt", "gte", "lt", "lte", "in", "contains"]);
export type TaxonomyOperation = z.infer<typeof TaxonomyOperation>;

const Scalar = z.union([TextValue, NumberValue, z.boolean()]);

export const TaxonomyCondition = z
  .object({
    key: FieldKey,
    type: TaxonomyFieldType,
    operation: TaxonomyOperation.default("eq"),
    value: z.union([Scalar, GeoLocation, z.array(Scalar).min(1).max(100)]),
  })
  .superRefine((c, issue) => {
    const fail = (message: string) => issue.addIssue({ code: "custom", path: ["value"], message });
    const fits = (v: unknown): boolean =>
      c.type === "text"
        ? typeof v === "string"
        : c.type === "number"
          ? typeof v === "number"
          : c.type === "boolean"
            ? typeof v === "boolean"
            : GeoLocation.safeParse(v).success;
    if (c.operation === "in") {
      if (!Array.isArray(c.value) || !c.value.every(fits)) fail(`"in" takes an array of ${c.type} values`);
    } else if (c.operation === "contains") {
      if (c.type !== "text" || typeof c.value !== "string") fail(`"contains" applies to text values`);
    } else if (["gt", "gte", "lt", "lte"].includes(c.operation)) {
      if (c.type !== "number" && c.type !== "text") fail(`"${c.operation}" applies to number and text values`);
      else if (!fits(c.value)) fail(`must be a ${c.type} value`);
    } else if (!fits(c.value)) {
      fail(`must be a ${c.type} value`);
    }
  });
export type TaxonomyCondition = z.infer<typeof TaxonomyCondition>;

export const TaxonomyQuery = z.object(
  { taxonomy_id: TaxonomyId, query: z.array(TaxonomyCondition).min(1).max(20) },
  { error: 'must be a JSON object { "taxonomy_id", "query": [conditions] } (taxonomy_query is a JSON array of them)' },
);
export type TaxonomyQuery = z.infer<typeof TaxonomyQuery>;

export const PromoUsage = z.object({ promo_code_id: z.string().min(1).max(128), uses: z.number().int().min(0) });
export type PromoUsage = z.infer<typeof PromoUsage>;

export const Profile = z
  .object({
    id: Uuid,
    store_id: StoreId,
    email: z.string().nullable(),
    verified: z.boolean(),
    status: ProfileStatus,
    taxonomies: z.array(TaxonomyEntry),
    promo_usage: z.array(PromoUsage),
    auth_tokens: z.array(SessionInfo).describe("the profile's active sessions (metadata only, never a token)"),
    verification_codes: z.array(VerificationCodeInfo).describe("login codes for the profile's e-mail (metadata only, never a code)"),
    created_at: z.number().int(),
    updated_at: z.number().int(),
  })
  .describe(
    "A store's customer profile. Redaction: whenever the caller is an unverified profile session (from connect or " +
      "initialize), whether or not the profile's e-mail was ever verified, taxonomies, promo_usage, auth_tokens and " +
      "verification_codes are returned empty (in profiles/me and in connect's answer); a verified session sees them " +
      "all. Proving control of the e-mail (auth/code + auth/verify) unlocks them.",
  );
export type Profile = z.infer<typeof Profile>;

/** What `connect` answers: the Profile, always redacted (its session is unverified), with the fresh session under `token`. */
export const ConnectResult = Profile.extend({ token: AuthToken });
export type ConnectResult = z.infer<typeof ConnectResult>;

/** An order linked to a profile (from the `order.created` durable event). */
export const OrderLink = z.object({
  order_id: z.string(),
  profile_id: Uuid,
  total: z.number().nullable(),
  currency: z.string().nullable(),
  created_at: z.number().int().describe("when the order was created (from the event; else when it was linked)"),
  linked_at: z.number().int(),
});
export type OrderLink = z.infer<typeof OrderLink>;

const SORT_ALIASES = { createdAt: "created_at", updatedAt: "updated_at", "created-at": "created_at", "updated-at": "updated_at" } as const;
/** The sort field; the spec's own spellings (`createdAt`) are taken too, and listed in the OpenAPI document. */
export const ProfileSortField = z
  .enum(["created_at", "updated_at", "email", ...(Object.keys(SORT_ALIASES) as Array<keyof typeof SORT_ALIASES>)], {
    message: "must be created_at, updated_at or email",
  })
  .transform((v) => (v in SORT_ALIASES ? SORT_ALIASES[v as keyof typeof SORT_ALIASES] : (v as "created_at" | "updated_at" | "email")))
  .default("created_at");

export const SortDirectionParam = z
  .preprocess((v) => (typeof v === "string" ? v.toLowerCase() : v), z.enum(["asc", "desc"], { message: "must be asc or desc" }))
  .default("desc");

const ProfileRef = { store_id: StoreId, id: Uuid };

/** The most rows one `profiles.upsertMany` call takes. */
export const UPSERT_BATCH_MAX = 1000;

export const ProfileActions = {
  /** `profiles.create` (admin) -> Profile; idempotent by e-mail (case-insensitive): an existing profile is returned unchanged. */
  create: z.object({ store_id: StoreId, email: Email, taxonomies: TaxonomiesInput.optional() }),
  /** `profiles.get` (admin) -> Profile; 404 when the id is not a profile of this store. */
  get: z.object(ProfileRef),
  /** `profiles.find` (admin) -> { items: Profile[], cursor } */
  find: z.object({
    store_id: StoreId,
    query: z
      .string()
      .trim()
      .max(200)
      .regex(ONE_LINE, "must not contain control characters")
      .optional()
      .describe("an id; a prefix of the e-mail or of its part from any word on (words split at . - _ + @); or an exact indexed taxonomy value"),
    taxonomy_query: fromQueryJson(z.array(TaxonomyQuery).max(10)).optional().describe("JSON array of TaxonomyQuery; all must match"),
    status: ProfileStatus.optional(),
    limit: limitParam(20),
    cursor: CursorParam,
    sort_field: ProfileSortField.describe("created_at (default), updated_at or email; createdAt/updatedAt accepted"),
    sort_direction: SortDirectionParam,
  }),
  /**
   * `profiles.update` (admin) -> Profile; 409 when the e-mail belongs to another profile. A new e-mail (not just
   * another case) is unverified, and every session of the profile is revoked and the old e-mail's codes deleted.
   */
  update: z.object({ ...ProfileRef, email: Email.optional(), taxonomies: TaxonomiesInput.optional(), status: ProfileStatus.optional() }),
  /** `profiles.merge` (admin) -> the target Profile; the source is deleted. */
  merge: z.object({ ...ProfileRef, source_id: Uuid }),
  /** `profiles.revokeSession` (admin) -> { deleted: true } */
  revokeSession: z.object({ ...ProfileRef, token_id: Uuid }),
  /** `profiles.revokeAllSessions` (admin) -> { deleted: true, revoked } */
  revokeAllSessions: z.object(ProfileRef),
  /** `profiles.listOrders` (admin) -> { items: OrderLink[], cursor }, newest first. */
  listOrders: z.object({ ...ProfileRef, limit: limitParam(20), cursor: CursorParam }),
  /** `profiles.recordPromoUse` (internal, for an order service) -> { promo_code_id, uses } */
  recordPromoUse: z.object({ ...ProfileRef, promo_code_id: z.string().min(1).max(128), uses: z.number().int().min(1).max(1000).default(1) }),
  /** `profiles.initialize` (public) -> AuthToken of a new guest profile (no e-mail, unverified session). */
  initialize: z.object({ store_id: StoreId }),
  /**
   * `profiles.connect` (optional profile session) -> ConnectResult; the session it issues is unverified. Never
   * merges: a guest takes the e-mail only when no profile has it; else it gets that profile and stays as it was.
   */
  connect: z.object({ store_id: StoreId, email: Email }),
  /**
   * `profiles.verify` (optional profile session) -> AuthToken of a new verified session. A guest caller is merged
   * into the e-mail's profile; if that merge cannot run now the guest stays separate and the session is issued anyway.
   */
  verify: z.object({ store_id: StoreId, email: Email, code: z.string().regex(/^\d{6}$/, "must be 6 digits") }),
  /** `profiles.me` (profile session) -> Profile of the caller's session (always redacted for an unverified session). */
  me: z.object({ store_id: StoreId }),
  /** `profiles.lookup` (internal, for profile-lists) -> { id, email, verified } of a profile of this store; 404 when none. */
  lookup: z.object(ProfileRef),
  /** `profiles.getMany` (internal, admin-shaped) -> the Profiles of this store among `ids` (missing ones left out). */
  getMany: z.object({ store_id: StoreId, ids: z.array(Uuid).max(100) }),
  /**
   * `profiles.upsertMany` (internal, for imports) -> { results }: each row's profile found by e-mail (its
   * taxonomies merged, the row's values winning) or created, in one batch; one result per row, in order
   * (every row of a profile the batch creates says `created`).
   */
  upsertMany: z.object({
    store_id: StoreId,
    rows: z.array(z.unknown()).max(UPSERT_BATCH_MAX).describe("UpsertRow objects, each checked on its own: a bad one gets an error result, the others are written"),
  }),
} as const;

/** One row of `profiles.upsertMany`. */
export const UpsertRow = z.object({ email: Email, taxonomies: TaxonomiesInput });
export type UpsertRow = z.infer<typeof UpsertRow>;

export const UpsertOutcome = z.enum(["created", "updated", "unchanged"]);
export type UpsertOutcome = z.infer<typeof UpsertOutcome>;
/** One row's result: its profile and what happened to it, or why it could not be written. */
export type UpsertRowResult = { profile_id: string; outcome: UpsertOutcome } | { error: { field: string; message: string } };

export const ProfileList = listResult(Profile);
export const OrderLinkList = listResult(OrderLink);
export const SentResult = z.object({ sent: z.literal(true) });
export const RevokeAllResult = z.object({ deleted: z.literal(true), revoked: z.number().int() });
