/**
 * The spec's "Typical Flows" end to end, as a storefront and a back office would run them with the SDK:
 * every service on its own broker over the real NATS bus, HTTP through the gateway, the login code read
 * from a real SMTP server, and orders published by a plain NATS JetStream client (as an order service in
 * any language would).
 */
import { connect, headers as natsHeaders, type NatsConnection } from "nats";
import { randomUUID } from "node:crypto";
import { createCrmClient, CrmApiError, type CrmClient } from "../sdk";
import { prefixedSubject } from "../shared/events/streams";
import { startCluster, startSmtpServer, NATS_URL, type Cluster, type SmtpTestServer } from "./harness";

const PLATFORM_KEY = `e2e-platform-${randomUUID()}`;

async function eventually<T>(probe: () => Promise<T | undefined | false>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function expectApiError(promise: Promise<unknown>, status: number, code: string): Promise<void> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(CrmApiError);
  expect((err as CrmApiError).status).toBe(status);
  expect((err as CrmApiError).code).toBe(code);
}

describe("spec flows over NATS, through the gateway, with the SDK", () => {
  let cluster: Cluster;
  let smtp: SmtpTestServer;
  let nats: NatsConnection;
  const storeId = randomUUID();
  const otherStoreId = randomUUID();
  let admin: CrmClient;

  const storefront = (store = storeId) => createCrmClient({ baseUrl: cluster.url!, storeId: store });

  async function codeFrom(email: string): Promise<string> {
    const mail = await smtp.waitForMessage((m) => m.to.includes(email), 10_000);
    const code = /\b(\d{6})\b/.exec(mail.text)?.[1];
    if (!code) throw new Error(`no code in the mail to ${email}`);
    return code;
  }

  /** What an order service does: publish order.created on its JetStream subject, de-duplicated by msgID. */
  async function publishOrder(order: Record<string, unknown>): Promise<void> {
    const h = natsHeaders();
    h.set("Nats-Msg-Id", `order.created:${String(order.order_id)}`);
    const subject = prefixedSubject("order.created", cluster.channelPrefix);
    await nats.jetstream().publish(subject, new TextEncoder().encode(JSON.stringify(order)), { headers: h });
  }

  beforeAll(async () => {
    smtp = await startSmtpServer();
    cluster = await startCluster(["gateway", "auth", "mailer", "profiles"], {
      env: { SMTP_URL: smtp.url, JWT_SECRET: `e2e-${randomUUID()}`, CRM_ADMIN_API_KEY: PLATFORM_KEY },
    });
    nats = await connect({ servers: NATS_URL });
    admin = createCrmClient({ baseUrl: cluster.url!, storeId, apiKey: PLATFORM_KEY });
  }, 60_000);

  afterAll(async () => {
    await nats?.close();
    await cluster?.stop();
    await smtp?.close();
  });

  it("E-commerce checkout: initialize a guest session, then attach the shopper's e-mail", async () => {
    const sdk = storefront();
    const guest = await sdk.crm.initialize();
    expect(guest).toMatchObject({ token_type: "Bearer", is_verified: false });

    const connected = await sdk.crm.connect({ email: "shopper@example.com" });
    expect(connected.id).toBe(guest.profile_id);
    expect(connected).toMatchObject({ email: "shopper@example.com", verified: false, store_id: storeId });
    expect(connected.token.profile_id).toBe(guest.profile_id);

    const me = await sdk.crm.getMe();
    expect(me).toMatchObject({ id: guest.profile_id, email: "shopper@example.com" });
  });

  it("Profile login (magic code): code by e-mail, verify, me, refresh, revoke -> 401 on the next request", async () => {
    const sdk = storefront();
    const email = "login@example.com";
    const guest = await sdk.crm.initialize();

    await expect(sdk.crm.requestCode({ email })).resolves.toEqual({ sent: true });
    const token = await sdk.crm.verify({ email, code: await codeFrom(email) });
    expect(token.is_verified).toBe(true);
    expect(token.id).not.toBe(guest.id); // a new session, not the guest's

    const me = await sdk.crm.getMe();
    expect(me).toMatchObject({ email, verified: true });
    expect(me.auth_tokens.map((t) => t.id)).toContain(token.id);
    expect(JSON.stringify(me)).not.toContain(token.refresh_token);

    const refreshed = await sdk.crm.refreshToken();
    expect(refreshed.id).toBe(token.id);
    expect(refreshed.refresh_token).not.toBe(token.refresh_token);
    await expect(sdk.crm.getMe()).resolves.toMatchObject({ id: me.id });

    await expect(admin.crm.revokeToken({ id: me.id, tokenId: token.id })).resolves.toEqual({ deleted: true });
    await expectApiError(sdk.crm.getMe(), 401, "UNAUTHENTICATED"); // the SDK's refresh-and-retry is refused too
  });

  it("SDK: a wrong code costs one try, and after 'logout everywhere' the shopper can log in again", async () => {
    const sdk = storefront();
    const email = "relogin@example.com";
    await sdk.crm.requestCode({ email });
    const token = await sdk.crm.verify({ email, code: await codeFrom(email) });
    smtp.clear();

    await sdk.crm.requestCode({ email: "typo@example.com" });
    const right = await codeFrom("typo@example.com");
    const wrong = String((Number(right) + 1) % 1_000_000).padStart(6, "0");
    await expectApiError(sdk.crm.verify({ email: "typo@example.com", code: wrong }), 401, "UNAUTHENTICATED");
    const codes = (await cluster.brokers.auth.call("auth.listCodes", { store_id: storeId, email: "typo@example.com" })) as { attempts: number }[];
    expect(codes.map((c) => c.attempts)).toEqual([1]);

    await admin.crm.revokeAllTokens({ id: token.profile_id });
    await expectApiError(sdk.crm.getMe(), 401, "UNAUTHENTICATED");
    expect(sdk.tokens.get()).toBeNull(); // the dead session is dropped
    await expect(sdk.crm.requestCode({ email: "relogin-again@example.com" })).resolves.toEqual({ sent: true });
  });

  it("SDK: a guest whose session was revoked (access token not yet expired) can still verify a code", async () => {
    const sdk = storefront();
    const guest = await sdk.crm.initialize();
    await sdk.crm.requestCode({ email: "revoked-guest@example.com" });
    const code = await codeFrom("revoked-guest@example.com");
    await admin.crm.revokeAllTokens({ id: guest.profile_id });
    const verified = await sdk.crm.verify({ email: "revoked-guest@example.com", code });
    expect(verified).toMatchObject({ is_verified: true });
    expect(verified.profile_id).not.toBe(guest.profile_id);
    await expect(sdk.crm.getMe()).resolves.toMatchObject({ email: "revoked-guest@example.com", verified: true });
  });

  it("links orders published by an outside producer once, and merge moves them onto the target", async () => {
    const keeper = await admin.crm.create({ email: "keeper@example.com" });
    const duplicate = await admin.crm.create({ email: "Duplicate@Example.com" });
    expect(await admin.crm.create({ email: "duplicate@example.com" })).toMatchObject({ id: duplicate.id });

    await publishOrder({ store_id: storeId, order_id: "ORD-1", profile_id: keeper.id, total: 20, currency: "EUR" });
    await publishOrder({ store_id: storeId, order_id: "ORD-2", email: "duplicate@example.com", total: 5 });
    await publishOrder({ store_id: storeId, order_id: "ORD-2", email: "duplicate@example.com", total: 5 });
    await publishOrder({ store_id: storeId, order_id: "ORD-3", email: "new-buyer@example.com" });

    await eventually(async () => (await admin.crm.orders({ id: duplicate.id })).items.length === 1);
    const buyer = await eventually(async () => (await admin.crm.find({ query: "new-buyer@" })).items[0]);
    expect(buyer.email).toBe("new-buyer@example.com");

    // The duplicate logs in (a session of its own) before an admin merges it away.
    const sdk = storefront();
    await sdk.crm.requestCode({ email: "duplicate@example.com" });
    await sdk.crm.verify({ email: "duplicate@example.com", code: await codeFrom("duplicate@example.com") });

    const merged = await admin.crm.merge({ id: keeper.id, source_id: duplicate.id });
    expect(merged.id).toBe(keeper.id);
    expect(merged.email).toBe("keeper@example.com");
    const orders = (await admin.crm.orders({ id: keeper.id })).items.map((o) => o.order_id).sort();
    expect(orders).toEqual(["ORD-1", "ORD-2"]);

    await expectApiError(admin.crm.get({ id: duplicate.id }), 404, "NOT_FOUND");
    await expectApiError(sdk.crm.getMe(), 401, "UNAUTHENTICATED"); // the merged-away profile's session
  });

  it("keeps stores apart: tokens, admin keys and profile ids of one store do nothing in another", async () => {
    const sdk = storefront();
    const token = await sdk.crm.initialize();
    const foreign = createCrmClient({
      baseUrl: cluster.url!,
      storeId: otherStoreId,
      tokens: { get: () => token, set: () => undefined },
    });
    await expectApiError(foreign.crm.getMe(), 401, "UNAUTHENTICATED");

    const created = (await cluster.brokers.auth.call("auth.createApiKey", { store_id: storeId, name: "e2e" })) as { key: string };
    const scoped = createCrmClient({ baseUrl: cluster.url!, storeId, apiKey: created.key });
    const profile = await scoped.crm.create({ email: "scoped@example.com" });
    await expect(scoped.crm.get({ id: profile.id })).resolves.toMatchObject({ id: profile.id });

    const elsewhere = createCrmClient({ baseUrl: cluster.url!, storeId: otherStoreId, apiKey: created.key });
    await expectApiError(elsewhere.crm.find(), 403, "FORBIDDEN");
    const platformElsewhere = createCrmClient({ baseUrl: cluster.url!, storeId: otherStoreId, apiKey: PLATFORM_KEY });
    await expectApiError(platformElsewhere.crm.get({ id: profile.id }), 404, "NOT_FOUND");
  });
});
