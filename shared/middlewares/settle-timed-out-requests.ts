/**
 * Moleculer 0.15 leaves a timed-out remote call "running" forever on the caller: the Timeout middleware
 * rejects the caller's promise, then the ErrorHandler removes the request from the transit's pending list
 * without settling it, so the promise the ContextTracker watches never ends. The next graceful stop
 * then waits `tracking.shutdownTimeout` for it and fails with a GracefulStopTimeoutError.
 *
 * User middlewares wrap innermost in 0.15, so this one sits under ContextTracker and Timeout: once the
 * call's own timeout has passed, it drops the request from the pending list (the ErrorHandler does not
 * when a Retry attempt succeeds afterwards) and settles the call. A late answer is then an orphan.
 * Timed-out calls also count as failures for the circuit breaker, so a node that hangs opens its breaker.
 */
import { Errors, type Context, type Middleware, type ServiceBroker } from "moleculer";

/** Fires after the Timeout middleware's own timer, so the caller sees that middleware's error. */
const GRACE_MS = 20;

export function settleTimedOutRequests(): Middleware {
  return {
    name: "SettleTimedOutRequests",

    remoteAction(this: ServiceBroker, next: (ctx: Context) => Promise<unknown>) {
      const transit = this.transit as unknown as { removePendingRequest(id: string): void } | undefined;
      return function settleTimedOut(ctx: Context) {
        const call = next(ctx);
        const timeout = Number(ctx.options.timeout);
        if (!(timeout > 0)) return call;
        return new Promise((resolve, reject) => {
          const timer = setTimeout(() => {
            transit?.removePendingRequest(ctx.id);
            reject(new Errors.RequestTimeoutError({ action: ctx.action?.name ?? "", nodeID: ctx.nodeID ?? "" }));
          }, timeout + GRACE_MS);
          call.then(resolve, reject).finally(() => clearTimeout(timer));
        });
      };
    },
  };
}
