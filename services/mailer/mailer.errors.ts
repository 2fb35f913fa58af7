/** The mailer service's public error catalog. */
import { RECIPIENT_REFUSED } from "../../shared/contracts/mailer";
import { crmError } from "../../shared/errors";

export const MailerMessages = {
  sendFailed: "The e-mail could not be sent, try again later",
  recipientRefused: "The mail server refused this address; check it for typos",
} as const;

export const MailerErrors = {
  sendFailed: () => crmError("SERVICE_UNAVAILABLE", MailerMessages.sendFailed, { retryAfter: 30 }),
  /** A permanent (5xx) refusal of the recipient: asking again cannot help, a corrected address can. */
  recipientRefused: () =>
    crmError("VALIDATION_ERROR", MailerMessages.recipientRefused, {
      reason: RECIPIENT_REFUSED,
      validationErrors: [{ field: "to", error: MailerMessages.recipientRefused }],
    }),
};
