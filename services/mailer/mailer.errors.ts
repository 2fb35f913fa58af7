/** The mailer service's public error catalog: a stable `reason` where callers need finer than the code, and the public message. */
import { RECIPIENT_REFUSED, TEMPLATE_ARCHIVED, TEMPLATE_NOT_FOUND, TEMPLATE_RENDER_FAILED } from "../../shared/contracts/mailer";
import { crmError, validationError } from "../../shared/errors";

export const MailerMessages = {
  sendFailed: "The e-mail could not be sent, try again later",
  recipientRefused: "The mail server refused this address; check it for typos",
  templateNotFound: "E-mail template not found",
  templateArchived: "The e-mail template is archived: make it active again to send it",
  templateKeyTaken: "Another e-mail template of this store already uses this key",
  templateDoesNotCompile: "The template does not compile",
  templateVarsMissing: "The template uses a variable that vars do not hold",
  templateRenderFailed: "The template could not be rendered with these vars",
  templateRendersTooMuch: "The template renders too much with these vars: simplify its loops or the vars",
  deleteEventPending: "The template is deleted; telling the other services failed and will be retried: delete it again to retry now",
} as const;

export const MailerErrors = {
  sendFailed: () => crmError("SERVICE_UNAVAILABLE", MailerMessages.sendFailed, { retryAfter: 30 }),
  /** A permanent (5xx) refusal of the recipient: asking again cannot help, a corrected address can. */
  recipientRefused: () =>
    crmError("VALIDATION_ERROR", MailerMessages.recipientRefused, {
      reason: RECIPIENT_REFUSED,
      validationErrors: [{ field: "to", error: MailerMessages.recipientRefused }],
    }),
  /** Missing or another store's: callers cannot tell these apart, by design. */
  templateNotFound: () => crmError("NOT_FOUND", MailerMessages.templateNotFound, { reason: TEMPLATE_NOT_FOUND }),
  /** A send of the store's own template that is archived: not missing (it can be made active again). */
  templateArchived: () => crmError("CONFLICT", MailerMessages.templateArchived, { reason: TEMPLATE_ARCHIVED }),
  templateKeyTaken: () => crmError("CONFLICT", MailerMessages.templateKeyTaken, { reason: "TEMPLATE_KEY_TAKEN" }),
  templateDoesNotCompile: (field: string, error: string) => validationError(field, error, MailerMessages.templateDoesNotCompile),
  templateVarsMissing: (error: string) => validationError("vars", error, MailerMessages.templateVarsMissing),
  templateRenderFailed: (error: string) =>
    crmError("VALIDATION_ERROR", MailerMessages.templateRenderFailed, { validationErrors: [{ field: "vars", error }], reason: TEMPLATE_RENDER_FAILED }),
  /** Over the render budget (template-engine.ts): a render failure like the others, same reason, for callers such as profile-lists. */
  templateRendersTooMuch: (error: string) =>
    crmError("VALIDATION_ERROR", MailerMessages.templateRendersTooMuch, { validationErrors: [{ field: "vars", error }], reason: TEMPLATE_RENDER_FAILED }),
  deleteEventPending: () => crmError("SERVICE_UNAVAILABLE", MailerMessages.deleteEventPending, { reason: "DELETE_EVENT_PENDING", retryAfter: 5 }),
};
