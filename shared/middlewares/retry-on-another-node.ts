/**
 * A retry goes to another node. Moleculer 0.15's Retry middleware re-calls a failed action through the
 * balancer (`broker.call(name, params, { ctx: copy })`), which knows nothing of the attempt that failed:
 * round-robin hands the retry to whichever node is next, often the same hung node again, and with
 * `preferLocal` a hung local copy gets every retry. An action that opts into retries (`retryPolicy`) does
 * so to survive one bad node, so each retry here is sent to an available node of that action that this
 * request has not tried yet (a local one first when `preferLocal`, else the balancer's pick among them).
 * Only when every copy has been tried does the balancer choose freely again.
 *
 * It hooks `broker.call`, which the Retry middleware calls for each new attempt. The attempts of one
 * request share `ctx.locals` (Context.copy keeps it), and each copy still carries the `nodeID` of the
 * attempt that just failed: that is how the nodes already tried are known. A call that names its node
 * (`nodeID`) is left alone.
 */
import type { CallingOptions, Context, Middleware, ServiceBroker } from "moleculer";

type Call = (actionName: string, params?: unknown, opts?: CallingOptions & { ctx?: Context }) => Promise<unknown>;
type RetryContext = Context & { _retryAttempts?: number };

/** The nodes tried so far by one request (keyed by the `locals` its attempts share), per action. */
const triedByRequest = new WeakMap<object, { action: string; nodes: Set<string> }>();

function triedNodes(ctx: RetryContext, action: string): Set<string> {
  let tried = triedByRequest.get(ctx.locals as object);
  if (!tried || tried.action !== action) {
    tried = { action, nodes: new Set() };
    triedByRequest.set(ctx.locals as object, tried);
  }
  if (ctx.nodeID) tried.nodes.add(ctx.nodeID);
  return tried.nodes;
}

/** An available node of `action` not in `tried`, or null when there is none. */
export function anotherNode(broker: ServiceBroker, action: string, tried: ReadonlySet<string>, ctx: Context): string | null {
  const list = broker.registry.getActionEndpoints(action);
  const others = (list?.endpoints ?? []).filter((ep) => ep.isAvailable && !tried.has(ep.id));
  if (others.length === 0) return null;
  const local = broker.registry.opts.preferLocal ? others.find((ep) => ep.local) : undefined;
  return (local ?? list.select(others, ctx) ?? others[0]).id;
}

export function retryOnAnotherNode(): Middleware {
  const call = (next: Call): Call =>
    function retryOnAnotherNodeCall(actionName, params, opts) {
      const ctx = opts?.ctx as RetryContext | undefined;
      const isRetry = ctx != null && (ctx._retryAttempts ?? 0) > 0 && typeof actionName === "string";
      if (!isRetry || opts?.nodeID || ctx.options?.nodeID) return next(actionName, params, opts);
      const nodeID = anotherNode(ctx.broker, actionName, triedNodes(ctx, actionName), ctx);
      return next(actionName, params, nodeID ? { ...opts, nodeID } : opts);
    };
  return {
    name: "RetryOnAnotherNode",
    // Moleculer's typings declare `call` as returning a promise; at run time it wraps `broker.call`.
    call: call as unknown as Middleware["call"],
  };
}
