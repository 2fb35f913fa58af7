/**
 * The broker middleware behind durable events (@moleculer/channels 0.1.8), used by moleculer.config.ts.
 *
 * - A broker whose transporter is `nats://...` gets the JetStream adapter on the same server: manual ack
 *   after the handler succeeds; a failed delivery is redelivered after the next wait of `retryDelays`
 *   (EVENTS_RETRY_DELAYS, 1s,5s,30s,2m,10m), and once the last one failed too, the message moves to the
 *   DEAD_LETTER channel (see nats-adapter.ts). Without NATS it gets the in-process "Fake" adapter
 *   (`npm start`): no retries, not durable.
 * - Streams are created before anything can publish (see streams.ts), and the adapter connects in the
 *   broker's `starting` hook, so a service may publish from its own `started()` (channels 0.1.8 alone
 *   connects only after every service started, and `sendToChannel` from `started()` fails with
 *   "adapter not yet connected").
 * - One middleware object may serve several brokers in one process (tests): its state lives per broker.
 */
import type { Middleware, Service, ServiceBroker } from "moleculer";
import { Errors } from "moleculer";
import { Middleware as ChannelsMiddleware } from "@moleculer/channels";
import { nanos } from "nats";
import { config } from "../config";
import type { Database } from "../storage/port";
import { BackoffNatsAdapter } from "./nats-adapter";
import { purgeProcessedEvents } from "./processed";
import { DEAD_LETTER_CHANNEL, ensureStreams, streamSettings } from "./streams";

export interface ChannelsOptions {
  /** NATS URL for JetStream; default: the broker's transporter when it is `nats://...`. `null`: in-process. */
  url?: string | null;
  /** Subject (and stream name) prefix; "" (default) means the subject is the event name. */
  prefix?: string;
  /**
   * Milliseconds to wait before each redelivery of a message whose handler failed (default: the
   * EVENTS_RETRY_DELAYS setting, 1s,5s,30s,2m,10m). A channel's `maxRetries` beyond the schedule waits
   * its last step again.
   */
  retryDelays?: readonly number[];
  /**
   * Deliveries of a message whose handler keeps failing before it is dead-lettered (channels 0.1.8
   * counts the first delivery); default: one more than `retryDelays` has steps.
   */
  maxRetries?: number;
  /** Messages one consumer instance handles at the same time per channel (default 10). */
  maxInFlight?: number;
  /** JetStream stream replicas (default 1; 3 on a cluster). */
  replicas?: number;
}

/** What channels 0.1.8 puts on the broker; typed here because the package does not. */
export interface ChannelBroker {
  sendToChannel?: (channel: string, payload: unknown, opts?: Record<string, unknown>) => Promise<void>;
  channelAdapter?: ChannelAdapter;
}

interface ChannelAdapter {
  connected: boolean;
  /** The Fake adapter's per-channel services. */
  services?: Map<string, Service>;
  connect(): Promise<void>;
  publish(channel: string, payload: unknown, opts?: Record<string, unknown>): Promise<void>;
  /** `order.created` -> `<prefix>.order.created` when the adapter has a prefix. */
  addPrefixTopic(topic: string): string;
}

type Hooks = ReturnType<typeof ChannelsMiddleware>;

interface BrokerState {
  hooks: Hooks;
  url: string | null;
  /** In-process adapter: publishes made before the consumers subscribed wait here (else they are lost). */
  held: Array<() => Promise<void>> | null;
}

/** Property of a channel definition naming the event it was built for (see durableChannel). */
export const EVENT_MARK = "$durableEvent";

/** The NATS URL of a broker's transporter option, if it is one. */
export function natsUrlOf(transporter: unknown): string | null {
  const url = typeof transporter === "string" ? transporter : ((transporter as { options?: { url?: unknown } } | null)?.options?.url ?? null);
  return typeof url === "string" && url.startsWith("nats://") ? url : null;
}

/** How often a consuming service forgets processed-event records past their retention. */
const PURGE_INTERVAL_MS = 60 * 60 * 1000;

export function channelsMiddleware(options: ChannelsOptions = {}): Middleware {
  const purgeTimers = new Map<Service, NodeJS.Timeout>();
  const prefix = options.prefix ?? "";
  const maxInFlight = options.maxInFlight ?? 10;
  const states = new WeakMap<ServiceBroker, BrokerState>();

  const stateOf = (broker: ServiceBroker): BrokerState => {
    const state = states.get(broker);
    if (!state) throw new Error("channels middleware: broker was not created with it");
    return state;
  };

  const adapterConfig = (url: string | null) => {
    if (!url) return { type: "Fake", options: { prefix, maxRetries: 0, maxInFlight } };
    const retryDelays = options.retryDelays ?? config().EVENTS_RETRY_DELAYS;
    return new BackoffNatsAdapter(
      {
        prefix,
        maxRetries: options.maxRetries ?? retryDelays.length + 1,
        maxInFlight,
        deadLettering: { enabled: true, queueName: DEAD_LETTER_CHANNEL },
        nats: {
          // channels 0.1.8 reads the server list from `nats.url`, not from `url`.
          url,
          connectionOptions: { name: "crm-channels", maxReconnectAttempts: -1 },
          streamConfig: streamSettings(options.replicas),
          consumerOptions: {
            config: {
              // Streams exist from start-up, so a new consumer group must see what came before it.
              deliver_policy: "all",
              ack_wait: nanos(30_000),
            },
          },
        },
      },
      retryDelays,
    );
  };

  return {
    name: "DurableChannels",

    created(broker: ServiceBroker) {
      const url = options.url !== undefined ? options.url : natsUrlOf(broker.options.transporter);
      const hooks = ChannelsMiddleware({
        adapter: adapterConfig(url),
        schemaProperty: "channels",
        sendMethodName: "sendToChannel",
        adapterPropertyName: "channelAdapter",
        channelHandlerTrigger: "emitLocalChannelHandler",
        context: true,
      } as unknown as Parameters<typeof ChannelsMiddleware>[0]);
      hooks.created(broker);

      const state: BrokerState = { hooks, url, held: url ? null : [] };
      const adapter = (broker as unknown as ChannelBroker).channelAdapter!;
      // `starting` connects early; the package's own `started` must not open a second connection.
      const connect = adapter.connect.bind(adapter);
      adapter.connect = async () => {
        if (!adapter.connected) await connect();
      };
      if (!url) {
        const publish = adapter.publish.bind(adapter);
        adapter.publish = async (channel, payload, opts) => {
          if (state.held) state.held.push(() => publish(channel, payload, opts));
          else await publish(channel, payload, opts);
        };
      }
      states.set(broker, state);
    },

    serviceCreated(svc: Service) {
      const channels = (svc.schema as { channels?: Record<string, unknown> }).channels;
      for (const [name, def] of Object.entries(channels ?? {})) {
        const event = (def as Record<string, unknown> | undefined)?.[EVENT_MARK];
        if (event !== undefined && event !== name) {
          throw new Errors.ServiceSchemaError(`Channel '${name}' of service '${svc.fullName}' was built for event '${String(event)}': the key must be the event name`, {
            name,
            event,
          });
        }
      }
      // Moleculer creates its internal `$node` service before the middlewares' `created` hook runs.
      return states.get(svc.broker)?.hooks.serviceCreated(svc);
    },

    serviceStarted(svc: Service) {
      // A service with durable channels records processed keys; forget them once no redelivery can come.
      const durable = Object.values((svc.schema as { channels?: Record<string, unknown> }).channels ?? {}).some(
        (def) => (def as Record<string, unknown> | undefined)?.[EVENT_MARK] !== undefined,
      );
      const db = (svc as unknown as { db?: Database }).db;
      if (!durable || !db) return;
      const purge = () => purgeProcessedEvents(db).catch((err: Error) => svc.logger.warn(`purging processed events failed: ${err.message}`));
      const timer = setInterval(purge, PURGE_INTERVAL_MS);
      timer.unref();
      purgeTimers.set(svc, timer);
      return purge().then(() => undefined);
    },

    serviceStopping(svc: Service) {
      clearInterval(purgeTimers.get(svc));
      purgeTimers.delete(svc);
      return states.get(svc.broker)?.hooks.serviceStopping(svc);
    },

    async starting(broker: ServiceBroker) {
      const state = stateOf(broker);
      if (state.url) await ensureStreams(state.url, { prefix, replicas: options.replicas });
      await (broker as unknown as ChannelBroker).channelAdapter!.connect();
    },

    async started(broker: ServiceBroker) {
      const state = stateOf(broker);
      await state.hooks.started();
      if (!state.url) {
        // The Fake adapter subscribes by creating one service per channel, which start asynchronously.
        const services = (broker as unknown as ChannelBroker).channelAdapter!.services;
        const names = [...(services?.values() ?? [])].map((svc) => svc.fullName);
        if (names.length) await broker.waitForServices(names, 10_000, 20);
      }
      const held = state.held ?? [];
      state.held = null;
      for (const send of held) await send();
    },

    async stopped(broker: ServiceBroker) {
      await stateOf(broker).hooks.stopped();
    },
  } as Middleware;
}
