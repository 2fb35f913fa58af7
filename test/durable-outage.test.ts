/**
 * Durable events outlive an outage of their consumer's storage: the real profiles service over the real
 * NATS JetStream, its database unavailable (StorageError "UNAVAILABLE" on every call) for 60 s while
 * 500 `order.created` events arrive. Failed deliveries come back after the waits of EVENTS_RETRY_DELAYS,
 * here a shorter schedule than production's that still outlasts the outage (1 s ... 15 s, ~2 min in all);
 * with immediate retries every one of these orders went to DEAD_LETTER within a second.
 * Runs in its own namespace and subject prefix, and deletes its streams at the end.
 */
import { connect, type JetStreamManager, type NatsConnection } from "nats";
import type { ServiceBroker } from "moleculer";
import type { Profile } from "../shared/contracts/profiles";
import { publishEvent } from "../shared/events/durable";
import { PROCESSED_EVENTS } from "../shared/events/processed";
import { DEAD_LETTER_CHANNEL, prefixedSubject, streamNameOf } from "../shared/events/streams";
import { uuidv7 } from "../shared/ids";
import { openDatabaseWith } from "../shared/mixins/storage.mixin";
import type { ProfilesService } from "../services/profiles/profiles.service";
import { assertNatsUp, deleteStreams, NATS_URL, startBroker, uniqueName, waitFor } from "./harness";
import { StorageOutage } from "./storage-outage";

const OUTAGE_MS = 60_000;
const ORDERS = 500;
/** Waits before each redelivery (ms): 118 s in all, so no event can use up its retries in the outage. */
const RETRY_DELAYS = [1_000, 2_000, 5_000, 10_000, 15_000, 15_000, 15_000, 15_000, 15_000, 15_000];

describe("durable events through an outage of the consumer's storage", () => {
  const prefix = uniqueName("t");
  const deadLetters = streamNameOf(prefixedSubject(DEAD_LETTER_CHANNEL, prefix));
  const orderStream = streamNameOf(prefixedSubject("order.created", prefix));
  const outage = new StorageOutage(["profiles"]);
  const storeId = uuidv7();
  let nc: NatsConnection;
  let jsm: JetStreamManager;
  let producer: ServiceBroker;
  let profiles: ServiceBroker;

  beforeAll(async () => {
    await assertNatsUp();
    nc = await connect({ servers: NATS_URL, name: "crm-test-outage" });
    jsm = await nc.jetstreamManager();
    const bus = { transporter: NATS_URL, namespace: prefix, channelPrefix: prefix };
    producer = await startBroker({ ...bus, nodeID: uniqueName("orders-") });
    profiles = await startBroker({
      ...bus,
      // auth answers profiles' calls (a profile's view); only profiles' storage goes down.
      services: ["auth", "profiles"],
      nodeID: uniqueName("profiles-"),
      env: { EVENTS_RETRY_DELAYS: RETRY_DELAYS.map((ms) => `${ms / 1000}s`).join(","), JWT_SECRET: "outage-test-secret" },
      broker: openDatabaseWith(outage.open),
    });
  });

  afterAll(async () => {
    await profiles?.stop();
    await producer?.stop();
    await deleteStreams(prefix);
    await nc?.close();
  });

  it("links every order once after 60 s of unavailable storage, and dead-letters none", async () => {
    const service = profiles.getLocalService("profiles") as unknown as ProfilesService;
    // Half the orders name an existing profile, half an e-mail whose profile the order creates (5 each).
    const existing: Profile[] = [];
    for (let i = 0; i < 50; i++) existing.push(await profiles.call("profiles.create", { store_id: storeId, email: `known${i}@example.com` }));
    const orders = Array.from({ length: ORDERS }, (_, i) =>
      i % 2 === 0
        ? { store_id: storeId, order_id: `O-${i}`, profile_id: existing[(i / 2) % 50].id, total: i }
        : { store_id: storeId, order_id: `O-${i}`, email: `new${i % 100}@example.com`, total: i },
    );

    const outageOver = outage.for(OUTAGE_MS);
    for (let i = 0; i < orders.length; i += 50) {
      await Promise.all(orders.slice(i, i + 50).map((order) => publishEvent(producer, "order.created", order)));
    }
    expect(outage.down).toBe(true); // every order arrived while the storage was down
    expect((await jsm.streams.info(orderStream)).state.messages).toBe(ORDERS);
    await expect(profiles.call("profiles.health")).rejects.toMatchObject({ code: 503, type: "SERVICE_UNAVAILABLE" });
    await waitFor(() => outage.refused.some((call) => call.collection === PROCESSED_EVENTS), "a delivery to meet the outage", { timeoutMs: 10_000 });
    await outageOver;

    expect(outage.endedAt! - outage.startedAt!).toBeGreaterThanOrEqual(OUTAGE_MS);
    expect((await jsm.streams.info(deadLetters)).state.messages).toBe(0);

    const links = service.profiles.store.orderLinks;
    await waitFor(async () => (await links.count({ store_id: storeId })) === ORDERS, "every order to be linked", { timeoutMs: 45_000 });
    await waitFor(
      async () => {
        const info = await jsm.consumers.info(orderStream, "profiles");
        return info.num_pending === 0 && info.num_ack_pending === 0;
      },
      "the consumer to acknowledge every order",
      { timeoutMs: 10_000 },
    );
    const recovered = Date.now();

    // Every order linked once, to the right profile.
    const linked = await links.find({ store_id: storeId }, { limit: 1000 });
    expect(linked).toHaveLength(ORDERS);
    expect(new Set(linked.map((link) => link.order_id)).size).toBe(ORDERS);
    const byEmail = new Map<string, string>();
    for (const link of linked) {
      const order = orders[Number(link.order_id.slice(2))];
      if ("profile_id" in order) {
        expect(link.profile_id).toBe(order.profile_id);
        continue;
      }
      const profile = await service.profiles.store.profiles.findOne({ _id: link.profile_id, store_id: storeId });
      expect(profile?.email).toBe(order.email);
      expect(byEmail.get(order.email) ?? link.profile_id).toBe(link.profile_id); // one profile per e-mail
      byEmail.set(order.email, link.profile_id);
    }
    expect(byEmail.size).toBe(50);
    expect(await service.db.collection(PROCESSED_EVENTS).count({ group: "profiles", status: "done" })).toBe(ORDERS);
    expect((await jsm.streams.info(deadLetters)).state.messages).toBe(0);

    // The deliveries that met the outage came back after the schedule's waits, not at once.
    const attempts = new Map<string, number[]>();
    for (const call of outage.refused) {
      if (call.collection === PROCESSED_EVENTS && call.method === "insertOne" && call.id) {
        attempts.set(call.id, [...(attempts.get(call.id) ?? []), call.at]);
      }
    }
    expect(attempts.size).toBeGreaterThan(0);
    for (const times of attempts.values()) {
      expect(times.length).toBeLessThanOrEqual(RETRY_DELAYS.length);
      for (let i = 1; i < times.length; i++) expect(times[i] - times[i - 1]).toBeGreaterThanOrEqual(RETRY_DELAYS[i - 1] - 50);
    }
    const refusedClaims = [...attempts.values()].reduce((sum, times) => sum + times.length, 0);
    process.stdout.write(
      `outage ${outage.endedAt! - outage.startedAt!} ms; ${attempts.size} events met it (${refusedClaims} failed deliveries, ` +
        `at most ${Math.max(...[...attempts.values()].map((t) => t.length))} each); all ${ORDERS} linked ${recovered - outage.endedAt!} ms after it ended\n`,
    );
  }, 150_000);
});
