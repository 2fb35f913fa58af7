/**
 * The spec's paid list ("Paid: returns a Stripe checkout URL") end to end, as a storefront and Stripe run
 * it: every service on its own broker over the real NATS bus, HTTP through the gateway, the official stripe
 * client in billing pointed at the Stripe stand-in, webhooks signed the way Stripe signs them.
 *   1. subscribe: the stand-in saw one Checkout Session with the right price, mode, URLs and metadata
 *   2. checkout.session.completed: access becomes true
 *   3. the same event again: no change
 *   4. customer.subscription.updated, cancel at period end: access still, status cancellation_scheduled
 *   5. an older customer.subscription.updated replayed after it: no regression
 *   6. customer.subscription.deleted: access false
 * Also: a bad signature is 400 and changes nothing, and a webhook delivered while profile-lists is stopped
 * is acknowledged (stored in JetStream) and applied once profile-lists is back. The same flow runs in one
 * process too (no bus: billing applies each change before it answers Stripe).
 */
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import type { ServiceBroker } from "moleculer";
import type { AuthToken } from "../shared/contracts/auth";
import type { AccessResult, Membership, ProfileList } from "../shared/contracts/profile-lists";
import type { ConnectResult } from "../shared/contracts/profiles";
import { PROCESSED_EVENTS } from "../shared/events/processed";
import { uuidv7 } from "../shared/ids";
import type { ProfileListsService } from "../services/profile-lists/profile-lists.service";
import {
  createBroker,
  httpClient,
  NATS_URL,
  startCluster,
  startGateway,
  startStripeStandIn,
  uniqueName,
  waitFor,
  type Cluster,
  type HttpClient,
  type StripeStandIn,
  type SubscriptionLike,
} from "./harness";

const PLATFORM_KEY = `e2e-paid-${uuidv7()}`;
const WEBHOOK_SECRET = "whsec_e2e_paid_lists";
const SHOP = "https://shop.example";

describe("Paid list: Stripe Checkout and signed webhooks, over NATS through the gateway", () => {
  let cluster: Cluster;
  let stripe: StripeStandIn;
  let dataDir: string;
  let env: Record<string, string>;
  let http: HttpClient;
  let admin: HttpClient;
  const storeId = uuidv7();
  let list: ProfileList;

  beforeAll(async () => {
    stripe = await startStripeStandIn();
    // Files, not memory: profile-lists is stopped and started again below and must find its memberships.
    dataDir = await mkdtemp(path.join(os.tmpdir(), "crm-e2e-paid-"));
    env = {
      JWT_SECRET: `e2e-paid-${uuidv7()}`,
      CRM_ADMIN_API_KEY: PLATFORM_KEY,
      LINK_ORIGINS: SHOP,
      STRIPE_SECRET_KEY: "sk_test_e2e_paid",
      STRIPE_WEBHOOK_SECRET: WEBHOOK_SECRET,
      STRIPE_API_URL: stripe.url,
    };
    cluster = await startCluster(["gateway", "auth", "profiles", "profile-lists", "billing"], { env, storage: { dataDir } });
    http = httpClient(cluster.url!);
    admin = http.with({ authorization: `Bearer ${PLATFORM_KEY}` });
    const created = await admin.post<ProfileList>(`/v1/stores/${storeId}/profile-lists`, {
      key: "premium",
      name: "Premium",
      type: {
        type: "paid",
        prices: [{ id: "monthly", currency: "usd", amount: 900, interval: { period: "month", count: 1 }, providers: [{ type: "stripe", id: "price_premium_monthly" }] }],
      },
    });
    expect(created.status).toBe(200);
    list = created.body;
  }, 60_000);

  afterAll(async () => {
    await cluster?.stop();
    await stripe?.close();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  const storefront = () => `/v1/storefront/${storeId}/profile-lists/${list.id}`;

  /** initialize + connect: a storefront session of a profile with this e-mail. */
  async function shopper(email: string) {
    const init = await http.post<AuthToken>(`/v1/stores/${storeId}/profiles/initialize`, {});
    const connected = await http.with({ authorization: `Bearer ${init.body.access_token}` }).post<ConnectResult>(`/v1/stores/${storeId}/profiles/connect`, { email });
    expect(connected.status).toBe(200);
    return { id: connected.body.id, client: http.with({ authorization: `Bearer ${connected.body.token.access_token}` }) };
  }

  /** POSTs a Stripe event to the webhook as Stripe would (exact body, Stripe-Signature). */
  function webhook(event: Record<string, unknown>, secret = WEBHOOK_SECRET) {
    const { body, headers } = stripe.webhookRequest(event, secret);
    return http.post<{ received: true }>("/v1/webhooks/stripe", body, { headers });
  }

  const accessOf = async (client: HttpClient) => (await client.get<AccessResult>(`${storefront()}/access`)).body;
  const memberCount = async () => (await admin.get<ProfileList>(`/v1/stores/${storeId}/profile-lists/${list.id}`)).body.member_count;

  /** profile-lists has applied (or, for a stale one, looked at and left) the payment change of this Stripe event. */
  async function applied(event: Record<string, unknown>) {
    const service = cluster.brokers["profile-lists"].getLocalService("profile-lists") as unknown as ProfileListsService;
    const processed = service.db.collection(PROCESSED_EVENTS);
    await waitFor(
      async () => (await processed.findOne({ _id: `billing.payment-changed:profile-lists:${storeId}:${event.id}` }))?.status === "done",
      `event ${event.id} to be applied`,
    );
  }

  it("subscribe -> checkout.session.completed -> the same event again -> cancel at period end -> an older event replayed -> subscription deleted", async () => {
    const me = await shopper("payer@example.com");

    // 1. Subscribe (paid): one Checkout Session, with the right price, mode, URLs and metadata.
    const subscribed = await me.client.post<{ membership: Membership; checkout_url: string }>(`${storefront()}/subscribe`, {
      profile_id: me.id,
      price_id: "monthly",
      success_url: `${SHOP}/welcome`,
      cancel_url: `${SHOP}/pricing`,
    });
    expect(subscribed.status).toBe(200);
    const membership = subscribed.body.membership;
    expect(membership).toMatchObject({ status: "pending", profile_id: me.id, consent: { method: "checkout" }, payment: { provider: "stripe", price_id: "monthly" } });
    const creates = stripe.requests.filter((r) => r.method === "POST" && r.path === "/v1/checkout/sessions");
    expect(creates).toHaveLength(1);
    const metadata = { store_id: storeId, profile_list_id: list.id, profile_id: me.id, membership_id: membership.id };
    expect(creates[0].body).toMatchObject({
      mode: "subscription",
      line_items: [{ price: "price_premium_monthly", quantity: "1" }],
      success_url: `${SHOP}/welcome`,
      cancel_url: `${SHOP}/pricing`,
      client_reference_id: membership.id,
      customer_email: "payer@example.com",
      metadata,
    });
    expect(creates[0].idempotencyKey).toEqual(expect.any(String));
    const session = stripe.sessions.get(membership.payment!.checkout_session_id!)!;
    expect(subscribed.body.checkout_url).toBe(session.url);
    expect(await accessOf(me.client)).toMatchObject({ has_access: false, membership: { status: "pending" } });

    // A forged delivery: 400, nothing changes.
    stripe.completeSession(session.id);
    const completed = stripe.event("checkout.session.completed", session);
    const forged = await webhook(completed, "whsec_not_the_endpoint_secret");
    expect(forged.status).toBe(400);
    expect(forged.body).toMatchObject({ statusCode: 400, error: "VALIDATION_ERROR" });
    expect(forged.text).not.toContain(WEBHOOK_SECRET);
    expect((await http.post("/v1/webhooks/stripe", JSON.stringify(completed), { headers: { "content-type": "application/json" } })).status).toBe(400);

    // 2. checkout.session.completed: access.
    expect((await webhook(completed)).status).toBe(200);
    await waitFor(async () => (await accessOf(me.client)).has_access, "access after checkout.session.completed");
    const active = await accessOf(me.client);
    const subscription = stripe.subscriptions.get(session.subscription!) as SubscriptionLike;
    const periodEnd = subscription.items.data[0].current_period_end;
    expect(active.membership).toMatchObject({ status: "active", end_date: periodEnd, payment: { subscription_id: subscription.id, customer_id: session.customer } });
    expect(await memberCount()).toBe(1);

    // 3. The same event again: acknowledged, nothing changes.
    expect((await webhook(completed)).body).toEqual({ received: true });
    expect(await accessOf(me.client)).toEqual(active);
    expect(await memberCount()).toBe(1);

    // 4. Cancelled at period end (say, from Stripe's customer portal): access until end_date.
    const beforeCancel = structuredClone(subscription);
    const beforeCancelAt = Math.floor(Date.now() / 1000) - 60;
    stripe.updateSubscription(subscription.id, { cancel_at_period_end: true });
    expect((await webhook(stripe.event("customer.subscription.updated", subscription))).status).toBe(200);
    await waitFor(async () => (await accessOf(me.client)).membership?.status === "cancellation_scheduled", "status cancellation_scheduled");
    expect(await accessOf(me.client)).toMatchObject({ has_access: true, membership: { end_date: periodEnd } });

    // 5. An older customer.subscription.updated (from before the cancellation) arrives late: no regression.
    const older = stripe.event("customer.subscription.updated", beforeCancel, undefined, beforeCancelAt);
    expect((await webhook(older)).status).toBe(200);
    await applied(older);
    expect(await accessOf(me.client)).toMatchObject({ has_access: true, membership: { status: "cancellation_scheduled", end_date: periodEnd } });
    expect(await memberCount()).toBe(1);

    // 6. The subscription is deleted: access ends.
    stripe.updateSubscription(subscription.id, { status: "canceled" });
    expect((await webhook(stripe.event("customer.subscription.deleted", subscription))).status).toBe(200);
    await waitFor(async () => (await accessOf(me.client)).membership?.status === "cancelled", "status cancelled");
    expect((await accessOf(me.client)).has_access).toBe(false);
    expect(await memberCount()).toBe(0);
  });

  it("a webhook delivered while profile-lists is stopped is acknowledged and applied once profile-lists is back", async () => {
    const later = await shopper("later@example.com");
    const subscribed = await later.client.post<{ membership: Membership }>(`${storefront()}/subscribe`, {
      profile_id: later.id,
      price_id: "price_premium_monthly",
      success_url: `${SHOP}/welcome`,
      cancel_url: `${SHOP}/pricing`,
    });
    expect(subscribed.status).toBe(200);
    const session = stripe.completeSession(subscribed.body.membership.payment!.checkout_session_id!);

    await cluster.brokers["profile-lists"].stop();
    await waitFor(async () => (await later.client.get(`${storefront()}/access`)).status === 503, "the gateway to see profile-lists gone");
    // billing answers 200 once JetStream has stored the change: nothing is lost while profile-lists is away.
    expect((await webhook(stripe.event("checkout.session.completed", session))).status).toBe(200);

    const restarted: ServiceBroker = createBroker({
      services: ["profile-lists"],
      transporter: NATS_URL,
      namespace: cluster.namespace,
      channelPrefix: cluster.channelPrefix,
      nodeID: `profile-lists-${uniqueName("")}`,
      storage: { dataDir },
      env,
    });
    cluster.brokers["profile-lists"] = restarted; // cluster.stop() stops this one
    await restarted.start();
    await cluster.brokers.gateway.waitForServices(["profile-lists"], 15_000, 50);
    await waitFor(async () => {
      const res = await later.client.get<AccessResult>(`${storefront()}/access`);
      return res.status === 200 && res.body.has_access;
    }, "the membership to become active after profile-lists restarts");
    expect((await accessOf(later.client)).membership).toMatchObject({ status: "active", payment: { subscription_id: session.subscription } });
    expect(await memberCount()).toBe(1);
  });
});

describe("Paid list in one process (no bus), through the gateway", () => {
  it("subscribe -> checkout.session.completed (applied before the 200) -> cancel at period end -> deleted", async () => {
    const stripe = await startStripeStandIn();
    const gateway = await startGateway({
      services: ["auth", "profiles", "profile-lists", "billing"],
      env: {
        JWT_SECRET: `e2e-paid-one-${uuidv7()}`,
        CRM_ADMIN_API_KEY: PLATFORM_KEY,
        LINK_ORIGINS: SHOP,
        STRIPE_SECRET_KEY: "sk_test_e2e_one_process",
        STRIPE_WEBHOOK_SECRET: WEBHOOK_SECRET,
        STRIPE_API_URL: stripe.url,
      },
    });
    try {
      const http = gateway.http;
      const storeId = uuidv7();
      const admin = http.with({ authorization: `Bearer ${PLATFORM_KEY}` });
      const prices = [{ currency: "eur", amount: 500, interval: { period: "year", count: 1 }, providers: [{ type: "stripe", id: "price_yearly" }] }];
      const list = (await admin.post<ProfileList>(`/v1/stores/${storeId}/profile-lists`, { key: "club", type: { type: "paid", prices } })).body;
      const init = await http.post<AuthToken>(`/v1/stores/${storeId}/profiles/initialize`, {});
      const connected = await http
        .with({ authorization: `Bearer ${init.body.access_token}` })
        .post<ConnectResult>(`/v1/stores/${storeId}/profiles/connect`, { email: "solo@example.com" });
      const me = http.with({ authorization: `Bearer ${connected.body.token.access_token}` });
      const storefront = `/v1/storefront/${storeId}/profile-lists/${list.id}`;
      const webhook = (event: Record<string, unknown>) => {
        const { body, headers } = stripe.webhookRequest(event, WEBHOOK_SECRET);
        return http.post("/v1/webhooks/stripe", body, { headers });
      };

      const subscribed = await me.post<{ membership: Membership; checkout_url: string }>(`${storefront}/subscribe`, {
        profile_id: connected.body.id,
        price_id: "price_yearly",
        success_url: `${SHOP}/ok`,
        cancel_url: `${SHOP}/no`,
      });
      expect(subscribed.status).toBe(200);
      expect(subscribed.body.checkout_url).toMatch(/\/c\/pay\/cs_test_/);
      const session = stripe.completeSession(subscribed.body.membership.payment!.checkout_session_id!);
      expect((await webhook(stripe.event("checkout.session.completed", session))).status).toBe(200);
      expect((await me.get<AccessResult>(`${storefront}/access`)).body).toMatchObject({ has_access: true, membership: { status: "active" } });

      const subscription = stripe.subscriptions.get(session.subscription!)!;
      stripe.updateSubscription(subscription.id, { cancel_at_period_end: true });
      expect((await webhook(stripe.event("customer.subscription.updated", subscription))).status).toBe(200);
      expect((await me.get<AccessResult>(`${storefront}/access`)).body).toMatchObject({ has_access: true, membership: { status: "cancellation_scheduled" } });

      stripe.updateSubscription(subscription.id, { status: "canceled" });
      expect((await webhook(stripe.event("customer.subscription.deleted", subscription))).status).toBe(200);
      expect((await me.get<AccessResult>(`${storefront}/access`)).body).toMatchObject({ has_access: false, membership: { status: "cancelled" } });
    } finally {
      await gateway.stop();
      await stripe.close();
    }
  });
});
