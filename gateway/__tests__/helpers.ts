/**
 * Test harness for the gateway: a real broker (the project's broker config, no bus), the gateway on a
 * free port, and small stand-ins for the services behind it that echo what reached them.
 */
import { ServiceBroker, type ActionParams, type BrokerOptions, type Context, type Service, type ServiceSchema } from "moleculer";
import { z } from "zod";
import brokerConfig from "../../moleculer.config";
import { resetConfig } from "../../shared/config";
import { AuthActions } from "../../shared/contracts/auth";
import { Email, StoreId, Uuid, type RequestMeta } from "../../shared/contracts/common";
import { ProfileListsActions } from "../../shared/contracts/profile-lists";
import { crmError } from "../../shared/errors";
import { profilePrincipal } from "../../shared/principal";
import { zodParams as toZodParams } from "../../shared/validation";
import { createGatewayService } from "../gateway.service";
import { operationRoutes, rawBodyRoutes, type RouteTable } from "../routes";
import type { RouteDef } from "../../shared/routes/types";

export const STORE_A = "0190c5d2-1111-7000-8000-000000000001";
export const STORE_B = "0190c5d2-2222-7000-8000-000000000002";
export const PROFILE_ID = "0190c5d2-3333-7000-8000-000000000003";
export const SESSION_ID = "0190c5d2-4444-7000-8000-000000000004";
export const PLATFORM_KEY = "test-platform-key-0123456789";
export const STORE_A_KEY = "crm_sk_store_a_key";
export const STORE_A_TOKEN = "access-token-store-a";
export const AUTH_DOWN_KEY = "key-while-auth-is-down";
const Create = z.object({ store_id: StoreId, email: Email, taxonomies: z.array(z.unknown()).optional() });
const Find = z.object({ store_id: StoreId, status: z.enum(["active", "archived"]).optional(), limit: z.coerce.number().int().optional() });
const Update = z.object({ store_id: StoreId, id: Uuid, email: Email.optional(), status: z.enum(["active", "archived"]).optional() });
const Import = z.union([
  z.object({ store_id: StoreId, id: Uuid, rows: z.array(z.object({ email: z.string() })) }),
  z.object({ store_id: StoreId, id: Uuid, csv: z.string().optional(), email_column: z.string().optional() }),
]);

// Moleculer's ActionParams type rejects the shared ZodParams interface (no index signature).
const zodParams = (schema: z.ZodType) => toZodParams(schema) as unknown as ActionParams;

const route = (def: Omit<RouteDef, "tag" | "summary"> & Partial<RouteDef>): RouteDef => ({ tag: "Test", summary: def.action, ...def });

/** A route table shaped like the real one, pointing at the stand-in services below. */
export const testRoutes: RouteDef[] = [
  route({ method: "POST", path: "/v1/stores/{storeId}/profiles", action: "profiles.create", auth: "admin", params: Create, status: 201 }),
  route({ method: "GET", path: "/v1/stores/{storeId}/profiles", action: "profiles.find", auth: "admin", params: Find }),
  route({ method: "GET", path: "/v1/stores/{storeId}/profiles/me", action: "profiles.me", auth: "profile" }),
  route({ method: "GET", path: "/v1/stores/{storeId}/profiles/whoami", action: "profiles.whoami", auth: "profile", tokenCheckedByAction: true }),
  route({ method: "GET", path: "/v1/stores/{storeId}/profiles/{id}", action: "profiles.get", auth: "admin" }),
  route({ method: "PUT", path: "/v1/stores/{storeId}/profiles/{id}", action: "profiles.update", auth: "admin", params: Update }),
  route({ method: "DELETE", path: "/v1/stores/{storeId}/profiles/{id}", action: "profiles.remove", auth: "admin", status: 204 }),
  route({ method: "POST", path: "/v1/stores/{storeId}/profiles/initialize", action: "profiles.initialize", auth: "public" }),
  route({ method: "POST", path: "/v1/stores/{storeId}/profiles/connect", action: "profiles.connect", auth: "optional-profile" }),
  route({ method: "DELETE", path: "/v1/stores/{storeId}/profiles/{id}/sessions/{tokenId}", action: "profiles.revokeSession", auth: "admin" }),
  route({ method: "POST", path: "/v1/stores/{storeId}/profile-lists/{id}/profiles/{profileId}", action: "profile-lists.addProfile", auth: "admin" }),
  route({ method: "POST", path: "/v1/stores/{storeId}/profile-lists/{id}/profiles/import", action: "profile-lists.import", auth: "admin", params: Import }),
  route({
    method: "POST",
    path: "/v1/storefront/{storeId}/profile-lists/{id}/unsubscribe",
    action: "profile-lists.unsubscribe",
    auth: "optional-profile",
    params: ProfileListsActions.unsubscribe,
    query: ["token"],
  }),
  route({ method: "POST", path: "/v1/stores/{storeId}/echo", action: "profiles.echo", auth: "public" }),
  route({ method: "GET", path: "/v1/stores/{storeId}/boom", action: "profiles.boom", auth: "public" }),
  route({ method: "GET", path: "/v1/stores/{storeId}/busy", action: "profiles.busy", auth: "public" }),
  route({ method: "GET", path: "/v1/stores/{storeId}/slow-down", action: "profiles.slowDown", auth: "public" }),
  route({ method: "GET", path: "/v1/stores/{storeId}/wait", action: "profiles.wait", auth: "public" }),
  route({ method: "GET", path: "/v1/stores/{storeId}/wait-long", action: "profiles.wait", auth: "public", timeoutMs: 5_000 }),
  route({ method: "GET", path: "/v1/ghost", action: "ghost.find", auth: "public" }),
];

/** A raw-body route as the billing work will add it (the real table has none yet). */
export const testRawRoutes: RouteDef[] = [
  {
    method: "POST",
    path: "/v1/webhooks/stripe",
    action: "billing.handleStripeWebhook",
    auth: "public",
    tag: "Billing",
    summary: "Stripe events, checked against the Stripe-Signature header",
  },
];

const inRealTable = (def: RouteDef) => rawBodyRoutes.some((real) => real.method === def.method && real.path === def.path);

/** The real raw-body routes, and the stand-in raw routes the real table does not have (yet). */
export const testTable: RouteTable = { json: [...testRoutes, ...operationRoutes], raw: [...rawBodyRoutes, ...testRawRoutes.filter((def) => !inRealTable(def))] };

/** What a stand-in action saw. */
export interface Echo {
  params: Record<string, unknown>;
  auth: RequestMeta["auth"] | null;
  ip?: string;
  requestId?: string;
  metaKeys: string[];
  paramsProto: "Object.prototype" | "other";
}

function echo(ctx: Context<Record<string, unknown>, RequestMeta>): Echo {
  return {
    params: ctx.params,
    auth: ctx.meta.auth ?? null,
    ip: ctx.meta.ip,
    requestId: ctx.meta.requestId,
    metaKeys: Object.keys(ctx.meta),
    paramsProto: Object.getPrototypeOf(ctx.params) === Object.prototype ? "Object.prototype" : "other",
  };
}

/** `echo`, plus the call's stream (a streamed text/csv body) read to its end as text. */
async function echoWithStream(ctx: Context<Record<string, unknown>, RequestMeta>): Promise<Echo & { streamed: string | null }> {
  let streamed: string | null = null;
  if (ctx.stream) {
    const chunks: Buffer[] = [];
    for await (const chunk of ctx.stream as unknown as AsyncIterable<Buffer>) chunks.push(chunk);
    streamed = Buffer.concat(chunks).toString("utf8");
  }
  return { ...echo(ctx), streamed };
}

export type HealthMode = "ok" | "fail" | "hang";

/** Shared, mutable state of the stand-ins: health answers and call counts. */
export interface DoubleState {
  health: Record<string, HealthMode>;
  verifyApiKeyCalls: number;
  authenticateCalls: number;
  /** The params of the last auth.authenticate call. */
  authenticateParams?: Record<string, unknown>;
  /** Calls of profiles.wait that have started (each answers 1 s later). */
  waitCalls: number;
  /** Calls of profile-lists.unsubscribe. */
  unsubscribeCalls: number;
}

export function newDoubleState(): DoubleState {
  return { health: {}, verifyApiKeyCalls: 0, authenticateCalls: 0, waitCalls: 0, unsubscribeCalls: 0 };
}

function healthAction(name: string, state: DoubleState) {
  return {
    visibility: "public" as const,
    async handler() {
      const mode = state.health[name] ?? "ok";
      if (mode === "fail") throw new Error("storage is down");
      if (mode === "hang") await new Promise((resolve) => setTimeout(resolve, 2_000));
      return { status: "ok" };
    },
  };
}

/** Stand-ins for auth, profiles, profile-lists, campaigns, mailer and billing. */
export function doubles(state: DoubleState, omit: string[] = []): ServiceSchema[] {
  const all: ServiceSchema[] = [
    {
      name: "auth",
      actions: {
        health: healthAction("auth", state),
        verifyApiKey: {
          params: zodParams(AuthActions.verifyApiKey),
          handler(ctx: Context<{ key: string }>) {
            state.verifyApiKeyCalls++;
            if (ctx.params.key === STORE_A_KEY) return { key_id: "key-a", store_id: STORE_A };
            if (ctx.params.key === AUTH_DOWN_KEY) throw crmError("SERVICE_UNAVAILABLE", "auth storage down");
            throw crmError("UNAUTHENTICATED", "Unknown API key");
          },
        },
        authenticate: {
          params: zodParams(AuthActions.authenticate),
          handler(ctx: Context<{ store_id: string; access_token: string; describe?: boolean }>) {
            state.authenticateCalls++;
            state.authenticateParams = ctx.params;
            if (ctx.params.access_token === STORE_A_TOKEN && ctx.params.store_id === STORE_A) {
              return { store_id: STORE_A, profile_id: PROFILE_ID, session_id: SESSION_ID, is_verified: true };
            }
            throw crmError("UNAUTHENTICATED", "Invalid access token");
          },
        },
      },
    },
    {
      name: "profiles",
      actions: {
        health: healthAction("profiles", state),
        create: { params: zodParams(Create), handler: echo },
        find: { params: zodParams(Find), handler: echo },
        me: echo,
        // Checks its caller's token itself, as profiles.me does.
        async whoami(ctx: Context<{ store_id: string }, RequestMeta>) {
          const principal = await profilePrincipal(ctx.params.store_id, ctx.meta.accessToken ?? "", (p) => ctx.call("auth.authenticate", p));
          return { ...echo(ctx), accessToken: ctx.meta.accessToken, principal };
        },
        get: echo,
        update: { params: zodParams(Update), handler: echo },
        remove: () => ({ deleted: true }),
        initialize: echo,
        connect: echo,
        revokeSession: echo,
        echo,
        boom: () => {
          throw new Error("db password is hunter2 at /srv/app/profiles.js:42");
        },
        busy: () => {
          throw crmError("SERVICE_UNAVAILABLE", "Try again soon", { retryAfter: 7 });
        },
        // A slow backend on purpose: the answer comes 1 s after the call starts.
        wait: () => {
          state.waitCalls += 1;
          return new Promise((resolve) => setTimeout(() => resolve({ waited: true }), 1_000));
        },
        slowDown: () => {
          throw crmError("RATE_LIMITED", "A new code no sooner than 42 s", { retryAfter: 42 });
        },
      },
    },
    {
      name: "profile-lists",
      actions: {
        health: healthAction("profile-lists", state),
        addProfile: echo,
        import: { params: zodParams(Import), handler: echoWithStream },
        unsubscribe: {
          params: zodParams(ProfileListsActions.unsubscribe),
          handler(ctx: Context<Record<string, unknown>, RequestMeta>) {
            state.unsubscribeCalls++;
            return echo(ctx);
          },
        },
      },
    },
    { name: "campaigns", actions: { health: healthAction("campaigns", state) } },
    { name: "mailer", actions: { health: healthAction("mailer", state) } },
    { name: "billing", actions: { health: healthAction("billing", state), handleStripeWebhook: echo } },
  ];
  return all.filter((s) => !omit.includes(s.name));
}

export interface TestGateway {
  broker: ServiceBroker;
  gateway: Service;
  url: string;
  state: DoubleState;
  stop(): Promise<void>;
}

let brokers = 0;

/** Starts a broker with the gateway (on a free port, the given env) and the stand-in services. */
export async function startGateway(
  options: { env?: Record<string, string | undefined>; table?: RouteTable; omit?: string[]; broker?: Partial<BrokerOptions> } = {},
): Promise<TestGateway> {
  const env: Record<string, string | undefined> = {
    PORT: "0",
    CRM_ADMIN_API_KEY: PLATFORM_KEY,
    RATE_LIMIT_PER_MINUTE: "100000",
    ...options.env,
  };
  const saved = Object.fromEntries(Object.keys(env).map((k) => [k, process.env[k]]));
  const setEnv = (values: Record<string, string | undefined>) => {
    for (const [k, v] of Object.entries(values)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
    resetConfig();
  };

  const state = newDoubleState();
  const broker = new ServiceBroker({ ...brokerConfig, nodeID: `gateway-test-${process.pid}-${++brokers}`, logger: false, transporter: null, ...options.broker });
  for (const schema of doubles(state, options.omit)) broker.createService(schema);
  let gateway: Service;
  setEnv(env);
  try {
    gateway = broker.createService(createGatewayService(options.table ?? testTable));
  } finally {
    setEnv(saved);
  }
  await broker.start();
  const address = (gateway as unknown as { server: { address(): { port: number } } }).server.address();
  return { broker, gateway, url: `http://127.0.0.1:${address.port}`, state, stop: () => broker.stop() };
}

export interface Reply<T = any> {
  status: number;
  headers: Headers;
  body: T;
  text: string;
}

/** A real HTTP request; the JSON body is parsed when there is one. */
export async function request<T = any>(url: string, init: RequestInit & { json?: unknown } = {}): Promise<Reply<T>> {
  const { json, ...rest } = init;
  const headers = new Headers(rest.headers);
  if (json !== undefined) headers.set("content-type", "application/json");
  const res = await fetch(url, { ...rest, headers, body: json !== undefined ? JSON.stringify(json) : rest.body });
  const text = await res.text();
  let body: any;
  try {
    body = text ? JSON.parse(text) : undefined;
  } catch {
    body = text;
  }
  return { status: res.status, headers: res.headers, body, text };
}

export const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

/** The contract's error body: these keys and no others (no stack, no internals). */
export function expectErrorBody(reply: Reply, status: number, code: string): void {
  expect(reply.status).toBe(status);
  expect(reply.body).toMatchObject({ statusCode: status, error: code, message: expect.any(String) });
  for (const key of Object.keys(reply.body)) expect(["statusCode", "error", "message", "validationErrors"]).toContain(key);
  expect(reply.headers.get("content-type")).toMatch(/^application\/json/);
  expect(reply.headers.get("x-request-id")).toBeTruthy();
}
