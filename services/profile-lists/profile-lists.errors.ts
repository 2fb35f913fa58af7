/**
 * The profile-lists service's error catalog: a stable `reason` per failure (in `data.reason`) and its public
 * message (see shared/errors.ts). Nothing internal goes in a message.
 */
import type { ImportResult } from "../../shared/contracts/profile-lists";
import { crmError, validationError } from "../../shared/errors";

/** Retry-After of a subscribe whose confirmation template is broken (the store has to fix it first). */
const CONFIRM_TEMPLATE_RETRY_SECONDS = 600;

/** What an import that stopped half way wrote before it stopped. */
function importedBefore(done: ImportResult, intoList: boolean): string {
  return (
    `The ${done.rows_total} rows before it were imported (${done.profiles_created} profiles created, ${done.profiles_updated} updated, ` +
    `${intoList ? `${done.profiles_added} added to the list, ` : ""}${done.rows_failed} failed)`
  );
}

export const ProfileListsErrors = {
  listNotFound: () => crmError("NOT_FOUND", "Profile list not found", { reason: "LIST_NOT_FOUND" }),
  membershipNotFound: () => crmError("NOT_FOUND", "The profile is not a member of this list", { reason: "MEMBERSHIP_NOT_FOUND" }),
  profileNotFound: () => crmError("NOT_FOUND", "Profile not found", { reason: "PROFILE_NOT_FOUND" }),
  optOutKept: () =>
    crmError(
      "CONFLICT",
      "The profile unsubscribed from this list: it has no access, and its opt-out is kept so that no import or admin adds it again (it can subscribe again itself)",
      { reason: "OPT_OUT_KEPT" },
    ),
  keyTaken: () => crmError("CONFLICT", "Another profile list of this store already uses this key", { reason: "LIST_KEY_TAKEN" }),
  typeImmutable: () => validationError("type", "the type of a profile list cannot be changed", "The type of a profile list cannot be changed"),
  sessionRequired: () => crmError("UNAUTHENTICATED", "Authentication required", { reason: "SESSION_REQUIRED" }),
  unsubscribeCredentialMissing: () =>
    crmError("UNAUTHENTICATED", "Unsubscribing needs the profile's session, or the token of a list e-mail's unsubscribe link (?token= or { \"token\" })", {
      reason: "SESSION_REQUIRED",
    }),
  verificationRequired: () =>
    crmError("FORBIDDEN", "This session has not proved the profile's e-mail address: verify it with a code first, or use the unsubscribe link of a list e-mail", {
      reason: "VERIFICATION_REQUIRED",
    }),
  notYourProfile: () => crmError("FORBIDDEN", "The session may only act for its own profile", { reason: "NOT_YOUR_PROFILE" }),
  profileHasNoEmail: () => validationError("profile_id", "the profile has no e-mail to confirm", "The profile has no e-mail address yet (connect first)"),
  confirmUrlRequired: () => validationError("confirm_url", "required for a double opt-in list", "confirm_url is required for this list"),
  linkHasControlCharacters: (field: string) => validationError(field, "must not contain line breaks, tabs or other control characters"),
  linkNotAllowed: (field: string) => validationError(field, "must be https (http on localhost) on an origin the deployment allows (LINK_ORIGINS)"),
  invalidToken: () => validationError("token", "invalid, used or expired token", "The link is invalid, used or expired"),
  priceIdRequired: () => validationError("price_id", "required for a paid list", "price_id is required for this list"),
  unknownPrice: () => validationError("price_id", "not a price of this list (give its id or its Stripe price id)"),
  checkoutUrlRequired: (field: "success_url" | "cancel_url") => validationError(field, "required for a paid list", `${field} is required for this list`),
  noSubscription: () =>
    validationError(
      "at_period_end",
      "only a paid subscription with access ends at its period's end",
      "This membership has no running subscription to end at its period's end",
    ),
  listNotOpen: () => validationError("id", "the list is not active", "This list does not take subscriptions"),
  resendTooSoon: (retryAfter: number) =>
    crmError("RATE_LIMITED", "A confirmation e-mail was sent moments ago; try again shortly", { reason: "RESEND_TOO_SOON", retryAfter }),
  // A long Retry-After: each try counts against the address's hourly confirmation mails.
  confirmTemplateBroken: () =>
    crmError("SERVICE_UNAVAILABLE", "This list's confirmation e-mail cannot be sent: its template fails to render; the store has to fix the template", {
      reason: "CONFIRM_TEMPLATE_BROKEN",
      retryAfter: CONFIRM_TEMPLATE_RETRY_SECONDS,
    }),
  confirmTemplateArchived: () =>
    crmError("SERVICE_UNAVAILABLE", "This list's confirmation e-mail cannot be sent: its template is archived; the store has to make it active again", {
      reason: "CONFIRM_TEMPLATE_ARCHIVED",
      retryAfter: CONFIRM_TEMPLATE_RETRY_SECONDS,
    }),
  recipientRefused: () =>
    validationError("profile_id", "the mail server refused the profile's e-mail address", "The mail server refused this profile's e-mail address; check it for typos"),
  rateLimited: (retryAfter: number) => crmError("RATE_LIMITED", "Too many confirmation e-mails; try again later", { reason: "MAIL_RATE_LIMITED", retryAfter }),
  importSourceMissing: () => validationError("rows", "give rows, csv, or a text/csv body", "Nothing to import: send rows, csv, or a text/csv body"),
  importSourceTwice: () => validationError("rows", "give one of rows, csv or a text/csv body"),
  emailColumnMissing: (column: string) =>
    validationError(
      "email_column",
      `the CSV header has no "${column}" column`,
      `The CSV header has no "${column}" column (set email_column to the column holding the e-mail)`,
    ),
  csvUnreadable: (row: number, message: string, done: ImportResult, intoList: boolean) =>
    validationError(
      "csv",
      `row ${row}: ${message}`,
      `The CSV cannot be read from row ${row} on (${message}). ${importedBefore(done, intoList)}; the rest of the file was not read. ` +
        "Fix that row and import the file again: rows already imported change nothing",
    ),
  /**
   * A streamed body (no Content-Length) passed IMPORT_BODY_LIMIT while it was being imported: still 413, saying
   * what was imported before, as a declared length over the limit is refused before anything is read.
   */
  importBodyTooLarge: (limitMessage: string, done: ImportResult, intoList: boolean) =>
    crmError(
      "PAYLOAD_TOO_LARGE",
      `${limitMessage}. ${importedBefore(done, intoList)}; the rest of the body was not read. Import the rest in another ` +
        "request, or the whole file again in smaller parts (rows already imported change nothing)",
    ),
  csvHeaderInvalid: (message: string) => validationError("csv", message, `The CSV header is not usable: ${message}`),
  paidListImport: () => validationError("id", "a paid list gets its members through checkout", "Profiles cannot be imported into a paid list"),
  concurrentUpdate: () => crmError("CONFLICT", "The membership changed concurrently; try again", { reason: "CONCURRENT_UPDATE" }),
} as const;
