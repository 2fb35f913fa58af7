/** The redelivery schedule: EVENTS_RETRY_DELAYS, the wait of each delivery, and what the middleware makes of it. */
import { ServiceBroker } from "moleculer";
import { headers as natsHeaders, type JsMsg } from "nats";
import { config, ConfigError, resetConfig } from "../../config";
import { channelsMiddleware, type ChannelBroker } from "../channels";
import { BackoffNatsAdapter, retryDelay } from "../nats-adapter";

const saved = process.env.EVENTS_RETRY_DELAYS;
afterEach(() => {
  if (saved === undefined) delete process.env.EVENTS_RETRY_DELAYS;
  else process.env.EVENTS_RETRY_DELAYS = saved;
  resetConfig();
});

function delaysOf(value: string | undefined): number[] | string[] {
  if (value === undefined) delete process.env.EVENTS_RETRY_DELAYS;
  else process.env.EVENTS_RETRY_DELAYS = value;
  resetConfig();
  try {
    return config().EVENTS_RETRY_DELAYS;
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
}

describe("EVENTS_RETRY_DELAYS", () => {
  it("defaults to 1 s, 5 s, 30 s, 2 min, 10 min (an empty value too)", () => {
    expect(delaysOf(undefined)).toEqual([1_000, 5_000, 30_000, 120_000, 600_000]);
    expect(delaysOf("")).toEqual([1_000, 5_000, 30_000, 120_000, 600_000]);
  });

  it("reads a comma list of durations in ms, s, m or h", () => {
    expect(delaysOf("250ms, 1.5s,2m,1h")).toEqual([250, 1_500, 120_000, 3_600_000]);
    expect(delaysOf("10s")).toEqual([10_000]);
  });

  it.each(["0s", "5", "1x", "1s,,2s", "25h", "-1s", Array(21).fill("1s").join(",")])("refuses %j, naming the variable", (value) => {
    expect(delaysOf(value)).toEqual([expect.stringMatching(/^EVENTS_RETRY_DELAYS: must be a comma list of 1 to 20 durations .* e\.g\. 1s,5s,30s,2m,10m$/)]);
  });
});

describe("retryDelay", () => {
  const schedule = [1_000, 5_000, 30_000];
  it("waits the schedule's n-th step after the n-th failed delivery, and its last step beyond it", () => {
    expect([1, 2, 3, 4, 9].map((n) => retryDelay(schedule, n))).toEqual([1_000, 5_000, 30_000, 30_000, 30_000]);
    expect(retryDelay(schedule, 0)).toBe(1_000);
    expect(retryDelay([], 3)).toBe(0);
  });
});

describe("channelsMiddleware on NATS", () => {
  const adapterOf = (options: Parameters<typeof channelsMiddleware>[0]) => {
    // `created` builds the adapter; nothing connects until the broker starts.
    const broker = new ServiceBroker({ logger: false, transporter: null, middlewares: [channelsMiddleware({ url: "nats://127.0.0.1:4222", ...options })] });
    return (broker as unknown as ChannelBroker).channelAdapter as unknown as BackoffNatsAdapter & { opts: { maxRetries: number } };
  };

  it("uses the backoff adapter, with one delivery more than the schedule has waits", () => {
    const adapter = adapterOf({ retryDelays: [100, 200] });
    expect(adapter).toBeInstanceOf(BackoffNatsAdapter);
    expect(adapter.opts.maxRetries).toBe(3);
    expect(adapterOf({ retryDelays: [100, 200], maxRetries: 7 }).opts.maxRetries).toBe(7);
  });

  it("takes the schedule from EVENTS_RETRY_DELAYS by default", () => {
    process.env.EVENTS_RETRY_DELAYS = "1s,2s,3s";
    resetConfig();
    expect(adapterOf({}).opts.maxRetries).toBe(4);
  });
});

describe("BackoffNatsAdapter.moveToDeadLetter", () => {
  const chan = { name: "t1.order.created", group: "profiles", deadLettering: { enabled: true, queueName: "t1.DEAD_LETTER" } };
  const failedMessage = () => {
    const headers = natsHeaders();
    headers.set("Nats-Msg-Id", "order.created:s:o-1");
    headers.set("$requestID", "req-1");
    const naks: Array<number | undefined> = [];
    const message = {
      seq: 41,
      data: new TextEncoder().encode('{"order_id":"o-1"}'),
      headers,
      info: { deliveryCount: 6 },
      nak: (ms?: number) => void naks.push(ms),
      ack: () => undefined,
    };
    return { message: message as unknown as JsMsg, naks };
  };
  const adapterWith = (publish: (queue: string, data: unknown, opts: unknown) => Promise<void>) => {
    const broker = new ServiceBroker({
      logger: false,
      transporter: null,
      middlewares: [channelsMiddleware({ url: "nats://127.0.0.1:4222", retryDelays: [1_000, 60_000] })],
    });
    const adapter = (broker as unknown as ChannelBroker).channelAdapter as unknown as BackoffNatsAdapter & { publish: typeof publish; stopping: boolean };
    adapter.publish = publish;
    return adapter;
  };
  type Chan = Parameters<BackoffNatsAdapter["moveToDeadLetter"]>[0];

  it("stores the payload with why, the redelivery count, the original msg id and request id, under a msg id of its own", async () => {
    const published: unknown[][] = [];
    const adapter = adapterWith(async (...args) => void published.push(args));
    const { message, naks } = failedMessage();
    await adapter.moveToDeadLetter(chan as unknown as Chan, message);
    expect(naks).toEqual([]);
    expect(published).toEqual([
      [
        "t1.DEAD_LETTER",
        message.data,
        {
          raw: true,
          msgID: "dead-letter:profiles:t1.order.created:41",
          headers: {
            $requestID: "req-1",
            "x-original-channel": "t1.order.created",
            "x-original-group": "profiles",
            "x-error": "handler failed",
            "x-redelivered-count": "5",
            "x-original-seq": "41",
            "x-original-msg-id": "order.created:s:o-1",
          },
        },
      ],
    ]);
  });

  it("keeps the event (a nak with the schedule's last wait) when the dead letter cannot be stored, or the adapter is stopping", async () => {
    const failing = failedMessage();
    await adapterWith(() => Promise.reject(new Error("nats is down"))).moveToDeadLetter(chan as unknown as Chan, failing.message);
    expect(failing.naks).toEqual([60_000]);

    const stopping = failedMessage();
    const adapter = adapterWith(() => Promise.reject(new Error("not to be called")));
    adapter.stopping = true;
    await adapter.moveToDeadLetter(chan as unknown as Chan, stopping.message);
    expect(stopping.naks).toEqual([60_000]);
  });
});
