/**
 * The SDK's plain types (sdk/types.ts) against the zod contracts the services validate with: the type
 * check (`npm run typecheck`, part of `npm test`) fails when they drift apart; the test below checks
 * that real values pass both.
 */
import type { z } from "zod";
import type * as auth from "../../shared/contracts/auth";
import * as mailer from "../../shared/contracts/mailer";
import * as lists from "../../shared/contracts/profile-lists";
import * as contracts from "../../shared/contracts/profiles";
import type * as sdk from "../types";

/** Each assignable to the other. */
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
/**
 * What an SDK method takes against its action's params (less the store and what the SDK fills in): the
 * same field names, and every value the SDK type allows is one the schema accepts. One way only, since a
 * query-string field's input side is `unknown` (`limit` is coerced from text, `ids` parsed from JSON).
 */
type Fits<A, B> = [keyof A] extends [keyof B] ? ([keyof B] extends [keyof A] ? ([A] extends [B] ? true : false) : false) : false;
type Params<S extends z.ZodType, Drop extends string = never> = Omit<z.input<S>, "store_id" | Drop>;

const answers: [
  Same<sdk.Profile, z.output<typeof contracts.Profile>>,
  Same<sdk.ConnectResult, z.output<typeof contracts.ConnectResult>>,
  Same<sdk.OrderLink, z.output<typeof contracts.OrderLink>>,
  Same<sdk.AuthToken, z.output<typeof auth.AuthToken>>,
  Same<sdk.ProfileStatus, z.output<typeof contracts.ProfileStatus>>,
] = [true, true, true, true, true];

const listAnswers: [
  Same<sdk.ProfileList, z.output<typeof lists.ProfileList>>,
  Same<sdk.ProfileListType, z.output<typeof lists.ProfileListType>>,
  Same<sdk.ProfileListStatus, z.output<typeof lists.ProfileListStatus>>,
  Same<sdk.Price, z.output<typeof lists.Price>>,
  Same<sdk.Membership, z.output<typeof lists.Membership>>,
  Same<sdk.MembershipStatus, z.output<typeof lists.MembershipStatus>>,
  Same<sdk.ConsentMethod, z.output<typeof lists.ConsentMethod>>,
  Same<sdk.Consent, z.output<typeof lists.Consent>>,
  Same<sdk.Payment, z.output<typeof lists.Payment>>,
  Same<sdk.ProfileListMember, z.output<typeof lists.ProfileListMember>>,
  Same<{ items: sdk.ProfileList[]; cursor: string | null }, z.output<typeof lists.ProfileListPage>>,
  Same<{ items: sdk.ProfileListMember[]; cursor: string | null }, z.output<typeof lists.ProfileListMemberPage>>,
  Same<sdk.SubscribeResult, z.output<typeof lists.SubscribeResult>>,
  Same<sdk.AccessResult, z.output<typeof lists.AccessResult>>,
  Same<sdk.UnsubscribeResult, z.output<typeof lists.UnsubscribeResult>>,
  Same<sdk.ImportError, z.output<typeof lists.ImportError>>,
  Same<sdk.ImportResult, z.output<typeof lists.ImportResult>>,
  Same<sdk.EmailTemplate, z.output<typeof mailer.EmailTemplate>>,
  Same<sdk.EmailTemplateStatus, z.output<typeof mailer.EmailTemplateStatus>>,
  Same<sdk.RenderedTemplate, z.output<typeof mailer.RenderedTemplate>>,
  Same<{ items: sdk.EmailTemplate[]; cursor: string | null }, z.output<typeof mailer.EmailTemplateList>>,
] = [true, true, true, true, true, true, true, true, true, true, true, true, true, true, true, true, true, true, true, true, true];

// What a caller sends: the schemas' input side (defaults such as `operation` may be left out).
const requests: [
  Same<sdk.TaxonomyEntryInput, z.input<typeof contracts.TaxonomyEntryInput>>,
  Same<sdk.TaxonomyQuery, z.input<typeof contracts.TaxonomyQuery>>,
  Same<sdk.ProfileListTypeInput, z.input<typeof lists.ProfileListTypeInput>>,
  Same<sdk.PriceInput, z.input<typeof lists.PriceInput>>,
  Same<sdk.ImportRow, z.input<typeof lists.ImportRow>>,
] = [true, true, true, true, true];

// What the methods take, field by field, against their actions' params.
const methodParams: [
  Fits<sdk.CreateProfileListParams, Params<typeof lists.ProfileListsActions.create>>,
  Fits<sdk.FindProfileListsParams, Params<typeof lists.ProfileListsActions.find>>,
  Fits<sdk.UpdateProfileListParams, Params<typeof lists.ProfileListsActions.update>>,
  Fits<sdk.FindListProfilesParams, Params<typeof lists.ProfileListsActions.members>>,
  // profile_id is the session's own unless given.
  Fits<Omit<sdk.SubscribeParams, "profile_id">, Params<typeof lists.ProfileListsActions.subscribe, "profile_id">>,
  Fits<Omit<sdk.ImportJsonParams, "csvBody"> & { id: string }, Params<typeof lists.ProfileListsActions.importProfiles>>,
  Fits<Omit<sdk.ImportCsvBodyParams, "csvBody" | "rows" | "csv">, Params<typeof lists.ProfileListsActions.importProfiles, "id" | "rows" | "csv">>,
  Fits<{ id: string; token: string }, Params<typeof lists.ProfileListsActions.confirm>>,
  Fits<{ id: string }, Params<typeof lists.ProfileListsActions.access>>,
  // An SDK unsubscribe is the session's own profile or a token (a mail client's one-click is not an SDK call).
  Fits<{ id: string; token?: string }, Params<typeof lists.ProfileListsActions.unsubscribe, "profile_id" | "List-Unsubscribe">>,
  Fits<sdk.CreateEmailTemplateParams, Params<typeof mailer.MailerActions.createTemplate>>,
  Fits<sdk.FindEmailTemplatesParams, Params<typeof mailer.MailerActions.findTemplates>>,
  Fits<sdk.UpdateEmailTemplateParams, Params<typeof mailer.MailerActions.updateTemplate>>,
  Fits<{ id: string; vars?: Record<string, unknown> }, Params<typeof mailer.MailerActions.previewTemplate>>,
] = [true, true, true, true, true, true, true, true, true, true, true, true, true, true];

const NOW = 1_750_000_000;
const UUID = "0190c5d2-1111-7000-8000-00000000cafe";

describe("SDK types", () => {
  it("mirror the contracts (checked by the type check), and a sample of each passes the contract", () => {
    expect([...answers, ...listAnswers, ...requests, ...methodParams].every(Boolean)).toBe(true);
    const query: sdk.TaxonomyQuery = { taxonomy_id: "prefs", query: [{ key: "color", type: "text", value: "teal" }] };
    expect(contracts.TaxonomyQuery.safeParse(query).success).toBe(true);
    const entry: sdk.TaxonomyEntryInput = { taxonomy_id: "geo", fields: [{ key: "home", type: "geo_location", value: { lat: 52.5, lng: 13.4 } }] };
    expect(contracts.TaxonomyEntryInput.safeParse(entry).success).toBe(true);
  });

  it("profile-list and template samples pass their contracts", () => {
    const paid: sdk.ProfileListTypeInput = {
      type: "paid",
      prices: [{ currency: "EUR", amount: 900, interval: { period: "month", count: 1 }, providers: [{ type: "stripe", id: "price_123" }] }],
    };
    expect(lists.ProfileListTypeInput.safeParse(paid).success).toBe(true);
    const create: sdk.CreateProfileListParams = { key: "vip", type: { type: "confirmation" } };
    expect(lists.ProfileListsActions.create.safeParse({ store_id: UUID, ...create }).success).toBe(true);
    const row: sdk.ImportRow = { email: "ada@example.com", fields: { "prefs.color": "teal", age: 36, vip: true } };
    expect(lists.ImportRow.safeParse(row).success).toBe(true);
    const consent: sdk.Consent = { method: "import", ip: null, user_agent: null, at: NOW, confirmed_at: null, confirmed_ip: null };
    const membership: sdk.Membership = {
      id: UUID,
      store_id: UUID,
      profile_list_id: UUID,
      profile_id: UUID,
      status: "active",
      source: "import",
      consent,
      consent_history: [],
      payment: null,
      start_date: NOW,
      end_date: null,
      created_at: NOW,
      updated_at: NOW,
    };
    const access: sdk.AccessResult = { has_access: true, membership };
    expect(lists.AccessResult.safeParse(access).success).toBe(true);
    const result: sdk.ImportResult = {
      rows_total: 2,
      profiles_created: 1,
      profiles_updated: 0,
      profiles_added: 1,
      profiles_updated_in_list: 0,
      rows_failed: 1,
      errors: [{ row: 2, field: "email", message: "must be an e-mail address" }],
    };
    expect(lists.ImportResult.safeParse(result).success).toBe(true);
    const template: sdk.CreateEmailTemplateParams = { key: "confirm", subject: "Confirm {{list.name}}", html: "<p>{{confirm_url}}</p>", text: null };
    expect(mailer.MailerActions.createTemplate.safeParse({ store_id: UUID, ...template }).success).toBe(true);
  });
});
