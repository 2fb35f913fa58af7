/**
 * auth.authenticate with `describe`: the principal of a verified session comes with its profile described
 * (the e-mail the session was issued for, the profile's sessions, that e-mail's codes), as
 * auth.describeProfiles answers them, so GET /profiles/me needs no second call to auth.
 */
import type { AuthToken, DescribedSessionPrincipal, ProfileAuthInfo } from "../../../shared/contracts/auth";
import { uuidv7 } from "../../../shared/ids";
import { startSmtpServer, type SmtpTestServer } from "../../../test/harness/smtp";
import { rejection, startAuth, type AuthHarness } from "./support";

let sink: SmtpTestServer;
let h: AuthHarness;
const call = <T>(action: string, params: unknown) => h.broker.call<T, unknown>(`auth.${action}`, params);

beforeAll(async () => {
  sink = await startSmtpServer();
  h = await startAuth({ smtpUrl: sink.url });
});
afterAll(async () => {
  await h.broker.stop();
  await sink.close();
});

const issue = (store: string, profile: string, extra: { is_verified: boolean; email?: string | null }) =>
  call<AuthToken>("issueSession", { store_id: store, profile_id: profile, ...extra });

const authenticate = (store: string, token: AuthToken, describe?: boolean) =>
  call<DescribedSessionPrincipal>("authenticate", { store_id: store, access_token: token.access_token, ...(describe === undefined ? {} : { describe }) });

async function describeOne(store: string, profile: string, email: string | null): Promise<ProfileAuthInfo> {
  const described = await call<Record<string, ProfileAuthInfo>>("describeProfiles", { store_id: store, profiles: [{ profile_id: profile, email }] });
  return described[profile];
}

describe("auth.authenticate with describe", () => {
  it("describes a verified session's profile as describeProfiles does: its sessions and the codes of the session's e-mail", async () => {
    const store = uuidv7();
    const profile = uuidv7();
    await call("requestCode", { store_id: store, email: "ada@example.com" });
    const verified = await issue(store, profile, { is_verified: true, email: "Ada@Example.com" });
    const other = await issue(store, profile, { is_verified: false, email: "ada@example.com" });

    const principal = await authenticate(store, verified, true);
    expect(principal).toEqual({
      store_id: store,
      profile_id: profile,
      session_id: verified.id,
      is_verified: true,
      described_profile: { email: "ada@example.com", ...(await describeOne(store, profile, "ada@example.com")) },
    });
    expect(principal.described_profile?.sessions.map((s) => s.id).sort()).toEqual([verified.id, other.id].sort());
    expect(principal.described_profile?.codes).toEqual([expect.objectContaining({ used: false, attempts: 0 })]);
  });

  it("notes the session's use before describing it, so the description shows this request", async () => {
    const store = uuidv7();
    const profile = uuidv7();
    const token = await issue(store, profile, { is_verified: true, email: "used@example.com" });
    h.clock.advance(5);
    const principal = await authenticate(store, token, true);
    expect(principal.described_profile?.sessions).toEqual([expect.objectContaining({ id: token.id, last_used_at: h.clock.now() })]);
  });

  it("describes a guest's verified session with no codes", async () => {
    const store = uuidv7();
    const profile = uuidv7();
    const token = await issue(store, profile, { is_verified: true, email: null });
    expect((await authenticate(store, token, true)).described_profile).toEqual({ email: null, sessions: [expect.objectContaining({ id: token.id })], codes: [] });
  });

  it("describes nothing unless asked, to an unverified session, or for a session issued without its e-mail", async () => {
    const store = uuidv7();
    const profile = uuidv7();
    const verified = await issue(store, profile, { is_verified: true, email: "quiet@example.com" });
    const unverified = await issue(store, profile, { is_verified: false, email: "quiet@example.com" });
    const withoutEmail = await issue(store, profile, { is_verified: true });
    for (const principal of [
      await authenticate(store, verified),
      await authenticate(store, verified, false),
      await authenticate(store, unverified, true),
      await authenticate(store, withoutEmail, true),
    ]) {
      expect(principal).not.toHaveProperty("described_profile");
    }
  });

  it("refuses a revoked session on the very next request, described or not", async () => {
    const store = uuidv7();
    const profile = uuidv7();
    const one = await issue(store, profile, { is_verified: true, email: "gone@example.com" });
    const all = await issue(store, profile, { is_verified: true, email: "gone@example.com" });
    await authenticate(store, one, true);
    await call("revokeSession", { store_id: store, profile_id: profile, session_id: one.id });
    expect(await rejection(authenticate(store, one, true))).toMatchObject({ type: "UNAUTHENTICATED", code: 401 });
    expect((await authenticate(store, all, true)).described_profile?.sessions.map((s) => s.id)).toEqual([all.id]);
    await call("revokeProfileSessions", { store_id: store, profile_id: profile });
    expect(await rejection(authenticate(store, all, true))).toMatchObject({ type: "UNAUTHENTICATED", code: 401 });
  });
});
