/** The test NATS server: where it is, a loud failure when it is down, unique names, stream clean-up. */
import net from "node:net";
import { randomBytes } from "node:crypto";
import { connect } from "nats";
import { durableSubjects, streamNameOf } from "../../shared/events/streams";

/** The NATS server (with JetStream) every bus test uses; override with TEST_NATS_URL. */
export const NATS_URL = process.env.TEST_NATS_URL ?? "nats://127.0.0.1:4222";

/** A name no other test run uses (Moleculer namespace, channel prefix, node id): `t<12 hex>`. */
export function uniqueName(label = "t"): string {
  return `${label}${randomBytes(6).toString("hex")}`;
}

/** Throws a message that says how to start NATS when nothing answers at `url`. */
export async function assertNatsUp(url = NATS_URL): Promise<void> {
  const { hostname, port } = new URL(url);
  await new Promise<void>((resolve, reject) => {
    const socket = net.connect({ host: hostname, port: Number(port || 4222) });
    const fail = (reason: string) => {
      socket.destroy();
      reject(
        new Error(
          `NATS is not answering at ${url} (${reason}). These tests need a NATS server with JetStream: ` +
            "`nats-server -a 127.0.0.1 -p 4222 -js` (bash .ci/run starts one).",
        ),
      );
    };
    socket.setTimeout(2000, () => fail("timeout"));
    socket.once("error", (err) => fail(err.message));
    socket.once("connect", () => {
      socket.end();
      resolve();
    });
  });
}

/** Deletes the streams (and their consumers) made under `prefix` by a test: the durable events' and any other. */
export async function deleteStreams(prefix: string, url = NATS_URL): Promise<void> {
  if (!prefix) throw new Error("deleteStreams needs a test prefix: it never deletes the production streams");
  const nc = await connect({ servers: url, name: "crm-test-cleanup" });
  try {
    const jsm = await nc.jetstreamManager();
    const names = new Set(durableSubjects(prefix).map(streamNameOf));
    for await (const info of jsm.streams.list()) if (info.config.name.startsWith(`${streamNameOf(prefix)}_`)) names.add(info.config.name);
    for (const name of names) await jsm.streams.delete(name).catch(() => false);
  } finally {
    await nc.close();
  }
}

/** Names of the streams on the server whose name starts with `prefix` (all when omitted). */
export async function listStreams(prefix = "", url = NATS_URL): Promise<string[]> {
  const nc = await connect({ servers: url, name: "crm-test-list" });
  try {
    const jsm = await nc.jetstreamManager();
    const names: string[] = [];
    for await (const info of jsm.streams.list()) {
      if (info.config.name.startsWith(prefix)) names.push(info.config.name);
    }
    return names.sort();
  } finally {
    await nc.close();
  }
}
