/** Durable events over @moleculer/channels. (Placeholder until the events helper lands.) */
import type { Middleware } from "moleculer";

export function channelsMiddleware(): Middleware {
  return { name: "Channels(placeholder)" } as Middleware;
}
