/** The route table over HTTP: only its routes are reachable, with path params in snake_case. */
import { waitFor } from "../../test/harness/wait";
import { checkReadiness, ReadinessProbe } from "../health";
import { PLATFORM_KEY, PROFILE_ID, SESSION_ID, STORE_A, bearer, expectErrorBody, request, startGateway, type TestGateway } from "./helpers";

let gw: TestGateway;
beforeAll(async () => {
  gw = await startGateway();
});
afterAll(() => gw.stop());

const admin = bearer(PLATFORM_KEY);

describe("gateway routes", () => {
  it("calls the route's action with path params renamed to snake_case", async () => {
    const reply = await request(`${gw.url}/v1/stores/${STORE_A}/profiles/${PROFILE_ID}/sessions/${SESSION_ID}`, { method: "DELETE", headers: admin });
    expect(reply.status).toBe(200);
    expect(reply.body.params).toEqual({ store_id: STORE_A, id: PROFILE_ID, token_id: SESSION_ID });
  });

  it("lower-cases UUIDs in the path, so an upper-case spelling names the same store and profile", async () => {
    const url = `${gw.url}/v1/stores/${STORE_A.toUpperCase()}/profiles/${PROFILE_ID.toUpperCase()}/sessions/${SESSION_ID.toUpperCase()}`;
    const reply = await request(url, { method: "DELETE", headers: admin });
    expect(reply.status).toBe(200);
    expect(reply.body.params).toEqual({ store_id: STORE_A, id: PROFILE_ID, token_id: SESSION_ID });
  });

  it("renames profileId to profile_id", async () => {
    const listId = "0190c5d2-5555-7000-8000-000000000005";
    const reply = await request(`${gw.url}/v1/stores/${STORE_A}/profile-lists/${listId}/profiles/${PROFILE_ID}`, { method: "POST", headers: admin });
    expect(reply.status).toBe(200);
    expect(reply.body.params).toEqual({ store_id: STORE_A, id: listId, profile_id: PROFILE_ID });
  });

  it("merges query, body and path params, the path winning over the body", async () => {
    const reply = await request(`${gw.url}/v1/stores/${STORE_A}/echo?limit=5&ids=a&ids=b`, {
      method: "POST",
      json: { store_id: "0190c5d2-9999-7000-8000-000000000009", name: "x" },
    });
    expect(reply.status).toBe(200);
    expect(reply.body.params).toEqual({ store_id: STORE_A, name: "x", limit: "5", ids: ["a", "b"] });
  });

  it("answers the route's success status (201) and 204 without a body", async () => {
    const created = await request(`${gw.url}/v1/stores/${STORE_A}/profiles`, { method: "POST", headers: admin, json: { email: "ada@example.com" } });
    expect(created.status).toBe(201);
    expect(created.body.params).toEqual({ store_id: STORE_A, email: "ada@example.com" });
    const removed = await request(`${gw.url}/v1/stores/${STORE_A}/profiles/${PROFILE_ID}`, { method: "DELETE", headers: admin });
    expect(removed.status).toBe(204);
    expect(removed.text).toBe("");
  });

  it("prefers a literal segment over a parameter (profiles/me is not profiles/{id})", async () => {
    const reply = await request(`${gw.url}/v1/stores/${STORE_A}/profiles/me`, { headers: admin });
    expectErrorBody(reply, 401, "UNAUTHENTICATED"); // `me` is a profile route: an admin key is not a session
  });

  it("rejects a storeId that is not a UUID with 400 on field storeId, before calling anything", async () => {
    const reply = await request(`${gw.url}/v1/stores/not-a-uuid/profiles`, { headers: admin });
    expectErrorBody(reply, 400, "VALIDATION_ERROR");
    expect(reply.body.validationErrors).toEqual([{ field: "storeId", error: expect.any(String) }]);
  });

  it("reports a zod validation failure of the action as 400 with its fields", async () => {
    const reply = await request(`${gw.url}/v1/stores/${STORE_A}/profiles`, { method: "POST", headers: admin, json: { email: { $ne: null } } });
    expectErrorBody(reply, 400, "VALIDATION_ERROR");
    expect(reply.body.validationErrors).toEqual(expect.arrayContaining([expect.objectContaining({ field: "email" })]));
  });

  it.each([
    ["GET", "/api/profiles/create"],
    ["GET", "/v1/~node/actions"],
    ["GET", "/~node/actions"],
    ["POST", "/auth/verifyApiKey"],
    ["POST", "/auth/verify-api-key"],
    ["GET", "/gateway/listAliases"],
    ["GET", "/list-aliases"],
    ["POST", "/profiles/create"],
    ["GET", "/v1/nothing/here"],
    ["GET", "/"],
  ])("answers 404 with the contract body for %s %s (no action outside the table)", async (method, path) => {
    const reply = await request(`${gw.url}${path}`, { method, headers: admin });
    expectErrorBody(reply, 404, "NOT_FOUND");
  });

  it("answers 404 for a known path with a method it does not have, without reading the body", async () => {
    const reply = await request(`${gw.url}/v1/stores/${STORE_A}/profiles`, { method: "PATCH", headers: { ...admin, "content-type": "text/plain" }, body: "x" });
    expectErrorBody(reply, 404, "NOT_FOUND");
    const head = await request(`${gw.url}/v1/stores/${STORE_A}/profiles`, { method: "HEAD", headers: admin });
    expect(head.status).toBe(404);
  });

  it("answers 503 with Retry-After when the route's service is not running", async () => {
    const reply = await request(`${gw.url}/v1/ghost`);
    expectErrorBody(reply, 503, "SERVICE_UNAVAILABLE");
    expect(Number(reply.headers.get("retry-after"))).toBeGreaterThan(0);
  });

  it("answers 500 INTERNAL without the internal message or a stack when an action fails unexpectedly", async () => {
    const reply = await request(`${gw.url}/v1/stores/${STORE_A}/boom`);
    expectErrorBody(reply, 500, "INTERNAL");
    expect(reply.text).not.toMatch(/hunter2|profiles\.js|at /);
  });

  it("passes a service's 503 and 429 on with its Retry-After", async () => {
    const busy = await request(`${gw.url}/v1/stores/${STORE_A}/busy`);
    expectErrorBody(busy, 503, "SERVICE_UNAVAILABLE");
    expect(busy.headers.get("retry-after")).toBe("7");
    const slow = await request(`${gw.url}/v1/stores/${STORE_A}/slow-down`);
    expectErrorBody(slow, 429, "RATE_LIMITED");
    expect(slow.headers.get("retry-after")).toBe("42");
  });

  it("answers 400 for a path parameter that is not valid percent-encoding", async () => {
    const reply = await request(`${gw.url}/v1/stores/${STORE_A}/profiles/%E0%A4%A`, { headers: admin });
    expectErrorBody(reply, 400, "VALIDATION_ERROR");
  });
});

describe("a route's own timeout", () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startGateway({ broker: { requestTimeout: 300 } });
  });
  afterAll(() => gw?.stop());

  it("is the call's, even when longer than the broker's REQUEST_TIMEOUT_MS (the HTTP request itself has none)", async () => {
    const reply = await request(`${gw.url}/v1/stores/${STORE_A}/wait-long`); // answered after 1 s; its route allows 5 s
    expect(reply.status).toBe(200);
    expect(reply.body).toEqual({ waited: true });
  });

  it("and the broker's for a route without one", async () => {
    expectErrorBody(await request(`${gw.url}/v1/stores/${STORE_A}/wait`), 503, "SERVICE_UNAVAILABLE");
  });
});

describe("POST /v1/webhooks/stripe", () => {
  it("delivers the exact raw body and the Stripe-Signature header to billing.handleStripeWebhook", async () => {
    const payload = '{ "id": "evt_1",\n  "type": "checkout.session.completed", "__proto__": {"x": 1}, "name": "Zoë" }  ';
    const reply = await request(`${gw.url}/v1/webhooks/stripe?store_id=nope`, {
      method: "POST",
      headers: { "content-type": "application/json", "stripe-signature": "t=1,v1=abc" },
      body: payload,
    });
    expect(reply.status).toBe(200);
    expect(reply.body.params).toEqual({ payload, signature: "t=1,v1=abc" });
    expect(reply.body.auth).toBeNull();
  });
});

describe("GET /health/live and /health/ready", () => {
  it("keeps answering while more requests are in flight than the broker's bulkhead allows one action", async () => {
    const finished: string[] = [];
    const before = gw.state.waitCalls;
    const waits = Array.from({ length: 100 }, () =>
      request(`${gw.url}/v1/stores/${STORE_A}/wait`).then((reply) => {
        finished.push("wait");
        return reply.status;
      }),
    );
    // The bulkhead is full: as many waits running as it lets one action run, the rest queued behind them.
    const concurrency = gw.broker.options.bulkhead?.concurrency ?? 0;
    expect(concurrency).toBeGreaterThan(0);
    expect(concurrency).toBeLessThan(100);
    await waitFor(() => gw.state.waitCalls - before >= concurrency, "the bulkhead to be full");
    const live = await request(`${gw.url}/health/live`);
    finished.push("live");
    expect(live.status).toBe(200);
    expect(await Promise.all(waits)).toEqual(Array(100).fill(200));
    expect(finished[0]).toBe("live"); // not queued behind the 100 slow calls
  });

  it("live answers 200 {status: ok}", async () => {
    const reply = await request(`${gw.url}/health/live`);
    expect(reply.status).toBe(200);
    expect(reply.body).toEqual({ status: "ok" });
  });

  it("ready answers 200 when all six services answer their health check", async () => {
    const reply = await request(`${gw.url}/health/ready`);
    expect(reply.status).toBe(200);
    expect(reply.body).toEqual({
      status: "ok",
      services: { auth: "ok", profiles: "ok", "profile-lists": "ok", campaigns: "ok", mailer: "ok", billing: "ok" },
    });
  });

  it("ready answers 503 with the failing and hanging services marked, within the short timeout", async () => {
    gw.state.health.mailer = "fail";
    gw.state.health.campaigns = "hang";
    try {
      // Answers are shared for a second: ask until one reflects the change (a new round of health
      // calls), and time that one.
      const { reply, tookMs } = await waitFor(
        async () => {
          const started = Date.now();
          const reply = await request(`${gw.url}/health/ready`);
          return reply.status !== 200 && { reply, tookMs: Date.now() - started };
        },
        "readiness to see the failing and hanging services",
        { intervalMs: 50 },
      );
      expect(tookMs).toBeLessThan(2_900);
      expect(reply.status).toBe(503);
      expect(reply.headers.get("retry-after")).toBeTruthy();
      expect(reply.body).toMatchObject({ statusCode: 503, error: "SERVICE_UNAVAILABLE", status: "unavailable" });
      expect(reply.body.services).toEqual({ auth: "ok", profiles: "ok", "profile-lists": "ok", campaigns: "unavailable", mailer: "unavailable", billing: "ok" });
    } finally {
      gw.state.health = {};
    }
  });
});

describe("ReadinessProbe", () => {
  it("shares one round of health calls among the callers of the same second", async () => {
    let clock = 0;
    let calls = 0;
    const probe = new ReadinessProbe(1_000, () => clock);
    const ask = async () => {
      calls += 1;
    };
    await Promise.all([probe.check(ask), probe.check(ask), probe.check(ask)]);
    clock = 999;
    await probe.check(ask);
    expect(calls).toBe(6); // one round of six services
    clock = 1_000;
    await expect(probe.check(ask)).resolves.toMatchObject({ ready: true });
    expect(calls).toBe(12);
  });
});

describe("checkReadiness", () => {
  it("reports a service that answers not_configured (billing without Stripe keys) without failing readiness", async () => {
    const ask = async (service: string) => {
      if (service === "billing") return { status: "not_configured" };
      if (service === "mailer") throw new Error("down");
      return { status: "ok" };
    };
    await expect(checkReadiness(ask, ["auth", "billing"])).resolves.toEqual({ ready: true, services: { auth: "ok", billing: "not_configured" } });
    await expect(checkReadiness(ask, ["billing", "mailer"])).resolves.toEqual({ ready: false, services: { billing: "not_configured", mailer: "unavailable" } });
  });
});

describe("ready without a service", () => {
  it("marks a service that is not running as unavailable", async () => {
    const partial = await startGateway({ omit: ["billing"] });
    try {
      const reply = await request(`${partial.url}/health/ready`);
      expect(reply.status).toBe(503);
      expect(reply.body.services.billing).toBe("unavailable");
      expect(reply.body.services.auth).toBe("ok");
    } finally {
      await partial.stop();
    }
  });
});
