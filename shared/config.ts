/**
 * Process configuration, read once from the environment. Every variable is documented in the README
 * ("Configuration"); unset values fall back to the embedded single-process defaults.
 */
import { z } from "zod";
import { corsOriginList } from "./net";

const optionalString = z.string().trim().min(1).optional();

/** `Name <addr@host>` or `addr@host`, on one line. */
const MAIL_FROM_RE = /^(?:[^<>\r\n]*<[^<>\s@]+@[^<>\s@]+>|[^<>\s@]+@[^<>\s@]+)$/;

/** Secrets shorter than this are refused in production (a key anyone can guess opens every store). */
const MIN_SECRET_BYTES = 32;

/** `500ms`, `1s`, `2m`, `1h`: a duration, in milliseconds. */
const DURATION_RE = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/;
const DURATION_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 } as const;
const MAX_RETRY_DELAY_MS = 24 * 3_600_000;
const MAX_RETRY_DELAYS = 20;

/** `1s,5s,30s,2m,10m` -> [1000, 5000, 30000, 120000, 600000]; each delay > 0 and at most a day. */
const RetryDelays = z.string().transform((text, ctx) => {
  const delays = text.split(",").map((part) => {
    const match = DURATION_RE.exec(part.trim());
    return match ? Math.round(Number(match[1]) * DURATION_MS[match[2] as keyof typeof DURATION_MS]) : NaN;
  });
  if (delays.length > MAX_RETRY_DELAYS || delays.some((ms) => !(ms > 0 && ms <= MAX_RETRY_DELAY_MS))) {
    ctx.addIssue({
      code: "custom",
      message: `must be a comma list of 1 to ${MAX_RETRY_DELAYS} durations (ms, s, m or h; each > 0 and at most 24h), e.g. 1s,5s,30s,2m,10m`,
    });
    return z.NEVER;
  }
  return delays;
});

/** What every process reads, whichever services it runs. */
export const PlatformSettings = z.object({
  NODE_ENV: z.string().default("development"),
  TRANSPORTER: optionalString,
  /** Moleculer namespace: processes on the same bus see each other only within one namespace. */
  NAMESPACE: z.string().trim().min(1).max(64).default("crm"),
  /** Prefix of durable-event subjects (default none: the subject is the event name, e.g. `order.created`). */
  EVENTS_PREFIX: z
    .string()
    .trim()
    .regex(/^[A-Za-z0-9_-]*$/)
    .default(""),
  /** JetStream replicas of the event streams: 1 on a single NATS server, 3 on a cluster. */
  EVENTS_REPLICAS: z.coerce.number().int().min(1).max(5).default(1),
  /**
   * Waits before each redelivery of a durable event whose handler failed (milliseconds once parsed);
   * after the last one fails too, the event goes to DEAD_LETTER. Five delays: six deliveries in all.
   */
  EVENTS_RETRY_DELAYS: RetryDelays.prefault("1s,5s,30s,2m,10m"),
  MONGO_URL: optionalString,
  DATA_DIR: z.string().default("./data"),
  /** Embedded (SQLite) store: synchronous=FULL, every commit on disk before it is acknowledged (survives an OS crash or power loss; slower writes). */
  STORAGE_FSYNC: z.stringbool().default(false),
  /** "memory" keeps the embedded store in memory only (tests). */
  STORAGE: z.enum(["auto", "memory"]).default("auto"),
  /** Signing keys: auth signs tokens with them, and cursors and e-mail links are signed with them unless CURSOR_SECRET is set. */
  JWT_SECRET: optionalString,
  /** Comma list of `kid:secret` pairs; the first signs, all verify (key rotation). */
  JWT_KEYS: optionalString,
  /** Secret that signs pagination cursors and e-mail links; derived from JWT keys when unset. */
  CURSOR_SECRET: optionalString,
  LOG_LEVEL: z.enum(["fatal", "error", "warn", "info", "debug", "trace"]).default("info"),
  REQUEST_TIMEOUT_MS: z.coerce.number().int().positive().default(10000),
});

export const GatewaySettings = z.object({
  /** The gateway accepts it as an admin key of every store (checked locally); auth lists it as the platform key. */
  CRM_ADMIN_API_KEY: optionalString,
  PORT: z.coerce.number().int().min(0).max(65535).default(3000),
  /** Address the gateway listens on; unset: every interface, IPv6 and IPv4 (IPv4 only where IPv6 is off). */
  HOST: optionalString,
  CORS_ORIGINS: optionalString,
  TRUSTED_PROXIES: optionalString,
  RATE_LIMIT_PER_MINUTE: z.coerce.number().int().positive().default(600),
  BODY_LIMIT: z.string().default("1mb"),
  IMPORT_BODY_LIMIT: z.string().default("50mb"),
});

export const AuthSettings = z.object({
  CRM_ADMIN_API_KEY: optionalString,
  ACCESS_TOKEN_TTL: z.coerce.number().int().positive().default(900),
  REFRESH_TOKEN_TTL: z.coerce
    .number()
    .int()
    .positive()
    .default(60 * 60 * 24 * 30),
});

export const MailerSettings = z.object({
  SMTP_URL: optionalString.refine(
    (url) => url === undefined || /^smtps?:\/\/[^/\s]+/.test(url),
    "must be an smtp:// or smtps:// URL, e.g. smtp://user:pass@mail.example.com:587",
  ),
  MAIL_FROM: z.string().trim().regex(MAIL_FROM_RE, 'must be an address, e.g. "Shop <no-reply@shop.example>"').default("Store CRM <no-reply@localhost>"),
  OUTBOX_DIR: optionalString,
});

/** Paid lists. Both secrets unset (or either): paid subscribe answers 503 and readiness says `not_configured`. */
export const BillingSettings = z.object({
  /** The Stripe API key billing calls Stripe with: a secret (sk_...) or restricted (rk_...) key. */
  STRIPE_SECRET_KEY: optionalString.refine((key) => key === undefined || /^(sk|rk)_\S+$/.test(key), "must be a Stripe secret key (sk_...) or restricted key (rk_...)"),
  /** The signing secret of the webhook endpoint (whsec_...) that `POST /v1/webhooks/stripe` checks signatures with. */
  STRIPE_WEBHOOK_SECRET: optionalString.refine(
    (secret) => secret === undefined || /^whsec_\S+$/.test(secret),
    "must be the webhook endpoint's signing secret (whsec_...)",
  ),
  /** Points the Stripe client at another API origin (a local stand-in in tests); unset: api.stripe.com. */
  STRIPE_API_URL: optionalString.refine((url) => url === undefined || /^https?:\/\/[^/\s?#]+\/?$/.test(url), "must be an http(s) origin, e.g. http://127.0.0.1:12111"),
});

export const ProfileListsSettings = z.object({
  /** The address the public reaches the gateway at, for links in e-mails (unset: http://localhost:$PORT). */
  PUBLIC_URL: optionalString.refine((url) => url === undefined || /^https?:\/\/[^/\s]+/.test(url), "must be an http(s) URL, e.g. https://crm.shop.example"),
  /** Comma-separated origins allowed in confirm_url (unset: PUBLIC_URL's origin plus CORS_ORIGINS). */
  LINK_ORIGINS: optionalString.refine(
    (list) =>
      list === undefined ||
      list
        .split(",")
        .map((s) => s.trim())
        .filter(Boolean)
        .every((origin) => /^https?:\/\/[^/\s?#]+\/?$/.test(origin)),
    "must be a comma list of origins, e.g. https://shop.example,https://www.shop.example",
  ),
  CORS_ORIGINS: optionalString,
  PORT: z.coerce.number().int().min(0).max(65535).default(3000),
});

/** A service that reads nothing beyond the platform's settings. */
export const NoSettings = z.object({});

const ConfigSchema = PlatformSettings.extend(GatewaySettings.shape)
  .extend(AuthSettings.shape)
  .extend(MailerSettings.shape)
  .extend(BillingSettings.shape)
  .extend(ProfileListsSettings.shape);

/** Every setting of every service (a type for code that is handed settings; each process parses only its own). */
export type Config = z.infer<typeof ConfigSchema>;

export type KeySource = { kid: string; secret: string }[];

/**
 * The JWT signing secrets, the first of which signs (undefined when none is configured): `JWT_KEYS`
 * pairs in order, else `JWT_SECRET` as the key `k1`. Throws when JWT_KEYS is malformed. The one parser
 * of these settings: auth's key ring, the cursor secrets and the configuration checks all use it.
 */
export function keySources(cfg: Pick<Config, "JWT_KEYS" | "JWT_SECRET">): KeySource | undefined {
  if (cfg.JWT_KEYS) {
    const entries = cfg.JWT_KEYS.split(",")
      .map((part) => part.trim())
      .filter(Boolean);
    const sources = entries.map((entry) => {
      const at = entry.indexOf(":");
      const kid = at > 0 ? entry.slice(0, at).trim() : "";
      const secret = at > 0 ? entry.slice(at + 1) : "";
      if (!kid || !secret) throw new Error('JWT_KEYS must be a comma list of "kid:secret" pairs');
      return { kid, secret };
    });
    if (sources.length === 0) throw new Error('JWT_KEYS must be a comma list of "kid:secret" pairs');
    if (new Set(sources.map((s) => s.kid)).size !== sources.length) throw new Error("JWT_KEYS has a duplicate kid");
    return sources;
  }
  if (cfg.JWT_SECRET) return [{ kid: "k1", secret: cfg.JWT_SECRET }];
  return undefined;
}

/**
 * The checks that read a value through the parser its users share (JWT_KEYS, CORS_ORIGINS), and
 * production's refusal of secrets anyone could guess (development only warns: services/auth/keys.ts).
 * Run on the raw values beside the schema, so every problem is reported at once.
 */
function crossChecks(env: Record<string, string>, names: ReadonlySet<string>): string[] {
  const problems: string[] = [];
  const value = (name: keyof Config) => (names.has(name) ? env[name]?.trim() : undefined);
  const parsedBy = (name: keyof Config, parse: () => unknown, example: string) => {
    try {
      parse();
    } catch (err) {
      problems.push(`${name}: ${(err as Error).message}, e.g. ${example}`);
    }
  };
  let secrets: KeySource | undefined;
  parsedBy("JWT_KEYS", () => (secrets = keySources({ JWT_KEYS: value("JWT_KEYS"), JWT_SECRET: value("JWT_SECRET") })), "k2:<new secret>,k1:<old secret>");
  const cors = value("CORS_ORIGINS");
  if (cors) parsedBy("CORS_ORIGINS", () => corsOriginList(cors), "* or https://shop.example,https://admin.shop.example");
  if (env.NODE_ENV?.trim() !== "production") return problems;

  const rule = `must be at least ${MIN_SECRET_BYTES} bytes in production (e.g. \`openssl rand -base64 32\`)`;
  const check = (name: keyof Config, values: Array<string | undefined>, message = rule) => {
    if (values.some((v) => v !== undefined && Buffer.byteLength(v, "utf8") < MIN_SECRET_BYTES)) problems.push(`${name}: ${message}`);
  };
  check("CRM_ADMIN_API_KEY", [value("CRM_ADMIN_API_KEY")]);
  if (value("JWT_KEYS"))
    check(
      "JWT_KEYS",
      (secrets ?? []).map((s) => s.secret),
      `each secret ${rule}`,
    );
  else check("JWT_SECRET", [value("JWT_SECRET")]);
  check("CURSOR_SECRET", [value("CURSOR_SECRET")]);
  return problems;
}

/**
 * A server process in production needs a signing key: auth signs access tokens with it, the other services
 * their e-mail links and cursors (without one, a link would stop working at the next restart). Checked
 * when the server starts, before any service opens its store; the CLI signs nothing and does not need it.
 */
export function signingKeyProblems(env: NodeJS.ProcessEnv = process.env): string[] {
  const present = presentValues(env);
  if (present.NODE_ENV?.trim() !== "production" || present.JWT_SECRET || present.JWT_KEYS) return [];
  return ["JWT_SECRET: must be set in production (or JWT_KEYS): it signs access tokens, e-mail links and cursors, e.g. `openssl rand -base64 32`"];
}

/** A configuration that cannot run: its message names each variable and what to fix. */
export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration (see README "Configuration"):\n${problems.map((p) => `  ${p}`).join("\n")}`);
    this.name = "ConfigError";
  }
}

/** The environment without empty values: `PORT=` in a compose file means "use the default". */
function presentValues(env: NodeJS.ProcessEnv): Record<string, string> {
  const present = Object.entries(env).filter((entry): entry is [string, string] => typeof entry[1] === "string" && entry[1].trim() !== "");
  return Object.fromEntries(present);
}

/**
 * Parses the environment with `schema` (and the checks of the variables it names). ConfigError lists
 * every problem at once, each naming its variable.
 */
export function parseSettings<S extends z.ZodObject>(schema: S): z.infer<S> {
  const env = presentValues(process.env);
  const parsed = schema.safeParse(env);
  const problems = [
    ...(parsed.success ? [] : parsed.error.issues.map((issue) => `${issue.path.join(".") || "(environment)"}: ${issue.message}`)),
    ...crossChecks(env, new Set(Object.keys(schema.shape))),
  ];
  if (!parsed.success || problems.length > 0) throw new ConfigError(problems);
  return parsed.data;
}

const cache = new Map<z.ZodObject, unknown>();

/** `parseSettings`, once per schema per process (`resetConfig()` forgets, for tests that change variables). */
export function cachedSettings<S extends z.ZodObject>(schema: S): z.infer<S> {
  if (!cache.has(schema)) cache.set(schema, parseSettings(schema));
  return cache.get(schema) as z.infer<S>;
}

/** The platform's settings (what every process reads). A service's own come from `settingsOf` (shared/registry.ts). */
export function config(): PlatformConfig {
  return cachedSettings(PlatformSettings);
}

export type PlatformConfig = z.infer<typeof PlatformSettings>;

export function resetConfig(): void {
  cache.clear();
}
