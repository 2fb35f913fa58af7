/**
 * The spec's "Newsletter Subscribe with Double Opt-in" flow end to end, as a storefront runs it: every
 * service on its own broker over the real NATS bus, HTTP through the gateway, the confirmation mail read
 * from a real SMTP server. initialize -> connect -> subscribe with confirm_url -> the mail arrives ->
 * confirm -> access true -> unsubscribe -> access false; then the same list's one-click unsubscribe link.
 * The confirmation template is created first, through the mailer's email-templates admin route. Then
 * the same link opened in a browser (a page that changes nothing, whose button unsubscribes), and a
 * JSON body that is not UTF-8 (refused before anything is stored).
 */
import { randomUUID } from "node:crypto";
import type { AuthToken } from "../shared/contracts/auth";
import type { AccessResult, Membership, ProfileList } from "../shared/contracts/profile-lists";
import type { ConnectResult } from "../shared/contracts/profiles";
import { deleteStreams, httpClient, startCluster, startSmtpServer, waitFor, type Cluster, type HttpClient, type SmtpTestServer } from "./harness";

const PLATFORM_KEY = `e2e-lists-${randomUUID()}`;
const SHOP = "https://yoursite.com";
const PUBLIC_URL = "https://crm.yoursite.com";

describe("Newsletter Subscribe with Double Opt-in, over NATS through the gateway", () => {
  let cluster: Cluster;
  let smtp: SmtpTestServer;
  let http: HttpClient;
  let admin: HttpClient;
  const storeId = randomUUID();

  beforeAll(async () => {
    smtp = await startSmtpServer();
    cluster = await startCluster(["gateway", "auth", "profiles", "profile-lists", "mailer"], {
      env: { SMTP_URL: smtp.url, JWT_SECRET: `e2e-${randomUUID()}`, CRM_ADMIN_API_KEY: PLATFORM_KEY, LINK_ORIGINS: SHOP, PUBLIC_URL },
    });
    http = httpClient(cluster.url!);
    admin = http.with({ authorization: `Bearer ${PLATFORM_KEY}` });
  }, 60_000);

  afterAll(async () => {
    await cluster?.stop();
    if (cluster) await deleteStreams(cluster.channelPrefix);
    await smtp?.close();
  });

  /** The store's confirmation template, through the mailer's admin route. */
  async function confirmationTemplate(key = "confirm-newsletter"): Promise<string> {
    const text = "Hi {{profile.email}}, confirm here: {{confirm_url}}\nUnsubscribe: {{unsubscribe_url}}";
    const res = await admin.post<{ id: string }>(`/v1/stores/${storeId}/email-templates`, {
      key,
      name: "Confirm",
      subject: "Confirm your subscription to {{list.name}}",
      html: `<p>${text}</p>`,
      text,
    });
    expect(res.status).toBe(200);
    return res.body.id;
  }

  /** A storefront session of the profile with `email`: initialize, then connect. */
  async function connectedShopper(email: string): Promise<{ profileId: string; session: HttpClient }> {
    const init = await http.post<AuthToken>(`/v1/stores/${storeId}/profiles/initialize`, {});
    const connected = await http.with({ authorization: `Bearer ${init.body.access_token}` }).post<ConnectResult>(`/v1/stores/${storeId}/profiles/connect`, { email });
    return { profileId: connected.body.id, session: http.with({ authorization: `Bearer ${connected.body.token.access_token}` }) };
  }

  it("initialize -> connect -> subscribe with confirm_url -> the mail arrives -> confirm -> access true -> unsubscribe -> access false", async () => {
    const templateId = await confirmationTemplate();
    const created = await admin.post<ProfileList>(`/v1/stores/${storeId}/profile-lists`, {
      key: "newsletter",
      name: "Newsletter",
      type: { type: "confirmation", confirm_template_id: templateId },
    });
    expect(created.status).toBe(200);
    expect(created.body).toMatchObject({ confirm_template_missing: false, member_count: 0 });
    const profileListId = created.body.id;
    const storefront = `/v1/storefront/${storeId}/profile-lists/${profileListId}`;

    // 1. Initialize + connect to get a profile
    const init = await http.post<AuthToken>(`/v1/stores/${storeId}/profiles/initialize`, {});
    expect(init.status).toBe(200);
    const guest = http.with({ authorization: `Bearer ${init.body.access_token}` });
    const connected = await guest.post<ConnectResult>(`/v1/stores/${storeId}/profiles/connect`, { email: "user@example.com" });
    expect(connected.status).toBe(200);
    const profileId = connected.body.id;
    const session = http.with({ authorization: `Bearer ${connected.body.token.access_token}`, "user-agent": "e2e-browser/1.0" });

    // 2. Subscribe to the profile list (sends confirmation email)
    const subscribed = await session.post<{ membership: Membership; checkout_url: null }>(`${storefront}/subscribe`, {
      profile_id: profileId,
      confirm_url: `${SHOP}/confirm`,
    });
    expect(subscribed.status).toBe(200);
    expect(subscribed.body).toMatchObject({
      checkout_url: null,
      membership: { status: "pending", profile_id: profileId, consent: { method: "signup", user_agent: "e2e-browser/1.0" } },
    });
    expect((await session.get<AccessResult>(`${storefront}/access`)).body.has_access).toBe(false);

    // The mail arrives, with the link and the RFC 8058 headers.
    const mail = await smtp.waitForMessage((m) => m.to.includes("user@example.com"), 15_000);
    expect(mail.subject).toBe("Confirm your subscription to Newsletter");
    const link = /https:\/\/yoursite\.com\/confirm\?\S+/.exec(mail.text)?.[0];
    expect(link).toBeDefined();
    const url = new URL(link!);
    expect(url.searchParams.get("profile_list_id")).toBe(profileListId);
    expect(mail.headers["list-unsubscribe"]).toMatch(
      new RegExp(`^<https://crm\\.yoursite\\.com/v1/storefront/${storeId}/profile-lists/${profileListId}/unsubscribe\\?token=`),
    );
    expect(mail.headers["list-unsubscribe-post"]).toBe("List-Unsubscribe=One-Click");

    // The page behind the link confirms (no session: the token is the credential).
    const confirmed = await http.post<Membership>(`${storefront}/confirm`, { token: url.searchParams.get("token") });
    expect(confirmed.status).toBe(200);
    // The link's holder is not shown the consent's network details; the member's own session is.
    expect(confirmed.body).toMatchObject({ status: "active", consent: { method: "double_opt_in", confirmed_at: expect.any(Number), ip: null, confirmed_ip: null } });
    expect((await http.post(`${storefront}/confirm`, { token: url.searchParams.get("token") })).status).toBe(400);

    const granted = await session.get<AccessResult>(`${storefront}/access`);
    expect(granted.body).toMatchObject({ has_access: true, membership: { status: "active", consent: { confirmed_ip: expect.any(String) } } });
    expect((await admin.get<ProfileList>(`/v1/stores/${storeId}/profile-lists/${profileListId}`)).body.member_count).toBe(1);

    const left = await session.post<{ membership: Membership }>(`${storefront}/unsubscribe`, {});
    expect(left.status).toBe(200);
    expect(left.body.membership.status).toBe("unsubscribed");
    expect((await session.get<AccessResult>(`${storefront}/access`)).body).toMatchObject({ has_access: false, membership: { status: "unsubscribed" } });
    expect((await admin.get<ProfileList>(`/v1/stores/${storeId}/profile-lists/${profileListId}`)).body.member_count).toBe(0);

    // The mail's own unsubscribe link works with no session (a POST with the token in the query).
    const oneClick = /<([^>]+)>/.exec(mail.headers["list-unsubscribe"])![1];
    const viaLink = await http.post<{ membership: Membership }>(oneClick.replace(PUBLIC_URL, ""), {});
    expect(viaLink.status).toBe(200);
    expect(viaLink.body.membership.status).toBe("unsubscribed");
  });

  it("deleting the template (email-template.deleted over JetStream) turns the list into single opt-in", async () => {
    const res = await admin.post<{ id: string }>(`/v1/stores/${storeId}/email-templates`, {
      key: "confirm-vip",
      subject: "Confirm {{list.name}}",
      html: "<p>{{confirm_url}}</p>",
    });
    const list = (await admin.post<ProfileList>(`/v1/stores/${storeId}/profile-lists`, { key: "vip", type: { type: "confirmation", confirm_template_id: res.body.id } }))
      .body;
    expect(list.confirm_template_missing).toBe(false);
    expect((await admin.delete(`/v1/stores/${storeId}/email-templates/${res.body.id}`)).status).toBe(200);
    await waitFor(
      async () => (await admin.get<ProfileList>(`/v1/stores/${storeId}/profile-lists/${list.id}`)).body.confirm_template_missing,
      "the list to show confirm_template_missing",
    );
    const { profileId, session } = await connectedShopper("vip@example.com");
    const sub = await session.post<{ membership: Membership }>(`/v1/storefront/${storeId}/profile-lists/${list.id}/subscribe`, {
      profile_id: profileId,
      confirm_url: `${SHOP}/confirm`,
    });
    expect(sub.body.membership).toMatchObject({ status: "active", consent: { method: "signup" } });
    expect(smtp.messages.filter((m) => m.to.includes("vip@example.com"))).toEqual([]);
  });

  it("GET shows a page and changes nothing; its form post unsubscribes and answers a page; one-click still answers JSON", async () => {
    const templateId = await confirmationTemplate("confirm-news");
    const list = (await admin.post<ProfileList>(`/v1/stores/${storeId}/profile-lists`, { key: "news", type: { type: "confirmation", confirm_template_id: templateId } }))
      .body;
    const storefront = `/v1/storefront/${storeId}/profile-lists/${list.id}`;
    const { profileId, session } = await connectedShopper("reader@example.com");
    expect((await session.post(`${storefront}/subscribe`, { profile_id: profileId, confirm_url: `${SHOP}/confirm` })).status).toBe(200);

    const mail = await smtp.waitForMessage((m) => m.to.includes("reader@example.com"), 15_000);
    const headerLink = /^<([^>]+)>$/.exec(mail.headers["list-unsubscribe"])![1];
    expect(mail.text).toContain(`Unsubscribe: ${headerLink}`); // the template's {{unsubscribe_url}} is the same link
    const confirmToken = new URL(/https:\/\/yoursite\.com\/confirm\?\S+/.exec(mail.text)![0]).searchParams.get("token");
    // confirm takes the token in the query string too (as its OpenAPI entry says), with no body at all.
    expect((await http.post(`${storefront}/confirm?token=${encodeURIComponent(confirmToken!)}`)).status).toBe(200);

    // The link as a browser opens it (PUBLIC_URL is this gateway).
    const link = headerLink.replace(PUBLIC_URL, cluster.url!);
    const page = await fetch(link, { headers: { accept: "text/html" } });
    const html = await page.text();
    expect(page.status).toBe(200);
    expect(page.headers.get("content-type")).toBe("text/html; charset=utf-8");
    expect(page.headers.get("cache-control")).toBe("no-store");
    expect(page.headers.get("content-security-policy")).toContain("frame-ancestors 'none'");
    expect(html).not.toMatch(/<script/i);
    // Opening it changed nothing.
    expect((await session.get<AccessResult>(`${storefront}/access`)).body).toMatchObject({ has_access: true, membership: { status: "active" } });

    // The button: the form's hidden fields, posted to the page's own URL as a browser posts a form.
    const fields = Object.fromEntries([...html.matchAll(/<input type="hidden" name="([^"]*)" value="([^"]*)">/g)].map((m) => [m[1], m[2]]));
    expect(fields.token).toBe(new URL(headerLink).searchParams.get("token"));
    const posted = await fetch(link, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded", accept: "text/html", origin: cluster.url! },
      body: new URLSearchParams(fields).toString(),
    });
    expect(posted.status).toBe(200);
    expect(posted.headers.get("content-type")).toBe("text/html; charset=utf-8");
    expect(await posted.text()).toContain("You are unsubscribed");
    expect((await session.get<AccessResult>(`${storefront}/access`)).body).toMatchObject({ has_access: false, membership: { status: "unsubscribed" } });
    expect((await admin.get<ProfileList>(`/v1/stores/${storeId}/profile-lists/${list.id}`)).body.member_count).toBe(0);

    // A mail client's RFC 8058 one-click post keeps its JSON answer.
    const oneClick = await http.post(link.replace(cluster.url!, ""), "List-Unsubscribe=One-Click", { headers: { "content-type": "application/x-www-form-urlencoded" } });
    expect(oneClick.status).toBe(200);
    expect(oneClick.headers["content-type"]).toBe("application/json; charset=utf-8");
    expect(oneClick.body.membership.status).toBe("unsubscribed");
  });

  it("refuses a JSON body that is not UTF-8 with a 400 and stores nothing", async () => {
    const latin1 = Buffer.concat([Buffer.from('{"key":"latin1","name":"Caf'), Buffer.from([0xe9]), Buffer.from(' News"}')]);
    const reply = await admin.post(`/v1/stores/${storeId}/profile-lists`, latin1, { headers: { "content-type": "application/json" } });
    expect(reply.status).toBe(400);
    expect(reply.body).toEqual({
      statusCode: 400,
      error: "VALIDATION_ERROR",
      message: "The body is not valid UTF-8: send JSON encoded in UTF-8",
      validationErrors: [{ field: "body", error: "is not valid UTF-8" }],
    });
    const found = await admin.get<{ items: ProfileList[] }>(`/v1/stores/${storeId}/profile-lists`, { query: { query: "latin1" } });
    expect(found.body.items).toEqual([]);
  });
});
