/**
 * A call to a node that never answers (hung or killed without a goodbye) must not stay "running" on the
 * caller after its timeout: otherwise the caller's next graceful stop waits for it and fails.
 * Two brokers over the real NATS server, built from moleculer.config.ts (which installs the middleware).
 */
import { Errors, type ServiceBroker } from "moleculer";
import { assertNatsUp, deleteStreams, NATS_URL, startBroker, uniqueName, waitFor } from "../../../test/harness";

interface TrackedBroker {
  _trackedContexts: unknown[];
  transit: { pendingRequests: Map<string, unknown> };
}

/** Nothing left pending or "running" on the caller (what a graceful stop would wait for). */
const settled = (broker: ServiceBroker) => {
  const tracked = broker as unknown as TrackedBroker;
  return tracked.transit.pendingRequests.size === 0 && tracked._trackedContexts.length === 0;
};
const describeState = (broker: ServiceBroker) => () => {
  const tracked = broker as unknown as TrackedBroker;
  return `pending requests: ${tracked.transit.pendingRequests.size}, tracked contexts: ${tracked._trackedContexts.length}`;
};

describe("settleTimedOutRequests (middleware)", () => {
  let caller: ServiceBroker;
  let callee: ServiceBroker;
  const namespace = uniqueName("settle");
  const release: Array<() => void> = [];
  let flakyCalls = 0;
  let dropNextAnswer = false;

  beforeAll(async () => {
    await assertNatsUp();
    callee = await startBroker({
      transporter: NATS_URL,
      namespace,
      services: [
        {
          name: "stuck",
          actions: {
            wait: () => new Promise<string>((resolve) => release.push(() => resolve("late answer"))),
            // Its first answer is lost on the way (see dropNextAnswer): a retry gets the second.
            flaky: {
              retryPolicy: { enabled: true, retries: 1, delay: 10 },
              handler: () => (++flakyCalls === 1 ? "first attempt" : "second attempt"),
            },
          },
        },
      ],
    });
    // A node that hangs or dies mid-call never answers; here the callee's transit drops one answer.
    const transit = callee.transit as unknown as { sendResponse: (...args: unknown[]) => Promise<void> };
    const sendResponse = transit.sendResponse.bind(transit);
    transit.sendResponse = (...args: unknown[]) => {
      if (!dropNextAnswer) return sendResponse(...args);
      dropNextAnswer = false;
      return Promise.resolve();
    };
    caller = await startBroker({ transporter: NATS_URL, namespace, broker: { tracking: { enabled: true, shutdownTimeout: 2_000 } } });
    await caller.waitForServices(["stuck"], 10_000);
  });

  afterAll(async () => {
    for (const answer of release) answer();
    await Promise.all([caller?.stop(), callee?.stop()]);
    await deleteStreams(namespace);
  });

  it("ends the caller's tracked context and pending request when the call times out", async () => {
    const call = caller.call("stuck.wait", {}, { timeout: 300, retries: 0 });
    await expect(call).rejects.toBeInstanceOf(Errors.RequestTimeoutError);
    // The callee never answers: without the middleware, both stay on the caller for good.
    await waitFor(() => settled(caller), "the timed-out call to be settled", { detail: describeState(caller) });
  });

  it("leaves nothing pending when a retry after a timed-out attempt succeeds", async () => {
    dropNextAnswer = true;
    // 2 s: the second attempt must be answered within it, even on a loaded machine.
    await expect(caller.call("stuck.flaky", {}, { timeout: 2_000 })).resolves.toBe("second attempt");
    expect(flakyCalls).toBe(2);
    await waitFor(() => settled(caller), "the lost first attempt to be settled", { detail: describeState(caller) });
  });

  it("ignores the answer that arrives after the timeout, and the next call still works", async () => {
    const late = caller.call("stuck.wait", {}, { timeout: 200, retries: 0 });
    await expect(late).rejects.toBeInstanceOf(Errors.RequestTimeoutError);
    for (const answer of release.splice(0)) answer();
    const next = caller.call("stuck.wait", {}, { timeout: 10_000 });
    await waitFor(() => release.length > 0, "the call to reach the callee");
    for (const answer of release.splice(0)) answer();
    await expect(next).resolves.toBe("late answer");
  });
});
