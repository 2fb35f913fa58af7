/** startGateway: the real gateway on a free port with chosen services, reached through httpClient. */
import type { ServiceSchema } from "moleculer";
import { startGateway, type Gateway } from "..";

const healthy = (name: string): ServiceSchema => ({ name, actions: { health: () => ({ status: "ok" }) } });

describe("startGateway", () => {
  let gateway: Gateway;

  beforeAll(async () => {
    gateway = await startGateway({
      services: ["auth", "profiles", "profile-lists", "campaigns", "mailer", "billing"].map(healthy),
    });
  });
  afterAll(async () => {
    await gateway?.stop();
  });

  it("listens on a free local port and answers through the http helper", async () => {
    expect(gateway.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(gateway.url).not.toMatch(/:3000$/);
    const res = await gateway.http.get("/health/live");
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ status: "ok" });
    expect(res.headers["x-request-id"]).toBeTruthy();
  });

  it("reaches services given as test doubles on the same broker", async () => {
    const res = await gateway.http.get("/health/ready");
    expect(res.status).toBe(200);
    expect(res.body.services).toEqual({ auth: "ok", profiles: "ok", "profile-lists": "ok", campaigns: "ok", mailer: "ok", billing: "ok" });
  });

  it("returns the contract's error body for an unknown route", async () => {
    const res = await gateway.http.get("/v1/nowhere");
    expect(res.status).toBe(404);
    expect(res.body).toMatchObject({ statusCode: 404, error: "NOT_FOUND" });
  });
});
