/**
 * Durable events over the real NATS JetStream (nats://127.0.0.1:4222): a producer broker and a consumer
 * broker with a small service built on durableChannel + storageMixin (embedded file store in a temp dir).
 * Each run uses its own subject prefix and Moleculer namespace and deletes its streams at the end.
 * The consumer retries on a short schedule (EVENTS_RETRY_DELAYS below); test/durable-outage.test.ts runs
 * a real outage.
 */
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { connect, type NatsConnection, type JetStreamManager } from "nats";
import type { Service, ServiceBroker, ServiceSchema } from "moleculer";
import { durableChannel, publishEvent, PROCESSED_EVENTS, UnprocessableEvent } from "../shared/events/durable";
import { prefixedSubject, streamNameOf } from "../shared/events/streams";
import { storageMixin, type StorageMixinThis } from "../shared/mixins/storage.mixin";
import type { DurableEventPayload } from "../shared/contracts/events";
import { assertNatsUp, deleteStreams, NATS_URL, startBroker, uniqueName } from "./harness";

const STORE = "0190c5d2-1111-7000-8000-000000000001";
const order = (order_id: string): DurableEventPayload<"order.created"> => ({ store_id: STORE, order_id, total: 10, currency: "EUR" });

async function waitFor(check: () => boolean | Promise<boolean>, timeoutMs = 10_000, what = "condition"): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe("durable events (NATS JetStream)", () => {
  const prefix = uniqueName("t");
  const stream = streamNameOf(prefixedSubject("order.created", prefix));
  const deadLetters = streamNameOf(prefixedSubject("DEAD_LETTER", prefix));
  let dataDir: string;
  let nc: NatsConnection;
  let jsm: JetStreamManager;
  let producer: ServiceBroker;

  /** Waits before each redelivery: 5 deliveries in all. */
  const RETRY_DELAYS = [100, 200, 400, 800];
  /** What the consumer's handler did: applied order ids in order, and attempts per order id (with times). */
  const applied: string[] = [];
  const attempts = new Map<string, number>();
  const attemptTimes = new Map<string, number[]>();
  const failOnce = new Set(["o-flaky"]);
  const requestIds = new Map<string, string | null>();

  const sink: ServiceSchema = {
    name: "order-sink",
    mixins: [storageMixin("order-sink")],
    channels: {
      "order.created": durableChannel("order.created", {
        group: "order-sink",
        async handler(payload, ctx) {
          requestIds.set(payload.order_id, ctx.requestID);
          attempts.set(payload.order_id, (attempts.get(payload.order_id) ?? 0) + 1);
          attemptTimes.set(payload.order_id, [...(attemptTimes.get(payload.order_id) ?? []), Date.now()]);
          if (payload.order_id === "o-poison") throw new Error("cannot apply this one, ever");
          if (payload.order_id === "o-unknown-profile") throw new UnprocessableEvent("profile unknown and no e-mail");
          if (failOnce.delete(payload.order_id)) throw new Error("transient failure");
          applied.push(payload.order_id);
        },
      }),
    },
  };

  const startConsumer = () =>
    startBroker({
      services: [sink],
      transporter: NATS_URL,
      namespace: prefix,
      channelPrefix: prefix,
      storage: { dataDir },
      nodeID: uniqueName("consumer-"),
      env: { EVENTS_RETRY_DELAYS: RETRY_DELAYS.map((ms) => `${ms}ms`).join(",") },
    });

  const consumerInfo = () => jsm.consumers.info(stream, "order-sink");
  const settled = async () => {
    const info = await consumerInfo();
    return info.num_pending === 0 && info.num_ack_pending === 0;
  };

  beforeAll(async () => {
    await assertNatsUp();
    dataDir = await mkdtemp(path.join(os.tmpdir(), "crm-durable-"));
    nc = await connect({ servers: NATS_URL });
    jsm = await nc.jetstreamManager();
    producer = await startBroker({ transporter: NATS_URL, namespace: prefix, channelPrefix: prefix, nodeID: uniqueName("producer-") });
  });

  afterAll(async () => {
    await producer?.stop();
    await deleteStreams(prefix);
    await nc?.close();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  it("creates the event streams at start-up, before any consumer exists", async () => {
    const info = await jsm.streams.info(stream);
    expect(info.config).toMatchObject({ subjects: [`${prefix}.order.created`], storage: "file" });
    expect(info.config.duplicate_window).toBe(2 * 60 * 1e9);
    await expect(jsm.streams.info(deadLetters)).resolves.toMatchObject({ config: { subjects: [`${prefix}.DEAD_LETTER`] } });
  });

  it("rejects an invalid payload at publish, and sends nothing", async () => {
    const before = (await jsm.streams.info(stream)).state.messages;
    await expect(publishEvent(producer, "order.created", { store_id: "not-a-uuid", order_id: "" } as never)).rejects.toMatchObject({
      type: "VALIDATION_ERROR",
      code: 400,
      data: { validationErrors: expect.arrayContaining([expect.objectContaining({ field: "store_id" }), expect.objectContaining({ field: "order_id" })]) },
    });
    expect((await jsm.streams.info(stream)).state.messages).toBe(before);
  });

  it("delivers every event published while the consumer was down exactly once, duplicates and retries included", async () => {
    // The consumer group exists (first start), then goes away while orders are published.
    await (await startConsumer()).stop();

    const ids = ["o1", "o2", "o3", "o4", "o5", "o6", "o7", "o8", "o-flaky"];
    for (const id of ids) await publishEvent(producer, "order.created", order(id));
    await publishEvent(producer, "order.created", order("o3")); // same msgID: JetStream drops it
    await publishEvent(producer, "order.created", order("o5"), { key: "o5-resent" }); // stored twice: the consumer must skip it
    expect((await jsm.streams.info(stream)).state.messages).toBe(ids.length + 1);

    const consumer = await startConsumer();
    try {
      await waitFor(() => applied.length >= ids.length, 10_000, "all orders applied");
      await waitFor(settled, 10_000, "the consumer to ack everything");
      expect([...applied].sort()).toEqual([...ids].sort());
      expect(applied).toHaveLength(ids.length);
      expect(attempts.get("o-flaky")).toBe(2);
      expect(attempts.get("o5")).toBe(1);

      const svc = consumer.getLocalService("order-sink") as Service & StorageMixinThis;
      const processed = await svc.db.collection(PROCESSED_EVENTS).find({ group: "order-sink" });
      expect(processed).toHaveLength(ids.length);
      expect(processed.every((p) => p.status === "done")).toBe(true);
      expect(processed.map((p) => p._id)).toContain(`order.created:order-sink:${STORE}:o1`);

      // A redelivery of an event already applied (e.g. its ack was lost) is skipped.
      await (svc as unknown as { emitLocalChannelHandler(n: string, p: unknown): Promise<void> }).emitLocalChannelHandler("order.created", order("o1"));
      expect(applied.filter((id) => id === "o1")).toHaveLength(1);
      expect(attempts.get("o1")).toBe(1);
    } finally {
      await consumer.stop();
    }
  });

  it("redelivers an event whose handler keeps failing after each wait of the schedule, then moves it to DEAD_LETTER", async () => {
    const consumer = await startConsumer();
    try {
      await publishEvent(producer, "order.created", order("o-poison"));
      await waitFor(async () => (await jsm.streams.info(deadLetters)).state.messages === 1, 10_000, "a dead letter");
      await waitFor(settled, 5_000, "the poison message to be acked");
      expect(attempts.get("o-poison")).toBe(RETRY_DELAYS.length + 1);
      // Each redelivery came no sooner than its wait (immediate naks came back within a few ms).
      const times = attemptTimes.get("o-poison")!;
      const gaps = times.slice(1).map((t, i) => t - times[i]);
      for (const [i, gap] of gaps.entries()) expect(gap).toBeGreaterThanOrEqual(RETRY_DELAYS[i] - 10);
      expect(times[times.length - 1] - times[0]).toBeLessThan(RETRY_DELAYS.reduce((a, b) => a + b) + 2_000);
      const letter = await jsm.streams.getMessage(deadLetters, { last_by_subj: `${prefix}.DEAD_LETTER` });
      expect(letter.header.get("x-original-channel")).toBe(`${prefix}.order.created`);
      expect(letter.header.get("x-original-group")).toBe("order-sink");
      expect(letter.header.get("x-error")).toBe("cannot apply this one, ever");
      expect(letter.header.get("x-redelivered-count")).toBe(String(RETRY_DELAYS.length));
      expect(letter.header.get("x-original-msg-id")).toBe(`order.created:${STORE}:o-poison`);
      expect(Number(letter.header.get("x-original-seq"))).toBeGreaterThan(0);
      expect(letter.json()).toMatchObject({ order_id: "o-poison" });
      expect(applied).not.toContain("o-poison");
      const svc = consumer.getLocalService("order-sink") as Service & StorageMixinThis;
      expect(await svc.db.collection(PROCESSED_EVENTS).findOne({ key: `${STORE}:o-poison` })).toBeNull();
    } finally {
      await consumer.stop();
    }
  });

  it("dead-letters at once an event its handler calls unprocessable, without recording it as applied", async () => {
    const consumer = await startConsumer();
    try {
      const lettersBefore = (await jsm.streams.info(deadLetters)).state.messages;
      await publishEvent(producer, "order.created", order("o-unknown-profile"));
      await waitFor(async () => (await jsm.streams.info(deadLetters)).state.messages === lettersBefore + 1, 5_000, "the dead letter");
      await waitFor(settled, 5_000, "the event to be acked");
      expect(attempts.get("o-unknown-profile")).toBe(1); // no retries
      const letter = await jsm.streams.getMessage(deadLetters, { last_by_subj: `${prefix}.DEAD_LETTER` });
      expect(letter.header.get("x-error")).toBe("unprocessable: profile unknown and no e-mail");
      expect(letter.header.get("x-redelivered-count")).toBe("0");
      expect(letter.header.get("x-original-msg-id")).toBe(`order.created:${STORE}:o-unknown-profile`);
      expect(letter.json()).toMatchObject({ order_id: "o-unknown-profile" });
      const svc = consumer.getLocalService("order-sink") as Service & StorageMixinThis;
      expect(await svc.db.collection(PROCESSED_EVENTS).findOne({ key: `${STORE}:o-unknown-profile` })).toBeNull();
    } finally {
      await consumer.stop();
    }
  });

  it("shares a consumer group between two instances: each event is applied by one of them, once", async () => {
    const [a, b] = [await startConsumer(), await startConsumer()];
    try {
      const ids = Array.from({ length: 20 }, (_, i) => `o-shared-${i}`);
      await Promise.all(ids.map((id) => publishEvent(producer, "order.created", order(id))));
      await waitFor(() => ids.every((id) => applied.includes(id)), 10_000, "the shared orders");
      await waitFor(settled, 5_000, "the shared orders to be acked");
      expect(applied.filter((id) => id.startsWith("o-shared-")).sort()).toEqual([...ids].sort());
    } finally {
      await Promise.all([a.stop(), b.stop()]);
    }
  });

  it("carries the publishing request's id (and nothing else of its context) to the consumer", async () => {
    const orders = producer.createService({
      name: "orders",
      actions: {
        create: (ctx) => publishEvent(ctx, "order.created", order((ctx.params as { id: string }).id)),
      },
    });
    const consumer = await startConsumer();
    try {
      await producer.waitForServices(["orders"]);
      await producer.call("orders.create", { id: "o-ctx" }, { requestID: "req-durable-1", meta: { auth: { kind: "admin" } } });
      await waitFor(() => applied.includes("o-ctx"), 5_000, "the order published from an action");
      expect(requestIds.get("o-ctx")).toBe("req-durable-1");
      const stored = await jsm.streams.getMessage(stream, { last_by_subj: `${prefix}.order.created` });
      expect(stored.header.get("$requestID")).toBe("req-durable-1");
      expect(stored.header.has("$meta")).toBe(false);
    } finally {
      await consumer.stop();
      await producer.destroyService(orders);
    }
  });

  /**
   * Publishes `body` as an outside producer would, then a valid order behind it: the valid one is applied, the
   * first is acked without a redelivery and lands in DEAD_LETTER. Answers that dead letter.
   */
  async function deadLetteredAtOnce(body: Uint8Array, nextOrderId: string) {
    const before = (await consumerInfo()).num_redelivered;
    const lettersBefore = (await jsm.streams.info(deadLetters)).state.messages;
    await nc.jetstream().publish(`${prefix}.order.created`, body);
    await publishEvent(producer, "order.created", order(nextOrderId));
    await waitFor(() => applied.includes(nextOrderId), 5_000, "the next valid order");
    await waitFor(settled, 5_000, "the refused message to be acked");
    expect((await consumerInfo()).num_redelivered).toBe(before);
    await waitFor(async () => (await jsm.streams.info(deadLetters)).state.messages === lettersBefore + 1, 5_000, "the dead letter");
    const letter = await jsm.streams.getMessage(deadLetters, { last_by_subj: `${prefix}.DEAD_LETTER` });
    expect(letter.header.get("x-original-channel")).toBe(`${prefix}.order.created`);
    expect(letter.header.get("x-original-group")).toBe("order-sink");
    return letter;
  }

  it("moves a malformed payload from an outside producer to DEAD_LETTER at once instead of retrying it", async () => {
    const consumer = await startConsumer();
    try {
      const payload = { store_id: "x", order_id: 42, extra: { kept: true } };
      const letter = await deadLetteredAtOnce(new TextEncoder().encode(JSON.stringify(payload)), "o-after");
      expect(letter.json()).toEqual(payload); // as published
      expect(letter.header.get("x-error")).toMatch(/^invalid payload: .*order_id/);
      expect(applied).toHaveLength(new Set(applied).size);
    } finally {
      await consumer.stop();
    }
  });

  it("moves a message whose body is not JSON to DEAD_LETTER at once, saying so, instead of retrying it", async () => {
    const consumer = await startConsumer();
    try {
      const letter = await deadLetteredAtOnce(new TextEncoder().encode("not json"), "o-after-garbage");
      expect(new TextDecoder().decode(letter.data)).toBe("not json"); // as published
      expect(letter.header.get("x-error")).toMatch(/^unreadable: the message's body cannot be deserialized \(.+\); no retry can fix it$/);
      expect(letter.header.get("x-redelivered-count")).toBe("0");
    } finally {
      await consumer.stop();
    }
  });
});

describe("durable events (in-process, no NATS)", () => {
  it("delivers an event published from a service's started() to a local consumer once the broker is up", async () => {
    const received: string[] = [];
    const producerService: ServiceSchema = {
      name: "early-producer",
      async started() {
        await publishEvent(this.broker, "email-template.deleted", { store_id: STORE, template_id: "0190c5d2-2222-7000-8000-000000000002" });
      },
    };
    const consumerService: ServiceSchema = {
      name: "lists-double",
      mixins: [storageMixin("lists-double")],
      channels: {
        "email-template.deleted": durableChannel("email-template.deleted", {
          group: "lists-double",
          handler(payload) {
            received.push(payload.template_id);
          },
        }),
      },
    };
    const broker = await startBroker({ services: [producerService, consumerService] });
    try {
      await waitFor(() => received.length === 1, 2_000, "the local delivery");
      expect(received).toEqual(["0190c5d2-2222-7000-8000-000000000002"]);
    } finally {
      await broker.stop();
    }
  });

  it("refuses a channel registered under another event's name", async () => {
    const wrong: ServiceSchema = {
      name: "wrong",
      channels: { "profile.merged": durableChannel("order.created", { group: "wrong", handler() {} }) },
    };
    const broker = await startBroker();
    try {
      expect(() => broker.createService(wrong)).toThrow(/built for event 'order.created'/);
    } finally {
      await broker.stop();
    }
  });
});
