/**
 * Graceful stop, gateways first (any local service with a `drain` method; in shared so no process loads
 * gateway code to get it). A broker stops all its services at once, so in one process the
 * services could close their databases while the gateway still takes requests (answered 500, though
 * some writes were saved). This middleware makes `broker.stop()` first drain every local gateway: stop
 * taking connections, answer what is in flight (with `Connection: close`), then let the broker stop
 * the rest. It runs before Moleculer's own stopping hooks, which would otherwise wait for calls that
 * new requests keep starting.
 */
import type { Middleware, Service, ServiceBroker } from "moleculer";

export interface Drainable {
  /** Stops taking requests and resolves once every answer in flight has been sent (or `timeoutMs`). */
  drain(timeoutMs: number): Promise<void>;
}

function isDrainable(service: Service): service is Service & Drainable {
  return typeof (service as Partial<Drainable>).drain === "function";
}

export function drainGatewaysFirst(): Middleware {
  return {
    name: "DrainGatewaysFirst",

    created(broker: ServiceBroker) {
      const stop = broker.stop.bind(broker);
      // Half the stop budget: the services' own in-flight calls get the tracker's full budget after it.
      const timeoutMs = (broker.options.tracking?.shutdownTimeout ?? 10_000) / 2;
      let draining: Promise<unknown> | null = null;
      broker.stop = () => {
        draining ??= Promise.all(broker.services.filter(isDrainable).map((gateway) => gateway.drain(timeoutMs)));
        return draining.then(stop, stop);
      };
    },
  };
}
