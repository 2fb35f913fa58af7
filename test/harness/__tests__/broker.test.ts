/** startBroker / startCluster / httpClient: brokers from moleculer.config.ts, alone or over real NATS. */
import http from "node:http";
import type { AddressInfo } from "node:net";
import type { ServiceSchema } from "moleculer";
import { zodParams } from "../../../shared/validation";
import { z } from "zod";
import { assertNatsUp, httpClient, listStreams, loadService, startBroker, startCluster, uniqueName } from "..";

const echo: ServiceSchema = {
  name: "echo",
  actions: {
    say: {
      params: zodParams(z.object({ text: z.string().default("hi") })) as never,
      handler: (ctx) => ({ said: (ctx.params as { text: string }).text, node: ctx.broker.nodeID }),
    },
  },
};
const shout: ServiceSchema = {
  name: "shout",
  actions: {
    loud: {
      async handler(ctx) {
        const res = await ctx.call<{ said: string }, { text: string }>("echo.say", { text: "hello" });
        return res.said.toUpperCase();
      },
    },
  },
};

describe("startBroker", () => {
  it("starts the given services with the project's zod validator and no transporter", async () => {
    const broker = await startBroker({ services: [echo] });
    try {
      expect(broker.transit).toBeUndefined();
      await expect(broker.call("echo.say", {})).resolves.toMatchObject({ said: "hi" });
      await expect(broker.call("echo.say", { text: { $ne: null } })).rejects.toMatchObject({ type: "VALIDATION_ERROR" });
    } finally {
      await broker.stop();
    }
  });

  it("on NATS, gets a namespace of its own and removes its event streams when it stops", async () => {
    const broker = await startBroker({ services: [echo], transporter: "nats://127.0.0.1:4222" });
    const namespace = broker.namespace;
    expect(namespace).toMatch(/^t[0-9a-f]{12}$/);
    expect(await listStreams(namespace)).toHaveLength(5);
    await broker.stop();
    expect(await listStreams(namespace)).toEqual([]);
  });

  it("names an unknown service clearly", () => {
    expect(() => loadService("nope")).toThrow(/Unknown service "nope". Known: gateway, auth/);
  });
});

describe("startCluster", () => {
  it("runs each service on its own broker over NATS and waits until they see each other", async () => {
    const cluster = await startCluster([echo, shout]);
    let stopped = false;
    try {
      expect(await listStreams(cluster.channelPrefix)).toEqual(
        ["DEAD_LETTER", "billing_payment-changed", "email-template_deleted", "order_created", "profile_merged"].map((s) => `${cluster.channelPrefix}_${s}`),
      );
      expect(Object.keys(cluster.brokers)).toEqual(["echo", "shout"]);
      expect(cluster.brokers.echo.nodeID).not.toBe(cluster.brokers.shout.nodeID);
      await expect(cluster.brokers.shout.call("shout.loud")).resolves.toBe("HELLO");
      const remote = await cluster.brokers.shout.call<{ node: string }, object>("echo.say", {});
      expect(remote.node).toBe(cluster.brokers.echo.nodeID);
      await cluster.stop();
      stopped = true;
      expect(await listStreams(cluster.channelPrefix)).toEqual([]);
    } finally {
      if (!stopped) await cluster.stop();
    }
  });

  it("keeps two runs apart: a cluster does not see another cluster's services", async () => {
    const [a, b] = await Promise.all([startCluster([echo]), startCluster([shout])]);
    try {
      expect(a.namespace).not.toBe(b.namespace);
      await expect(b.brokers.shout.call("shout.loud")).rejects.toMatchObject({ type: "SERVICE_NOT_FOUND" });
    } finally {
      await Promise.all([a.stop(), b.stop()]);
    }
  });

  it("fails loudly when NATS is not there", async () => {
    await expect(assertNatsUp("nats://127.0.0.1:1")).rejects.toThrow(/NATS is not answering at nats:\/\/127.0.0.1:1/);
    await expect(startCluster([echo], { url: "nats://127.0.0.1:1" })).rejects.toThrow(/-js/);
  });

  it("makes unique names", () => {
    expect(uniqueName("t")).toMatch(/^t[0-9a-f]{12}$/);
    expect(uniqueName()).not.toBe(uniqueName());
  });
});

describe("httpClient", () => {
  it("sends JSON, encodes query objects as JSON and parses JSON answers", async () => {
    const server = http.createServer((req, res) => {
      let body = "";
      req.on("data", (c) => (body += c));
      req.on("end", () => {
        res.writeHead(201, { "content-type": "application/json", "x-request-id": "r1" });
        res.end(JSON.stringify({ method: req.method, url: req.url, type: req.headers["content-type"], auth: req.headers.authorization, body }));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    try {
      const http2 = httpClient(`http://127.0.0.1:${(server.address() as AddressInfo).port}`).with({ authorization: "Bearer k" });
      const res = await http2.post("/v1/x", { a: 1 }, { query: { ids: ["a", "b"], limit: "5" } });
      expect(res.status).toBe(201);
      expect(res.headers["x-request-id"]).toBe("r1");
      expect(res.body).toEqual({
        method: "POST",
        url: `/v1/x?ids=${encodeURIComponent('["a","b"]')}&limit=5`,
        type: "application/json",
        auth: "Bearer k",
        body: '{"a":1}',
      });
    } finally {
      server.close();
    }
  });
});
