/** How the billing rules call Stripe: only when configured, and with its failures turned into our errors. */
import type Stripe from "stripe";
import { BillingErrors, stripeFailureOf, type StripeFailure } from "./billing.errors";
import type { Deps } from "./deps";

export function requireStripe(deps: Pick<Deps, "stripe">): Stripe {
  if (!deps.stripe) throw BillingErrors.notConfigured();
  return deps.stripe;
}

/**
 * Runs a Stripe call. A refusal (4xx) is a 400 naming `field` unless `onRefusal` decides otherwise;
 * anything else is a 503 (logged by its type and code only: Stripe's messages may quote what was sent).
 */
export async function callStripe<T>(
  deps: Pick<Deps, "logger">,
  what: string,
  call: () => Promise<T>,
  field: string,
  onRefusal?: (failure: Exclude<StripeFailure, "retry" | "keys">) => T | Promise<T>,
): Promise<T> {
  try {
    return await call();
  } catch (err) {
    const failure = stripeFailureOf(err);
    const e = err as { type?: string; code?: string; requestId?: string };
    const detail = `${e?.type ?? "Error"}${e?.code ? ` (${e.code})` : ""}${e?.requestId ? ` request ${e.requestId}` : ""}`;
    if (failure === "keys") {
      deps.logger.error(`Stripe refused the API key on ${what}: ${detail}. Check STRIPE_SECRET_KEY.`);
      throw BillingErrors.providerUnavailable();
    }
    if (failure === "retry") {
      deps.logger.warn(`Stripe did not answer ${what}: ${detail}`);
      throw BillingErrors.providerUnavailable();
    }
    if (onRefusal) return onRefusal(failure);
    deps.logger.warn(`Stripe refused ${what}: ${detail}`);
    throw BillingErrors.providerRefused(field);
  }
}

/** The id of an expandable Stripe field (`"cus_..."` or `{ id: "cus_..." }`), or null. */
export function idOf(value: string | { id: string } | null | undefined): string | null {
  if (!value) return null;
  return typeof value === "string" ? value : value.id;
}
