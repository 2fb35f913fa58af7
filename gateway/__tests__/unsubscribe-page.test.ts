/**
 * The page a list mail's unsubscribe link opens in a browser (`GET .../unsubscribe?token=`), and the HTML answer
 * its form post gets; one-click (RFC 8058) and API posts keep their JSON answer.
 */
import { createHash } from "node:crypto";
import { escapeHtml, PAGE_HEADERS, unsubscribePage } from "../pages";
import { STORE_A, expectErrorBody, request, startGateway, type Reply, type TestGateway } from "./helpers";

let gw: TestGateway;
beforeAll(async () => {
  gw = await startGateway();
});
afterAll(() => gw.stop());

const LIST = "0190c5d2-6666-7000-8000-000000000006";
/** Shaped like a real unsubscribe token: `<membership id>.<base64url HMAC>`. */
const TOKEN = "0190c5d2-7777-7000-8000-000000000007.q1w2e3r4t5y6u7i8o9p0a1s2d3f4g5h6j7k8l9z0x1c";
const unsubscribeUrl = (token: string = TOKEN, store = STORE_A) =>
  `${gw.url}/v1/storefront/${store}/profile-lists/${LIST}/unsubscribe?token=${encodeURIComponent(token)}`;

/** The headers every page carries: HTML in UTF-8, never cached, never framed, no script. */
function expectPageHeaders(reply: Reply): void {
  expect(reply.headers.get("content-type")).toBe("text/html; charset=utf-8");
  expect(reply.headers.get("cache-control")).toBe("no-store");
  expect(reply.headers.get("x-frame-options")).toBe("DENY");
  const csp = reply.headers.get("content-security-policy") ?? "";
  expect(csp).toContain("frame-ancestors 'none'");
  expect(csp).toContain("default-src 'none'");
  expect(csp).not.toContain("script-src");
  expect(reply.headers.get("x-content-type-options")).toBe("nosniff");
  expect(reply.headers.get("x-request-id")).toBeTruthy();
  expect(Number(reply.headers.get("content-length"))).toBe(Buffer.byteLength(reply.text));
}

/** The hidden fields of the page's form, as a browser would send them. */
function formFields(html: string): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const m of html.matchAll(/<input type="hidden" name="([^"]*)" value="([^"]*)">/g)) fields[m[1]] = m[2];
  return fields;
}

describe("GET .../profile-lists/{id}/unsubscribe (the mail link's page)", () => {
  it("answers a self-contained HTML page with a button that posts the token, and changes nothing", async () => {
    const calls = gw.state.unsubscribeCalls;
    const reply = await request(unsubscribeUrl());
    expect(reply.status).toBe(200);
    expectPageHeaders(reply);
    expect(reply.text).toMatch(/^<!doctype html>/);
    expect(reply.text).toMatch(/<form method="post">/); // no action: it posts to the page's own URL, token and all
    expect(reply.text).toMatch(/<button type="submit">Unsubscribe<\/button>/);
    expect(formFields(reply.text)).toEqual({ token: TOKEN, answer: "html" });
    expect(reply.text).not.toMatch(/<script|\bsrc=|\bhref=|https?:\/\//i);
    // Mail scanners prefetch GET links: nothing was asked of profile-lists.
    expect(gw.state.unsubscribeCalls).toBe(calls);
  });

  it("refuses a missing or implausible token with the contract's 400 naming token, without echoing it", async () => {
    const calls = gw.state.unsubscribeCalls;
    const missing = await request(`${gw.url}/v1/storefront/${STORE_A}/profile-lists/${LIST}/unsubscribe`);
    expectErrorBody(missing, 400, "VALIDATION_ERROR");
    expect(missing.body.validationErrors.map((e: { field: string }) => e.field)).toEqual(["token"]);

    const evil = '"><script>alert(1)</script><input value="0123456789';
    const injected = await request(unsubscribeUrl(evil));
    expectErrorBody(injected, 400, "VALIDATION_ERROR");
    expect(injected.body.validationErrors.map((e: { field: string }) => e.field)).toEqual(["token"]);
    expect(injected.text).not.toContain("<script>");

    expectErrorBody(await request(unsubscribeUrl("short")), 400, "VALIDATION_ERROR");
    expectErrorBody(await request(unsubscribeUrl(TOKEN, "not-a-store")), 400, "VALIDATION_ERROR");
    expect(gw.state.unsubscribeCalls).toBe(calls);
  });

  it("adds GET only: another method on that path is still a 404", async () => {
    const put = await request(unsubscribeUrl(), { method: "PUT", json: {} });
    expectErrorBody(put, 404, "NOT_FOUND");
  });
});

describe("POST .../profile-lists/{id}/unsubscribe", () => {
  it("answers the page's form post (answer=html) with a 'You are unsubscribed' page, the token reaching the action", async () => {
    const page = await request(unsubscribeUrl());
    const before = gw.state.unsubscribeCalls;
    // What a browser sends for the form: its hidden fields, url-encoded, to the page's own URL.
    const reply = await request(unsubscribeUrl(), {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded", accept: "text/html" },
      body: new URLSearchParams(formFields(page.text)).toString(),
    });
    expect(reply.status).toBe(200);
    expectPageHeaders(reply);
    expect(reply.text).toContain("<h1>You are unsubscribed</h1>");
    expect(reply.text).not.toMatch(/<script|<form/i);
    expect(gw.state.unsubscribeCalls).toBe(before + 1);
  });

  it("reads the page's fields from a multipart/form-data post too (token in the body only)", async () => {
    const reply = await request(`${gw.url}/v1/storefront/${STORE_A}/profile-lists/${LIST}/unsubscribe`, {
      method: "POST",
      headers: { "content-type": "multipart/form-data; boundary=b1" },
      body: `--b1\r\nContent-Disposition: form-data; name="token"\r\n\r\n${TOKEN}\r\n--b1\r\nContent-Disposition: form-data; name="answer"\r\n\r\nhtml\r\n--b1--\r\n`,
    });
    expect(reply.status).toBe(200);
    expect(reply.headers.get("content-type")).toBe("text/html; charset=utf-8");
  });

  it("keeps the JSON answer for RFC 8058 one-click posts and API clients", async () => {
    const oneClick = await request(unsubscribeUrl(), {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded", accept: "text/html" },
      body: "List-Unsubscribe=One-Click",
    });
    expect(oneClick.status).toBe(200);
    expect(oneClick.headers.get("content-type")).toBe("application/json; charset=utf-8");
    expect(oneClick.body.params).toEqual({ store_id: STORE_A, id: LIST, token: TOKEN, "List-Unsubscribe": "One-Click" });
    expect(oneClick.body.auth).toBeNull();

    const api = await request(`${gw.url}/v1/storefront/${STORE_A}/profile-lists/${LIST}/unsubscribe`, { method: "POST", json: { token: TOKEN, answer: "html" } });
    expect(api.status).toBe(200);
    expect(api.headers.get("content-type")).toBe("application/json; charset=utf-8");
    expect(api.body.params).toEqual({ store_id: STORE_A, id: LIST, token: TOKEN });
  });

  it("answers the contract's JSON error body when the form post fails", async () => {
    const reply = await request(unsubscribeUrl("x".repeat(300)), {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: "answer=html",
    });
    expectErrorBody(reply, 400, "VALIDATION_ERROR");
    expect(reply.body.validationErrors.map((e: { field: string }) => e.field)).toEqual(["token"]);
  });
});

describe("pages", () => {
  it("escape what they echo into an attribute", () => {
    expect(escapeHtml(`<a href="x" onclick='y'>&`)).toBe("&#60;a href=&#34;x&#34; onclick=&#39;y&#39;&#62;&#38;");
    expect(unsubscribePage('a"><script>')).toContain('value="a&#34;&#62;&#60;script&#62;"');
  });

  it("allow their one inline style by its hash, and nothing else", () => {
    const style = /<style>([^<]*)<\/style>/.exec(unsubscribePage("0123456789abcdef"))![1];
    const hash = createHash("sha256").update(style, "utf8").digest("base64");
    expect(PAGE_HEADERS["Content-Security-Policy"]).toBe(`default-src 'none'; style-src 'sha256-${hash}'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'`);
  });
});
