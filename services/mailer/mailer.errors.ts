/** The mailer service's public error catalog. */
import { crmError } from "../../shared/errors";

export const MailerMessages = {
  sendFailed: "The e-mail could not be sent, try again later",
} as const;

export const MailerErrors = {
  sendFailed: () => crmError("SERVICE_UNAVAILABLE", MailerMessages.sendFailed, { retryAfter: 30 }),
};
