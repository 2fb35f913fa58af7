/**
 * The channels 0.1.8 NATS (JetStream) adapter with spaced redeliveries, and dead letters that say why.
 *
 * channels 0.1.8 retries a failed handler with `message.nak()`, which JetStream redelivers at once: five
 * failures within milliseconds and the event was in DEAD_LETTER for good, so a few seconds of storage
 * trouble in a consumer dead-lettered every event that arrived meanwhile. JetStream offers two ways to
 * space redeliveries; both were checked against nats-server 2.9.10 (the Debian server this runs on):
 *  - consumer `backoff` paces only redeliveries after an ack timeout: a plain nak is still redelivered at
 *    once, and `backoff` replaces the consumer's `ack_wait` by its first step (1 s, so a handler slower
 *    than that would be redelivered while it still runs). It cannot serve an adapter that naks.
 *  - a nak with a delay (`-NAK {"delay":…}`, nats-server >= 2.7; `JsMsg.nak(ms)` in the nats client):
 *    the server redelivers that message once the delay is over. This adapter uses it.
 * Everything else stays the framework's: the adapter decides when to retry and when to dead-letter
 * (`maxRetries`, counted by JetStream's own delivery count), acks, and tracks in-flight messages. This
 * subclass only gives each of its naks the delay of that delivery, writes on each dead letter why
 * the handler failed, how often the event was delivered and its original message id (see
 * deadLetterHeaders), which the stock adapter leaves out, and dead-letters at once a message whose body
 * cannot be deserialized (the stock adapter retried it on the whole schedule).
 *
 * A message waiting for its redelivery still counts towards the consumer's `maxInFlight` (JetStream's
 * max_ack_pending): while every delivery fails, the group holds at most that many events back and does
 * not pull the rest of the stream through its retries. Up to `maxInFlight` events that fail for good
 * therefore slow their group down until they reach DEAD_LETTER.
 */
import { Adapters } from "@moleculer/channels";
import type { JsMsg, NatsError } from "nats";

/** A channel as the adapter sees it (channels 0.1.8's own type). */
type Channel = Parameters<InstanceType<typeof Adapters.NATS>["createConsumerHandler"]>[0];

/** The headers of a dead letter (on top of the original message's own, Nats-* excepted). */
export const DEAD_LETTER_HEADERS = {
  /** The (prefixed) subject the event was published to: where a replay sends it. */
  channel: "x-original-channel",
  /** The consumer group that gave up on it. */
  group: "x-original-group",
  /** Why: the last handler error, or why no retry could help. */
  error: "x-error",
  /** Redeliveries before it was dead-lettered (deliveries - 1; channels' own header name). */
  redelivered: "x-redelivered-count",
  /** The `Nats-Msg-Id` it was published with, if any. */
  msgId: "x-original-msg-id",
  /** Its sequence in the event's stream. */
  seq: "x-original-seq",
} as const;

const MSG_ID_HEADER = "Nats-Msg-Id";

/** A header value: one line, no control characters, at most 1000 characters. */
export function headerText(text: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: it replaces control characters
  return text.replace(/[\u0000-\u001f\u007f]/g, " ").slice(0, 1000);
}

/**
 * How long to wait before redelivering a message whose `deliveries`-th delivery failed (1-based):
 * `delays[deliveries - 1]`, the last delay once past the end of the schedule, 0 with no schedule.
 */
export function retryDelay(delays: readonly number[], deliveries: number): number {
  if (delays.length === 0) return 0;
  return delays[Math.min(Math.max(Math.trunc(deliveries), 1), delays.length) - 1];
}

export interface DeadLetterInfo {
  /** The (prefixed) subject of the event. */
  channel: string;
  group: string;
  error: string;
  /** The raw message the channel handler got: a JetStream message, or nothing useful in-process. */
  message?: unknown;
}

function isJsMsg(value: unknown): value is JsMsg {
  return typeof value === "object" && value !== null && typeof (value as JsMsg).nak === "function" && "info" in value;
}

/**
 * The headers of a dead letter: the original message's headers (the request id travels on), minus
 * JetStream's own, plus DEAD_LETTER_HEADERS. `message` may be anything a channel handler got as its raw
 * message; only a JetStream message adds the delivery count, msg id and stream sequence.
 */
export function deadLetterHeaders({ channel, group, error, message }: DeadLetterInfo): Record<string, string> {
  const headers: Record<string, string> = {};
  const msg = isJsMsg(message) ? message : undefined;
  for (const [key, values] of msg?.headers ?? []) {
    if (!/^nats-/i.test(key) && !key.startsWith("x-")) headers[key] = values[0];
  }
  headers[DEAD_LETTER_HEADERS.channel] = channel;
  headers[DEAD_LETTER_HEADERS.group] = group;
  headers[DEAD_LETTER_HEADERS.error] = headerText(error);
  if (msg) {
    headers[DEAD_LETTER_HEADERS.redelivered] = String(msg.info.deliveryCount - 1);
    headers[DEAD_LETTER_HEADERS.seq] = String(msg.seq);
    const msgId = msg.headers?.get(MSG_ID_HEADER);
    if (msgId) headers[DEAD_LETTER_HEADERS.msgId] = headerText(msgId);
  }
  return headers;
}

/**
 * The message id of a dead letter: the same message given up twice by the same group (its ack was
 * lost, so it came back and failed again) is stored once. Undefined without a JetStream message.
 */
export function deadLetterMsgId(channel: string, group: string, message: unknown): string | undefined {
  return isJsMsg(message) ? `dead-letter:${group}:${channel}:${message.seq}` : undefined;
}

/** How often a subscribe that lost the race to create its consumer is tried again. */
const SUBSCRIBE_ATTEMPTS = 5;

/** JetStream's answer to a create of a durable consumer that another client created first. */
function isConsumerNameInUse(err: unknown): boolean {
  return (err as { api_error?: { err_code?: number } } | undefined)?.api_error?.err_code === 10013;
}

/** What the serializer makes of a body it cannot read: the handler sees this instead of a payload. */
class Unreadable {
  constructor(readonly reason: string) {}
}

const errorText = (err: unknown) => String((err as Error | undefined)?.message ?? err ?? "handler failed");

export class BackoffNatsAdapter extends Adapters.NATS {
  /** The last handler error of each message in flight (for its dead letter). */
  private readonly failures = new WeakMap<JsMsg, unknown>();

  /** `retryDelays[n - 1]`: milliseconds to wait after the n-th delivery failed. */
  constructor(
    opts: unknown,
    private readonly retryDelays: readonly number[],
  ) {
    super(opts);
  }

  /**
   * Two instances of a service starting at once both create the group's durable consumer; JetStream
   * refuses the slower create ("consumer name already in use", 10013). The consumer then exists: a retry
   * binds to it, as every later start does.
   */
  override async subscribe(chan: Parameters<InstanceType<typeof Adapters.NATS>["subscribe"]>[0]): Promise<void> {
    // The stock subscribe replaces chan.deadLettering with a copy whose queue name it prefixes: a retry
    // from the copy prefixed it twice, and that instance dead-lettered to "<p>.<p>.DEAD_LETTER".
    const deadLettering = chan.deadLettering;
    for (let attempt = 1; ; attempt++) {
      try {
        return await super.subscribe(chan);
      } catch (err) {
        if (!isConsumerNameInUse(err) || attempt >= SUBSCRIBE_ATTEMPTS) throw err;
        // The failed attempt began tracking the channel's messages; the next one begins it again.
        this.stopChannelActiveMessages(chan.id);
        chan.deadLettering = deadLettering;
        this.logger.info(`The consumer of '${chan.name}' (group ${chan.group}) was created by another instance meanwhile; binding to it`);
        await new Promise((resolve) => setTimeout(resolve, 50 * attempt));
      }
    }
  }

  /**
   * The stock adapter deserializes a message before its handler runs, and counts a failure there as a failed
   * delivery: retried on the whole schedule, then dead-lettered as "handler failed", although no retry can
   * make the bytes readable. Here such a body becomes an Unreadable payload, which the handler below sends to
   * DEAD_LETTER at once.
   */
  override init(...args: Parameters<InstanceType<typeof Adapters.NATS>["init"]>): ReturnType<InstanceType<typeof Adapters.NATS>["init"]> {
    const result = super.init(...args);
    const serializer = this.serializer;
    const deserialize = serializer.deserialize.bind(serializer);
    serializer.deserialize = (buffer: Buffer) => {
      try {
        return deserialize(buffer);
      } catch (err) {
        return new Unreadable(errorText(err));
      }
    };
    return result;
  }

  override createConsumerHandler(chan: Channel): (err: NatsError, message: JsMsg) => Promise<void> {
    const handler = chan.handler as (payload: unknown, raw: JsMsg) => Promise<unknown>;
    chan.handler = async (payload: unknown, raw: JsMsg) => {
      if (payload instanceof Unreadable) return this.giveUpOnUnreadable(chan, raw, payload.reason);
      try {
        return await handler(payload, raw);
      } catch (err) {
        this.failures.set(raw, err);
        throw err;
      }
    };
    const consume = super.createConsumerHandler(chan);
    return (err, message) => {
      if (message) {
        const nak = message.nak.bind(message);
        // The adapter naks without a delay: this delivery's wait of the schedule.
        message.nak = (millis?: number) => nak(millis ?? retryDelay(this.retryDelays, message.info.deliveryCount));
      }
      return consume(err, message);
    };
  }

  /** A message no retry can help: to DEAD_LETTER at once, saying why (or dropped when the channel has no dead letters). */
  private async giveUpOnUnreadable(chan: Channel, message: JsMsg, reason: string): Promise<void> {
    const error = `unreadable: the message's body cannot be deserialized (${reason}); no retry can fix it`;
    if (chan.deadLettering?.enabled) {
      this.failures.set(message, new Error(error));
      // When the dead letter cannot be stored, this naks the message; the adapter's ack that follows is then a no-op.
      await this.moveToDeadLetter(chan, message);
    } else {
      this.logger.error(`Dropped message ${message.seq} of '${chan.name}' (group ${chan.group}): ${error}`);
    }
  }

  /**
   * The stock adapter's move, with the headers above and a msg id. When the dead letter cannot be
   * stored (NATS trouble, or the adapter is stopping, when `publish` drops it silently), the message is
   * nak'ed with the schedule's last delay instead of being lost: the adapter's ack that follows is then
   * a no-op (a JetStream message takes only its first ack or nak).
   */
  override async moveToDeadLetter(chan: Channel, message: JsMsg): Promise<void> {
    const queue = chan.deadLettering!.queueName!;
    const headers = deadLetterHeaders({ channel: chan.name, group: chan.group, error: errorText(this.failures.get(message)), message });
    const retryLater = () => message.nak(retryDelay(this.retryDelays, this.retryDelays.length));
    if (this.stopping) return retryLater();
    try {
      // `publish` turns a plain headers object into NATS headers (its typing says MsgHdrs).
      const opts = { raw: true, headers, msgID: deadLetterMsgId(chan.name, chan.group, message) };
      await this.publish(queue, message.data, opts as never);
      this.metricsIncrement("moleculer.channels.messages.deadLettering.total", chan);
      this.logger.warn(`Moved message ${message.seq} of '${chan.name}' (group ${chan.group}) to '${queue}': ${headers[DEAD_LETTER_HEADERS.error]}`);
    } catch (error) {
      this.logger.error(`Could not move message ${message.seq} of '${chan.name}' to '${queue}'; it will be redelivered`, error);
      retryLater();
    }
  }
}
