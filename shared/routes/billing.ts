/** The billing service's route: Stripe's webhook (raw body, signature-checked, no other authentication). */
import { BillingActions as A, WebhookAck } from "../contracts/billing";
import { routesOf, type RouteDef } from "./types";

const route = routesOf("Billing");

// biome-ignore format: one route per line, so the table reads as a table
export const billingRoutes: RouteDef[] = [
  route("POST", "/v1/webhooks/stripe", "billing.handleStripeWebhook", "public", { body: "raw", summary: "Stripe events: the raw body is checked against Stripe-Signature (400 and no change when it fails); each event id is applied once", params: A.handleStripeWebhook, response: WebhookAck }),
];
