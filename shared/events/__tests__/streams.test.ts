/**
 * ensureStreams on a real NATS: processes that start together all get the streams, a stream with other
 * settings is brought up to date, and a subject that a stream of another name already holds is an error
 * naming that stream (not a bare "subjects overlap").
 */
import { connect, nanos, type NatsConnection } from "nats";
import { deleteStreams, NATS_URL, uniqueName } from "../../../test/harness";
import { durableSubjects, EVENT_RETENTION_MS, ensureStreams, prefixedSubject, streamNameOf, streamSettings } from "../streams";

describe("ensureStreams", () => {
  let nc: NatsConnection;
  const prefixes: string[] = [];
  beforeAll(async () => {
    nc = await connect({ servers: NATS_URL });
  });
  afterAll(async () => {
    for (const prefix of prefixes) await deleteStreams(prefix);
    await nc?.close();
  });

  it("eight processes starting at once each get every stream", async () => {
    const prefix = uniqueName("streams");
    prefixes.push(prefix);
    const names = await Promise.all(Array.from({ length: 8 }, () => ensureStreams(NATS_URL, { prefix })));
    const expected = durableSubjects(prefix).map(streamNameOf);
    for (const got of names) expect(got).toEqual(expected);
    const jsm = await nc.jetstreamManager();
    for (const name of expected) await expect(jsm.streams.info(name)).resolves.toMatchObject({ config: { name } });
  });

  it("brings a stream an older version made with other settings up to date", async () => {
    const prefix = uniqueName("streams");
    prefixes.push(prefix);
    const jsm = await nc.jetstreamManager();
    const subject = prefixedSubject("order.created", prefix);
    await jsm.streams.add({ ...streamSettings(), name: streamNameOf(subject), subjects: [subject], max_age: nanos(60 * 60_000) });
    await ensureStreams(NATS_URL, { prefix });
    await expect(jsm.streams.info(streamNameOf(subject))).resolves.toMatchObject({ config: { max_age: nanos(EVENT_RETENTION_MS), subjects: [subject] } });
  });

  it("a subject held by a stream of another name fails, naming that stream", async () => {
    const prefix = uniqueName("streams");
    prefixes.push(prefix);
    const jsm = await nc.jetstreamManager();
    const squatter = `squatter_${prefix}`;
    await jsm.streams.add({ ...streamSettings(), name: squatter, subjects: [prefixedSubject("order.created", prefix)] });
    try {
      await expect(ensureStreams(NATS_URL, { prefix })).rejects.toThrow(`its subject ${prefix}.order.created belongs to the stream ${squatter}`);
    } finally {
      await jsm.streams.delete(squatter);
    }
  });
});
