/**
 * `auth.authenticate` is asked on every authenticated request: a call stuck on an auth node that hangs
 * (or just died) must fail after its own 5 s timeout and be retried on another node, not wait for the
 * 10 s request timeout and fail. The retry must not land on the hung node again: Moleculer's Retry asks
 * the balancer afresh, and round-robin alone may hand it the same node (the RetryOnAnotherNode
 * middleware in moleculer.config.ts prevents that). Three brokers over the real NATS server; the two
 * auth nodes share one in-memory store (same process), so a session issued by one is known to both.
 */
import type { ServiceBroker } from "moleculer";
import type { AuthToken } from "../../../shared/contracts/auth";
import { uuidv7 } from "../../../shared/ids";
import { assertNatsUp, deleteStreams, NATS_URL, startBroker, uniqueName, waitFor } from "../../../test/harness";

type Authenticate = (params: { access_token: string }, ...rest: unknown[]) => Promise<unknown>;
type AuthInternals = { auth: { authenticate: Authenticate } };

const authOf = (broker: ServiceBroker) => (broker.getLocalService("auth") as unknown as AuthInternals).auth;

describe("auth.authenticate across auth nodes", () => {
  const namespace = uniqueName("authfo");
  const env = { JWT_SECRET: "failover-test-secret-0123456789-0123456789" };
  let caller: ServiceBroker;
  let healthy: ServiceBroker;
  let hung: ServiceBroker;
  const release: Array<() => void> = [];

  beforeAll(async () => {
    await assertNatsUp();
    healthy = await startBroker({ services: ["auth"], transporter: NATS_URL, namespace, env });
    hung = await startBroker({ services: ["auth"], transporter: NATS_URL, namespace, env });
    caller = await startBroker({ transporter: NATS_URL, namespace, env });
    await waitFor(
      () => caller.registry.getActionEndpoints("auth.authenticate")?.endpoints.filter((ep) => ep.isAvailable).length === 2,
      "the caller to know both auth nodes",
    );
  });
  afterAll(async () => {
    for (const answer of release.splice(0)) answer(); // the hung node's stop need not wait for its calls
    await Promise.all([caller?.stop(), healthy?.stop(), hung?.stop()]);
    await deleteStreams(namespace);
  });

  it("retries a call stuck on a hung node on the other node after 5 s, never on the hung one again", async () => {
    const store = uuidv7();
    const issue = () => caller.call("auth.issueSession", { store_id: store, profile_id: uuidv7(), is_verified: true }) as Promise<AuthToken>;
    const tokens = await Promise.all(Array.from({ length: 4 }, issue));

    // Which node each request (one token each) reached, in order.
    const reached = new Map<string, string[]>(tokens.map((t) => [t.access_token, []]));
    const answering = authOf(healthy);
    const authenticate = answering.authenticate.bind(answering);
    answering.authenticate = (params, ...rest) => {
      reached.get(params.access_token)?.push("healthy");
      return authenticate(params, ...rest);
    };
    authOf(hung).authenticate = (params) => {
      reached.get(params.access_token)?.push("hung");
      return new Promise((resolve) => release.push(() => resolve(null)));
    };

    const principals = await Promise.all(tokens.map((t) => caller.call("auth.authenticate", { store_id: store, access_token: t.access_token })));
    expect(principals).toEqual(tokens.map((t) => expect.objectContaining({ profile_id: t.profile_id, session_id: t.id })));
    // Round-robin sent half of them to the hung node, which never answers: those succeeded only by the
    // retry after the 5 s timeout (with the plain 10 s request timeout and no retry they would have
    // failed), and that retry went to the healthy node.
    const paths = [...reached.values()];
    expect(paths.filter((path) => path[0] === "hung")).toHaveLength(2);
    for (const path of paths) expect(path).toEqual(path[0] === "hung" ? ["hung", "healthy"] : ["healthy"]);
  });
});
