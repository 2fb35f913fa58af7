/**
 * `email-template.deleted` over the real NATS JetStream: the mailer on one broker deletes templates, a
 * durable consumer (durableChannel + storageMixin, as profile-lists consumes it) on another broker gets
 * each event once. Then the owed-event path: a delete whose publish failed answers 503, and asking
 * again (or the next start) publishes the event. Each run has its own subject prefix and namespace.
 */
import type { ServiceBroker, ServiceSchema } from "moleculer";
import { connect, type JetStreamManager, type NatsConnection } from "nats";
import type { DurableEventPayload } from "../../../shared/contracts/events";
import type { EmailTemplate } from "../../../shared/contracts/mailer";
import { durableChannel } from "../../../shared/events/durable";
import { prefixedSubject, streamNameOf } from "../../../shared/events/streams";
import { uuidv7 } from "../../../shared/ids";
import { storageMixin } from "../../../shared/mixins/storage.mixin";
import { openDatabase } from "../../../shared/storage";
import { assertNatsUp, deleteStreams, NATS_URL, setEnv, startBroker, uniqueName, waitFor } from "../../../test/harness";
import { createMailer } from "../mailer.logic";

type Deleted = DurableEventPayload<"email-template.deleted">;

describe("email-template.deleted over NATS JetStream", () => {
  const prefix = uniqueName("t");
  const stream = streamNameOf(prefixedSubject("email-template.deleted", prefix));
  const received: Deleted[] = [];
  let nc: NatsConnection;
  let jsm: JetStreamManager;
  let mailerBroker: ServiceBroker;
  let consumerBroker: ServiceBroker;

  const listsProbe: ServiceSchema = {
    name: "lists-probe",
    mixins: [storageMixin("lists-probe")],
    channels: {
      "email-template.deleted": durableChannel("email-template.deleted", {
        group: "lists-probe",
        async handler(payload) {
          received.push(payload);
        },
      }),
    },
  };

  beforeAll(async () => {
    await assertNatsUp();
    nc = await connect({ servers: NATS_URL });
    jsm = await nc.jetstreamManager();
    const common = { transporter: NATS_URL, namespace: prefix, channelPrefix: prefix, env: { SMTP_URL: "smtp://127.0.0.1:9" } };
    consumerBroker = await startBroker({ ...common, services: [listsProbe], nodeID: uniqueName("lists-") });
    mailerBroker = await startBroker({ ...common, services: ["mailer"], nodeID: uniqueName("mailer-") });
  }, 30_000);

  afterAll(async () => {
    await mailerBroker?.stop();
    await consumerBroker?.stop();
    await deleteStreams(prefix);
    await nc?.close();
  });

  const store = uuidv7();
  const create = (key: string) => mailerBroker.call<EmailTemplate, object>("mailer.createTemplate", { store_id: store, key, subject: "s", html: "h" });

  it("delivers { store_id, template_id } once to a durable consumer for each deleted template", async () => {
    const [a, b] = [await create("welcome"), await create("confirm")];
    expect(await mailerBroker.call("mailer.deleteTemplate", { store_id: store, id: a.id })).toEqual({ deleted: true });
    expect(await mailerBroker.call("mailer.deleteTemplate", { store_id: store, id: b.id })).toEqual({ deleted: true });
    await waitFor(() => received.length >= 2, "both deletes to reach the consumer");
    expect(received).toEqual([
      { store_id: store, template_id: a.id },
      { store_id: store, template_id: b.id },
    ]);
    const info = await jsm.streams.info(stream);
    expect(info.config.subjects).toEqual([`${prefix}.email-template.deleted`]);
    expect(info.state.messages).toBe(2);
    // A delete of a template that is gone is a 404, and publishes nothing more.
    await expect(mailerBroker.call("mailer.deleteTemplate", { store_id: store, id: a.id })).rejects.toMatchObject({ type: "NOT_FOUND" });
    expect((await jsm.streams.info(stream)).state.messages).toBe(2);
  });
});

describe("an email-template.deleted event that could not be published", () => {
  it("is owed: the delete answers 503, asking again or the next start publishes it, once", async () => {
    setEnv({ STORAGE: "memory" });
    const db = await openDatabase(`mailer-owed-${uniqueName("")}`);
    const published: Deleted[] = [];
    let busDown = true;
    const bus = {
      async sendToChannel(_name: string, payload: Deleted) {
        if (busDown) throw new Error("TIMEOUT"); // what the NATS client throws when JetStream does not answer
        published.push(payload);
      },
    } as unknown as ServiceBroker;
    const log = { debug() {}, info() {}, warn() {}, error() {} };
    const settings = { SMTP_URL: "smtp://127.0.0.1:9", DATA_DIR: "/tmp", MAIL_FROM: "a@b.c" };
    const mailer = await createMailer({ db, bus, settings, log });
    try {
      const store = uuidv7();
      const [first, second] = [
        await mailer.createTemplate({ store_id: store, key: "a", subject: "s", html: "h" }),
        await mailer.createTemplate({ store_id: store, key: "b", subject: "s", html: "h" }),
      ];
      const unavailable = { type: "SERVICE_UNAVAILABLE", code: 503, data: { reason: "DELETE_EVENT_PENDING" } };
      await expect(mailer.deleteTemplate({ store_id: store, id: first.id })).rejects.toMatchObject(unavailable);
      await expect(mailer.deleteTemplate({ store_id: store, id: second.id })).rejects.toMatchObject(unavailable);
      // The templates are gone either way; nothing was published.
      await expect(mailer.templateStatus({ store_id: store, template_id: first.id })).resolves.toEqual({ usable: false, archived: false });
      expect(published).toEqual([]);

      busDown = false;
      // Another store cannot settle (or learn of) this store's owed delete.
      await expect(mailer.deleteTemplate({ store_id: uuidv7(), id: first.id })).rejects.toMatchObject({ type: "NOT_FOUND" });
      await expect(mailer.deleteTemplate({ store_id: store, id: first.id })).resolves.toEqual({ deleted: true });
      expect(published).toEqual([{ store_id: store, template_id: first.id }]);
      // The next start publishes what is still owed.
      expect(await mailer.publishOwedDeletes()).toBe(1);
      expect(published).toEqual([
        { store_id: store, template_id: first.id },
        { store_id: store, template_id: second.id },
      ]);
      expect(await mailer.publishOwedDeletes()).toBe(0);
      await expect(mailer.deleteTemplate({ store_id: store, id: first.id })).rejects.toMatchObject({ type: "NOT_FOUND" });
    } finally {
      await mailer.close();
      await db.close();
    }
  });
});
