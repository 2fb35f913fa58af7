/**
 * The record a durable consumer keeps of the events it applied (collection `processed_events` in the
 * consuming service's own database), and its clean-up: a key is kept as long as its event can still be
 * delivered (the stream keeps events 30 days) plus a day, then it only costs memory and disk.
 */
import { nowSeconds } from "../ids";
import type { Database, Doc } from "../storage/port";
import { EVENT_RETENTION_MS } from "./streams";

export const PROCESSED_EVENTS = "processed_events";

export const PROCESSED_RETENTION_SECONDS = EVENT_RETENTION_MS / 1000 + 24 * 60 * 60;

export interface ProcessedEvent extends Doc {
  event: string;
  group: string;
  key: string;
  status: "processing" | "done";
  claimed_at: number;
  processed_at?: number;
}

/** Deletes the processed-event records no delivery can need any more; answers how many. */
export async function purgeProcessedEvents(db: Database, now = nowSeconds()): Promise<number> {
  const events = db.collection<ProcessedEvent>(PROCESSED_EVENTS);
  await events.createIndexes([{ name: "processed_at", keys: { processed_at: 1 } }]);
  return events.deleteMany({ status: "done", processed_at: { $lt: now - PROCESSED_RETENTION_SECONDS } });
}
