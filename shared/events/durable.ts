/**
 * Durable events between services: `publishEvent` on the producing side, `durableChannel` for a
 * consumer's `channels: {}` block. Payloads are checked against shared/contracts/events.ts on both
 * sides. Delivery is at-least-once (JetStream); the consumer turns that into "applied once" by recording
 * each processed natural key in its own database (`processed_events`, `_id` = `event:group:key`).
 */
import { Context, type Service, type ServiceBroker } from "moleculer";
import type { z } from "zod";
import { DurableEvents, type DurableEventName, type DurableEventPayload } from "../contracts/events";
import { crmError } from "../errors";
import { isDuplicateKey, type Collection, type Database } from "../storage/port";
import { issuesOf } from "../validation";
import { nowSeconds } from "../ids";
import { EVENT_MARK, type ChannelBroker } from "./channels";
import { deadLetterHeaders, deadLetterMsgId, headerText } from "./nats-adapter";
import { DEAD_LETTER_CHANNEL } from "./streams";
import { PROCESSED_EVENTS, type ProcessedEvent } from "./processed";

export { PROCESSED_EVENTS, purgeProcessedEvents } from "./processed";

/** A channel definition as @moleculer/channels 0.1.8 reads it from a service schema's `channels`. */
export interface ChannelDefinition<TThis = Service> {
  group?: string;
  /** true: the handler gets `(ctx, raw)` with the payload in `ctx.params`. */
  context?: boolean;
  maxRetries?: number;
  maxInFlight?: number;
  deadLettering?: { enabled?: boolean; queueName?: string };
  /** Any handler: the runtime passes `(ctx, raw)` or `(payload, raw)`, as `context` says. */
  handler: (this: TThis, ...args: never[]) => unknown;
  [key: string]: unknown;
}

declare module "../../node_modules/moleculer/src/service" {
  // channels 0.1.8 ships no typing for `channels:`; this lets a typed ServiceSchema carry one.
  interface ServiceSchema<TSettings, TMethods, TVars, TThis> {
    // `never`: a channel built for any service `this` (durableChannel's default) fits every schema.
    channels?: Record<string, ChannelDefinition<never> | ((this: TThis, ...args: never[]) => unknown)>;
  }
}

export type EventKey<N extends DurableEventName> = (payload: DurableEventPayload<N>) => string;

/** The natural key of each event: what "the same event" means for de-duplication. */
export const EVENT_KEYS: { [N in DurableEventName]: EventKey<N> } = {
  "order.created": (p) => `${p.store_id}:${p.order_id}`,
  "profile.merged": (p) => `${p.store_id}:${p.source_id}:${p.target_id}`,
  "email-template.deleted": (p) => `${p.store_id}:${p.template_id}`,
  "billing.payment-changed": (p) => `${p.store_id}:${p.stripe_event_id}`,
};

export interface PublishOptions {
  /** Overrides the natural key that the NATS msgID (broker-side de-dup within 2 minutes) is made from. */
  key?: string;
}

function isContext(value: ServiceBroker | Context): value is Context {
  return value instanceof Context;
}

/**
 * Validates `payload` against the event's schema and publishes it durably. An invalid payload is a
 * VALIDATION_ERROR (nothing is sent). Resolves once JetStream has stored the message.
 */
export async function publishEvent<N extends DurableEventName>(
  via: ServiceBroker | Context,
  name: N,
  payload: z.input<(typeof DurableEvents)[N]>,
  options: PublishOptions = {},
): Promise<void> {
  const schema: z.ZodType<DurableEventPayload<N>> = DurableEvents[name] as never;
  const parsed = schema.safeParse(payload);
  if (!parsed.success) {
    throw crmError("VALIDATION_ERROR", `Invalid ${name} event payload`, {
      validationErrors: issuesOf(parsed.error).map(({ field, error }) => ({ field, error })),
    });
  }
  const broker = (isContext(via) ? via.broker : via) as ServiceBroker & ChannelBroker;
  if (typeof broker.sendToChannel !== "function") {
    throw new Error("publishEvent: the broker has no channels middleware (see moleculer.config.ts)");
  }
  const key = options.key ?? (EVENT_KEYS[name] as EventKey<N>)(parsed.data);
  const headers: Record<string, string> = {};
  if (isContext(via)) {
    // Only the request id travels (for log correlation): ctx.meta would put auth data and IPs in the stream.
    headers.$requestID = String(via.requestID ?? via.id);
    if (via.service) headers.$caller = via.service.fullName;
  }
  await broker.sendToChannel(name, parsed.data, { msgID: `${name}:${key}`, headers });
}

/**
 * Thrown by a handler for a valid event it can never apply as it stands (an order naming a profile that
 * does not exist and no e-mail): the event goes to DEAD_LETTER at once, and is not recorded as applied,
 * so a corrected event with the same key is applied when it comes.
 */
export class UnprocessableEvent extends Error {
  constructor(reason: string) {
    super(reason);
    this.name = "UnprocessableEvent";
  }
}

/** One processed (or in-progress) event of a consumer group, in the consuming service's database. */

type ProcessedKey = Pick<ProcessedEvent, "_id" | "event" | "group" | "key">;

/** A claim older than this belongs to a consumer that died mid-handler (equals the JetStream ack wait). */
const CLAIM_LEASE_SECONDS = 30;
/** How long a duplicate waits for the in-flight copy to finish before asking for a redelivery. */
const CLAIM_WAIT_MS = 5_000;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** "run": this delivery owns the key; "done": already applied. Throws when another copy holds it too long. */
async function claim(events: Collection<ProcessedEvent>, record: ProcessedKey) {
  const deadline = Date.now() + CLAIM_WAIT_MS;
  for (;;) {
    try {
      await events.insertOne({ ...record, status: "processing", claimed_at: nowSeconds() });
      return "run" as const;
    } catch (err) {
      if (!isDuplicateKey(err)) throw err;
    }
    const existing = await events.findOne({ _id: record._id });
    if (existing?.status === "done") return "done" as const;
    if (existing && nowSeconds() - existing.claimed_at >= CLAIM_LEASE_SECONDS) {
      const taken = await events.updateOne({ _id: record._id, status: "processing", claimed_at: existing.claimed_at }, { $set: { claimed_at: nowSeconds() } });
      if (taken.modified === 1) return "run" as const;
    }
    if (Date.now() > deadline) throw new Error(`event ${record._id} is being processed by another consumer`);
    if (existing) await sleep(100);
  }
}

export interface DurableChannelOptions<N extends DurableEventName, TThis> {
  /** Consumer group: every instance of the group shares the work, each message goes to one of them. */
  group: string;
  /** The natural key of a payload (default: EVENT_KEYS[name]); the same key is applied once per group. */
  key?: EventKey<N>;
  /**
   * Applies the event. Throwing asks for a redelivery after the next wait of EVENTS_RETRY_DELAYS (up to
   * maxRetries deliveries, then DEAD_LETTER).
   */
  handler: (this: TThis, payload: DurableEventPayload<N>, ctx: Context) => unknown;
  /** Deliveries in all before DEAD_LETTER (default: the middleware's, one more than EVENTS_RETRY_DELAYS has steps). */
  maxRetries?: number;
  maxInFlight?: number;
}

const summaryOf = (issues: Array<{ field: string; error: string }>) => issues.map(({ field, error }) => `${field || "(payload)"}: ${error}`).join("; ");

/**
 * Moves an event no retry can fix to the DEAD_LETTER channel, with the headers the adapter puts on its
 * own dead letters (`x-error` says why; see nats-adapter.ts), so an operator can find and replay it
 * (`npm run cli -- events dead-letters`). `raw` is the message the channel handler got. The in-process
 * adapter (no NATS) keeps no dead letters: there the log line is the record.
 */
async function deadLetter(broker: ServiceBroker, name: DurableEventName, group: string, payload: unknown, reason: string, raw: unknown): Promise<void> {
  // Reasons quote payload fields: no control characters into a log line or a NATS header.
  const why = headerText(reason);
  broker.logger.warn(`'${name}' event for group ${group} moved to ${DEAD_LETTER_CHANNEL}: ${why}`);
  const channels = broker as ServiceBroker & ChannelBroker;
  if (!channels.sendToChannel || !channels.channelAdapter) return;
  const channel = channels.channelAdapter.addPrefixTopic(name);
  const msgID = deadLetterMsgId(channel, group, raw);
  await channels.sendToChannel(DEAD_LETTER_CHANNEL, payload ?? null, {
    headers: deadLetterHeaders({ channel, group, error: why, message: raw }),
    ...(msgID ? { msgID } : {}),
  });
}

/**
 * A channel definition for a service's `channels` block, under the event's name:
 *   channels: { "order.created": durableChannel("order.created", { group: "profiles", handler }) }
 * The service needs storageMixin (`this.db`) for the processed-keys record. An invalid payload, or one
 * the handler refuses with UnprocessableEvent, goes to DEAD_LETTER at once and is acknowledged: a retry
 * cannot fix it.
 */
export function durableChannel<N extends DurableEventName, TThis extends Service = Service & { db: Database }>(
  name: N,
  options: DurableChannelOptions<N, TThis>,
): ChannelDefinition<TThis> {
  const schema: z.ZodType<DurableEventPayload<N>> = DurableEvents[name] as never;
  const keyOf = options.key ?? (EVENT_KEYS[name] as EventKey<N>);
  const group = options.group;

  async function handler(this: TThis & { db?: Database }, first: unknown, raw?: unknown) {
    // The channel runtime passes a Context; `emitLocalChannelHandler` (unit tests) passes the payload.
    let ctx: Context;
    if (first instanceof Context) ctx = first;
    else {
      ctx = Context.create(this.broker);
      ctx.params = first;
    }
    const parsed = schema.safeParse(ctx.params);
    if (!parsed.success) {
      await deadLetter(this.broker, name, group, ctx.params, `invalid payload: ${summaryOf(issuesOf(parsed.error))}`, raw);
      return;
    }
    if (!this.db) throw new Error(`durableChannel('${name}') in service '${this.fullName}' needs storageMixin`);
    const key = keyOf(parsed.data);
    const events = this.db.collection<ProcessedEvent>(PROCESSED_EVENTS);
    const record: ProcessedKey = { _id: `${name}:${group}:${key}`, event: name, group, key };
    if ((await claim(events, record)) === "done") {
      this.logger.debug(`'${name}' ${key} already applied by ${group}; skipped`);
      return;
    }
    try {
      await options.handler.call(this, parsed.data, ctx);
    } catch (err) {
      await events.deleteOne({ _id: record._id, status: "processing" }).catch(() => undefined);
      if (err instanceof UnprocessableEvent) {
        await deadLetter(this.broker, name, group, ctx.params, `unprocessable: ${err.message}`, raw);
        return;
      }
      this.logger.warn(`'${name}' ${key} failed in ${group}; it will be redelivered:`, (err as Error)?.message ?? err);
      throw err;
    }
    await events.updateOne({ _id: record._id }, { $set: { status: "done", processed_at: nowSeconds() } });
  }

  const definition: ChannelDefinition<TThis> = {
    group,
    context: true,
    handler: handler as ChannelDefinition<TThis>["handler"],
    [EVENT_MARK]: name,
  };
  if (options.maxRetries !== undefined) definition.maxRetries = options.maxRetries;
  if (options.maxInFlight !== undefined) definition.maxInFlight = options.maxInFlight;
  return definition;
}
