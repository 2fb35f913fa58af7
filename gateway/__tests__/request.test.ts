/** Reading requests: JSON bodies only, size and depth limits, prototype keys, request ids, CORS, logs. */
import { connect } from "node:net";
import { waitFor } from "../../test/harness/wait";
import { PLATFORM_KEY, PROFILE_ID, STORE_A, bearer, expectErrorBody, request, startGateway, type TestGateway } from "./helpers";
import { jsonDepthExceeds, mediaKindOf, mergeParams, parseByteSize, parseFormBody, parseJsonObject, parseMultipartBody, requestIdOf } from "../request";

let gw: TestGateway;
beforeAll(async () => {
  gw = await startGateway({ env: { BODY_LIMIT: "16kb", CORS_ORIGINS: "https://shop.example, https://admin.example" } });
});
afterAll(() => gw.stop());

const admin = bearer(PLATFORM_KEY);
const echoUrl = () => `${gw.url}/v1/stores/${STORE_A}/echo`;
/** Sends `request` as raw bytes and answers everything the server wrote until it closed the connection. */
function rawExchange(request: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(Number(new URL(gw.url).port), "127.0.0.1", () => socket.write(request));
    let text = "";
    socket.on("data", (chunk) => {
      text += chunk.toString();
    });
    socket.on("end", () => resolve(text));
    socket.on("error", reject);
  });
}

const nested = (depth: number) => `${"[".repeat(depth - 1)}{}${"]".repeat(depth - 1)}`;

describe("request bodies", () => {
  it("answers 415 for a body that is not application/json", async () => {
    const reply = await request(echoUrl(), { method: "POST", headers: { "content-type": "text/plain" }, body: "email=x" });
    expectErrorBody(reply, 415, "UNSUPPORTED_MEDIA_TYPE");
  });

  it("answers 415 for a compressed body (Content-Encoding is not decoded)", async () => {
    const reply = await request(echoUrl(), { method: "POST", headers: { "content-type": "application/json", "content-encoding": "gzip" }, body: "{}" });
    expectErrorBody(reply, 415, "UNSUPPORTED_MEDIA_TYPE");
  });

  it("answers the contract's 413 body, with a request id, for a URL over Node's header limit", async () => {
    const reply = await request(`${echoUrl()}?q=${"x".repeat(50_000)}`, { method: "POST", json: {} });
    expectErrorBody(reply, 413, "PAYLOAD_TOO_LARGE");
    expect(reply.headers.get("x-request-id")).toBeTruthy();
  });

  it("answers 400 naming the path for a path parameter that is not valid percent-encoding", async () => {
    const reply = await request(`${gw.url}/v1/stores/%ZZ/echo`, { method: "POST", json: {} });
    expectErrorBody(reply, 400, "VALIDATION_ERROR");
    expect(reply.body.validationErrors).toEqual([{ field: "path", error: "is not valid percent-encoding" }]);
    expect(reply.body.message).toMatch(/percent-encoding.*%25/);
  });

  it.each([
    ["headers", "a CR inside a header value", "GET /health/live HTTP/1.1\r\nHost: x\r\nX-Request-ID: a\rb\r\n\r\n"],
    ["request line", "a method that is not a token", "G@T /health/live HTTP/1.1\r\nHost: x\r\n\r\n"],
  ])("answers 400 naming the %s, with the parser's reason, for %s", async (part, _what, request) => {
    const raw = await rawExchange(request);
    expect(raw).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
    const body = JSON.parse(raw.slice(raw.indexOf("\r\n\r\n") + 4));
    expect(body).toEqual({
      statusCode: 400,
      error: "VALIDATION_ERROR",
      message: `Malformed HTTP request: ${body.validationErrors[0].error} (in the ${part}; header values may not hold control characters such as CR or LF)`,
      validationErrors: [{ field: part, error: expect.stringMatching(/\S/) }],
    });
  });

  it("answers 415 for a body without a Content-Type", async () => {
    const reply = await request(echoUrl(), { method: "POST", body: new Blob(['{"a":1}']) });
    expectErrorBody(reply, 415, "UNSUPPORTED_MEDIA_TYPE");
  });

  it("answers 415 for form posts and for JSON in another charset", async () => {
    const form = await request(echoUrl(), { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" }, body: "a=1" });
    expectErrorBody(form, 415, "UNSUPPORTED_MEDIA_TYPE");
    const latin = await request(echoUrl(), { method: "POST", headers: { "content-type": "application/json; charset=latin1" }, body: "{}" });
    expectErrorBody(latin, 415, "UNSUPPORTED_MEDIA_TYPE");
    expect(latin.body.message).toBe("Request body must be application/json, in UTF-8");
  });

  it("accepts a POST without a body and JSON with a charset", async () => {
    expect((await request(echoUrl(), { method: "POST" })).status).toBe(200);
    const reply = await request(echoUrl(), { method: "POST", headers: { "content-type": "application/json; charset=UTF-8" }, body: '{"a":1}' });
    expect(reply.body.params).toEqual({ a: 1, store_id: STORE_A });
  });

  it("answers 413 for a body over BODY_LIMIT (declared length)", async () => {
    const reply = await request(echoUrl(), { method: "POST", json: { text: "x".repeat(20 * 1024) } });
    expectErrorBody(reply, 413, "PAYLOAD_TOO_LARGE");
    expect(reply.body.message).toBe("Request body is too large: at most 16 KB (BODY_LIMIT)");
  });

  it("answers 413 for a chunked body that grows over BODY_LIMIT", async () => {
    const chunk = new TextEncoder().encode(`"${"x".repeat(4096)}",`);
    let sent = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent === 0) controller.enqueue(new TextEncoder().encode('{"a":['));
        if (sent++ < 8) controller.enqueue(chunk);
        else {
          controller.enqueue(new TextEncoder().encode('""]}'));
          controller.close();
        }
      },
    });
    const reply = await request(echoUrl(), { method: "POST", headers: { "content-type": "application/json" }, body, duplex: "half" } as RequestInit);
    expectErrorBody(reply, 413, "PAYLOAD_TOO_LARGE");
    expect(reply.body.message).toMatch(/^Request body is too large: at most 16 KB/);
  });

  it("answers 400 for malformed JSON", async () => {
    const reply = await request(echoUrl(), { method: "POST", headers: { "content-type": "application/json" }, body: '{"a":' });
    expectErrorBody(reply, 400, "VALIDATION_ERROR");
  });

  it("answers 400 naming body, with a message saying what to send, for a JSON body that is not UTF-8 (a Latin-1 é)", async () => {
    const latin1 = Buffer.concat([Buffer.from('{"key":"latin1","name":"Caf'), Buffer.from([0xe9]), Buffer.from(' News"}')]);
    const reply = await request(echoUrl(), { method: "POST", headers: { "content-type": "application/json" }, body: latin1 });
    expectErrorBody(reply, 400, "VALIDATION_ERROR");
    expect(reply.body.message).toBe("The body is not valid UTF-8: send JSON encoded in UTF-8");
    expect(reply.body.validationErrors).toEqual([{ field: "body", error: "is not valid UTF-8" }]);
    // A multi-byte character cut short at the end of the body, and an encoded surrogate, are refused too.
    const cut = Buffer.concat([Buffer.from('{"name":"Caf'), Buffer.from([0xc3])]);
    expectErrorBody(await request(echoUrl(), { method: "POST", headers: { "content-type": "application/json" }, body: cut }), 400, "VALIDATION_ERROR");
    const surrogate = Buffer.concat([Buffer.from('{"name":"'), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from('"}')]);
    expectErrorBody(await request(echoUrl(), { method: "POST", headers: { "content-type": "application/json" }, body: surrogate }), 400, "VALIDATION_ERROR");
  });

  it("reads UTF-8 JSON as it is, with or without a BOM", async () => {
    const utf8 = await request(echoUrl(), { method: "POST", headers: { "content-type": "application/json" }, body: Buffer.from('{"name":"Café News ☕"}') });
    expect(utf8.body.params).toEqual({ name: "Café News ☕", store_id: STORE_A });
    const bom = await request(echoUrl(), { method: "POST", headers: { "content-type": "application/json" }, body: Buffer.from('\uFEFF{"name":"Café"}') });
    expect(bom.body.params).toEqual({ name: "Café", store_id: STORE_A });
  });

  it("answers 400 for a form body that is not UTF-8 on a route that takes forms", async () => {
    const body = Buffer.concat([Buffer.from("List-Unsubscribe=One-Click&note="), Buffer.from([0xe9])]);
    const url = `${gw.url}/v1/storefront/${STORE_A}/profile-lists/0190c5d2-6666-7000-8000-000000000006/unsubscribe`;
    const reply = await request(url, { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" }, body });
    expectErrorBody(reply, 400, "VALIDATION_ERROR");
    expect(reply.body.message).toBe("The body is not valid UTF-8: send the form encoded in UTF-8");
  });

  it("answers 400 for a JSON body that is not an object", async () => {
    const reply = await request(echoUrl(), { method: "POST", json: [1, 2] });
    expectErrorBody(reply, 400, "VALIDATION_ERROR");
  });

  it("accepts 32 levels of nesting and rejects 33 with 400", async () => {
    const ok = await request(echoUrl(), { method: "POST", headers: { "content-type": "application/json" }, body: `{"a":${nested(31)}}` });
    expect(ok.status).toBe(200);
    const deep = await request(echoUrl(), { method: "POST", headers: { "content-type": "application/json" }, body: `{"a":${nested(32)}}` });
    expectErrorBody(deep, 400, "VALIDATION_ERROR");
    expect(deep.body.validationErrors).toEqual([{ field: "body", error: expect.any(String) }]);
  });

  it("rejects a body nested 5,000 levels deep with 400, not 500", async () => {
    const reply = await request(echoUrl(), { method: "POST", headers: { "content-type": "application/json" }, body: `{"a":${nested(5000)}}` });
    expectErrorBody(reply, 400, "VALIDATION_ERROR");
  });

  it("does not let a __proto__ key in a PUT body reach the action as a field (it is stripped)", async () => {
    const reply = await request(`${gw.url}/v1/stores/${STORE_A}/profiles/${PROFILE_ID}`, {
      method: "PUT",
      headers: { ...admin, "content-type": "application/json" },
      body: '{"__proto__":{"status":"archived"},"email":"ada@example.com"}',
    });
    expect(reply.status).toBe(200);
    expect(reply.body.params).toEqual({ store_id: STORE_A, id: PROFILE_ID, email: "ada@example.com" });
    expect(reply.body.params.status).toBeUndefined();
  });

  it("strips __proto__, constructor and prototype at every level and keeps a plain params object", async () => {
    const reply = await request(echoUrl(), {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: '{"constructor":{"prototype":{"polluted":true}},"list":[{"__proto__":{"admin":true},"ok":1}],"inner":{"prototype":1,"x":2}}',
    });
    expect(reply.status).toBe(200);
    expect(reply.body.params).toEqual({ store_id: STORE_A, list: [{ ok: 1 }], inner: { x: 2 } });
    expect(reply.body.paramsProto).toBe("Object.prototype");
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it("strips prototype keys from the query string too", async () => {
    const reply = await request(`${echoUrl()}?__proto__[status]=archived&constructor[prototype][x]=1&a[prototype]=2&b=3`, { method: "POST" });
    expect(reply.body.params).toEqual({ store_id: STORE_A, a: {}, b: "3" });
    expect(reply.body.paramsProto).toBe("Object.prototype");
  });

  it("streams a text/csv body to a route whose params take csv (the action reads it as the call's stream)", async () => {
    const listId = "0190c5d2-5555-7000-8000-000000000005";
    const csv = "email,name\nada@example.com,Ada\n";
    const reply = await request(`${gw.url}/v1/stores/${STORE_A}/profile-lists/${listId}/profiles/import?email_column=email`, {
      method: "POST",
      headers: { ...admin, "content-type": "text/csv" },
      body: csv,
    });
    expect(reply.status).toBe(200);
    expect(reply.body.params).toEqual({ store_id: STORE_A, id: listId, email_column: "email" });
    expect(reply.body.streamed).toBe(csv);
  });

  it("answers 415 for a text/csv body on a route that does not take csv", async () => {
    const reply = await request(echoUrl(), { method: "POST", headers: { "content-type": "text/csv" }, body: "a,b\n" });
    expectErrorBody(reply, 415, "UNSUPPORTED_MEDIA_TYPE");
  });

  it("answers 415 naming the types an import route takes for CSV in another charset", async () => {
    const listId = "0190c5d2-5555-7000-8000-000000000005";
    const reply = await request(`${gw.url}/v1/stores/${STORE_A}/profile-lists/${listId}/profiles/import`, {
      method: "POST",
      headers: { ...admin, "content-type": "text/csv; charset=latin1" },
      body: "email\nada@example.com\n",
    });
    expectErrorBody(reply, 415, "UNSUPPORTED_MEDIA_TYPE");
    expect(reply.body.message).toBe("Request body must be application/json or text/csv, in UTF-8");
  });
});

describe("x-request-id", () => {
  it("echoes a sane caller id on the response and passes it in ctx.meta.requestId", async () => {
    const reply = await request(echoUrl(), { method: "POST", headers: { "x-request-id": "abc-123_x.y:z" } });
    expect(reply.headers.get("x-request-id")).toBe("abc-123_x.y:z");
    expect(reply.body.requestId).toBe("abc-123_x.y:z");
  });

  it.each([["has spaces in it"], ["x".repeat(129)], ["<script>"], ["a\u00e9b"]])("replaces an unsafe id (%s) with a fresh uuid", async (id) => {
    const reply = await request(echoUrl(), { method: "POST", headers: { "x-request-id": id } });
    const sent = reply.headers.get("x-request-id");
    expect(sent).not.toBe(id);
    expect(sent).toMatch(/^[0-9a-f-]{36}$/);
    expect(reply.body.requestId).toBe(sent);
  });

  it("sets a fresh id when none is sent, on errors too", async () => {
    const ok = await request(echoUrl(), { method: "POST" });
    expect(ok.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/);
    const missing = await request(`${gw.url}/nope`, { headers: { "x-request-id": "trace-404" } });
    expect(missing.headers.get("x-request-id")).toBe("trace-404");
  });

  it("ignores x-correlation-id", async () => {
    const reply = await request(echoUrl(), { method: "POST", headers: { "x-correlation-id": "bad id !", "x-request-id": "good" } });
    expect(reply.headers.get("x-request-id")).toBe("good");
    expect(reply.body.requestId).toBe("good");
  });
});

describe("CORS", () => {
  it("allows a listed origin, echoing it with Vary: Origin and exposing x-request-id and WWW-Authenticate", async () => {
    const reply = await request(echoUrl(), { method: "POST", headers: { origin: "https://shop.example" } });
    expect(reply.headers.get("access-control-allow-origin")).toBe("https://shop.example");
    expect(reply.headers.get("vary")).toMatch(/Origin/);
    expect(reply.headers.get("access-control-expose-headers")).toMatch(/X-Request-Id/i);
    // A storefront on another origin reads error="invalid_token" from it to drop a refused session.
    expect(reply.headers.get("access-control-expose-headers")).toMatch(/WWW-Authenticate/i);
  });

  it("sends no CORS headers to an origin that is not listed, nor without an Origin, but Vary: Origin always", async () => {
    const refused = await request(echoUrl(), { method: "POST", headers: { origin: "https://evil.example" } });
    expect(refused.headers.get("access-control-allow-origin")).toBeNull();
    const noOrigin = await request(echoUrl(), { method: "POST" });
    expect(noOrigin.headers.get("access-control-allow-origin")).toBeNull();
    // A shared cache keys these answers on Origin, so it never serves them to an allowed origin.
    expect(refused.headers.get("vary")).toMatch(/Origin/);
    expect(noOrigin.headers.get("vary")).toMatch(/Origin/);
  });

  it("answers a preflight from a listed origin with 204 and the allowed methods and headers", async () => {
    const reply = await request(echoUrl(), {
      method: "OPTIONS",
      headers: { origin: "https://admin.example", "access-control-request-method": "POST", "access-control-request-headers": "authorization,content-type" },
    });
    expect(reply.status).toBe(204);
    expect(reply.headers.get("access-control-allow-origin")).toBe("https://admin.example");
    expect(reply.headers.get("access-control-allow-methods")).toMatch(/POST/);
    expect(reply.headers.get("access-control-allow-headers")).toMatch(/Authorization/i);
  });

  it("refuses a preflight from another origin with 403", async () => {
    const reply = await request(echoUrl(), { method: "OPTIONS", headers: { origin: "https://evil.example", "access-control-request-method": "POST" } });
    expectErrorBody(reply, 403, "FORBIDDEN");
  });

  it("puts the CORS headers on error answers too", async () => {
    const reply = await request(`${gw.url}/nope`, { headers: { origin: "https://shop.example" } });
    expect(reply.status).toBe(404);
    expect(reply.headers.get("access-control-allow-origin")).toBe("https://shop.example");
  });
});

describe("request logs", () => {
  it("writes one info line per request with method, path, status, time and request id, never the credentials or body", async () => {
    const lines: string[] = [];
    const logger = gw.gateway.logger;
    const info = jest.spyOn(logger, "info").mockImplementation((...args: unknown[]) => void lines.push(args.join(" ")));
    try {
      await request(`${gw.url}/v1/stores/${STORE_A}/profiles?limit=5&secret=q`, { headers: { ...admin, "x-request-id": "log-1" } });
      await request(echoUrl(), { method: "POST", headers: { "x-request-id": "log-2" }, json: { password: "s3cret-body" } });
      // A line is written once the answer is sent, so it may come just after the client has it.
      await waitFor(() => lines.length >= 2, "both request lines", { detail: () => lines.join("\n") });
    } finally {
      info.mockRestore();
    }
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(new RegExp(`^GET /v1/stores/${STORE_A}/profiles 200 \\d+\\.\\dms id=log-1$`));
    expect(lines[1]).toMatch(/^POST \/v1\/stores\/\S+\/echo 200 \d+\.\dms id=log-2$/);
    expect(lines.join("\n")).not.toMatch(new RegExp(`${PLATFORM_KEY}|s3cret-body|secret=q`));
  });
});

describe("request helpers", () => {
  it("parses BODY_LIMIT sizes", () => {
    expect(parseByteSize("1mb")).toBe(1024 * 1024);
    expect(parseByteSize("16KB")).toBe(16 * 1024);
    expect(parseByteSize("2048")).toBe(2048);
    expect(() => parseByteSize("lots")).toThrow(/BODY_LIMIT/);
  });

  it("measures JSON depth outside strings only", () => {
    expect(jsonDepthExceeds('{"a":"[[[[[[[["}', 2)).toBe(false);
    expect(jsonDepthExceeds('{"a":"\\"[[["}', 1)).toBe(false);
    expect(jsonDepthExceeds('{"a":[[1]]}', 2)).toBe(true);
  });

  it("reads a JSON body that starts with a UTF-8 BOM", () => {
    expect(parseJsonObject('\uFEFF{"a":1}')).toEqual({ a: 1 });
    expect(() => parseJsonObject('\uFEFF\uFEFF{"a":1}')).toThrow();
  });

  it("parses JSON without own __proto__ keys", () => {
    const value = parseJsonObject('{"__proto__":{"x":1},"a":1}');
    expect(Object.keys(value)).toEqual(["a"]);
    expect(Object.getPrototypeOf(value)).toBe(Object.prototype);
  });

  it("merges params without letting a __proto__ key change the prototype", () => {
    const hostile = JSON.parse('{"__proto__":{"status":"archived"}}') as Record<string, unknown>;
    const params = mergeParams(hostile, { a: 1 });
    expect(params).toEqual({ a: 1 });
    expect((params as { status?: string }).status).toBeUndefined();
  });

  it("keeps a sane request id and replaces others", () => {
    expect(requestIdOf("abc")).toBe("abc");
    expect(requestIdOf(["a", "b"])).not.toBe("a");
    expect(requestIdOf("")).toMatch(/^[0-9a-f-]{36}$/);
  });
});

describe("form bodies (RFC 8058 one-click unsubscribe)", () => {
  it("reads application/x-www-form-urlencoded and multipart/form-data text fields, dropping prototype-reaching keys and file parts", () => {
    expect(mediaKindOf("application/x-www-form-urlencoded")).toBe("form");
    expect(mediaKindOf("multipart/form-data; boundary=x")).toBe("multipart");
    const form = parseFormBody("List-Unsubscribe=One-Click&__proto__=x&token=a%2Bb");
    expect(form).toEqual({ "List-Unsubscribe": "One-Click", token: "a+b" });
    expect(Object.getPrototypeOf(form)).toBe(Object.prototype);
    const body = [
      "--b1",
      'Content-Disposition: form-data; name="List-Unsubscribe"',
      "",
      "One-Click",
      "--b1",
      'Content-Disposition: form-data; name="file"; filename="a.txt"',
      "",
      "ignored",
      "--b1",
      'Content-Disposition: form-data; name="constructor"',
      "",
      "x",
      "--b1--",
      "",
    ].join("\r\n");
    expect(parseMultipartBody(body, 'multipart/form-data; boundary="b1"')).toEqual({ "List-Unsubscribe": "One-Click" });
    expect(() => parseMultipartBody(body, "multipart/form-data")).toThrow();
  });
});
