/**
 * How the SDK reports what is not a contract answer: a proxy's HTML error page, a server that is not
 * there, a server that never answers, and a call made without the key it needs. Against real local
 * HTTP servers (node:http); the SDK against the real system is in test/e2e-profiles.test.ts.
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import { freePort } from "../../test/harness/ports";
import { createCrmClient, CrmApiError, CrmNetworkError } from "..";

const STORE = "0190c5d2-1111-7000-8000-00000000cafe";

async function listen(handler: http.RequestListener): Promise<{ base: string; close: () => Promise<void> }> {
  const server = http.createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    base: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

describe("SDK errors that are not contract answers", () => {
  it("turns a proxy's HTML error page into a CrmApiError with the contract code of its status", async () => {
    const statuses = [404, 408, 413, 429, 502, 500];
    let next = 0;
    const proxy = await listen((_req, res) => {
      const status = statuses[next++];
      res.writeHead(status, { "content-type": "text/html", "retry-after": "7" });
      res.end("<html><body>nginx</body></html>");
    });
    try {
      const sdk = createCrmClient({ baseUrl: proxy.base, storeId: STORE, apiKey: "k" });
      const codes: Array<[number, string]> = [];
      for (const _ of statuses) {
        const err = await sdk.crm.get({ id: STORE }).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(CrmApiError);
        codes.push([(err as CrmApiError).status, (err as CrmApiError).code]);
        expect((err as CrmApiError).retryAfter).toBe(7);
      }
      expect(codes).toEqual([
        [404, "NOT_FOUND"],
        [408, "SERVICE_UNAVAILABLE"],
        [413, "PAYLOAD_TOO_LARGE"],
        [429, "RATE_LIMITED"],
        [502, "SERVICE_UNAVAILABLE"],
        [500, "INTERNAL"],
      ]);
    } finally {
      await proxy.close();
    }
  });

  it("reports a server that is not there as a CrmNetworkError naming the address and the reason", async () => {
    const port = await freePort(); // nothing listens on it
    const sdk = createCrmClient({ baseUrl: `http://127.0.0.1:${port}`, storeId: STORE });
    const err = await sdk.crm.initialize().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CrmNetworkError);
    expect((err as CrmNetworkError).code).toBe("NETWORK_ERROR");
    expect((err as Error).message).toBe(`Could not reach the CRM API at http://127.0.0.1:${port}/v1/stores/${STORE}/profiles/initialize: ECONNREFUSED`);
  });

  it("gives up on a server that never answers after timeoutMs", async () => {
    const silent = await listen(() => undefined);
    try {
      const sdk = createCrmClient({ baseUrl: silent.base, storeId: STORE, timeoutMs: 200 });
      const err = await sdk.crm.initialize().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(CrmNetworkError);
      expect((err as Error).message).toMatch(/: no answer in time$/);
    } finally {
      await silent.close();
    }
  });

  it("rejects (does not throw) an admin call made without an API key, and sends nothing", async () => {
    let requests = 0;
    const server = await listen((_req, res) => {
      requests += 1;
      res.end("{}");
    });
    try {
      const sdk = createCrmClient({ baseUrl: server.base, storeId: STORE });
      let call: Promise<unknown> | undefined;
      expect(() => {
        call = sdk.crm.get({ id: STORE });
      }).not.toThrow();
      await expect(call).rejects.toThrow(/needs an admin API key/);
      expect(requests).toBe(0);
    } finally {
      await server.close();
    }
  });
});
