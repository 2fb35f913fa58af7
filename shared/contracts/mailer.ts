/**
 * The mailer service's wire objects (EmailTemplate) and the params schemas of its actions: the admin
 * template routes and the actions other services call. The gateway routes and the OpenAPI document are
 * built from the same schemas.
 */
import { z } from "zod";
import { CursorParam, Email, ONE_LINE, StoreId, Uuid, fromQueryJson, limitParam, listResult } from "./common";

export const EmailTemplateStatus = z.enum(["active", "archived"]);
export type EmailTemplateStatus = z.infer<typeof EmailTemplateStatus>;

/** The longest html or text source a template may have (UTF-8 bytes). */
export const TEMPLATE_BODY_MAX_BYTES = 256 * 1024;

const TemplateKey = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, "must be 1-64 letters, digits, _ or -");
const TemplateName = z.string().trim().min(1).max(200);
/** RFC 5322 caps a header line at 998 characters; it is one line, without control characters. */
const TemplateSubject = z.string().min(1).max(998).regex(ONE_LINE, "must be one line without control characters");
const TemplateBody = z.string().refine((source) => Buffer.byteLength(source) <= TEMPLATE_BODY_MAX_BYTES, "must be at most 256 KB");

export const EmailTemplate = z
  .object({
    id: Uuid,
    store_id: StoreId,
    key: z.string(),
    name: z.string(),
    subject: z.string(),
    html: z.string(),
    text: z.string().nullable(),
    status: EmailTemplateStatus,
    created_at: z.number().int(),
    updated_at: z.number().int(),
  })
  .describe(
    "A store's e-mail template. subject, html and text are handlebars: html escapes values by default; no prototype access; " +
      "a missing variable is a 400 naming vars in a preview and an empty string in a real send.",
  );
export type EmailTemplate = z.infer<typeof EmailTemplate>;

export const RenderedTemplate = z.object({ subject: z.string(), html: z.string(), text: z.string().nullable() });
export type RenderedTemplate = z.infer<typeof RenderedTemplate>;

const TemplateRef = { store_id: StoreId, id: Uuid };

/** Variables a template is rendered with (what `{{profile.email}}` reads). */
const TemplateVars = z.record(z.string(), z.unknown());

/** An `https:`/`http:` URL that can sit in a header: no whitespace (so no CR/LF) and no angle brackets. */
const HeaderUrl = z
  .string()
  .max(2048)
  .regex(/^https?:\/\/[^\s<>]+$/, "must be an http(s) URL without whitespace, line breaks or angle brackets");

export const MailerActions = {
  /**
   * `mailer.sendMagicCode` -> { message_id } — renders the login-code e-mail (handlebars, text + HTML)
   * and sends it; a failed send is a SERVICE_UNAVAILABLE (503) error, and a recipient the mail server
   * refuses for good is a VALIDATION_ERROR on `to` marked with `data.reason` = RECIPIENT_REFUSED.
   */
  sendMagicCode: z.object({
    store_id: StoreId,
    to: Email,
    code: z.string().regex(/^\d{6}$/),
    expires_in_minutes: z.number().int().positive(),
  }),

  /** `mailer.createTemplate` (admin) -> EmailTemplate; 409 when the key is taken in the store; 400 naming a field that does not compile. */
  createTemplate: z.object({
    store_id: StoreId,
    key: TemplateKey,
    name: TemplateName.optional().describe("defaults to the key"),
    subject: TemplateSubject,
    html: TemplateBody,
    text: TemplateBody.nullable().optional(),
    status: EmailTemplateStatus.optional().describe("default active"),
  }),
  /** `mailer.findTemplates` (admin) -> { items: EmailTemplate[], cursor }, newest first. */
  findTemplates: z.object({
    store_id: StoreId,
    ids: fromQueryJson(z.array(Uuid).min(1).max(100)).optional().describe("JSON array of template ids"),
    status: EmailTemplateStatus.optional(),
    query: z
      .string()
      .trim()
      .max(200)
      .regex(ONE_LINE, "must not contain control characters")
      .optional()
      .describe("a prefix of the key or of a word of the name (case-insensitive)"),
    limit: limitParam(20),
    cursor: CursorParam,
  }),
  /** `mailer.getTemplate` (admin) -> EmailTemplate; 404 (reason TEMPLATE_NOT_FOUND) when it is not a template of this store. */
  getTemplate: z.object(TemplateRef),
  /** `mailer.updateTemplate` (admin) -> EmailTemplate; the fields given replace the stored ones; 409 on a taken key. */
  updateTemplate: z.object({
    ...TemplateRef,
    key: TemplateKey.optional(),
    name: TemplateName.optional(),
    subject: TemplateSubject.optional(),
    html: TemplateBody.optional(),
    text: TemplateBody.nullable().optional(),
    status: EmailTemplateStatus.optional(),
  }),
  /** `mailer.deleteTemplate` (admin) -> { deleted: true }; publishes `email-template.deleted` durably. */
  deleteTemplate: z.object(TemplateRef),
  /** `mailer.previewTemplate` (admin) -> { subject, html, text } rendered strictly: a missing variable is a 400 naming `vars`. */
  previewTemplate: z.object({ ...TemplateRef, vars: TemplateVars.default({}) }),

  /**
   * `mailer.templateStatus` -> { usable, archived } — whether `template_id` is a template of `store_id` that
   * is active, and whether it is one of the store's that is archived (it can be made active again, so it is
   * not missing: what a list's `confirm_template_missing` reads). Never an error for an unknown id.
   */
  templateStatus: z.object({ store_id: StoreId, template_id: Uuid }),
  /**
   * `mailer.sendTemplate` -> { message_id } — renders the store's active template with `vars` (not
   * strict: a missing variable is an empty string) and sends it to `to`. With `list_unsubscribe` the mail
   * carries `List-Unsubscribe: <url>` and `List-Unsubscribe-Post: List-Unsubscribe=One-Click` (RFC 8058);
   * a url with whitespace, a line break or angle brackets is a 400 on `list_unsubscribe.url`.
   * Errors: 404 NOT_FOUND with `data.reason` = TEMPLATE_NOT_FOUND when the template is missing or of
   * another store; 409 CONFLICT with `data.reason` = TEMPLATE_ARCHIVED when the store's template is
   * archived; 503 SERVICE_UNAVAILABLE when the send fails; a VALIDATION_ERROR on `to` marked
   * RECIPIENT_REFUSED when the mail server refuses the address for good; a VALIDATION_ERROR on `vars`
   * marked TEMPLATE_RENDER_FAILED when the template throws as it renders (a helper misused) or goes over
   * its render budget (loop iterations, steps, characters).
   */
  sendTemplate: z.object({
    store_id: StoreId,
    template_id: Uuid,
    to: Email,
    vars: TemplateVars.default({}),
    list_unsubscribe: z.object({ url: HeaderUrl }).optional(),
  }),
} as const;

export const EmailTemplateList = listResult(EmailTemplate);
export const TemplateStatusResult = z.object({ usable: z.boolean(), archived: z.boolean() });
export const SentMessage = z.object({ message_id: z.string() });

/** `data.reason` of the mailer's 404 when a template is missing, of another store, or (for a send) archived. */
export const TEMPLATE_NOT_FOUND = "TEMPLATE_NOT_FOUND";

/** `data.reason` of the mailer's 409 when a send names the store's template that is archived (it may be made active again). */
export const TEMPLATE_ARCHIVED = "TEMPLATE_ARCHIVED";

/** `data.reason` of the mailer's 400 when a template throws as it renders with the given vars. */
export const TEMPLATE_RENDER_FAILED = "TEMPLATE_RENDER_FAILED";

/** `data.reason` of the mailer's error when the mail server refuses the recipient for good. */
export const RECIPIENT_REFUSED = "recipient_refused";

/** Whether `err` (from `mailer.sendMagicCode` or `mailer.sendTemplate`) says the address itself was refused for good. */
export function isRecipientRefused(err: unknown): boolean {
  const e = err as { type?: unknown; data?: { reason?: unknown } } | null;
  return e?.type === "VALIDATION_ERROR" && e.data?.reason === RECIPIENT_REFUSED;
}

/** Whether `err` (from `mailer.sendTemplate`) says the template threw as it rendered. */
export function isTemplateRenderFailure(err: unknown): boolean {
  const e = err as { type?: unknown; data?: { reason?: unknown } } | null;
  return e?.type === "VALIDATION_ERROR" && e.data?.reason === TEMPLATE_RENDER_FAILED;
}

/** Whether `err` (from `mailer.sendTemplate`) says the store's template is archived. */
export function isTemplateArchived(err: unknown): boolean {
  const e = err as { type?: unknown; data?: { reason?: unknown } } | null;
  return e?.type === "CONFLICT" && e.data?.reason === TEMPLATE_ARCHIVED;
}

/** Whether `err` (from `mailer.sendTemplate`) says the template cannot be used (missing, another store's). */
export function isTemplateNotFound(err: unknown): boolean {
  const e = err as { type?: unknown; data?: { reason?: unknown } } | null;
  return e?.type === "NOT_FOUND" && e.data?.reason === TEMPLATE_NOT_FOUND;
}
