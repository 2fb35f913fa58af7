/**
 * The billing service's error catalog: a stable `reason` per failure (in `data.reason`) and its public
 * message (see shared/errors.ts). No message carries a secret, a signature or Stripe's own error text.
 * Stripe's failures are sorted the way its docs advise: worth retrying (network, 5xx, rate limits, a
 * concurrent request with the same idempotency key), a refusal of the request (4xx), or our keys.
 */
import { crmError, validationError } from "../../shared/errors";

const PROVIDER_RETRY_AFTER_SECONDS = 5;
const NOT_CONFIGURED_RETRY_AFTER_SECONDS = 3600;

export const BillingErrors = {
  // A deployment's setting, not a passing outage: a retry in seconds cannot help.
  notConfigured: () =>
    crmError("SERVICE_UNAVAILABLE", "Paid lists are not available: billing is not configured", {
      reason: "BILLING_NOT_CONFIGURED",
      retryAfter: NOT_CONFIGURED_RETRY_AFTER_SECONDS,
    }),
  signatureMissing: () => validationError("Stripe-Signature", "required", "Missing Stripe-Signature header"),
  /** One message for every failure: which check failed (timestamp, scheme, secret) is not told. */
  signatureInvalid: () => validationError("Stripe-Signature", "invalid signature", "Invalid Stripe signature"),
  notAnEvent: () => validationError("payload", "is not a Stripe event (an object with a string id and type, created and data)", "The signed body is not a Stripe event"),
  providerUnavailable: () =>
    crmError("SERVICE_UNAVAILABLE", "The payment provider is unavailable, try again later", {
      reason: "PAYMENT_PROVIDER_UNAVAILABLE",
      retryAfter: PROVIDER_RETRY_AFTER_SECONDS,
    }),
  providerRefused: (field: string) => validationError(field, "refused by the payment provider", "The payment provider refused this request"),
  eventNotFound: () => crmError("NOT_FOUND", "No such Stripe event", { reason: "STRIPE_EVENT_NOT_FOUND" }),
} as const;

/** What a failed Stripe call means for our caller. */
export type StripeFailure = "retry" | "refused" | "missing" | "keys";

/** Sorts an error thrown by the stripe client (by its `type`, as it arrives). */
export function stripeFailureOf(err: unknown): StripeFailure {
  const e = err as { type?: unknown; statusCode?: unknown; code?: unknown } | null;
  switch (e?.type) {
    case "StripeAuthenticationError":
    case "StripePermissionError":
      return "keys";
    case "StripeInvalidRequestError":
    case "StripeCardError":
      return e.code === "resource_missing" ? "missing" : "refused";
    default:
      // Connection errors, Stripe's 5xx and 429, idempotency conflicts, anything unknown: ask again later.
      return "retry";
  }
}
