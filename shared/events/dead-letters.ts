/**
 * The DEAD_LETTER stream for operators (`npm run cli -- events dead-letters list|replay`): what is in it,
 * and putting an event back on its subject once the cause is fixed.
 *
 * A replay publishes the dead letter's payload, with the original message's headers, to the subject it
 * came from (`x-original-channel`), then deletes the dead letter. Idempotency:
 *  - the replay carries a fresh `Nats-Msg-Id`, `replay:<dead-letter stream>:<seq>:<time>`. Reusing the
 *    original id would make JetStream drop the replay as a duplicate when the event was dead-lettered
 *    within its 2-minute duplicate window (an invalid or unprocessable event is dead-lettered at once).
 *    The id names the dead letter, so replaying the same one twice (two operators, or a crash between
 *    publishing and deleting) within that window is stored once.
 *  - every consumer group of the subject receives the replay, not only the one that gave up: groups
 *    that applied the event already skip it by its natural key (durable.ts, `processed_events`), and a
 *    group that failed has no record of it, so it applies it once.
 */
import { headers as natsHeaders, type JetStreamManager, type NatsConnection } from "nats";
import { DurableEvents } from "../contracts/events";
import { DEAD_LETTER_HEADERS } from "./nats-adapter";
import { DEAD_LETTER_CHANNEL, prefixedSubject, streamNameOf } from "./streams";

export interface DeadLetter {
  /** Sequence in the dead-letter stream: what `replay` takes. */
  seq: number;
  /** When it was dead-lettered. */
  time: Date;
  /** The (prefixed) subject it was published to, and the event name (the subject without the prefix). */
  channel?: string;
  event?: string;
  group?: string;
  error?: string;
  /** Redeliveries before it was given up on. */
  redelivered?: number;
  /** Its original `Nats-Msg-Id`. */
  msgId?: string;
  headers: Record<string, string>;
  data: Uint8Array;
}

/** The dead-letter stream of the events under `prefix`. */
export function deadLetterStream(prefix = ""): string {
  return streamNameOf(prefixedSubject(DEAD_LETTER_CHANNEL, prefix));
}

export class DeadLetterError extends Error {
  constructor(
    readonly code: "NO_STREAM" | "NOT_FOUND" | "NOT_REPLAYABLE",
    message: string,
  ) {
    super(message);
    this.name = "DeadLetterError";
  }
}

function isNotFound(err: unknown): boolean {
  const e = err as { code?: unknown; api_error?: { code?: number; err_code?: number } };
  return e?.code === "404" || e?.api_error?.code === 404;
}

function headerRecord(entries: Iterable<[string, string[]]> | undefined): Record<string, string> {
  const record: Record<string, string> = {};
  for (const [key, values] of entries ?? []) record[key] = values[0];
  return record;
}

function toDeadLetter(seq: number, time: Date, headers: Record<string, string>, data: Uint8Array, prefix: string): DeadLetter {
  const channel = headers[DEAD_LETTER_HEADERS.channel];
  const redelivered = Number(headers[DEAD_LETTER_HEADERS.redelivered]);
  const head = prefix ? `${prefix}.` : "";
  return {
    seq,
    time,
    channel,
    event: channel === undefined ? undefined : channel.startsWith(head) ? channel.slice(head.length) : channel,
    group: headers[DEAD_LETTER_HEADERS.group],
    error: headers[DEAD_LETTER_HEADERS.error],
    redelivered: Number.isInteger(redelivered) ? redelivered : undefined,
    msgId: headers[DEAD_LETTER_HEADERS.msgId],
    headers,
    data,
  };
}

async function streamState(jsm: JetStreamManager, stream: string) {
  try {
    return (await jsm.streams.info(stream)).state;
  } catch (err) {
    if (!isNotFound(err)) throw err;
    throw new DeadLetterError("NO_STREAM", `There is no stream ${stream}: no service of this system (EVENTS_PREFIX) has started on this NATS.`);
  }
}

/** Every dead letter under `prefix`, oldest first (read with an ordered consumer: one pass, no ack). */
export async function listDeadLetters(nc: NatsConnection, prefix = ""): Promise<DeadLetter[]> {
  const jsm = await nc.jetstreamManager();
  const stream = deadLetterStream(prefix);
  const state = await streamState(jsm, stream);
  if (state.messages === 0) return [];
  const consumer = await nc.jetstream().consumers.get(stream);
  const messages = await consumer.consume();
  const letters: DeadLetter[] = [];
  try {
    for await (const m of messages) {
      const time = new Date(Math.floor(m.info.timestampNanos / 1e6));
      letters.push(toDeadLetter(m.seq, time, headerRecord(m.headers), m.data, prefix));
      if (m.info.pending === 0 || m.seq >= state.last_seq) break;
    }
  } finally {
    await messages.close().catch(() => undefined);
  }
  return letters;
}

/** One dead letter by its sequence; DeadLetterError NOT_FOUND when there is none. */
export async function getDeadLetter(jsm: JetStreamManager, seq: number, prefix = ""): Promise<DeadLetter> {
  const stream = deadLetterStream(prefix);
  await streamState(jsm, stream);
  try {
    const stored = await jsm.streams.getMessage(stream, { seq });
    return toDeadLetter(stored.seq, stored.time, headerRecord(stored.header), stored.data, prefix);
  } catch (err) {
    if (!isNotFound(err)) throw err;
    throw new DeadLetterError("NOT_FOUND", `No dead letter ${seq} in ${stream}.`);
  }
}

export interface Replayed {
  seq: number;
  /** Where it went, and the stream sequence it got there. */
  channel: string;
  streamSeq: number;
  /** False when JetStream already had this replay (a second replay within 2 minutes). */
  stored: boolean;
}

/**
 * Publishes dead letter `seq` to its original subject and removes it from the dead-letter stream.
 * Refuses (NOT_REPLAYABLE) a letter whose original subject is not an event of this prefix.
 */
export async function replayDeadLetter(nc: NatsConnection, seq: number, prefix = ""): Promise<Replayed> {
  const jsm = await nc.jetstreamManager();
  const letter = await getDeadLetter(jsm, seq, prefix);
  const subjects = Object.keys(DurableEvents).map((event) => prefixedSubject(event, prefix));
  if (!letter.channel || !subjects.includes(letter.channel)) {
    throw new DeadLetterError(
      "NOT_REPLAYABLE",
      `Dead letter ${seq} names no event subject of this system (x-original-channel: ${letter.channel ?? "none"}); it was left in place.`,
    );
  }
  const headers = natsHeaders();
  for (const [key, value] of Object.entries(letter.headers)) {
    if (!key.startsWith("x-") && !/^nats-/i.test(key)) headers.set(key, value);
  }
  const stream = deadLetterStream(prefix);
  const ack = await nc.jetstream().publish(letter.channel, letter.data, {
    msgID: `replay:${stream}:${seq}:${letter.time.getTime()}`,
    headers,
  });
  await jsm.streams.deleteMessage(stream, seq).catch((err: unknown) => {
    if (!isNotFound(err)) throw err; // removed meanwhile by a concurrent replay
  });
  return { seq, channel: letter.channel, streamSeq: ack.seq, stored: !ack.duplicate };
}
