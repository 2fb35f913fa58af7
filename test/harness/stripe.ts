/**
 * A stand-in for the Stripe API (node:http) that the official `stripe` client can be pointed at:
 *   new Stripe(key, standIn.clientOptions)   or   STRIPE_API_URL = standIn.url
 * It implements Checkout Sessions (create, retrieve, expire), subscriptions (retrieve, update
 * `cancel_at_period_end`, cancel) and events (retrieve) with realistic objects in the API version the
 * client speaks (a subscription's period on its items, an invoice's subscription under `parent`), honours
 * Idempotency-Key like Stripe, records every request, and signs webhook payloads with the real library
 * (`Stripe.webhooks.generateTestHeaderString`) so `constructEvent` accepts them. Completing a session in
 * subscription mode creates its subscription, with the session's `subscription_data.metadata`.
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import { randomBytes } from "node:crypto";
import Stripe from "stripe";

export interface RecordedRequest {
  method: string;
  path: string;
  query: Record<string, unknown>;
  headers: http.IncomingHttpHeaders;
  /** The form body decoded into objects/arrays (`line_items[0][price]` -> `{ line_items: [{ price }] }`). */
  body: Record<string, unknown>;
  rawBody: string;
  idempotencyKey?: string;
}

export interface CheckoutSessionLike {
  id: string;
  object: "checkout.session";
  status: "open" | "complete" | "expired";
  payment_status: "paid" | "unpaid" | "no_payment_required";
  mode: string;
  url: string | null;
  metadata: Record<string, string>;
  customer: string | null;
  customer_email: string | null;
  client_reference_id: string | null;
  subscription: string | null;
  payment_intent: string | null;
  line_items: { object: "list"; data: Array<Record<string, unknown>>; has_more: boolean; url: string };
  [field: string]: unknown;
}

export interface SubscriptionLike {
  id: string;
  object: "subscription";
  status: "active" | "trialing" | "past_due" | "unpaid" | "canceled" | "incomplete" | "incomplete_expired" | "paused";
  customer: string;
  cancel_at_period_end: boolean;
  cancel_at: number | null;
  canceled_at: number | null;
  ended_at: number | null;
  metadata: Record<string, string>;
  items: { object: "list"; data: Array<{ id: string; object: "subscription_item"; current_period_start: number; current_period_end: number; price: { id: string } }> };
  [field: string]: unknown;
}

export interface StripeStandIn {
  /** `http://127.0.0.1:<port>`: the value for STRIPE_API_URL. */
  url: string;
  /** Options for `new Stripe(key, options)`. */
  clientOptions: { host: string; port: number; protocol: "http" };
  requests: RecordedRequest[];
  /** While true, every API request answers 503 (`api_error`), as during a Stripe outage. */
  failing: boolean;
  sessions: Map<string, CheckoutSessionLike>;
  subscriptions: Map<string, SubscriptionLike>;
  /**
   * Marks a session paid/complete (what happens when the customer pays) and returns it; in subscription
   * mode its subscription is created (active, a 30-day period).
   */
  completeSession(id: string, patch?: Partial<CheckoutSessionLike>): CheckoutSessionLike;
  /** Changes a subscription as Stripe would (a cancellation from the customer portal, a failed renewal, ...). */
  updateSubscription(id: string, patch: Partial<SubscriptionLike>): SubscriptionLike;
  /** The subscription's next period was paid: its items move on by 30 days. Returns the invoice of that payment. */
  renewSubscription(id: string): Record<string, unknown>;
  /**
   * A Stripe Event object around `object` (a snapshot of it), e.g. `event("checkout.session.completed",
   * session)`; `created` defaults to now. Events retrieve answers it by id.
   */
  event(type: string, object: unknown, id?: string, created?: number): Record<string, unknown>;
  /** The `Stripe-Signature` header for `payload` (the exact body string) signed with `secret`. */
  signWebhook(payload: string, secret: string, timestamp?: number): string;
  /** Body + headers of a webhook delivery of `event`, ready to POST. */
  webhookRequest(event: unknown, secret: string): { body: string; headers: Record<string, string> };
  close(): Promise<void>;
}

const id = (prefix: string) => `${prefix}_test_${randomBytes(12).toString("hex")}`;
const now = () => Math.floor(Date.now() / 1000);

/** Stripe's form encoding (`a[b][0][c]=v`) back into nested objects and arrays. */
export function decodeForm(text: string): Record<string, unknown> {
  const root: Record<string, unknown> = {};
  for (const [key, value] of new URLSearchParams(text)) {
    const path = key.replace(/\]/g, "").split("[");
    let node: Record<string, unknown> | unknown[] = root;
    path.forEach((token, i) => {
      const last = i === path.length - 1;
      const nextIsIndex = !last && /^\d*$/.test(path[i + 1]);
      const slot: string | number = Array.isArray(node) ? (token === "" ? node.length : Number(token)) : token;
      const container = node as Record<string | number, unknown>;
      if (last) container[slot] = value;
      else {
        if (container[slot] === undefined) container[slot] = nextIsIndex ? [] : {};
        node = container[slot] as Record<string, unknown> | unknown[];
      }
    });
  }
  return root;
}

function stripeError(res: http.ServerResponse, status: number, message: string, extra: Record<string, unknown> = {}) {
  send(res, status, { error: { type: "invalid_request_error", message, ...extra } });
}

function send(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) {
  res.writeHead(status, { "content-type": "application/json", "request-id": id("req"), ...headers });
  res.end(JSON.stringify(body));
}

export async function startStripeStandIn(): Promise<StripeStandIn> {
  const requests: RecordedRequest[] = [];
  const sessions = new Map<string, CheckoutSessionLike>();
  const subscriptions = new Map<string, SubscriptionLike>();
  const events = new Map<string, Record<string, unknown>>();
  /** What a session's subscription will carry (`subscription_data`), as Stripe keeps it off the session object. */
  const subscriptionData = new Map<string, { metadata: Record<string, string>; price: string }>();
  const replies = new Map<string, { status: number; body: unknown }>();
  let baseUrl = "";

  const lineItems = (sessionId: string, items: unknown): CheckoutSessionLike["line_items"] => {
    const list = Array.isArray(items) ? (items as Array<Record<string, unknown>>) : [];
    return {
      object: "list",
      has_more: false,
      url: `/v1/checkout/sessions/${sessionId}/line_items`,
      data: list.map((item) => {
        const priceData = (item.price_data ?? {}) as Record<string, unknown>;
        return {
          id: id("li"),
          object: "item",
          quantity: Number(item.quantity ?? 1),
          currency: priceData.currency ?? "usd",
          price: {
            id: typeof item.price === "string" ? item.price : id("price"),
            object: "price",
            currency: priceData.currency ?? "usd",
            unit_amount: priceData.unit_amount !== undefined ? Number(priceData.unit_amount) : null,
            recurring: priceData.recurring ?? null,
          },
        };
      }),
    };
  };

  const createSession = (body: Record<string, unknown>, res: http.ServerResponse) => {
    if (!body.mode) return stripeError(res, 400, "Missing required param: mode.", { param: "mode", code: "parameter_missing" });
    if (!Array.isArray(body.line_items) || body.line_items.length === 0) {
      return stripeError(res, 400, "Missing required param: line_items.", { param: "line_items", code: "parameter_missing" });
    }
    const sessionId = id("cs");
    const session: CheckoutSessionLike = {
      id: sessionId,
      object: "checkout.session",
      status: "open",
      payment_status: "unpaid",
      mode: String(body.mode),
      url: `${baseUrl}/c/pay/${sessionId}`,
      metadata: (body.metadata ?? {}) as Record<string, string>,
      customer: (body.customer as string) ?? null,
      customer_email: (body.customer_email as string) ?? null,
      client_reference_id: (body.client_reference_id as string) ?? null,
      subscription: null,
      payment_intent: null,
      success_url: body.success_url ?? null,
      cancel_url: body.cancel_url ?? null,
      currency: null,
      amount_subtotal: null,
      amount_total: null,
      created: now(),
      expires_at: now() + 24 * 3600,
      livemode: false,
      line_items: lineItems(sessionId, body.line_items),
    };
    sessions.set(sessionId, session);
    const data = (body.subscription_data ?? {}) as { metadata?: Record<string, string> };
    const firstPrice = String((body.line_items as Array<Record<string, unknown>>)[0]?.price ?? "");
    subscriptionData.set(sessionId, { metadata: data.metadata ?? {}, price: firstPrice });
    send(res, 200, session);
  };

  const newSubscription = (sessionId: string, customer: string): SubscriptionLike => {
    const start = now();
    const data = subscriptionData.get(sessionId) ?? { metadata: {}, price: "" };
    const sub: SubscriptionLike = {
      id: id("sub"),
      object: "subscription",
      status: "active",
      customer,
      cancel_at_period_end: false,
      cancel_at: null,
      canceled_at: null,
      ended_at: null,
      created: start,
      livemode: false,
      metadata: { ...data.metadata },
      items: {
        object: "list",
        data: [{ id: id("si"), object: "subscription_item", current_period_start: start, current_period_end: start + 30 * 24 * 3600, price: { id: data.price } }],
      },
    };
    subscriptions.set(sub.id, sub);
    return sub;
  };

  const cancelSubscription = (sub: SubscriptionLike) => {
    sub.status = "canceled";
    sub.canceled_at = now();
    sub.ended_at = now();
    sub.cancel_at_period_end = false;
  };

  /** Subscriptions: GET retrieve, POST update (cancel_at_period_end, metadata), DELETE cancel. */
  const routeSubscription = (req: http.IncomingMessage, subId: string, record: RecordedRequest, res: http.ServerResponse) => {
    const sub = subscriptions.get(subId);
    if (!sub) return stripeError(res, 404, `No such subscription: '${subId}'`, { code: "resource_missing", param: "id" });
    if (req.method === "GET") return send(res, 200, sub);
    if (sub.status === "canceled") return stripeError(res, 400, "A canceled subscription can only update its cancellation_details and metadata.");
    if (req.method === "DELETE") {
      cancelSubscription(sub);
      return send(res, 200, sub);
    }
    if (record.body.cancel_at_period_end !== undefined) sub.cancel_at_period_end = record.body.cancel_at_period_end === "true";
    if (record.body.metadata) Object.assign(sub.metadata, record.body.metadata);
    send(res, 200, sub);
  };

  const route = (req: http.IncomingMessage, record: RecordedRequest, res: http.ServerResponse) => {
    if (standIn.failing) {
      return send(res, 503, { error: { type: "api_error", message: "Stripe is unavailable (stand-in outage)." } }, { "stripe-should-retry": "false" });
    }
    const auth = req.headers.authorization ?? "";
    if (!/^Bearer sk_\S+$/.test(auth)) {
      return send(res, 401, { error: { type: "invalid_request_error", message: "Invalid API Key provided." } });
    }
    const subscription = /^\/v1\/subscriptions\/([^/]+)$/.exec(record.path);
    if (subscription) return routeSubscription(req, subscription[1], record, res);
    const event = /^\/v1\/events\/([^/]+)$/.exec(record.path);
    if (event && req.method === "GET") {
      const found = events.get(event[1]);
      return found ? send(res, 200, found) : stripeError(res, 404, `No such event: '${event[1]}'`, { code: "resource_missing", param: "id" });
    }
    const match = /^\/v1\/checkout\/sessions(?:\/([^/]+)(\/expire)?)?$/.exec(record.path);
    if (match && req.method === "POST" && !match[1]) return createSession(record.body, res);
    const session = match?.[1] ? sessions.get(match[1]) : undefined;
    if (match?.[1] && !session) {
      return stripeError(res, 404, `No such checkout.session: '${match[1]}'`, { code: "resource_missing", param: "session" });
    }
    if (session && req.method === "GET" && !match?.[2]) return send(res, 200, session);
    if (session && req.method === "POST" && match?.[2]) {
      if (session.status !== "open") return stripeError(res, 400, "Only Checkout Sessions with a status of open can be expired.");
      session.status = "expired";
      session.url = null;
      return send(res, 200, session);
    }
    stripeError(res, 404, `Unrecognized request URL (${req.method}: ${record.path}).`);
  };

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      const url = new URL(req.url ?? "/", "http://stand-in");
      const rawBody = Buffer.concat(chunks).toString("utf8");
      const idempotencyKey = req.headers["idempotency-key"] as string | undefined;
      const record: RecordedRequest = {
        method: req.method ?? "GET",
        path: url.pathname,
        query: decodeForm(url.search.slice(1)),
        headers: req.headers,
        body: decodeForm(rawBody),
        rawBody,
        idempotencyKey,
      };
      requests.push(record);
      const replay = idempotencyKey && req.method === "POST" ? replies.get(`${url.pathname}|${idempotencyKey}`) : undefined;
      if (replay) return send(res, replay.status, replay.body, { "idempotent-replayed": "true" });
      if (idempotencyKey && req.method === "POST") {
        // Remember what we answer so a retry with the same key gets the same object, as Stripe does.
        const end = res.end.bind(res);
        res.end = ((body: string) => {
          replies.set(`${url.pathname}|${idempotencyKey}`, { status: res.statusCode, body: JSON.parse(body) });
          return end(body);
        }) as typeof res.end;
      }
      route(req, record, res);
    });
  });

  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  const port = (server.address() as AddressInfo).port;
  baseUrl = `http://127.0.0.1:${port}`;

  const standIn: StripeStandIn = {
    url: baseUrl,
    clientOptions: { host: "127.0.0.1", port, protocol: "http" },
    requests,
    failing: false,
    sessions,
    subscriptions,
    completeSession(sessionId, patch = {}) {
      const session = sessions.get(sessionId);
      if (!session) throw new Error(`No such checkout session ${sessionId}`);
      const customer = session.customer ?? id("cus");
      Object.assign(session, {
        status: "complete",
        payment_status: "paid",
        url: null,
        customer,
        subscription: session.mode === "subscription" ? newSubscription(sessionId, customer).id : null,
        payment_intent: session.mode === "payment" ? id("pi") : null,
        ...patch,
      });
      return session;
    },
    updateSubscription(subId, patch) {
      const sub = subscriptions.get(subId);
      if (!sub) throw new Error(`No such subscription ${subId}`);
      if (patch.status === "canceled") cancelSubscription(sub);
      return Object.assign(sub, patch);
    },
    renewSubscription(subId) {
      const sub = subscriptions.get(subId);
      if (!sub) throw new Error(`No such subscription ${subId}`);
      for (const item of sub.items.data) {
        item.current_period_start = item.current_period_end;
        item.current_period_end += 30 * 24 * 3600;
      }
      sub.status = "active";
      return {
        id: id("in"),
        object: "invoice",
        status: "paid",
        customer: sub.customer,
        billing_reason: "subscription_cycle",
        parent: { type: "subscription_details", quote_details: null, subscription_details: { subscription: sub.id, metadata: { ...sub.metadata } } },
        period_start: sub.items.data[0]?.current_period_start,
        period_end: sub.items.data[0]?.current_period_end,
        created: now(),
        livemode: false,
      };
    },
    event(type, object, eventId = id("evt"), created = now()) {
      const event = {
        id: eventId,
        object: "event",
        api_version: Stripe.API_VERSION,
        created,
        data: { object: structuredClone(object) },
        livemode: false,
        pending_webhooks: 1,
        request: { id: null, idempotency_key: null },
        type,
      };
      events.set(eventId, event);
      return event;
    },
    signWebhook(payload, secret, timestamp = now()) {
      return Stripe.webhooks.generateTestHeaderString({ payload, secret, timestamp });
    },
    webhookRequest(event, secret) {
      const body = JSON.stringify(event);
      return { body, headers: { "content-type": "application/json", "stripe-signature": standIn.signWebhook(body, secret) } };
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  return standIn;
}
