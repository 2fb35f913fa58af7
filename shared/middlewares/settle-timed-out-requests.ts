/**
 * Moleculer 0.15 leaves a timed-out remote call "running" forever on the caller: the Timeout middleware
 * rejects the caller's promise, then the ErrorHandler removes the request from the transit's pending list
 * without settling it, so the promise the ContextTracker watches never ends. The next graceful stop
 * then waits `tracking.shutdownTimeout` for it and fails with a GracefulStopTimeoutError.
 *
 * User middlewares wrap innermost in 0.15, so this one sits under ContextTracker and Timeout: it settles
 * the remote call itself once the call's own timeout has passed. A late answer is ignored by the transit
 * as an orphan, as it would be anyway.
 */
import { Errors, type Context, type Middleware } from "moleculer";

/** Fires after the Timeout middleware's own timer, so the caller sees that middleware's error. */
const GRACE_MS = 20;

export function settleTimedOutRequests(): Middleware {
  return {
    name: "SettleTimedOutRequests",

    remoteAction(next: (ctx: Context) => Promise<unknown>) {
      return function settleTimedOut(ctx: Context) {
        const call = next(ctx);
        const timeout = Number(ctx.options.timeout);
        if (!(timeout > 0)) return call;
        return new Promise((resolve, reject) => {
          const timer = setTimeout(() => {
            reject(new Errors.RequestTimeoutError({ action: ctx.action?.name ?? "", nodeID: ctx.nodeID ?? "" }));
          }, timeout + GRACE_MS);
          call.then(resolve, reject).finally(() => clearTimeout(timer));
        });
      };
    },
  };
}
