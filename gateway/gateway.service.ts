/**
 * The API gateway (moleculer-web): the route table's documented HTTP routes -> service actions, with
 * authentication, rate limits, error mapping, request ids, CORS and the OpenAPI document. No business
 * logic: route -> read and check the request -> call the action -> map the result or the error.
 *
 * A request goes through `httpHandler` (request id, CORS, rate limit, route lookup, body), then
 * moleculer-web's alias handling with our hooks: `onBeforeCall` (params, storeId), `authenticate`
 * (ctx.meta.auth), `authorize` (store scope), then the action; `sendResponse`/`sendError` answer.
 */
import type { IncomingMessage, Server, ServerResponse } from "node:http";
import { randomBytes, randomUUID } from "node:crypto";
import type { Duplex, Readable } from "node:stream";
import type { Context, Service, ServiceSchema } from "moleculer";
import ApiGateway, { type ApiRouteSchema, type ApiSettingsSchema } from "moleculer-web";
import { settingsOf } from "../shared/registry";
import type { AuthPrincipal, RequestMeta } from "../shared/contracts/common";
import { crmError, validationError, type FieldError } from "../shared/errors";
import { isUuid } from "../shared/ids";
import { rateLimitSubject } from "../shared/net";
import { profilePrincipal, type Authenticate } from "../shared/principal";
import { AdminKeys, assertStoreAccess, bearerToken } from "./auth";
import { clientIp, TrustedProxies } from "./client-ip";
import { CorsPolicy } from "./cors";
import { GatewayMessages, httpErrorOf, unauthenticated } from "./errors";
import { ReadinessProbe } from "./health";
import { inputFieldNames, openApiDocument } from "./openapi";
import { HTML_ANSWER_FIELD, HTML_ANSWER_VALUE, PAGE_HEADERS, unsubscribedPage, unsubscribePage } from "./pages";
import { pathParams, toAliasPath } from "./paths";
import { FixedWindowLimiter } from "./rate-limit";
import {
  decodeUtf8,
  hasBody,
  limitedBodyStream,
  mediaKindOf,
  mergeParams,
  parseByteSize,
  parseFormBody,
  parseJsonObject,
  parseMultipartBody,
  readRawBody,
  requestIdOf,
  sanitizeQuery,
  sizeInWords,
} from "./request";
import { routeTable as defaultRouteTable, type RouteTable } from "./routes";
import { UnsubscribePageParams } from "../shared/routes/gateway";
import type { RouteDef } from "../shared/routes/types";
import { zodParams } from "../shared/validation";

/** One route of the table as the gateway serves it. */
interface RouteEntry {
  def: RouteDef;
  body: "json" | "raw";
  hasStoreId: boolean;
  /** The params schema has a `csv` field: it also takes a `text/csv` body, streamed to the action (`ctx.stream`). */
  acceptsCsv: boolean;
  /**
   * The params schema has a `List-Unsubscribe` field (RFC 8058 one-click): an HTML form body is read as text
   * fields, and one carrying `answer=html` (the unsubscribe page's own form) is answered with an HTML page.
   */
  acceptsForm: boolean;
}

interface GatewayState {
  generatedKey?: string;
  adminKeys: AdminKeys;
  limiter: FixedWindowLimiter;
  readiness: ReadinessProbe;
  trusted: TrustedProxies;
  cors: CorsPolicy | null;
  bodyLimit: number;
  /** The largest `text/csv` import body, streamed to the action. */
  importBodyLimit: number;
  showBanner: boolean;
  /** Set by `drain()`: answers close their connection, no new connection is taken. */
  draining: boolean;
  /** LOG_LEVEL is info or finer: one line per request (none is timed or listened for otherwise). */
  logRequests: boolean;
}

type GatewayRequest = IncomingMessage & {
  originalUrl?: string;
  query?: Record<string, unknown>;
  body?: Record<string, unknown>;
  rawBody?: string;
  $ctx?: Context<unknown, GatewayMeta>;
  $params?: Record<string, unknown>;
  $alias?: { routeIndex?: number };
  /**
   * `tokenRejected`: the bearer credential itself was refused (see the WWW-Authenticate header).
   * `bodyStream`: a `text/csv` body the action reads as the call's stream (never buffered here).
   * `htmlAnswer`: the unsubscribe page's form posted this (`answer=html`): success is an HTML page, not JSON.
   * `tokenPassedOn`: the bearer token went to an action that checks it itself: a 401 from it is the token's.
   */
  $request: { id: string; ip: string; entry?: RouteEntry; tokenRejected?: boolean; tokenPassedOn?: boolean; bodyStream?: Readable; htmlAnswer?: boolean };
};

type GatewayMeta = RequestMeta & {
  user?: unknown;
  $statusCode?: number;
  $responseHeaders?: Record<string, string>;
};

type GatewayThis = Service<ApiSettingsSchema> & {
  gw: GatewayState;
  resolveAlias(url: string, method?: string): false | { alias: { routeIndex?: number }; params: Record<string, unknown> };
  sendError(req: GatewayRequest, res: ServerResponse, err: unknown): void;
};

const READINESS_TIMEOUT_MS = 1_500;

const BEARER_CHALLENGE = 'Bearer realm="crm"';
const BEARER_INVALID_TOKEN = 'Bearer realm="crm", error="invalid_token"';

const mwMethods = ApiGateway.methods as Record<string, (...args: unknown[]) => unknown>;

/** The gateway service schema for a route table (the default table unless a test brings its own). */
export function createGatewayService(table: RouteTable = defaultRouteTable): ServiceSchema {
  // moleculer-web tries aliases in order: the most specific path goes first, so the table has no order to keep.
  const entries: RouteEntry[] = [...table.json.map((def) => routeEntry(def, "json")), ...table.raw.map((def) => routeEntry(def, "raw"))].sort((a, b) =>
    bySpecificity(a.def.path, b.def.path),
  );
  const aliasesOf = (body: RouteEntry["body"]) => {
    const aliases: Record<string, { action: string; routeIndex: number }> = {};
    entries.forEach((entry, routeIndex) => {
      if (entry.body !== body) return;
      const key = `${entry.def.method} ${toAliasPath(entry.def.path)}`;
      if (entries.some((other, i) => i < routeIndex && `${other.def.method} ${toAliasPath(other.def.path)}` === key)) {
        throw new Error(`Route table: ${entry.def.method} ${entry.def.path} is declared twice`);
      }
      aliases[key] = { action: entry.def.action, routeIndex };
    });
    return aliases;
  };
  const entryOf = (req: GatewayRequest) => req.$request.entry ?? entries[req.$alias?.routeIndex ?? -1];
  const rawSet = new Set(table.raw);
  const csvSet = new Set(entries.filter((e) => e.acceptsCsv).map((e) => e.def));
  const formSet = new Set(entries.filter((e) => e.acceptsForm).map((e) => e.def));
  const allRoutes = [...table.json, ...table.raw];
  // Paths that load balancers poll: never rate limited.
  const unlimitedPaths = new Set(allRoutes.filter((r) => r.unlimited).map((r) => r.path));

  // Shared by both moleculer-web routes: no auto aliases, no default body parsers, no param merging.
  const common = {
    path: "/",
    mappingPolicy: "restrict" as const,
    autoAliases: false,
    bodyParsers: false,
    mergeParams: false,
    logging: false,
    onBeforeCall(this: GatewayThis, ctx: Context<unknown, GatewayMeta>, _route: unknown, req: GatewayRequest) {
      ctx.meta.requestId = req.$request.id;
      ctx.meta.ip = req.$request.ip;
      const ua = req.headers["user-agent"];
      if (typeof ua === "string") ctx.meta.userAgent = ua.slice(0, 256);
      const entry = entryOf(req);
      const path = (req.$params?.params ?? {}) as Record<string, unknown>;
      if (entry.body === "raw") {
        const signature = req.headers["stripe-signature"];
        req.$params = { payload: req.rawBody ?? "", signature: typeof signature === "string" ? signature : undefined };
        return;
      }
      if (entry.hasStoreId && !isUuid(path.store_id)) throw validationError("storeId", "must be a UUID");
      // One spelling per id: an upper-case UUID must not name another store (or dodge a per-store limit).
      for (const [name, value] of Object.entries(path)) if (isUuid(value)) path[name] = value.toLowerCase();
      req.$params = mergeParams(req.body, sanitizeQuery(req.query ?? {}) as Record<string, unknown>, path);
    },
  };

  const schema: ServiceSchema<ApiSettingsSchema, Record<string, never>, Record<string, never>, GatewayThis> = {
    name: "gateway",
    mixins: [ApiGateway as unknown as ServiceSchema],

    settings: {
      port: null as unknown as number, // PORT from config() at creation, unless set here
      routes: [
        { ...common, name: "api", authentication: true, authorization: true, aliases: aliasesOf("json") },
        { ...common, name: "webhooks", aliases: aliasesOf("raw") },
      ] as unknown as ApiRouteSchema[],
      logRequest: null,
      logRequestParams: null,
      logResponse: null,
      logResponseData: null,
      logRouteRegistration: "debug",
      log4XXResponses: false,
      optimizeOrder: true,
    },

    actions: {
      // moleculer-web's management actions: not reachable over HTTP anyway, and not wanted on the bus.
      listAliases: false,
      addRoute: false,
      removeRoute: false,

      // Every HTTP request runs through moleculer-web's `rest` action: the broker's per-action bulkhead
      // would cap the whole gateway (health checks included) at its concurrency. The services behind it
      // keep their own bulkheads.
      rest: { bulkhead: { enabled: false } },
      live: {
        bulkhead: { enabled: false },
        handler: () => ({ status: "ok" }),
      },
      ready: {
        bulkhead: { enabled: false },
        async handler(ctx: Context<unknown, GatewayMeta>) {
          if (this.gw.draining) {
            ctx.meta.$statusCode = 503;
            return { statusCode: 503, error: "SERVICE_UNAVAILABLE", message: "Stopping", status: "unavailable", services: {} };
          }
          const { ready, services } = await this.gw.readiness.check((svc) => ctx.call(`${svc}.health`, {}, { timeout: READINESS_TIMEOUT_MS, retries: 0 }));
          if (ready) return { status: "ok", services };
          ctx.meta.$statusCode = 503;
          ctx.meta.$responseHeaders = { "Retry-After": "5" };
          return { statusCode: 503, error: "SERVICE_UNAVAILABLE", message: "Some services are unavailable", status: "unavailable", services };
        },
      },
      openapi: {
        handler: () => openApiDocument(allRoutes, { rawBody: rawSet, csvBody: csvSet, formBody: formSet }),
      },
      // The page a list mail's unsubscribe link opens: it reads nothing and changes nothing (mail scanners
      // prefetch GET links); its button posts the token to the same URL, where profile-lists checks it.
      unsubscribePage: {
        params: zodParams(UnsubscribePageParams),
        handler: (ctx: Context<{ token: string }>) => unsubscribePage(ctx.params.token),
      },
    },

    methods: {
      async httpHandler(this: GatewayThis, req: GatewayRequest, res: ServerResponse, next?: unknown) {
        const started = process.hrtime.bigint();
        const id = requestIdOf(req.headers["x-request-id"]);
        // moleculer-web takes ctx.requestID from these headers: leave it only the sanitized id.
        req.headers["x-request-id"] = id;
        delete req.headers["x-correlation-id"];
        res.setHeader("X-Request-Id", id);
        if (this.gw.draining) res.setHeader("Connection", "close");
        req.$request = { id, ip: clientIp(req.socket.remoteAddress, req.headers["x-forwarded-for"], this.gw.trusted) };

        const path = pathOf(req.url ?? "/");
        if (this.gw.logRequests) {
          res.once("close", () => {
            const ms = Number(process.hrtime.bigint() - started) / 1e6;
            const aborted = res.writableFinished ? "" : " (aborted)";
            this.logger.info(`${req.method} ${path} ${res.statusCode} ${ms.toFixed(1)}ms id=${id}${aborted}`);
          });
        }

        try {
          const cors = this.gw.cors?.apply(req, res);
          if (cors === "preflight") return;
          if (cors === "denied") throw crmError("FORBIDDEN", GatewayMessages.originNotAllowed);

          if (!unlimitedPaths.has(path)) {
            const rate = this.gw.limiter.hit(rateLimitSubject(req.$request.ip));
            if (!rate.allowed) throw crmError("RATE_LIMITED", GatewayMessages.rateLimited, { retryAfter: rate.retryAfter });
          }

          // Unknown paths and wrong methods stop here, before a body is read or anything is called.
          const found = this.resolveAlias(path, req.method);
          if (!found || found.alias.routeIndex === undefined) throw crmError("NOT_FOUND", GatewayMessages.routeNotFound);
          const entry = entries[found.alias.routeIndex];
          req.$request.entry = entry;
          await readBody(req, entry, this.gw);
        } catch (err) {
          if (isPayloadTooLarge(err)) res.setHeader("Connection", "close");
          return this.sendError(req, res, err);
        }
        return mwMethods.httpHandler.call(this, req, res, next);
      },

      async authenticate(this: GatewayThis, ctx: Context<unknown, GatewayMeta>, _route: unknown, req: GatewayRequest) {
        const { auth, tokenCheckedByAction } = entryOf(req).def;
        if (auth === "public") return null;
        const token = bearerToken(req.headers.authorization);
        if (token === undefined && auth === "optional-profile") return null;
        if (!token) throw unauthenticated();
        if (tokenCheckedByAction) {
          ctx.meta.accessToken = token;
          req.$request.tokenPassedOn = true;
          return null;
        }

        let principal: AuthPrincipal;
        try {
          if (auth === "admin") {
            principal = await this.gw.adminKeys.principal(token, (key) => ctx.call("auth.verifyApiKey", { key }));
          } else {
            const authenticate: Authenticate = (params) => ctx.call("auth.authenticate", params);
            principal = await profilePrincipal(req.$params?.store_id, token, authenticate);
          }
        } catch (err) {
          if (httpErrorOf(err).status === 401) req.$request.tokenRejected = true;
          throw err;
        }
        ctx.meta.auth = principal;
        return principal;
      },

      authorize(this: GatewayThis, ctx: Context<unknown, GatewayMeta>, _route: unknown, req: GatewayRequest) {
        // moleculer-web's copy of the principal (services read ctx.meta.auth) goes. A copy without it, not
        // `delete`: that would turn the meta every call of the request copies into a slow dictionary object.
        const { user: _user, ...meta } = ctx.meta;
        ctx.meta = meta;
        const principal = ctx.meta.auth;
        if (principal?.kind === "admin") assertStoreAccess(principal, req.$params?.store_id);
      },

      sendResponse(this: GatewayThis, req: GatewayRequest, res: ServerResponse, data: unknown) {
        if (res.headersSent) return;
        // Set at answer time too: a request that arrived before the drain must not keep its connection.
        if (this.gw.draining) res.setHeader("Connection", "close");
        const meta = req.$ctx?.meta;
        const status = meta?.$statusCode ?? entryOf(req)?.def.status ?? 200;
        for (const [name, value] of Object.entries(meta?.$responseHeaders ?? {})) res.setHeader(name, value);
        res.statusCode = status;
        if (status === 204) return void res.end();
        const html = req.$request?.htmlAnswer ? unsubscribedPage() : entryOf(req)?.def.answers === "html" ? String(data ?? "") : undefined;
        if (html !== undefined) {
          for (const [name, value] of Object.entries(PAGE_HEADERS)) res.setHeader(name, value);
          res.setHeader("Content-Length", Buffer.byteLength(html));
          return void res.end(html);
        }
        const body = JSON.stringify(data ?? null);
        res.setHeader("Content-Type", "application/json; charset=utf-8");
        res.setHeader("Content-Length", Buffer.byteLength(body));
        res.end(body);
      },

      sendError(this: GatewayThis, req: GatewayRequest, res: ServerResponse, err: unknown) {
        const { status, body, retryAfter } = httpErrorOf(err);
        const entry = req.$request?.entry ?? entries[req.$alias?.routeIndex ?? -1];
        if (body.validationErrors && entry) body.validationErrors = withPathNames(body.validationErrors, entry.def.path);
        if (status === 500) {
          const e = err as Error | undefined;
          this.logger.error(`${req.method} ${pathOf(req.url ?? "/")} failed id=${req.$request?.id}: ${e?.name}: ${e?.message}`, e?.stack);
        }
        if (res.headersSent) {
          res.destroy();
          return;
        }
        if (retryAfter !== undefined) res.setHeader("Retry-After", String(retryAfter));
        // A streamed body the action did not read to its end would be read as the next request.
        if (this.gw.draining || (req.$request?.bodyStream && !req.readableEnded)) res.setHeader("Connection", "close");
        // RFC 6750: `invalid_token` tells a client its session is the problem (drop it, log in again), as
        // opposed to a wrong code or refresh token on the same 401.
        const tokenRefused = req.$request?.tokenRejected || req.$request?.tokenPassedOn;
        if (status === 401) res.setHeader("WWW-Authenticate", tokenRefused ? BEARER_INVALID_TOKEN : BEARER_CHALLENGE);
        const text = JSON.stringify(body);
        res.statusCode = status;
        res.setHeader("Content-Type", "application/json; charset=utf-8");
        res.setHeader("Content-Length", Buffer.byteLength(text));
        res.end(text);
      },

      /** moleculer-web's call, with the route's own timeout and a streamed body as the call's stream. */
      callAction(this: GatewayThis, route: ApiRouteSchema, action: string, req: GatewayRequest, res: ServerResponse, params: unknown) {
        const { bodyStream, entry } = req.$request;
        const timeout = entry?.def.timeoutMs;
        const callOptions = { ...route.callOptions, ...(timeout ? { timeout } : {}), ...(bodyStream ? { stream: bodyStream } : {}) };
        return mwMethods.callAction.call(this, { ...route, callOptions }, action, req, res, params, false);
      },

      errorHandler(this: GatewayThis, req: GatewayRequest, res: ServerResponse, err: unknown) {
        this.sendError(req, res, err);
      },

      send404(this: GatewayThis, req: GatewayRequest, res: ServerResponse) {
        this.sendError(req, res, crmError("NOT_FOUND", GatewayMessages.routeNotFound));
      },

      /** See drain.ts: called by `broker.stop()` before any service stops. */
      async drain(this: GatewayThis & { server?: Server }, timeoutMs: number) {
        const server = this.server;
        if (!server?.listening || this.gw.draining) return;
        this.gw.draining = true;
        this.logger.info("Stopping: no new connections; finishing the requests in flight");
        // close() stops accepting and closes idle keep-alive connections (Node >= 19); busy ones close
        // after their answer (Connection: close). A client that sends on an idle connection at that very
        // instant sees it closed before its request was read: nothing was done, and a load balancer
        // stops routing here first (readiness answers 503 while draining).
        await new Promise<void>((resolve) => {
          const timer = setTimeout(() => server.closeAllConnections(), timeoutMs);
          server.close(() => {
            clearTimeout(timer);
            resolve();
          });
        });
      },
    },

    created(this: GatewayThis) {
      const cfg = settingsOf("gateway");
      if (this.settings.port == null) this.settings.port = cfg.PORT;
      // moleculer-web's default is 0.0.0.0 (IPv4 only); null lets Node take every interface, IPv6 too.
      if (this.settings.ip === "0.0.0.0") this.settings.ip = (cfg.HOST ?? null) as unknown as string;
      // A key for the person who just ran `npm start`; never in production, where it would land in
      // shipped logs and differ between gateway replicas.
      const production = cfg.NODE_ENV === "production";
      const generatedKey = cfg.CRM_ADMIN_API_KEY || production ? undefined : `crm_sk_${randomBytes(24).toString("base64url")}`;
      if (!cfg.CRM_ADMIN_API_KEY && production) {
        this.logger.warn("CRM_ADMIN_API_KEY is not set: admin routes accept store keys only (npm run cli -- keys create --store <id>).");
      }
      this.gw = {
        generatedKey,
        adminKeys: new AdminKeys(cfg.CRM_ADMIN_API_KEY ?? generatedKey),
        limiter: new FixedWindowLimiter(cfg.RATE_LIMIT_PER_MINUTE),
        readiness: new ReadinessProbe(),
        trusted: new TrustedProxies(cfg.TRUSTED_PROXIES),
        cors: CorsPolicy.from(cfg.CORS_ORIGINS),
        bodyLimit: parseByteSize(cfg.BODY_LIMIT),
        importBodyLimit: parseByteSize(cfg.IMPORT_BODY_LIMIT),
        showBanner: cfg.NODE_ENV !== "test",
        draining: false,
        logRequests: ["info", "debug", "trace"].includes(cfg.LOG_LEVEL),
      };
    },

    started(this: GatewayThis & { server?: Server }) {
      // Requests Node's parser refuses (headers or URL over its limit, broken HTTP) get the contract's
      // body too, instead of Node's bare 431/400.
      this.server?.on("clientError", (err: NodeJS.ErrnoException, socket: Duplex) => answerClientError(err, socket));
    },

    events: {
      // Once every service of the process has started: a process that fails to start (its data folder
      // held by another one, say) never claims to be listening or hands out a key.
      "$broker.started"(this: GatewayThis & { server?: Server }) {
        if (this.gw.showBanner) printBanner(this);
      },
    },
  };
  return schema as unknown as ServiceSchema;
}

/** The banner is for the person who just ran `npm start`: plain stdout, not the logger. */
function printBanner(gateway: GatewayThis & { server?: Server }): void {
  const address = gateway.server?.address();
  const port = typeof address === "object" && address ? address.port : gateway.settings.port;
  const host = typeof address === "object" && address && !["0.0.0.0", "::"].includes(address.address) ? address.address : "localhost";
  console.log(`\nStore CRM is listening on http://${host.includes(":") ? `[${host}]` : host}:${port}`);
  if (gateway.gw.generatedKey) {
    console.log(`Admin API key for this run (set CRM_ADMIN_API_KEY to choose your own): ${gateway.gw.generatedKey}\n`);
  }
}

/** A path parameter's error under its documented name (`tokenId`), not the action's (`token_id`). */
function withPathNames(errors: FieldError[], path: string): FieldError[] {
  const renamed = new Map(
    pathParams(path)
      .filter((p) => p.param !== p.name)
      .map((p) => [p.param, p.name]),
  );
  if (renamed.size === 0) return errors;
  return errors.map((e) => {
    const [head, ...rest] = e.field.split(".");
    const name = renamed.get(head);
    return name ? { ...e, field: [name, ...rest].join(".") } : e;
  });
}

function routeEntry(def: RouteDef, body: RouteEntry["body"]): RouteEntry {
  return {
    def,
    body,
    hasStoreId: pathParams(def.path).some((p) => p.param === "store_id"),
    acceptsCsv: body === "json" && def.method !== "GET" && def.params !== undefined && inputFieldNames(def.params).has("csv"),
    acceptsForm: body === "json" && def.method === "POST" && def.params !== undefined && inputFieldNames(def.params).has("List-Unsubscribe"),
  };
}

/** The request's path without query string or trailing slash (as moleculer-web matches it). */
function pathOf(url: string): string {
  const q = url.indexOf("?", 1);
  let path = q === -1 ? url : url.slice(0, q);
  if (path.length > 1 && path.endsWith("/")) path = path.slice(0, -1);
  return path;
}

function answerClientError(err: NodeJS.ErrnoException, socket: Duplex): void {
  if (!socket.writable || err.code === "ECONNRESET") {
    socket.destroy();
    return;
  }
  const tooLarge = err.code === "HPE_HEADER_OVERFLOW";
  const body = JSON.stringify(tooLarge ? { statusCode: 413, error: "PAYLOAD_TOO_LARGE", message: "Request URL or headers too large" } : malformedRequestBody(err));
  const status = tooLarge ? "413 Payload Too Large" : "400 Bad Request";
  socket.end(
    `HTTP/1.1 ${status}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` +
      `X-Request-Id: ${randomUUID()}\r\nConnection: close\r\n\r\n${body}`,
  );
}

/**
 * The 400 body for a request Node's HTTP parser refused, naming the part at fault and the parser's reason
 * ("Invalid header value char"): a control character in a header value is the usual cause.
 */
function malformedRequestBody(err: NodeJS.ErrnoException & { reason?: unknown }) {
  const code = err.code ?? "";
  const part = /HEADER|LF_EXPECTED|CR_EXPECTED|CONTENT_LENGTH|TRANSFER_ENCODING/.test(code)
    ? "headers"
    : /METHOD|URL|VERSION/.test(code)
      ? "request line"
      : /CHUNK|BODY/.test(code)
        ? "body"
        : "request";
  const reason = typeof err.reason === "string" && err.reason ? err.reason : "it is not valid HTTP/1.1";
  return {
    statusCode: 400,
    error: "VALIDATION_ERROR",
    message: `Malformed HTTP request: ${reason} (in the ${part}; header values may not hold control characters such as CR or LF)`,
    validationErrors: [{ field: part, error: reason }],
  };
}

function isPayloadTooLarge(err: unknown): boolean {
  return (err as { type?: unknown } | undefined)?.type === "PAYLOAD_TOO_LARGE";
}

/**
 * A total order of paths in which a literal segment comes before a `{param}` in the same place
 * (`/profiles/me` before `/profiles/{id}`): segment by segment, literals (by text) before params.
 */
export function bySpecificity(a: string, b: string): number {
  const x = a.split("/");
  const y = b.split("/");
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    const px = x[i].startsWith("{");
    const py = y[i].startsWith("{");
    if (px !== py) return px ? 1 : -1;
    if (!px && x[i] !== y[i]) return x[i] < y[i] ? -1 : 1;
  }
  return x.length - y.length;
}

/** What the route takes: "Request body must be application/json or text/csv, in UTF-8". */
function unsupportedMediaTypeMessage(entry: RouteEntry): string {
  const types = [
    "application/json",
    ...(entry.acceptsCsv ? ["text/csv"] : []),
    ...(entry.acceptsForm ? ["application/x-www-form-urlencoded", "multipart/form-data"] : []),
  ];
  const list = types.length === 1 ? types[0] : `${types.slice(0, -1).join(", ")} or ${types[types.length - 1]}`;
  return `${GatewayMessages.unsupportedMediaType} ${list}, in UTF-8`;
}

/**
 * Reads the body the route expects onto `req.body` (JSON object) or `req.rawBody` (raw text); a `text/csv`
 * body is not read here but handed to the action as the call's stream.
 */
async function readBody(req: GatewayRequest, entry: RouteEntry, limits: Pick<GatewayState, "bodyLimit" | "importBodyLimit">): Promise<void> {
  const limit = limits.bodyLimit;
  if (!hasBody(req)) return;
  if (entry.body === "raw") {
    req.rawBody = (await readRawBody(req, limit, " (BODY_LIMIT)")).toString("utf8");
    return;
  }
  const kind = mediaKindOf(req.headers["content-type"]);
  if (kind === "other" || (kind === "csv" && !entry.acceptsCsv) || ((kind === "form" || kind === "multipart") && !entry.acceptsForm)) {
    throw crmError("UNSUPPORTED_MEDIA_TYPE", unsupportedMediaTypeMessage(entry));
  }
  // Compressed bodies are not decoded: refuse them rather than read the bytes as JSON text.
  const encoding = String(req.headers["content-encoding"] ?? "identity")
    .trim()
    .toLowerCase();
  if (encoding !== "identity" && encoding !== "") {
    throw crmError("UNSUPPORTED_MEDIA_TYPE", GatewayMessages.unsupportedEncoding);
  }
  if (kind === "csv") {
    req.$request.bodyStream = limitedBodyStream(req, limits.importBodyLimit);
    return;
  }
  // An import's rows in JSON are bounded by BODY_LIMIT; its text/csv body may be far larger.
  const hint = entry.acceptsCsv ? ` (BODY_LIMIT); send a large import as a text/csv body, up to ${sizeInWords(limits.importBodyLimit)}` : " (BODY_LIMIT)";
  const text = decodeUtf8(await readRawBody(req, limit, hint), kind === "json" ? "JSON" : "the form");
  if (kind === "json") {
    if (text.trim() !== "") req.body = parseJsonObject(text);
    return;
  }
  const fields = kind === "form" ? parseFormBody(text) : parseMultipartBody(text, String(req.headers["content-type"]));
  // The unsubscribe page's own form: its field asks for an HTML answer and is not passed on to the action.
  if (fields[HTML_ANSWER_FIELD] === HTML_ANSWER_VALUE) {
    req.$request.htmlAnswer = true;
    delete fields[HTML_ANSWER_FIELD];
  }
  req.body = fields;
}

const GatewayService = createGatewayService();
export default GatewayService;
