/** GET /openapi.json: an OpenAPI 3.1 document generated from the route table and its zod schemas. */
import { request, startGateway, testTable, type TestGateway } from "./helpers";
import { buildOpenApi, openApiDocument } from "../openapi";
import { jsonRoutes, rawBodyRoutes, routeTable } from "../routes";
import type { RouteDef } from "../../shared/routes/types";

let gw: TestGateway;
beforeAll(async () => {
  gw = await startGateway();
});
afterAll(() => gw.stop());

const allTestRoutes = [...testTable.json, ...testTable.raw];

function expectEveryRoute(doc: any, routes: readonly RouteDef[]): void {
  for (const route of routes) {
    const op = doc.paths[route.path]?.[route.method.toLowerCase()];
    expect({ route: `${route.method} ${route.path}`, present: Boolean(op) }).toEqual({ route: `${route.method} ${route.path}`, present: true });
    const pathParams = [...route.path.matchAll(/\{(\w+)\}/g)].map((m) => m[1]);
    const documented = op.parameters.filter((p: any) => p.in === "path").map((p: any) => p.name);
    expect(documented).toEqual(pathParams);
    expect(op.responses[String(route.status ?? 200)]).toBeDefined();
  }
}

describe("GET /openapi.json", () => {
  it("answers an OpenAPI 3.1.0 document with every route of the table", async () => {
    const reply = await request(`${gw.url}/openapi.json`);
    expect(reply.status).toBe(200);
    expect(reply.body.openapi).toBe("3.1.0");
    expect(reply.body.info).toMatchObject({ title: expect.any(String), version: expect.any(String) });
    expectEveryRoute(reply.body, allTestRoutes);
    const operations = Object.values(reply.body.paths).flatMap((methods: any) => Object.keys(methods));
    expect(operations).toHaveLength(allTestRoutes.length);
  });

  it("documents bearer security for admin and profile routes and none for public ones", async () => {
    const { body: doc } = await request(`${gw.url}/openapi.json`);
    expect(doc.components.securitySchemes.adminApiKey).toMatchObject({ type: "http", scheme: "bearer" });
    expect(doc.components.securitySchemes.profileToken).toMatchObject({ type: "http", scheme: "bearer" });
    expect(doc.paths["/v1/stores/{storeId}/profiles"].post.security).toEqual([{ adminApiKey: [] }]);
    expect(doc.paths["/v1/stores/{storeId}/profiles/me"].get.security).toEqual([{ profileToken: [] }]);
    expect(doc.paths["/v1/stores/{storeId}/profiles/connect"].post.security).toEqual([{ profileToken: [] }, {}]);
    expect(doc.paths["/v1/stores/{storeId}/profiles/initialize"].post.security).toEqual([]);
  });

  it("documents query params for GET and a JSON body for POST/PUT from the zod schemas, without path params", async () => {
    const { body: doc } = await request(`${gw.url}/openapi.json`);
    const find = doc.paths["/v1/stores/{storeId}/profiles"].get;
    expect(
      find.parameters
        .filter((p: any) => p.in === "query")
        .map((p: any) => p.name)
        .sort(),
    ).toEqual(["limit", "status"]);
    expect(find.parameters.find((p: any) => p.name === "status").schema).toMatchObject({ enum: ["active", "archived"] });

    const update = doc.paths["/v1/stores/{storeId}/profiles/{id}"].put;
    const body = update.requestBody.content["application/json"].schema;
    expect(Object.keys(body.properties).sort()).toEqual(["email", "status"]);
    expect(body.required).toBeUndefined();

    const create = doc.paths["/v1/stores/{storeId}/profiles"].post;
    expect(create.requestBody.content["application/json"].schema.required).toEqual(["email"]);
    expect(create.responses["201"]).toBeDefined();

    const importOp = doc.paths["/v1/stores/{storeId}/profile-lists/{id}/profiles/import"].post;
    expect(Object.keys(importOp.requestBody.content).sort()).toEqual(["application/json", "text/csv"]);
  });

  it("documents the error body and Retry-After on 429/503", async () => {
    const { body: doc } = await request(`${gw.url}/openapi.json`);
    expect(doc.components.schemas.Error).toMatchObject({ type: "object", required: expect.arrayContaining(["statusCode", "error", "message"]) });
    const op = doc.paths["/v1/stores/{storeId}/profiles"].post;
    for (const status of ["400", "401", "403", "404", "413", "415", "429", "500", "503"]) expect(op.responses[status]).toBeDefined();
    expect(doc.components.responses.RateLimited.headers["Retry-After"]).toBeDefined();
    expect(doc.components.responses.ServiceUnavailable.headers["Retry-After"]).toBeDefined();
    expect(JSON.stringify(doc)).not.toContain('"$schema"');
    expect(JSON.stringify(doc)).not.toContain("#/$defs/");
  });

  it("has unique operation ids", async () => {
    const { body: doc } = await request(`${gw.url}/openapi.json`);
    const ids = Object.values(doc.paths).flatMap((methods: any) => Object.values(methods).map((op: any) => op.operationId));
    expect(new Set(ids).size).toBe(ids.length);
  });
});

describe("openApiDocument", () => {
  it("builds the document once per table and then serves it from cache", () => {
    const first = openApiDocument(allTestRoutes);
    expect(openApiDocument(allTestRoutes)).toBe(first);
  });

  it("covers every route of the real table", () => {
    const routes = [...jsonRoutes, ...rawBodyRoutes];
    const doc = buildOpenApi(routes, { rawBody: new Set(rawBodyRoutes) });
    expect(doc.openapi).toBe("3.1.0");
    expectEveryRoute(doc, routes);
  });

  it("documents the health routes as never rate limited, and readiness' own 503 body", () => {
    type Responses = Record<string, { content?: Record<string, { schema: { properties?: Record<string, unknown> } }> }>;
    const doc = buildOpenApi(jsonRoutes) as unknown as { paths: Record<string, Record<string, { responses: Responses }>> };
    for (const path of ["/health/live", "/health/ready"]) expect(doc.paths[path].get.responses["429"]).toBeUndefined();
    const unavailable = doc.paths["/health/ready"].get.responses["503"].content!["application/json"].schema;
    expect(Object.keys(unavailable.properties ?? {})).toEqual(expect.arrayContaining(["status", "services", "error"]));
    expect(doc.paths["/v1/stores/{storeId}/profiles/{id}"].put.responses["409"]).toBeDefined();
    expect(doc.paths["/v1/stores/{storeId}/profiles/auth/refresh"].post.responses["401"]).toBeDefined();
  });

  it("documents id path parameters with a pattern that takes the upper case the API accepts", () => {
    const doc = buildOpenApi(jsonRoutes) as unknown as { paths: Record<string, Record<string, { parameters: Array<{ name: string; schema: { pattern?: string } }> }>> };
    const get = doc.paths["/v1/stores/{storeId}/profiles/{id}"].get;
    for (const name of ["storeId", "id"]) {
      const pattern = get.parameters.find((p) => p.name === name)?.schema.pattern;
      expect(pattern).toBeDefined();
      expect(new RegExp(pattern!).test("0190C5D2-1111-7000-8000-00000000ABCD")).toBe(true);
      expect(new RegExp(pattern!).test("0190c5d2-1111-7000-8000-00000000abcd")).toBe(true);
      expect(new RegExp(pattern!).test("not-a-uuid")).toBe(false);
    }
  });
});

describe("the route table", () => {
  const routes = [...routeTable.json, ...routeTable.raw];

  it("declares each method + path once, each naming a service action", () => {
    const keys = routes.map((r) => `${r.method} ${r.path}`);
    expect(new Set(keys).size).toBe(keys.length);
    for (const route of routes) expect(route.action).toMatch(/^[\w-]+\.\w+$/);
  });

  it("includes the operations routes, and no route of a service that does not handle it yet", () => {
    const keys = routes.map((r) => `${r.method} ${r.path} -> ${r.action}`);
    expect(keys).toEqual(expect.arrayContaining(["GET /health/live -> gateway.live", "GET /health/ready -> gateway.ready", "GET /openapi.json -> gateway.openapi"]));
    expect(keys.filter((k) => /campaigns\./.test(k))).toEqual([]);
    expect(keys.filter((k) => /billing\./.test(k))).toEqual(["POST /v1/webhooks/stripe -> billing.handleStripeWebhook"]);
  });
});

describe("the served document", () => {
  it("is a valid OpenAPI 3.1 document (checked against the official JSON schema)", async () => {
    const { Validator } = await import("@seriousme/openapi-schema-validator");
    const raw = [...routeTable.raw]; // the Stripe webhook: a raw-body operation
    const doc = buildOpenApi([...routeTable.json, ...raw], { rawBody: new Set(raw) });
    const result = await new Validator().validate(JSON.parse(JSON.stringify(doc)));
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
  });
});

describe("the real table's document, as the gateway serves it", () => {
  let real: TestGateway;
  let doc: any;
  beforeAll(async () => {
    real = await startGateway({ table: routeTable });
    doc = (await request(`${real.url}/openapi.json`)).body;
  });
  afterAll(() => real.stop());

  const queryParams = (op: any) => op.parameters.filter((p: any) => p.in === "query");

  it("lists every sort_field spelling the profiles search takes (the spec's createdAt too)", () => {
    const params = queryParams(doc.paths["/v1/stores/{storeId}/profiles"].get);
    const sortField = params.find((p: any) => p.name === "sort_field");
    expect(sortField.schema.enum).toEqual(expect.arrayContaining(["created_at", "updated_at", "email", "createdAt", "updatedAt"]));
  });

  it("documents ?email_column= on both import routes, and the text/csv body as streamed CSV text", () => {
    for (const path of ["/v1/stores/{storeId}/profile-lists/{id}/profiles/import", "/v1/stores/{storeId}/profiles/import"]) {
      const op = doc.paths[path].post;
      expect(queryParams(op)).toEqual([
        expect.objectContaining({ name: "email_column", in: "query", required: false, schema: expect.objectContaining({ type: "string", minLength: 1 }) }),
      ]);
      expect(queryParams(op)[0].description).toMatch(/CSV column holding the e-mail/);
      expect(Object.keys(op.requestBody.content).sort()).toEqual(["application/json", "text/csv"]);
      const csv = op.requestBody.content["text/csv"].schema;
      expect(csv.type).toBe("string");
      expect(csv.description).toMatch(/UTF-8/);
      expect(csv.description).toMatch(/streamed/);
      expect(csv.description).toMatch(/email_column/);
      expect(csv.description).not.toMatch(/delivered as/);
    }
  });

  it("documents ?token= on confirm and unsubscribe (both take it there), so the body's token is not required", () => {
    for (const action of ["confirm", "unsubscribe"]) {
      const op = doc.paths[`/v1/storefront/{storeId}/profile-lists/{id}/${action}`].post;
      expect(queryParams(op)).toEqual([expect.objectContaining({ name: "token", in: "query", required: false, schema: expect.objectContaining({ type: "string" }) })]);
      expect(queryParams(op)[0].description).toMatch(/query string or the body/);
      expect(op.requestBody.content["application/json"].schema.required ?? []).not.toContain("token");
    }
    expect(doc.paths["/v1/storefront/{storeId}/profile-lists/{id}/confirm"].post.requestBody.required).toBe(false);
    // No other POST/PUT documents query parameters it does not promise.
    const others = Object.entries(doc.paths).flatMap(([path, methods]: [string, any]) =>
      ["post", "put"].filter((m) => methods[m] && queryParams(methods[m]).length > 0).map((m) => `${m} ${path}`),
    );
    expect(others.sort()).toEqual(
      [
        "post /v1/storefront/{storeId}/profile-lists/{id}/confirm",
        "post /v1/storefront/{storeId}/profile-lists/{id}/unsubscribe",
        "post /v1/stores/{storeId}/profile-lists/{id}/profiles/import",
        "post /v1/stores/{storeId}/profiles/import",
      ].sort(),
    );
  });

  it("documents the unsubscribe page: GET with a required ?token=, answering text/html that is not cached or framed", () => {
    const get = doc.paths["/v1/storefront/{storeId}/profile-lists/{id}/unsubscribe"].get;
    expect(get.security).toEqual([]);
    expect(queryParams(get)).toEqual([expect.objectContaining({ name: "token", required: true, schema: expect.objectContaining({ pattern: expect.any(String) }) })]);
    const ok = get.responses["200"];
    expect(Object.keys(ok.content)).toEqual(["text/html"]);
    expect(ok.content["text/html"].schema.type).toBe("string");
    expect(Object.keys(ok.headers)).toEqual(expect.arrayContaining(["Cache-Control", "X-Frame-Options", "Content-Security-Policy"]));
    expect(get.responses["400"]).toEqual({ $ref: "#/components/responses/BadRequest" });
  });

  it("documents the unsubscribe POST's form bodies (with answer=html) and its HTML answer beside the JSON one", () => {
    const post = doc.paths["/v1/storefront/{storeId}/profile-lists/{id}/unsubscribe"].post;
    expect(Object.keys(post.requestBody.content).sort()).toEqual(["application/json", "application/x-www-form-urlencoded", "multipart/form-data"]);
    expect(post.requestBody.content["application/x-www-form-urlencoded"].schema.properties.answer).toMatchObject({ enum: ["html"] });
    expect(post.requestBody.content["application/json"].schema.properties.answer).toBeUndefined();
    expect(Object.keys(post.responses["200"].content).sort()).toEqual(["application/json", "text/html"]);
  });

  it("is a valid OpenAPI 3.1 document (checked against the official JSON schema)", async () => {
    const { Validator } = await import("@seriousme/openapi-schema-validator");
    const result = await new Validator().validate(JSON.parse(JSON.stringify(doc)));
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
  });
});
