/**
 * The one broker configuration every process uses (`npm start`, each service process, the tests).
 * Environment variables (see README "Configuration"):
 *   TRANSPORTER          nats://host:4222 -> services talk over NATS; unset -> one process, no bus
 *   LOG_LEVEL            info (default), debug, warn, ...
 *   REQUEST_TIMEOUT_MS   broker request timeout (default 10000)
 *   EVENTS_PREFIX        subject prefix of durable events (default none), EVENTS_REPLICAS stream replicas
 *   NAMESPACE            Moleculer namespace (default "crm"): separate systems sharing one NATS
 *   NODE_ID              overrides the generated node id
 */
import os from "node:os";
import { randomBytes } from "node:crypto";
import type { BrokerOptions } from "moleculer";
import { config } from "./shared/config";
import { ZodValidator } from "./shared/validation";
import { channelsMiddleware } from "./shared/events/channels";
import { settleTimedOutRequests } from "./shared/middlewares/settle-timed-out-requests";
import { retryOnAnotherNode } from "./shared/middlewares/retry-on-another-node";
import { drainGatewaysFirst } from "./shared/middlewares/drain-first";

const settings = config();

function nodeId(): string {
  return process.env.NODE_ID || `${os.hostname()}-${process.pid}-${randomBytes(3).toString("hex")}`;
}

const brokerConfig: BrokerOptions = {
  namespace: settings.NAMESPACE,
  nodeID: nodeId(),
  transporter: settings.TRANSPORTER ? { type: "NATS", options: { url: settings.TRANSPORTER } } : null,
  serializer: "JSON",

  logger: {
    type: "Console",
    options: { level: settings.LOG_LEVEL, colors: process.stdout.isTTY, moduleColors: false, formatter: "short" },
  },
  logLevel: settings.LOG_LEVEL,

  // Safety nets are off by default in Moleculer; they are on here on purpose.
  requestTimeout: settings.REQUEST_TIMEOUT_MS,
  // Retries only where an action opts in with its own `retryPolicy` (reads and idempotent writes); each
  // retry goes to a node this request has not tried yet (the RetryOnAnotherNode middleware below).
  retryPolicy: {
    enabled: false,
    retries: 2,
    delay: 100,
    maxDelay: 1000,
    factor: 2,
    check: (err: Error) => Boolean((err as { retryable?: boolean }).retryable),
  },
  circuitBreaker: {
    enabled: true,
    threshold: 0.5,
    minRequestCount: 20,
    windowTime: 60,
    halfOpenTime: 10_000,
    // Client errors (4xx) are the caller's fault, not a sign the service is failing.
    check: (err: Error) => {
      const code = (err as { code?: number }).code;
      return typeof code !== "number" || code >= 500;
    },
  },
  // A flood on one action queues instead of starving the event loop for everything else.
  bulkhead: { enabled: true, concurrency: 64, maxQueueSize: 2000 },
  // Graceful shutdown: in-flight requests finish before a broker stops.
  tracking: { enabled: true, shutdownTimeout: 10_000 },

  registry: { strategy: "RoundRobin", preferLocal: true },
  // A node that vanished without saying goodbye (SIGKILL, lost host) is dropped within ~5-10 s: Moleculer
  // checks every heartbeatTimeout seconds for nodes silent for longer than that (whole seconds). Its
  // pending requests are then rejected. A node paused longer (a debugger) is dropped and re-joins.
  heartbeatInterval: 1,
  heartbeatTimeout: 4,

  validator: new ZodValidator({}),
  middlewares: [
    drainGatewaysFirst(),
    settleTimedOutRequests(),
    retryOnAnotherNode(),
    channelsMiddleware({ prefix: settings.EVENTS_PREFIX, replicas: settings.EVENTS_REPLICAS }),
  ],

  metrics: { enabled: false },
  tracing: { enabled: false },
};

export = brokerConfig;
