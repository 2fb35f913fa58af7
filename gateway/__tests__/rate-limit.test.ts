/** Rate limits per client IP: the socket's address, X-Forwarded-For only from trusted proxies. */
import { STORE_A, expectErrorBody, request, startGateway, type TestGateway } from "./helpers";
import { TrustedProxies, clientIp } from "../client-ip";
import { FixedWindowLimiter } from "../rate-limit";

const echoPath = `/v1/stores/${STORE_A}/echo`;

describe("rate limiting without trusted proxies", () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startGateway({ env: { RATE_LIMIT_PER_MINUTE: "5" } });
  });
  afterAll(() => gw.stop());

  it("answers 429 RATE_LIMITED with Retry-After past the limit, and a forged X-Forwarded-For does not dodge it", async () => {
    for (let i = 0; i < 5; i++) {
      const reply = await request(`${gw.url}${echoPath}`, { method: "POST", headers: { "x-forwarded-for": `203.0.113.${i + 1}` } });
      expect(reply.status).toBe(200);
      expect(reply.body.ip).toBe("127.0.0.1"); // the forged header is not believed
    }
    const limited = await request(`${gw.url}${echoPath}`, { method: "POST", headers: { "x-forwarded-for": "198.51.100.77" } });
    expectErrorBody(limited, 429, "RATE_LIMITED");
    const retryAfter = Number(limited.headers.get("retry-after"));
    expect(retryAfter).toBeGreaterThan(0);
    expect(retryAfter).toBeLessThanOrEqual(60);
  });

  it("limits unknown routes too, but never the health checks", async () => {
    expectErrorBody(await request(`${gw.url}/nope`), 429, "RATE_LIMITED");
    expect((await request(`${gw.url}/health/live`)).status).toBe(200);
  });

  it("sends no CORS headers when CORS_ORIGINS is unset", async () => {
    const reply = await request(`${gw.url}/health/live`, { headers: { origin: "https://shop.example" } });
    expect(reply.headers.get("access-control-allow-origin")).toBeNull();
  });
});

describe("rate limiting behind a trusted proxy", () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startGateway({ env: { RATE_LIMIT_PER_MINUTE: "3", TRUSTED_PROXIES: "127.0.0.1, 10.0.0.0/8" } });
  });
  afterAll(() => gw.stop());

  it("keys on the client the proxy reports, so clients behind one proxy are limited separately", async () => {
    for (let i = 0; i < 3; i++) {
      const reply = await request(`${gw.url}${echoPath}`, { method: "POST", headers: { "x-forwarded-for": "203.0.113.10" } });
      expect(reply.status).toBe(200);
      expect(reply.body.ip).toBe("203.0.113.10");
    }
    expectErrorBody(await request(`${gw.url}${echoPath}`, { method: "POST", headers: { "x-forwarded-for": "203.0.113.10" } }), 429, "RATE_LIMITED");
    const other = await request(`${gw.url}${echoPath}`, { method: "POST", headers: { "x-forwarded-for": "203.0.113.20" } });
    expect(other.status).toBe(200);
  });

  it("ignores addresses the client forged left of what the trusted proxies appended", async () => {
    // The client (203.0.113.30) sends its own X-Forwarded-For; the proxy appends the real peer.
    const forged = (i: number) => ({ "x-forwarded-for": `192.0.2.${i}, 203.0.113.30, 10.1.2.3` });
    for (let i = 0; i < 3; i++) {
      const reply = await request(`${gw.url}${echoPath}`, { method: "POST", headers: forged(i) });
      expect(reply.body.ip).toBe("203.0.113.30");
    }
    expectErrorBody(await request(`${gw.url}${echoPath}`, { method: "POST", headers: forged(9) }), 429, "RATE_LIMITED");
  });
});

describe("clientIp", () => {
  const trusted = new TrustedProxies("10.0.0.0/8, 192.168.1.1, fd00::/8");

  it("is the socket peer when the peer is not a trusted proxy", () => {
    expect(clientIp("203.0.113.5", "1.2.3.4", trusted)).toBe("203.0.113.5");
    expect(clientIp("::ffff:203.0.113.5", undefined, trusted)).toBe("203.0.113.5");
  });

  it("walks X-Forwarded-For from the right past trusted hops", () => {
    expect(clientIp("10.0.0.1", "1.2.3.4, 198.51.100.9, 192.168.1.1", trusted)).toBe("198.51.100.9");
    expect(clientIp("fd00::1", "2001:db8::7", trusted)).toBe("2001:db8::7");
  });

  it("stops at a malformed entry and keeps the last trusted hop", () => {
    expect(clientIp("10.0.0.1", "1.2.3.4, not-an-ip", trusted)).toBe("10.0.0.1");
  });

  it("rejects a bad TRUSTED_PROXIES entry at start-up", () => {
    expect(() => new TrustedProxies("10.0.0.0/40")).toThrow(/TRUSTED_PROXIES/);
    expect(() => new TrustedProxies("proxy.local")).toThrow(/TRUSTED_PROXIES/);
  });
});

describe("FixedWindowLimiter", () => {
  it("allows `limit` hits per key per window, then resets", () => {
    let now = 0;
    const limiter = new FixedWindowLimiter(2, 60_000, () => now);
    expect(limiter.hit("a").allowed).toBe(true);
    expect(limiter.hit("a").allowed).toBe(true);
    const third = limiter.hit("a");
    expect(third).toEqual({ allowed: false, remaining: 0, retryAfter: 60 });
    expect(limiter.hit("b").allowed).toBe(true);
    now = 60_000;
    expect(limiter.hit("a").allowed).toBe(true);
  });

  it("forgets keys whose window has passed", () => {
    let now = 0;
    const limiter = new FixedWindowLimiter(1, 1_000, () => now);
    for (let i = 0; i < 50; i++) limiter.hit(`ip-${i}`);
    now = 2_000;
    limiter.hit("fresh");
    expect(limiter.trackedKeys).toBe(1);
  });
});
