/**
 * Durable events between services (NATS JetStream in distributed mode). The subject is the event name
 * and the data is the JSON payload, so a producer outside this system can publish them too.
 */
import { z } from "zod";
import { PaymentChange } from "./billing";
import { Email, StoreId, Uuid } from "./common";

export const DurableEvents = {
  /** From an order service: link the order to a profile (by id, else by e-mail, creating it). */
  "order.created": z.object({
    store_id: StoreId,
    order_id: z.string().min(1).max(128),
    profile_id: Uuid.optional(),
    email: Email.optional(),
    total: z.number().optional(),
    currency: z.string().max(8).optional(),
    created_at: z.number().int().optional(),
  }),
  /** A source profile was merged into a target: re-point what you own from source to target. */
  "profile.merged": z.object({ store_id: StoreId, target_id: Uuid, source_id: Uuid }),
  /** An e-mail template was deleted: lists that used it fall back to single opt-in. */
  "email-template.deleted": z.object({ store_id: StoreId, template_id: Uuid }),
  /** From billing: a Stripe event changed a paid membership (see PaymentChange). */
  "billing.payment-changed": PaymentChange,
} as const;

export type DurableEventName = keyof typeof DurableEvents;
export type DurableEventPayload<N extends DurableEventName> = z.infer<(typeof DurableEvents)[N]>;
