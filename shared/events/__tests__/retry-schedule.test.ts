/** The redelivery schedule: EVENTS_RETRY_DELAYS, the wait of each delivery, and what the middleware makes of it. */
import { ServiceBroker } from "moleculer";
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
