/**
 * The gateway's drain (what `broker.stop()` runs first, see gateway/drain.ts): requests in flight are
 * answered and their connections closed, new connections are refused, and readiness says it is stopping.
 */
import type { Drainable } from "../../shared/middlewares/drain-first";
import { waitFor } from "../../test/harness/wait";
import { request, startGateway, STORE_A, type TestGateway } from "./helpers";

describe("gateway drain", () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startGateway();
  });
  afterAll(() => gw?.stop());

  it("answers the request in flight with Connection: close, then refuses connections and reports 503 readiness", async () => {
    const inFlight = request(`${gw.url}/v1/stores/${STORE_A}/wait`); // answered 1 s after it reaches the backend
    await waitFor(() => gw.state.waitCalls === 1, "the request to be in flight");
    const drained = (gw.gateway as unknown as Drainable).drain(5_000);

    const reply = await inFlight;
    expect(reply.status).toBe(200);
    expect(reply.headers.get("connection")).toBe("close");
    await drained;

    const refused = await fetch(`${gw.url}/health/live`).catch((err: { cause?: { code?: string } }) => err.cause?.code);
    expect(refused).toBe("ECONNREFUSED");
    // What a load balancer sees on a connection still open while draining.
    await expect(gw.broker.call("gateway.ready")).resolves.toMatchObject({ statusCode: 503, message: "Stopping" });
  });
});
