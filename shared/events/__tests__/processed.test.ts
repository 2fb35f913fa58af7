/** The processed-event record of durable consumers is forgotten once no redelivery can come. */
import { openSqliteDatabase } from "../../storage/sqlite/database";
import { PROCESSED_EVENTS, PROCESSED_RETENTION_SECONDS, purgeProcessedEvents, type ProcessedEvent } from "../processed";

describe("purgeProcessedEvents", () => {
  it("deletes applied keys past the stream's retention and keeps recent and in-flight ones", async () => {
    const db = await openSqliteDatabase("processed-purge");
    const events = db.collection<ProcessedEvent>(PROCESSED_EVENTS);
    const now = 2_000_000_000;
    const old = now - PROCESSED_RETENTION_SECONDS - 1;
    const record = (id: string, status: ProcessedEvent["status"], at: number): ProcessedEvent => ({
      _id: id,
      event: "order.created",
      group: "profiles",
      key: id,
      status,
      claimed_at: at,
      ...(status === "done" ? { processed_at: at } : {}),
    });
    await events.insertOne(record("old-done", "done", old));
    await events.insertOne(record("recent-done", "done", now - 60));
    await events.insertOne(record("old-processing", "processing", old));

    expect(await purgeProcessedEvents(db, now)).toBe(1);
    expect((await events.find({})).map((e) => e._id).sort()).toEqual(["old-processing", "recent-done"]);
    await db.close();
  });
});
