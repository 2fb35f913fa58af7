/**
 * The one list of the system's services. For each: its name, where its Moleculer schema is, the
 * settings it reads (a process parses only the settings of the services it runs), its HTTP routes, the
 * durable events it publishes and consumes, and whether it has storage. `SERVICES` validation, the
 * start-up configuration check, readiness, the route table and OpenAPI document, the test harness and
 * the compose-file check all read it: a new service is one entry here.
 */
import type { z } from "zod";
import {
  AuthSettings,
  BillingSettings,
  cachedSettings,
  ConfigError,
  GatewaySettings,
  MailerSettings,
  NoSettings,
  PlatformSettings,
  ProfileListsSettings,
  parseSettings,
  signingKeyProblems,
} from "./config";
import type { DurableEventName } from "./contracts/events";
import { authRoutes } from "./routes/auth";
import { billingRoutes } from "./routes/billing";
import { gatewayRoutes } from "./routes/gateway";
import { mailerRoutes } from "./routes/mailer";
import { profileListRoutes } from "./routes/profile-lists";
import { profileRoutes } from "./routes/profiles";
import type { RouteDef } from "./routes/types";

export interface ServiceDefinition {
  name: string;
  /** Its Moleculer schema, from the project root, without extension (`.ts` in source, `.js` in dist). */
  module: string;
  /** The environment variables it reads beyond the platform's. */
  settings: z.ZodObject;
  routes: readonly RouteDef[];
  publishes: readonly DurableEventName[];
  consumes: readonly DurableEventName[];
  /** It owns a database (and answers readiness through it). */
  storage: boolean;
}

// biome-ignore format: one line per service
export const SERVICE_REGISTRY = [
  { name: "gateway", module: "gateway/gateway.service", settings: GatewaySettings, routes: gatewayRoutes, publishes: [], consumes: [], storage: false },
  { name: "auth", module: "services/auth/auth.service", settings: AuthSettings, routes: authRoutes, publishes: [], consumes: [], storage: true },
  { name: "profiles", module: "services/profiles/profiles.service", settings: NoSettings, routes: profileRoutes, publishes: ["profile.merged"], consumes: ["order.created"], storage: true },
  { name: "profile-lists", module: "services/profile-lists/profile-lists.service", settings: ProfileListsSettings, routes: profileListRoutes, publishes: [], consumes: ["profile.merged", "email-template.deleted", "billing.payment-changed"], storage: true },
  { name: "campaigns", module: "services/campaigns/campaigns.service", settings: NoSettings, routes: [], publishes: [], consumes: [], storage: true },
  { name: "mailer", module: "services/mailer/mailer.service", settings: MailerSettings, routes: mailerRoutes, publishes: ["email-template.deleted"], consumes: [], storage: true },
  { name: "billing", module: "services/billing/billing.service", settings: BillingSettings, routes: billingRoutes, publishes: ["billing.payment-changed"], consumes: [], storage: true },
] as const satisfies readonly ServiceDefinition[];

export type ServiceName = (typeof SERVICE_REGISTRY)[number]["name"];

export const SERVICE_NAMES: readonly ServiceName[] = SERVICE_REGISTRY.map((s) => s.name);

/** The services behind the gateway, each answering `<name>.health` (what /health/ready reports). */
export const BACKEND_SERVICES: readonly ServiceName[] = SERVICE_REGISTRY.filter((s) => s.name !== "gateway").map((s) => s.name);

export function serviceDefinition(name: string): ServiceDefinition {
  const found = SERVICE_REGISTRY.find((s) => s.name === name);
  if (!found) throw new Error(`Unknown service "${name}". Known: ${SERVICE_NAMES.join(", ")}`);
  return found;
}

/** Every HTTP route of the system, from each service's entry. */
export function allRoutes(): RouteDef[] {
  return SERVICE_REGISTRY.flatMap((s) => [...s.routes]);
}

type SettingsOf<N extends ServiceName> = z.infer<typeof PlatformSettings> & z.infer<Extract<(typeof SERVICE_REGISTRY)[number], { name: N }>["settings"]>;

/** The platform's settings and the service's own (parsed once; ConfigError names each bad variable). */
export function settingsOf<N extends ServiceName>(name: N): SettingsOf<N> {
  return { ...cachedSettings(PlatformSettings), ...cachedSettings(serviceDefinition(name).settings as z.ZodObject) } as SettingsOf<N>;
}

/** The names in a `SERVICES` list (all when empty); throws naming the unknown ones. */
export function selectServices(list: string | undefined): ServiceName[] {
  const names = (list ?? "")
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  if (names.length === 0) return [...SERVICE_NAMES];
  const unknown = names.filter((n) => !SERVICE_NAMES.includes(n as ServiceName));
  if (unknown.length) throw new Error(`SERVICES names unknown service(s): ${unknown.join(", ")}. Known: ${SERVICE_NAMES.join(", ")}`);
  return names as ServiceName[];
}

/** Checks the platform's settings and those of `services`, reporting every problem at once (ConfigError). */
export function checkSettings(services: readonly ServiceName[]): void {
  const problems: string[] = [];
  for (const schema of [PlatformSettings, ...new Set(services.map((n) => serviceDefinition(n).settings))]) {
    try {
      parseSettings(schema as z.ZodObject);
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      problems.push(...err.problems);
    }
  }
  problems.push(...signingKeyProblems());
  // A variable two services read (CRM_ADMIN_API_KEY) is reported once.
  if (problems.length > 0) throw new ConfigError([...new Set(problems)]);
}
