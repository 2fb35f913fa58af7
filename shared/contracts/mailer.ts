/** The mailer service's actions that other services call. */
import { z } from "zod";
import { Email, StoreId } from "./common";

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
} as const;

/** `data.reason` of the mailer's error when the mail server refuses the recipient for good. */
export const RECIPIENT_REFUSED = "recipient_refused";

/** Whether `err` (from `mailer.sendMagicCode`) says the address itself was refused for good. */
export function isRecipientRefused(err: unknown): boolean {
  const e = err as { type?: unknown; data?: { reason?: unknown } } | null;
  return e?.type === "VALIDATION_ERROR" && e.data?.reason === RECIPIENT_REFUSED;
}
