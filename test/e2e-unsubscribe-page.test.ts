/**
 * A list mail's unsubscribe link opened in a browser, end to end over NATS through the gateway: the link
 * (`List-Unsubscribe` and the template's `{{unsubscribe_url}}`) answers an HTML page that changes nothing; its
 * button's form post unsubscribes and answers an HTML page; the RFC 8058 one-click post still answers JSON.
 * And a JSON body that is not UTF-8 is refused before anything is stored.
 */
import { randomUUID } from "node:crypto";
import type { AccessResult, ProfileList } from "../shared/contracts/profile-lists";
import type { AuthToken } from "../shared/contracts/auth";
import type { ConnectResult } from "../shared/contracts/profiles";
import { deleteStreams, httpClient, startCluster, startSmtpServer, type Cluster, type HttpClient, type SmtpTestServer } from "./harness";

const PLATFORM_KEY = `e2e-unsubscribe-page-${randomUUID()}`;
const SHOP = "https://yoursite.com";
const PUBLIC_URL = "https://crm.yoursite.com";

describe("the unsubscribe link of a list mail, opened in a browser", () => {
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

  it("GET shows a page and changes nothing; its form post unsubscribes and answers a page; one-click still answers JSON", async () => {
    const text = "Confirm: {{confirm_url}}\nUnsubscribe: {{unsubscribe_url}}";
    const template = await admin.post<{ id: string }>(`/v1/stores/${storeId}/email-templates`, { key: "confirm", subject: "Confirm", html: `<p>${text}</p>`, text });
    const list = (
      await admin.post<ProfileList>(`/v1/stores/${storeId}/profile-lists`, { key: "news", type: { type: "confirmation", confirm_template_id: template.body.id } })
    ).body;
    const storefront = `/v1/storefront/${storeId}/profile-lists/${list.id}`;
    const init = await http.post<AuthToken>(`/v1/stores/${storeId}/profiles/initialize`, {});
    const connected = await http
      .with({ authorization: `Bearer ${init.body.access_token}` })
      .post<ConnectResult>(`/v1/stores/${storeId}/profiles/connect`, { email: "reader@example.com" });
    const session = http.with({ authorization: `Bearer ${connected.body.token.access_token}` });
    expect((await session.post(`${storefront}/subscribe`, { profile_id: connected.body.id, confirm_url: `${SHOP}/confirm` })).status).toBe(200);

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
