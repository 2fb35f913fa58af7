/**
 * The webhook route over HTTP and NATS: `POST /v1/webhooks/stripe` delivers the exact body and the
 * Stripe-Signature header to billing (no other authentication), answers 400 for a bad or missing
 * signature, 200 for a handled, an unhandled and a repeated event; every answer as documented.
 */
import type { AccessResult, Membership, ProfileList } from "../../../shared/contracts/profile-lists";
import type { AuthToken } from "../../../shared/contracts/auth";
import type { ConnectResult } from "../../../shared/contracts/profiles";
import { billingRoutes } from "../../../shared/routes/billing";
import { routesNeverAnswered, undocumentedAnswers } from "../../../test/harness/documented";
import { httpClient, startCluster, startStripeStandIn, waitFor, type Cluster, type HttpClient, type ObservedExchange, type StripeStandIn } from "../../../test/harness";
import { LINK_ORIGIN, newStoreId, PRICES, SECRET_KEY, WEBHOOK_SECRET } from "./helpers";

const ADMIN_KEY = "crm_sk_billing_http_test_key";

describe("POST /v1/webhooks/stripe over HTTP and NATS", () => {
  let cluster: Cluster;
  let stripe: StripeStandIn;
  let http: HttpClient;
  const exchanges: ObservedExchange[] = [];

  beforeAll(async () => {
    stripe = await startStripeStandIn();
    cluster = await startCluster(["gateway", "auth", "profiles", "profile-lists", "billing"], {
      env: {
        JWT_SECRET: "billing-http-test-secret-0123456789",
        CRM_ADMIN_API_KEY: ADMIN_KEY,
        LINK_ORIGINS: LINK_ORIGIN,
        STRIPE_SECRET_KEY: SECRET_KEY,
        STRIPE_WEBHOOK_SECRET: WEBHOOK_SECRET,
        STRIPE_API_URL: stripe.url,
      },
    });
    http = httpClient(cluster.url!, {}, (exchange) => exchanges.push(exchange));
  }, 60_000);

  afterAll(async () => {
    await cluster?.stop();
    await stripe?.close();
  });

  const post = (body: string, headers: Record<string, string>) => http.post("/v1/webhooks/stripe", body, { headers });

  it("refuses a missing, forged or stale signature with the contract's 400 (no word about the secret)", async () => {
    const event = stripe.event("customer.created", { id: "cus_test_1", object: "customer" });
    const body = JSON.stringify(event);
    const answers = [
      await post(body, { "content-type": "application/json" }),
      await post(body, { "content-type": "application/json", "stripe-signature": stripe.signWebhook(body, "whsec_wrong") }),
      await post(body, { "content-type": "application/json", "stripe-signature": stripe.signWebhook(body, WEBHOOK_SECRET, Math.floor(Date.now() / 1000) - 3600) }),
      await post(`${body} `, { "content-type": "application/json", "stripe-signature": stripe.signWebhook(body, WEBHOOK_SECRET) }),
    ];
    for (const answer of answers) {
      expect(answer.status).toBe(400);
      expect(answer.body).toMatchObject({ statusCode: 400, error: "VALIDATION_ERROR", validationErrors: [{ field: "Stripe-Signature" }] });
      expect(answer.text).not.toContain(WEBHOOK_SECRET);
    }
  });

  it("refuses a correctly signed body that is not a Stripe event with 400 naming payload (it was a 500, and Stripe would resend it for days)", async () => {
    for (const body of [
      "{}",
      "[]",
      '{"id":123,"type":"x"}',
      '{"id":"evt_x","type":"checkout.session.completed","created":1}',
      '{"id":"evt_y","type":"checkout.session.completed","created":1,"data":{}}',
    ]) {
      const answer = await post(body, { "content-type": "application/json", "stripe-signature": stripe.signWebhook(body, WEBHOOK_SECRET) });
      expect(answer.status).toBe(400);
      expect(answer.body).toMatchObject({ statusCode: 400, error: "VALIDATION_ERROR", validationErrors: [{ field: "payload" }] });
    }
  });

  it("acknowledges a signed event it does not handle (200), whatever the content type", async () => {
    const { body, headers } = stripe.webhookRequest(stripe.event("payment_intent.created", { id: "pi_test_1", object: "payment_intent" }), WEBHOOK_SECRET);
    expect((await post(body, headers)).body).toEqual({ received: true });
    expect((await post(body, { ...headers, "content-type": "text/plain" })).status).toBe(200);
  });

  it("applies checkout.session.completed once: 200, access; the same delivery again is 200 and changes nothing", async () => {
    const store = newStoreId();
    const admin = http.with({ authorization: `Bearer ${ADMIN_KEY}` });
    const list = (await admin.post<ProfileList>(`/v1/stores/${store}/profile-lists`, { key: "paid", type: { type: "paid", prices: PRICES } })).body;
    const init = await http.post<AuthToken>(`/v1/stores/${store}/profiles/initialize`, {});
    const connected = await http
      .with({ authorization: `Bearer ${init.body.access_token}` })
      .post<ConnectResult>(`/v1/stores/${store}/profiles/connect`, { email: "http-payer@example.com" });
    const me = http.with({ authorization: `Bearer ${connected.body.token.access_token}` });
    const storefront = `/v1/storefront/${store}/profile-lists/${list.id}`;
    const subscribed = await me.post<{ membership: Membership; checkout_url: string }>(`${storefront}/subscribe`, {
      profile_id: connected.body.id,
      price_id: "lifetime",
      success_url: `${LINK_ORIGIN}/ok`,
      cancel_url: `${LINK_ORIGIN}/no`,
    });
    expect(subscribed.status).toBe(200);
    const session = stripe.completeSession(subscribed.body.membership.payment!.checkout_session_id!);
    const { body, headers } = stripe.webhookRequest(stripe.event("checkout.session.completed", session), WEBHOOK_SECRET);
    expect((await post(body, headers)).status).toBe(200);
    await waitFor(async () => (await me.get<AccessResult>(`${storefront}/access`)).body.has_access, "access after the webhook");
    const before = (await me.get<AccessResult>(`${storefront}/access`)).body;
    expect((await post(body, headers)).body).toEqual({ received: true });
    expect((await me.get<AccessResult>(`${storefront}/access`)).body).toEqual(before);
  });

  // Last on purpose: checks every answer the tests above received.
  it("answered every request of this suite in the documented shape (the OpenAPI document's schemas)", () => {
    expect(undocumentedAnswers(exchanges)).toEqual([]);
    expect(routesNeverAnswered(exchanges, billingRoutes)).toEqual([]);
  });
});
