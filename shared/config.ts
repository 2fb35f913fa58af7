/**
 * Process configuration, read once from the environment. Every variable is documented in the README
 * ("Configuration"); unset values fall back to the embedded single-process defaults.
 */
import { z } from "zod";

const optionalString = z.string().trim().min(1).optional().catch(undefined);

const ConfigSchema = z.object({
  NODE_ENV: z.string().default("development"),
  PORT: z.coerce.number().int().min(0).max(65535).default(3000),
  TRANSPORTER: optionalString,
  /** Moleculer namespace: processes on the same bus see each other only within one namespace. */
  NAMESPACE: z.string().trim().min(1).max(64).default("crm"),
  /** Prefix of durable-event subjects (default none: the subject is the event name, e.g. `order.created`). */
  EVENTS_PREFIX: z.string().trim().regex(/^[A-Za-z0-9_-]*$/).default(""),
  /** JetStream replicas of the event streams: 1 on a single NATS server, 3 on a cluster. */
  EVENTS_REPLICAS: z.coerce.number().int().min(1).max(5).default(1),
  MONGO_URL: optionalString,
  DATA_DIR: z.string().default("./data"),
  /** Embedded store: fsync every write batch (survives an OS crash or power loss; slower writes). */
  STORAGE_FSYNC: z.stringbool().default(false),
  /** "memory" keeps the embedded store in memory only (tests). */
  STORAGE: z.enum(["auto", "memory"]).default("auto"),
  SMTP_URL: optionalString,
  MAIL_FROM: z.string().default("Store CRM <no-reply@localhost>"),
  OUTBOX_DIR: optionalString,
  CRM_ADMIN_API_KEY: optionalString,
  JWT_SECRET: optionalString,
  /** Comma list of `kid:secret` pairs; the first signs, all verify (key rotation). */
  JWT_KEYS: optionalString,
  ACCESS_TOKEN_TTL: z.coerce.number().int().positive().default(900),
  REFRESH_TOKEN_TTL: z.coerce.number().int().positive().default(60 * 60 * 24 * 30),
  /** Secret that signs pagination cursors and e-mail links; derived from JWT keys when unset. */
  CURSOR_SECRET: optionalString,
  STRIPE_SECRET_KEY: optionalString,
  STRIPE_WEBHOOK_SECRET: optionalString,
  STRIPE_API_URL: optionalString,
  CORS_ORIGINS: optionalString,
  TRUSTED_PROXIES: optionalString,
  RATE_LIMIT_PER_MINUTE: z.coerce.number().int().positive().default(600),
  BODY_LIMIT: z.string().default("1mb"),
  LOG_LEVEL: z.enum(["fatal", "error", "warn", "info", "debug", "trace"]).default("info"),
  REQUEST_TIMEOUT_MS: z.coerce.number().int().positive().default(10000),
});

export type Config = z.infer<typeof ConfigSchema>;

let cached: Config | undefined;

/** The configuration of this process. Tests that change env vars call `resetConfig()`. */
export function config(): Config {
  if (!cached) cached = ConfigSchema.parse(process.env);
  return cached;
}

export function resetConfig(): void {
  cached = undefined;
}

export function isDistributed(): boolean {
  return Boolean(config().TRANSPORTER);
}
