/**
 * The JetStream streams behind the durable events. channels 0.1.8 creates a stream only when a consumer
 * subscribes, and a publish to a subject no stream covers fails, so every process creates (or updates)
 * the streams at start-up, before anything publishes: one stream per event subject plus the dead-letter
 * subject, named the way the channels NATS adapter names them (dots become underscores), so the adapter
 * finds ours instead of making its own.
 */
import { connect, nanos, DiscardPolicy, RetentionPolicy, StorageType, type JetStreamManager, type NatsError, type StreamConfig } from "nats";
import { DurableEvents } from "../contracts/events";

/** Where a message goes after its handler failed `maxRetries` times (stream `<prefix>_DEAD_LETTER`). */
export const DEAD_LETTER_CHANNEL = "DEAD_LETTER";

/** How long JetStream remembers a `msgID` to drop a re-published duplicate. */
export const DUPLICATE_WINDOW_MS = 2 * 60 * 1000;
/** How long an event stays in its stream: a consumer down longer than this misses it. */
export const EVENT_RETENTION_MS = 30 * 24 * 60 * 60 * 1000;

export interface StreamOptions {
  /** Subject prefix ("" in production: the subject is the event name, e.g. `order.created`, which producers in other languages publish to). */
  prefix?: string;
  /** Replicas per stream: 1 on a single server, 3 on a JetStream cluster. */
  replicas?: number;
}

/** `order.created` with prefix `t1` -> `t1.order.created` (the adapter's `addPrefixTopic`). */
export function prefixedSubject(subject: string, prefix = ""): string {
  return prefix ? `${prefix}.${subject}` : subject;
}

/** The stream name the channels NATS adapter derives from a subject. */
export function streamNameOf(subject: string): string {
  return subject.split(".").join("_");
}

/** Every subject a durable stream must cover: the event names and the dead-letter channel. */
export function durableSubjects(prefix = ""): string[] {
  return [...Object.keys(DurableEvents), DEAD_LETTER_CHANNEL].map((s) => prefixedSubject(s, prefix));
}

/**
 * Stream settings shared by `ensureStreams` and the channels adapter (which `add`s the same config on
 * subscribe: identical settings make that a no-op). File storage so events survive a NATS restart.
 */
export function streamSettings(replicas = 1): Partial<StreamConfig> {
  return {
    storage: StorageType.File,
    retention: RetentionPolicy.Limits,
    discard: DiscardPolicy.Old,
    max_age: nanos(EVENT_RETENTION_MS),
    duplicate_window: nanos(DUPLICATE_WINDOW_MS),
    num_replicas: replicas,
  };
}

/** JetStream's answers to a create whose name or subject another stream already has. */
const NAME_IN_USE = 10058;
const SUBJECTS_OVERLAP = 10065;

/**
 * Creates the stream, or brings the one of that name up to date. JetStream accepts the add of a stream
 * that exists with the same settings; with other settings (an older version's, or a process that started
 * at the same moment and won the race) the add fails and the stream is updated instead. A subject held
 * by a stream of another name is an error that names it.
 */
async function addOrUpdateStream(jsm: JetStreamManager, config: Partial<StreamConfig> & { name: string }, subject: string): Promise<void> {
  try {
    await jsm.streams.add(config);
  } catch (err) {
    const code = (err as Partial<NatsError>).api_error?.err_code;
    if (code !== NAME_IN_USE && code !== SUBJECTS_OVERLAP) throw err;
    const holder = await jsm.streams.find(subject).catch(() => undefined);
    if (holder !== config.name) {
      throw new Error(
        `cannot create the JetStream stream ${config.name}: its subject ${subject} belongs to the stream ${holder ?? "(not found)"} (${(err as Error).message})`,
      );
    }
    await jsm.streams.update(config.name, config);
  }
}

/**
 * Creates the durable-event streams on the NATS server at `url`, or brings their settings up to date.
 * Idempotent; safe to run from every process at every start. Returns the stream names.
 */
export async function ensureStreams(url: string, options: StreamOptions = {}): Promise<string[]> {
  const nc = await connect({ servers: url, name: "crm-ensure-streams", timeout: 5000 });
  try {
    const jsm = await nc.jetstreamManager();
    const names: string[] = [];
    for (const subject of durableSubjects(options.prefix)) {
      const name = streamNameOf(subject);
      const config = { ...streamSettings(options.replicas), name, subjects: [subject] };
      await addOrUpdateStream(jsm, config, subject);
      names.push(name);
    }
    return names;
  } finally {
    await nc.close();
  }
}
