/**
 * GET /profiles/me over the real NATS bus, each service on its own broker: the bus calls it makes (read off
 * the bus itself, by a plain NATS client watching Moleculer's request subjects), what it answers (the same
 * as the admin view, sessions and codes included, whichever way it got them) and a revoked session refused
 * on its very next request. Then with auth beside profiles on one broker, as in the split deployment's
 * services process: one call crosses the bus.
 */
import { connect, type NatsConnection } from "nats";
import type { AuthToken } from "../../../shared/contracts/auth";
import type { Profile } from "../../../shared/contracts/profiles";
import { deleteStreams, httpClient, NATS_URL, startCluster, startSmtpServer, type Cluster, type HttpClient, type SmtpTestServer } from "../../../test/harness";
import { newStoreId } from "./helpers";

const ADMIN_KEY = "crm_sk_profiles_me_test_key";

/** The actions requested on a Moleculer namespace's bus (REQ to a node, REQB balanced by NATS), in order. */
class BusRequests {
  private readonly seen: string[] = [];

  private constructor(private readonly nc: NatsConnection) {}

  static async watch(namespace: string): Promise<BusRequests> {
    const nc = await connect({ servers: NATS_URL, name: "crm-test-bus-requests" });
    const watcher = new BusRequests(nc);
    for (const subject of [`MOL-${namespace}.REQ.>`, `MOL-${namespace}.REQB.>`]) {
      nc.subscribe(subject, { callback: (_err, msg) => watcher.seen.push((msg.json() as { action: string }).action) });
    }
    await nc.flush();
    return watcher;
  }

  /** The actions requested over the bus while `task` ran. */
  async during(task: () => Promise<unknown>): Promise<string[]> {
    await this.nc.flush();
    const from = this.seen.length;
    await task();
    // The server routed every request of the task before the task's answer came back; a round trip of our
    // own (PING/PONG) returns only after it has delivered them all to us.
    await this.nc.flush();
    return this.seen.slice(from);
  }

  close(): Promise<void> {
    return this.nc.close();
  }
}

describe("GET /profiles/me over NATS", () => {
  let cluster: Cluster;
  let smtp: SmtpTestServer;
  let bus: BusRequests;
  let http: HttpClient;
  let admin: HttpClient;
  const store = newStoreId();
  const base = `/v1/stores/${store}/profiles`;
  const bearer = (token: AuthToken) => http.with({ authorization: `Bearer ${token.access_token}` });
  const me = (token: AuthToken) => bearer(token).get<Profile>(`${base}/me`);

  beforeAll(async () => {
    smtp = await startSmtpServer();
    cluster = await startCluster(["gateway", "auth", "mailer", "profiles"], {
      env: { SMTP_URL: smtp.url, JWT_SECRET: "profiles-me-test-secret-0123456789", CRM_ADMIN_API_KEY: ADMIN_KEY },
    });
    bus = await BusRequests.watch(cluster.namespace);
    http = httpClient(cluster.url!);
    admin = http.with({ authorization: `Bearer ${ADMIN_KEY}` });
  }, 60_000);

  afterAll(async () => {
    await bus?.close();
    await cluster?.stop();
    if (cluster) await deleteStreams(cluster.channelPrefix);
    await smtp?.close();
  });

  /** Logs in with a code mailed to `email`, after one wrong try (so the code shows an attempt). */
  async function login(email: string): Promise<AuthToken> {
    await http.post(`${base}/auth/code`, { email });
    const mail = await smtp.waitForMessage((m) => m.to.includes(email), 10_000);
    const code = /\b(\d{6})\b/.exec(mail.text)![1];
    const wrong = code === "000000" ? "000001" : "000000";
    expect((await http.post(`${base}/auth/verify`, { email, code: wrong })).status).toBe(401);
    const verified = await http.post<AuthToken>(`${base}/auth/verify`, { email, code });
    expect(verified.status).toBe(200);
    return verified.body;
  }

  /** A second verified session of the profile as sessions were issued before they kept their e-mail. */
  const olderSession = (profileId: string) =>
    cluster.brokers.auth.call("auth.issueSession", { store_id: store, profile_id: profileId, is_verified: true }) as Promise<AuthToken>;

  it("makes two bus calls for a verified session: profiles.me, which has auth.authenticate check the token", async () => {
    const token = await login("two-calls@example.com");
    let answer: Awaited<ReturnType<typeof me>> | undefined;
    expect(await bus.during(async () => (answer = await me(token)))).toEqual(["profiles.me", "auth.authenticate"]);
    expect(answer?.status).toBe(200);
    expect(answer?.body).toMatchObject({ email: "two-calls@example.com", verified: true });
  });

  it("makes two bus calls for an unverified session too (its answer is redacted)", async () => {
    const guest = (await http.post<AuthToken>(`${base}/initialize`)).body;
    let answer: Awaited<ReturnType<typeof me>> | undefined;
    expect(await bus.during(async () => (answer = await me(guest)))).toEqual(["profiles.me", "auth.authenticate"]);
    expect(answer?.body).toMatchObject({ id: guest.profile_id, auth_tokens: [], verification_codes: [] });
  });

  it("answers what the admin view shows, sessions and codes included, and so does the fallback for an older session", async () => {
    const token = await login("same-answer@example.com");
    const older = await olderSession(token.profile_id);
    await me(older); // each session's first use is noted once: after it, nothing below changes the profile

    const described = await me(token);
    let fallback: Awaited<ReturnType<typeof me>> | undefined;
    expect(await bus.during(async () => (fallback = await me(older)))).toEqual(["profiles.me", "auth.authenticate", "auth.describeProfiles"]);
    const adminView = await admin.get<Profile>(`${base}/${token.profile_id}`);

    expect(described.body.auth_tokens.map((t) => t.id).sort()).toEqual([token.id, older.id].sort());
    expect(described.body.verification_codes).toEqual([expect.objectContaining({ used: true, attempts: 2 })]);
    expect(described.body).toEqual(adminView.body);
    expect(fallback?.body).toEqual(adminView.body);
  });

  it("refuses a revoked session on its very next request", async () => {
    const token = await login("revoked@example.com");
    const other = await olderSession(token.profile_id);
    expect((await me(token)).status).toBe(200);
    expect((await admin.delete(`${base}/${token.profile_id}/sessions/${token.id}`)).status).toBe(200);
    expect((await me(token)).status).toBe(401);

    expect((await me(other)).status).toBe(200);
    expect((await admin.put(`${base}/${token.profile_id}`, { email: "moved@example.com" })).status).toBe(200);
    expect((await me(other)).status).toBe(401);
  });
});

describe("GET /profiles/me with auth beside profiles", () => {
  let cluster: Cluster;
  let bus: BusRequests;
  let http: HttpClient;
  const store = newStoreId();
  const base = `/v1/stores/${store}/profiles`;

  beforeAll(async () => {
    cluster = await startCluster(["gateway", ["auth", "profiles"], "mailer"], {
      env: { JWT_SECRET: "profiles-me-test-secret-0123456789", CRM_ADMIN_API_KEY: ADMIN_KEY },
    });
    bus = await BusRequests.watch(cluster.namespace);
    http = httpClient(cluster.url!);
  }, 60_000);

  afterAll(async () => {
    await bus?.close();
    await cluster?.stop();
    if (cluster) await deleteStreams(cluster.channelPrefix);
  });

  it("makes one bus call: profiles.me asks auth in its own process", async () => {
    const guest = (await http.post<AuthToken>(`${base}/initialize`)).body;
    let answer: Awaited<ReturnType<HttpClient["get"]>> | undefined;
    const calls = await bus.during(async () => (answer = await http.with({ authorization: `Bearer ${guest.access_token}` }).get<Profile>(`${base}/me`)));
    expect(calls).toEqual(["profiles.me"]);
    expect(answer?.status).toBe(200);
    expect(answer?.body).toMatchObject({ id: guest.profile_id });
  });
});
