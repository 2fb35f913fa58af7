/** The mailer service's public error catalog. */
import { crmError, validationError } from "../../shared/errors";

export const MailerMessages = {
  sendFailed: "The e-mail could not be sent, try again later",
  recipientRefused: "The mail server refused this address; check it for typos",
} as const;

export const MailerErrors = {
  sendFailed: () => crmError("SERVICE_UNAVAILABLE", MailerMessages.sendFailed, { retryAfter: 30 }),
  /** A permanent (5xx) refusal of the recipient: asking again cannot help, a corrected address can. */
  recipientRefused: () => validationError("email", MailerMessages.recipientRefused, MailerMessages.recipientRefused),
};
