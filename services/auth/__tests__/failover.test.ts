/**
 * `auth.authenticate` is asked on every authenticated request: a call stuck on an auth node that hangs
 * (or just died) must fail after its own 5 s timeout and be retried on another node, not wait for the
 * 10 s request timeout and fail. Three brokers over the real NATS server; the two auth nodes share one
 * in-memory store (same process), so a session issued by one is known to both.
 */
import type { ServiceBroker } from "moleculer";
import type { AuthToken } from "../../../shared/contracts/auth";
import { uuidv7 } from "../../../shared/ids";
import { assertNatsUp, deleteStreams, NATS_URL, startBroker, uniqueName } from "../../../test/harness";

type AuthInternals = { auth: { sessions: { authenticate: (...args: unknown[]) => Promise<unknown> } } };

describe("auth.authenticate across auth nodes", () => {
  const namespace = uniqueName("authfo");
  const env = { JWT_SECRET: "failover-test-secret-0123456789-0123456789" };
  let caller: ServiceBroker;
  let healthy: ServiceBroker;
  let hung: ServiceBroker;

  beforeAll(async () => {
    await assertNatsUp();
    healthy = await startBroker({ services: ["auth"], transporter: NATS_URL, namespace, env });
    hung = await startBroker({ services: ["auth"], transporter: NATS_URL, namespace, env });
    caller = await startBroker({ transporter: NATS_URL, namespace, env });
    await caller.waitForServices(["auth"], 10_000);
    await new Promise((r) => setTimeout(r, 500)); // the caller has learnt both auth nodes
  });
  afterAll(async () => {
    await Promise.all([caller?.stop(), healthy?.stop(), hung?.stop()]);
    await deleteStreams(namespace);
  });

  it("retries a call stuck on a hung node elsewhere after 5 s, so every request still succeeds", async () => {
    const store = uuidv7();
    const token = (await caller.call("auth.issueSession", { store_id: store, profile_id: uuidv7(), is_verified: true })) as AuthToken;
    const stuck = (hung.getLocalService("auth") as unknown as AuthInternals).auth.sessions;
    let hungCalls = 0;
    stuck.authenticate = () => {
      hungCalls++;
      return new Promise(() => undefined);
    };

    const principals = await Promise.all(
      Array.from({ length: 4 }, () => caller.call("auth.authenticate", { store_id: store, access_token: token.access_token })),
    );
    expect(principals).toEqual(Array(4).fill(expect.objectContaining({ profile_id: token.profile_id, session_id: token.id })));
    // Round-robin sent some to the hung node, which never answers: those succeeded only by the retry
    // after the 5 s timeout (with the plain 10 s request timeout and no retry they would have failed).
    expect(hungCalls).toBeGreaterThan(0);
  });
});
