/**
 * Instances of one service starting at the same moment (a scale-out, a restart of every replica) over a
 * real NATS: each creates its group's durable consumer, and JetStream refuses all but the first create.
 * Every instance must still start and consume, with the same streams as one instance.
 */
import type { ServiceBroker } from "moleculer";
import { deleteStreams, listStreams, NATS_URL, startBroker, uniqueName } from "../../../test/harness";
import { durableSubjects, streamNameOf } from "../streams";

describe("several instances of a consumer starting at once", () => {
  const brokers: ServiceBroker[] = [];
  const prefixes: string[] = [];
  afterAll(async () => {
    await Promise.all(brokers.map((b) => b.stop()));
    for (const prefix of prefixes) await deleteStreams(prefix);
  });

  it.each([1, 2, 3])(
    "start on a fresh stream together (round %i)",
    async () => {
      const namespace = uniqueName("race");
      prefixes.push(namespace);
      const started = await Promise.all(
        [1, 2, 3].map(() =>
          startBroker({
            services: ["profiles"],
            transporter: NATS_URL,
            namespace,
            channelPrefix: namespace,
            storage: "memory",
            env: { JWT_SECRET: "concurrent-start-secret" },
          }),
        ),
      );
      brokers.push(...started);
      for (const broker of started) expect(broker.getLocalService("profiles")).toBeDefined();
      // The instances that lost the race retried their subscribe: their dead letters still go to <prefix>.DEAD_LETTER.
      expect(await listStreams(namespace)).toEqual(durableSubjects(namespace).map(streamNameOf).sort());
    },
    60_000,
  );
});
