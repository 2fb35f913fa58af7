/**
 * The whole system as it runs distributed: the gateway and the six services, each on its own broker,
 * talking over the real NATS bus (nats://127.0.0.1:4222) in a namespace of their own.
 */
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { BACKEND_SERVICES, httpClient, startCluster, waitFor, type Cluster } from "./harness";

describe("GET /health/ready (gateway + six services over NATS)", () => {
  let cluster: Cluster;
  let outbox: string;

  beforeAll(async () => {
    outbox = await mkdtemp(path.join(os.tmpdir(), "crm-outbox-"));
    cluster = await startCluster(["gateway", ...BACKEND_SERVICES], {
      env: {
        OUTBOX_DIR: outbox,
        JWT_SECRET: "cluster-test-secret-0123456789abcdef",
        CRM_ADMIN_API_KEY: "crm_sk_cluster_test",
        STRIPE_SECRET_KEY: undefined,
        STRIPE_WEBHOOK_SECRET: undefined,
      },
    });
  }, 60_000);

  afterAll(async () => {
    await cluster?.stop();
    await rm(outbox, { recursive: true, force: true });
  });

  it("runs every service on a broker of its own", () => {
    const nodes = new Set(Object.values(cluster.brokers).map((b) => b.nodeID));
    expect(nodes.size).toBe(1 + BACKEND_SERVICES.length);
  });

  it("lists all six services as ok (billing, with no Stripe keys here, as not_configured: ready all the same)", async () => {
    const res = await httpClient(cluster.url!).get("/health/ready");
    expect(res.status).toBe(200);
    expect(res.body).toEqual({
      status: "ok",
      services: { auth: "ok", profiles: "ok", "profile-lists": "ok", campaigns: "ok", mailer: "ok", billing: "not_configured" },
    });
  });

  it("answers 503 and marks the service that went away", async () => {
    await cluster.brokers.billing.stop();
    // Readiness answers are shared for a second: ask until one is from after billing went away.
    const http = httpClient(cluster.url!);
    const res = await waitFor(
      async () => {
        const answer = await http.get("/health/ready");
        return answer.status !== 200 && answer;
      },
      "readiness to notice billing has gone",
      { intervalMs: 50 },
    );
    expect(res.status).toBe(503);
    expect(res.body.services).toMatchObject({ auth: "ok", profiles: "ok", mailer: "ok" });
    expect(res.body.services.billing).not.toBe("ok");
  });
});
