/**
 * Brokers for tests, built from the real moleculer.config.ts: one broker with chosen services
 * (`startBroker`), or one broker per service over the real NATS bus (`startCluster`). Service files are
 * required lazily, by name, from source, so the harness loads even while a service is being written.
 */
import path from "node:path";
import type { AddressInfo } from "node:net";
import type { Server } from "node:http";
import { ServiceBroker, type BrokerOptions, type LoggerConfig, type ServiceSchema } from "moleculer";
import baseConfig from "../../moleculer.config";
import { resetConfig } from "../../shared/config";
import { BACKEND_SERVICES, serviceDefinition } from "../../shared/registry";
import { channelsMiddleware } from "../../shared/events/channels";
import { ZodValidator } from "../../shared/validation";
import { assertNatsUp, deleteStreams, NATS_URL, uniqueName } from "./nats";

const ROOT = path.resolve(__dirname, "../..");

/** The services behind the gateway (what /health/ready reports), from the registry. */
export { BACKEND_SERVICES };

/** A service schema by name (required now, from source), or the schema itself. */
export function loadService(service: string | ServiceSchema): ServiceSchema {
  if (typeof service !== "string") return service;
  const file = serviceDefinition(service).module;
  const mod = require(path.join(ROOT, file)) as ServiceSchema | { default: ServiceSchema };
  return "default" in mod && mod.default ? mod.default : (mod as ServiceSchema);
}

/** The base URL (`http://127.0.0.1:<port>`) of the gateway (moleculer-web) running on `broker`. */
export function gatewayUrl(broker: ServiceBroker): string {
  for (const svc of broker.services) {
    const server = (svc as unknown as { server?: Server }).server;
    const address = server && typeof server.address === "function" ? server.address() : null;
    if (address && typeof address === "object") return `http://127.0.0.1:${(address as AddressInfo).port}`;
  }
  throw new Error(`No listening HTTP gateway on broker ${broker.nodeID}`);
}

/** The gateway schema set to listen on a free port on 127.0.0.1. */
export function gatewayOnFreePort(): ServiceSchema {
  const gateway = loadService("gateway");
  const settings = { ...gateway.settings, port: 0, ip: "127.0.0.1" } as ServiceSchema["settings"];
  return { ...gateway, settings };
}

/** Sets environment variables (undefined deletes one) and drops the cached `config()`. */
export function setEnv(vars: Record<string, string | undefined>): void {
  for (const [name, value] of Object.entries(vars)) {
    if (value === undefined) delete process.env[name];
    else process.env[name] = value;
  }
  resetConfig();
}

export interface StartBrokerOptions {
  /** Service names (from shared/registry.ts) or schemas (test doubles). */
  services?: Array<string | ServiceSchema>;
  nodeID?: string;
  /** A NATS URL to join the bus (channels then use JetStream there); default null: in-process only. */
  transporter?: string | null;
  /** Moleculer namespace; default: a fresh one when on NATS (runs never see each other), else the config's. */
  namespace?: string;
  /**
   * Durable-event subject prefix; default: the namespace when on NATS, else "". When both namespace and
   * prefix are left to their defaults on NATS, the broker deletes its streams when it stops.
   */
  channelPrefix?: string;
  /** "memory" (default): STORAGE=memory. `{ dataDir }`: the embedded SQLite files under that folder. */
  storage?: "memory" | { dataDir: string };
  /** More environment for the services (e.g. SMTP_URL), set before they load. */
  env?: Record<string, string | undefined>;
  /** Anything else for the broker (e.g. `requestTimeout`). */
  broker?: Partial<BrokerOptions>;
}

function testLogger(): LoggerConfig | false {
  const level = process.env.TEST_LOG_LEVEL;
  if (!level) return false;
  return { type: "Console", options: { level, formatter: "short", colors: false } } as LoggerConfig;
}

/** A broker from moleculer.config.ts (logger off unless TEST_LOG_LEVEL is set) with the given services. */
export function createBroker(options: StartBrokerOptions = {}): ServiceBroker {
  const storageEnv = options.storage && options.storage !== "memory" ? { STORAGE: "auto", DATA_DIR: options.storage.dataDir } : { STORAGE: "memory" };
  setEnv({ NODE_ENV: "test", ...storageEnv, ...options.env });

  const transporter = options.transporter ?? null;
  const namespace = options.namespace ?? (transporter ? uniqueName("t") : (baseConfig.namespace ?? "crm"));
  const prefix = options.channelPrefix ?? (transporter ? namespace : "");
  const ownsStreams = Boolean(transporter) && options.namespace === undefined && options.channelPrefix === undefined;
  const otherMiddlewares = (baseConfig.middlewares ?? []).filter((mw) => typeof mw === "string" || mw.name !== "DurableChannels");
  const broker = new ServiceBroker({
    ...baseConfig,
    namespace,
    nodeID: options.nodeID ?? uniqueName("node-"),
    transporter: transporter ? { type: "NATS", options: { url: transporter } } : null,
    logger: testLogger(),
    validator: new ZodValidator({}),
    middlewares: [...otherMiddlewares, channelsMiddleware({ url: transporter, prefix })],
    // Brokers of one Jest worker share its event loop: a long stall there (module compilation on a loaded
    // CI machine) must not make them drop each other. No test here relies on a fast drop; the failover
    // test runs real processes on the production settings.
    heartbeatInterval: 2,
    heartbeatTimeout: 10,
    ...options.broker,
    async stopped(b: ServiceBroker) {
      await (options.broker?.stopped ?? baseConfig.stopped)?.(b);
      if (ownsStreams && transporter) await deleteStreams(prefix, transporter);
    },
  });
  for (const service of options.services ?? []) broker.createService(loadService(service));
  return broker;
}

/** `createBroker` + `start()`: resolves with the started broker. */
export async function startBroker(options: StartBrokerOptions = {}): Promise<ServiceBroker> {
  const broker = createBroker(options);
  try {
    await broker.start();
  } catch (err) {
    await broker.stop().catch(() => undefined);
    throw err;
  }
  return broker;
}

/** The names of a broker's own services (without Moleculer's `$node` and the channel helpers). */
export function ownServiceNames(broker: ServiceBroker): string[] {
  return broker.services.map((svc) => svc.fullName).filter((name) => !name.startsWith("$"));
}

export interface Cluster {
  /** One broker per requested service (or group of services, keyed by their names joined with ","), by name. */
  brokers: Record<string, ServiceBroker>;
  namespace: string;
  /** The durable-event subject prefix of this cluster (streams: see test/harness/nats.ts deleteStreams). */
  channelPrefix: string;
  /** The gateway's base URL when "gateway" is one of the names. */
  url?: string;
  stop(): Promise<void>;
}

export interface ClusterOptions extends Pick<StartBrokerOptions, "storage" | "env" | "broker"> {
  url?: string;
  /** How long to wait for every broker to see every service (default 15 s). */
  discoveryTimeoutMs?: number;
}

/**
 * One broker per service over the real NATS bus, in a namespace of its own (a group of services given as an
 * array shares one broker, as in a process started with SERVICES=a,b); resolves when every broker has
 * discovered every service. Fails loudly when NATS is down.
 */
export async function startCluster(services: Array<string | ServiceSchema | Array<string | ServiceSchema>>, options: ClusterOptions = {}): Promise<Cluster> {
  const url = options.url ?? NATS_URL;
  await assertNatsUp(url);
  const namespace = uniqueName("t");
  const brokers: Record<string, ServiceBroker> = {};
  const stop = async () => {
    await Promise.all(Object.values(brokers).map((b) => b.stop().catch(() => undefined)));
    await deleteStreams(namespace, url).catch(() => undefined);
  };
  try {
    for (const entry of services) {
      const group = Array.isArray(entry) ? entry : [entry];
      const names = group.map((service) => (typeof service === "string" ? service : service.name));
      const key = names.join(",");
      brokers[key] = createBroker({
        ...options,
        services: group.map((service) => (service === "gateway" ? gatewayOnFreePort() : service)),
        env: names.includes("gateway") ? { PORT: "0", ...options.env } : options.env,
        transporter: url,
        namespace,
        nodeID: `${names.join("+")}-${uniqueName("")}`,
      });
    }
    await Promise.all(Object.values(brokers).map((b) => b.start()));
    const all = Object.values(brokers).flatMap(ownServiceNames);
    const timeout = options.discoveryTimeoutMs ?? 15_000;
    await Promise.all(Object.values(brokers).map((b) => b.waitForServices(all, timeout, 50)));
  } catch (err) {
    await stop();
    throw err;
  }
  const gateway = brokers.gateway;
  return { brokers, namespace, channelPrefix: namespace, url: gateway ? gatewayUrl(gateway) : undefined, stop };
}
