/** storageMixin: a service's actions answer 503 (never 500) once its storage cannot be used. */
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import type { ServiceBroker, ServiceSchema } from "moleculer";
import { toErrorBody } from "../../errors";
import { startBroker } from "../../../test/harness";
import { StorageOutage } from "../../../test/storage-outage";
import { openDatabaseWith, storageMixin, type StorageMixinThis } from "../storage.mixin";

const dbOf = (service: unknown) => (service as StorageMixinThis).db;

describe("storageMixin", () => {
  let broker: ServiceBroker;
  let dataDir: string;

  const notes: ServiceSchema = {
    name: "notes",
    mixins: [storageMixin("notes")],
    actions: {
      add(ctx) {
        return dbOf(this)
          .collection("notes")
          .insertOne({ _id: (ctx.params as { id: string }).id, store_id: "s" });
      },
      count() {
        return dbOf(this).collection("notes").count({});
      },
      async fill(ctx) {
        const n = (ctx.params as { n: number }).n;
        await dbOf(this)
          .collection("many")
          .bulkWrite(Array.from({ length: n }, (_, i) => ({ insertOne: { document: { _id: `m${i}`, store_id: "s", tag: "common" } } })));
      },
      findUnindexed() {
        return dbOf(this).collection("many").find({ tag: "rare" });
      },
    },
  };

  beforeAll(async () => {
    dataDir = mkdtempSync(path.join(os.tmpdir(), "crm-mixin-"));
    broker = await startBroker({ services: [notes], storage: { dataDir } });
  });
  afterAll(async () => {
    await broker?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it("answers 503 with Retry-After from every action, and fails its health check, once its storage cannot be used", async () => {
    await expect(broker.call("notes.health")).resolves.toEqual({ status: "ok" });
    // The database closed under the service: the store answers UNAVAILABLE, as after a failed disk write.
    await dbOf(broker.getLocalService("notes")).close();
    for (const call of [() => broker.call("notes.add", { id: "lost" }), () => broker.call("notes.count")]) {
      const err = await call().catch((e: unknown) => e);
      expect(toErrorBody(err)).toEqual({ statusCode: 503, error: "SERVICE_UNAVAILABLE", message: "Storage is unavailable, try again later", retryAfter: 5 });
    }
    await expect(broker.call("notes.health")).rejects.toMatchObject({ code: 503, type: "SERVICE_UNAVAILABLE" });
  });

  it("answers 400 saying the search is too broad when the store refuses a query no index serves (SCAN_LIMIT)", async () => {
    const other = await startBroker({ services: [notes] });
    try {
      await other.call("notes.fill", { n: 6000 });
      const err = await other.call("notes.findUnindexed").catch((e: unknown) => e);
      expect(toErrorBody(err)).toMatchObject({ statusCode: 400, error: "VALIDATION_ERROR", message: expect.stringMatching(/too broad.*no index/) });
    } finally {
      await other.stop();
    }
  });

  it("opens its database through the broker's openDatabase option, e.g. one that goes down for a while", async () => {
    const outage = new StorageOutage(["notes"]);
    const other = await startBroker({ services: [notes], broker: openDatabaseWith(outage.open) });
    try {
      await other.call("notes.add", { id: "kept" });
      outage.start();
      const err = await other.call("notes.count").catch((e: unknown) => e);
      expect(toErrorBody(err)).toMatchObject({ statusCode: 503, error: "SERVICE_UNAVAILABLE", retryAfter: 5 });
      await expect(other.call("notes.health")).rejects.toMatchObject({ code: 503 });
      expect(outage.refused.map((call) => `${call.collection}.${call.method}`)).toEqual(["notes.count", ".ping"]);
      outage.end();
      await expect(other.call("notes.count")).resolves.toBe(1);
    } finally {
      await other.stop();
    }
  });
});
