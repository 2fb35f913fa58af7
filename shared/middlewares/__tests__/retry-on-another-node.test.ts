/**
 * A retry goes to a node the request has not tried yet: never back to the node that just timed out,
 * including a hung local copy that `preferLocal` would pick again. Brokers over the real NATS server,
 * built from moleculer.config.ts (which installs the middleware).
 */
import { Errors, type Context, type ServiceBroker, type ServiceSchema } from "moleculer";
import { assertNatsUp, deleteStreams, NATS_URL, startBroker, uniqueName, waitFor } from "../../../test/harness";

type Params = { id: string };

describe("retryOnAnotherNode (middleware)", () => {
  const namespace = uniqueName("retryelse");
  const brokers: ServiceBroker[] = [];
  const release: Array<() => void> = [];
  /** The nodes each request (by id) reached, in order. */
  const reached = new Map<string, string[]>();
  const failedOnce = new Set<string>();

  const record = (ctx: Context<Params>) => {
    const path = reached.get(ctx.params.id) ?? [];
    path.push(ctx.broker.nodeID);
    reached.set(ctx.params.id, path);
  };
  // Retries on a timeout (2 s: a healthy node answers well within it, even on a loaded machine).
  const action = (behave: (ctx: Context<Params>) => unknown) => ({
    timeout: 2_000,
    retryPolicy: { enabled: true, retries: 2, delay: 10 },
    handler(ctx: Context<Params>) {
      record(ctx);
      return behave(ctx);
    },
  });
  const answers = (ctx: Context<Params>) => ctx.broker.nodeID;
  const hangs = () => new Promise((resolve) => release.push(() => resolve("too late")));
  const service = (name: string, behave: (ctx: Context<Params>) => unknown): ServiceSchema => ({ name, actions: { read: action(behave) } });

  const start = async (nodeID: string, services: ServiceSchema[]) => {
    const broker = await startBroker({ transporter: NATS_URL, namespace, nodeID: `${namespace}-${nodeID}`, services });
    brokers.push(broker);
    return broker;
  };
  const knows = (broker: ServiceBroker, action: string, count: number) =>
    waitFor(() => broker.registry.getActionEndpoints(action)?.endpoints.filter((ep) => ep.isAvailable).length === count, `${count} copies of ${action}`);
  const node = (name: string) => `${namespace}-${name}`;
  const calls = (caller: ServiceBroker, action: string, prefix: string, count: number) =>
    Promise.all(Array.from({ length: count }, (_, i) => caller.call(action, { id: `${prefix}-${i}` })));
  const pathsOf = (prefix: string) => [...reached.entries()].filter(([id]) => id.startsWith(`${prefix}-`)).map(([, path]) => path);

  let caller: ServiceBroker;

  beforeAll(async () => {
    await assertNatsUp();
    await start("healthy", [service("triple", answers), service("nearby", answers)]);
    await start("hung-1", [service("triple", hangs)]);
    await start("hung-2", [service("triple", hangs)]);
    await start("single", [
      service("single", (ctx) => {
        if (failedOnce.has(ctx.params.id)) return answers(ctx);
        failedOnce.add(ctx.params.id);
        throw new Errors.MoleculerRetryableError("busy for a moment");
      }),
    ]);
    // The caller has a local copy of `nearby` that hangs: `preferLocal` sends every first attempt there.
    caller = await start("caller", [service("nearby", hangs)]);
    await knows(caller, "triple.read", 3);
    await knows(caller, "nearby.read", 2);
    await knows(caller, "single.read", 1);
  });

  afterAll(async () => {
    for (const answer of release.splice(0)) answer();
    await Promise.all(brokers.map((b) => b.stop()));
    await deleteStreams(namespace);
  });

  it("sends each retry to a node the request has not tried, until the one that answers", async () => {
    const answered = await calls(caller, "triple.read", "triple", 6);
    expect(answered).toEqual(Array(6).fill(node("healthy")));
    const paths = pathsOf("triple");
    expect(paths).toHaveLength(6);
    for (const path of paths) {
      expect(new Set(path).size).toBe(path.length); // no node twice for one request
      expect(path.at(-1)).toBe(node("healthy"));
    }
    // Round-robin sent two of the six first attempts to each node: four of them had to be retried.
    expect(paths.filter((path) => path[0] !== node("healthy"))).toHaveLength(4);
  });

  it("retries a call that timed out on a hung local copy on a remote one, despite preferLocal", async () => {
    const answered = await calls(caller, "nearby.read", "nearby", 2);
    expect(answered).toEqual([node("healthy"), node("healthy")]);
    expect(pathsOf("nearby")).toEqual([
      [node("caller"), node("healthy")],
      [node("caller"), node("healthy")],
    ]);
  });

  it("retries on the same node when it is the only one", async () => {
    await expect(caller.call("single.read", { id: "single-0" })).resolves.toBe(node("single"));
    expect(pathsOf("single")).toEqual([[node("single"), node("single")]]);
  });
});
