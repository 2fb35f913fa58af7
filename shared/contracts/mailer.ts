/** The mailer service's actions that other services call. */
import { z } from "zod";
import { Email, StoreId } from "./common";

export const MailerActions = {
  /**
   * `mailer.sendMagicCode` -> { message_id } — renders the login-code e-mail (handlebars, text + HTML)
   * and sends it; a failed send is a SERVICE_UNAVAILABLE (503) error.
   */
  sendMagicCode: z.object({
    store_id: StoreId,
    to: Email,
    code: z.string().regex(/^\d{6}$/),
    expires_in_minutes: z.number().int().positive(),
  }),
} as const;
