/**
 * The OpenAPI 3.1 document, generated from the route table and the same zod schemas the actions
 * validate with (zod 4's `z.toJSONSchema`, JSON Schema 2020-12 as OpenAPI 3.1 expects), so the docs
 * cannot drift from the code. Built once per table and cached.
 */
import { z } from "zod";
import type { RouteDef } from "../shared/routes/types";
import { ErrorBodySchema } from "./errors";
import { HTML_ANSWER_FIELD, HTML_ANSWER_VALUE, PAGE_HEADERS } from "./pages";
import { pathParams } from "./paths";

type JsonSchema = Record<string, unknown>;

export interface OpenApiOptions {
  title?: string;
  version?: string;
  /** Routes whose body reaches the action as raw text (webhooks), not as parsed JSON. */
  rawBody?: ReadonlySet<RouteDef>;
  /** Routes that also take a `text/csv` body (streamed to the action). */
  csvBody?: ReadonlySet<RouteDef>;
  /** Routes that also take an HTML form body (RFC 8058 one-click unsubscribe; `answer=html` answers a page). */
  formBody?: ReadonlySet<RouteDef>;
}

export interface OpenApiDocument {
  openapi: "3.1.0";
  info: { title: string; version: string; description?: string };
  tags: { name: string }[];
  paths: Record<string, Record<string, unknown>>;
  components: Record<string, Record<string, unknown>>;
}

const cache = new WeakMap<readonly RouteDef[], OpenApiDocument>();

/** The document of a route table, built on first use. */
export function openApiDocument(routes: readonly RouteDef[], options: OpenApiOptions = {}): OpenApiDocument {
  let doc = cache.get(routes);
  if (!doc) {
    doc = buildOpenApi(routes, options);
    cache.set(routes, doc);
  }
  return doc;
}

const SECURITY: Record<RouteDef["auth"], Record<string, string[]>[]> = {
  admin: [{ adminApiKey: [] }],
  profile: [{ profileToken: [] }],
  "optional-profile": [{ profileToken: [] }, {}],
  public: [],
};

const ERROR_RESPONSES = {
  BadRequest: "The request is invalid (`VALIDATION_ERROR`)",
  Unauthenticated: "Missing or invalid credentials (`UNAUTHENTICATED`)",
  Forbidden: "The credentials are not valid for this store (`FORBIDDEN`)",
  NotFound: "No such route or object (`NOT_FOUND`)",
  Conflict: "The change conflicts with the current state, e.g. an e-mail another profile has or a merge in progress (`CONFLICT`)",
  PayloadTooLarge: "The body exceeds the size limit (`PAYLOAD_TOO_LARGE`)",
  UnsupportedMediaType: "The body is not `application/json` (`UNSUPPORTED_MEDIA_TYPE`)",
  RateLimited: "Too many requests from this client (`RATE_LIMITED`); see `Retry-After`",
  Internal: "Unexpected failure (`INTERNAL`); no detail is disclosed",
  ServiceUnavailable: "A service behind the gateway is unavailable (`SERVICE_UNAVAILABLE`); see `Retry-After`",
} as const;

export function buildOpenApi(routes: readonly RouteDef[], options: OpenApiOptions = {}): OpenApiDocument {
  const schemas: Record<string, unknown> = {};
  const convert = (schema: z.ZodType, io: "input" | "output") => toJsonSchema(schema, io, schemas);
  schemas.Error = convert(ErrorBodySchema, "output");

  const paths: OpenApiDocument["paths"] = {};
  const tags: string[] = [];
  const operationIds = new Set<string>();

  for (const route of routes) {
    if (!tags.includes(route.tag)) tags.push(route.tag);
    const params = route.params ? convert(route.params, "input") : undefined;
    const pathNames = pathParams(route.path);
    const pathParamNames = new Set(pathNames.map((p) => p.param));
    const hasBody = route.method === "POST" || route.method === "PUT";

    const parameters: unknown[] = pathNames.map(({ name, param }) => ({
      name,
      in: "path",
      required: true,
      schema: propertiesOf(params)[param] ?? (name === "storeId" ? { type: "string", format: "uuid" } : { type: "string" }),
    }));
    if (!hasBody && params) parameters.push(...queryParameters(params, pathParamNames));
    // A POST/PUT's fields that its route line says also travel in the query string (`?token=`, `?email_column=`).
    if (hasBody && params && route.query)
      parameters.push(...queryParameters(params, pathParamNames, new Set(route.query), "; in the query string or the body (the query string wins)"));

    const operation: Record<string, unknown> = {
      operationId: uniqueOperationId(route, operationIds),
      summary: route.summary,
      tags: [route.tag],
      security: SECURITY[route.auth],
      parameters,
      responses: responsesOf(route, hasBody, convert, options),
    };
    if (route.sdk) operation.description = `SDK: \`${route.sdk}\``;
    const body = hasBody ? requestBodyOf(route, params, pathParamNames, options) : undefined;
    if (body) operation.requestBody = body;

    paths[route.path] ??= {};
    paths[route.path][route.method.toLowerCase()] = operation;
  }

  return {
    openapi: "3.1.0",
    info: {
      title: options.title ?? "Store CRM API",
      version: options.version ?? "1.0.0",
      description: "Customer profiles and passwordless profile login of online stores. JSON in and out, snake_case fields, unix-second timestamps.",
    },
    tags: tags.map((name) => ({ name })),
    paths,
    components: {
      schemas,
      securitySchemes: {
        adminApiKey: { type: "http", scheme: "bearer", description: "An admin API key of the store (or the platform key, valid for every store)" },
        profileToken: { type: "http", scheme: "bearer", bearerFormat: "JWT", description: "A profile session's access_token" },
      },
      headers: {
        RequestId: { description: "The caller's x-request-id when sane, else a fresh one", schema: { type: "string" } },
        RetryAfter: { description: "Seconds to wait before retrying", schema: { type: "integer" } },
      },
      responses: Object.fromEntries(
        Object.entries(ERROR_RESPONSES).map(([name, description]) => {
          const headers: Record<string, unknown> = { "X-Request-Id": { $ref: "#/components/headers/RequestId" } };
          if (name === "RateLimited" || name === "ServiceUnavailable") headers["Retry-After"] = { $ref: "#/components/headers/RetryAfter" };
          return [name, { description, headers, content: { "application/json": { schema: { $ref: "#/components/schemas/Error" } } } }];
        }),
      ),
    },
  };
}

/** The headers of an HTML page (see gateway/pages.ts), as documented. */
const PAGE_HEADER_DOCS = {
  "Cache-Control": { description: `\`${PAGE_HEADERS["Cache-Control"]}\`: the page's URL carries a token`, schema: { type: "string" } },
  "X-Frame-Options": { description: `\`${PAGE_HEADERS["X-Frame-Options"]}\` (and CSP \`frame-ancestors 'none'\`): never framed`, schema: { type: "string" } },
  "Content-Security-Policy": { description: "No script, no external assets; the form posts to the same origin only", schema: { type: "string" } },
};

const HTML_PAGE = { schema: { type: "string", description: "A self-contained HTML page (no script, no external assets)" } };

function responsesOf(route: RouteDef, hasBody: boolean, convert: (s: z.ZodType, io: "input" | "output") => JsonSchema, options: OpenApiOptions) {
  const status = route.status ?? 200;
  const html = route.answers === "html";
  const success: Record<string, unknown> = {
    description: status === 204 ? "No content" : html ? "An HTML page (`text/html; charset=utf-8`)" : "Success",
    headers: { "X-Request-Id": { $ref: "#/components/headers/RequestId" }, ...(html ? PAGE_HEADER_DOCS : {}) },
  };
  if (status !== 204) {
    success.content = html ? { "text/html": HTML_PAGE } : { "application/json": { schema: route.response ? convert(route.response, "output") : {} } };
  }
  if (options.formBody?.has(route) && status !== 204) {
    // The unsubscribe page's own form post (`answer=html`) gets a page back; every other caller the JSON.
    success.description = `Success: JSON, or an HTML "You are unsubscribed" page (\`text/html\`, not cached, not framed) for a form body with \`${HTML_ANSWER_FIELD}=${HTML_ANSWER_VALUE}\``;
    success.content = { ...(success.content as Record<string, unknown>), "text/html": HTML_PAGE };
  }

  const ref = (name: keyof typeof ERROR_RESPONSES) => ({ $ref: `#/components/responses/${name}` });
  const extra = new Set(route.errors ?? []);
  const responses: Record<string, unknown> = { [String(status)]: success, "400": ref("BadRequest") };
  if (route.auth !== "public" || extra.has(401)) responses["401"] = ref("Unauthenticated");
  if (route.auth === "admin" || extra.has(403)) responses["403"] = ref("Forbidden");
  responses["404"] = ref("NotFound");
  if (extra.has(409)) responses["409"] = ref("Conflict");
  if (hasBody) {
    responses["413"] = ref("PayloadTooLarge");
    responses["415"] = ref("UnsupportedMediaType");
  }
  if (!route.unlimited) responses["429"] = ref("RateLimited");
  responses["500"] = ref("Internal");
  responses["503"] = route.unavailableResponse
    ? {
        description: "Some services are unavailable; each is named",
        headers: { "Retry-After": { $ref: "#/components/headers/RetryAfter" } },
        content: { "application/json": { schema: convert(route.unavailableResponse, "output") } },
      }
    : ref("ServiceUnavailable");
  return responses;
}

function requestBodyOf(route: RouteDef, params: JsonSchema | undefined, pathNames: Set<string>, options: OpenApiOptions) {
  if (options.rawBody?.has(route)) {
    return {
      required: true,
      description: "Delivered to the action byte for byte (signature checks need the exact payload)",
      content: { "application/json": { schema: { type: "object" } } },
    };
  }
  if (!params) return undefined;
  // A field that may come in the query string instead (`route.query`) is not required in the body.
  const schema = withoutRequired(withoutProperties(params, pathNames), new Set(route.query ?? []));
  if (isEmptyObjectSchema(schema)) return undefined;
  const content: Record<string, unknown> = { "application/json": { schema } };
  if (options.csvBody?.has(route)) {
    const column = route.query?.includes("email_column") ? "; the e-mail column is `email` unless the `email_column` query parameter names another" : "";
    content["text/csv"] = {
      schema: {
        type: "string",
        description: `CSV text in UTF-8 with a header row (another \`charset\` is a 415), streamed to the import rather than buffered, up to \`IMPORT_BODY_LIMIT\`${column}`,
      },
    };
  }
  if (options.formBody?.has(route)) {
    const form = withProperty(schema, HTML_ANSWER_FIELD, {
      type: "string",
      enum: [HTML_ANSWER_VALUE],
      description: "sent by the unsubscribe page's own form: the answer is an HTML page instead of JSON",
    });
    content["application/x-www-form-urlencoded"] = { schema: form };
    content["multipart/form-data"] = { schema: form };
  }
  return { required: requiredOf(schema).length > 0 || Array.isArray(schema.anyOf), content };
}

/**
 * Query parameters of a GET/DELETE: the params' properties that are not path parameters. With `only`, those
 * properties of a POST/PUT (never required: they may come in the body instead; `note` says so).
 */
function queryParameters(params: JsonSchema, pathNames: Set<string>, only?: Set<string>, note = ""): unknown[] {
  const required = new Set(only ? [] : requiredOf(params));
  const properties = propertiesOf(params);
  if (only) for (const name of only) if (!(name in properties)) throw new Error(`Route table: query parameter "${name}" is not a field of the route's params`);
  return Object.entries(properties)
    .filter(([name]) => !pathNames.has(name) && (!only || only.has(name)))
    .map(([name, schema]) => {
      const parameter: Record<string, unknown> = { name, in: "query", required: required.has(name) };
      const type = (schema as JsonSchema).type;
      // Arrays and objects travel JSON-encoded in the query string (what the public SDK sends).
      if (type === "array" || type === "object") parameter.content = { "application/json": { schema } };
      else parameter.schema = schema;
      const description = `${(schema as JsonSchema).description ?? (note ? `the same as the body's \`${name}\`` : "")}${note}`;
      if (description) parameter.description = description;
      return parameter;
    });
}

/** The field names a params schema accepts (across union branches). */
export function inputFieldNames(schema: z.ZodType): Set<string> {
  return new Set(Object.keys(propertiesOf(toJsonSchema(schema, "input", {}))));
}

/** Properties of an object schema, or the union of them across `anyOf`/`oneOf` branches. */
function propertiesOf(schema: JsonSchema | undefined): Record<string, unknown> {
  if (!schema) return {};
  if (isObject(schema.properties)) return schema.properties;
  const branches = (schema.anyOf ?? schema.oneOf ?? schema.allOf) as JsonSchema[] | undefined;
  return Array.isArray(branches) ? Object.assign({}, ...branches.map((b) => propertiesOf(b))) : {};
}

function requiredOf(schema: JsonSchema): string[] {
  return Array.isArray(schema.required) ? (schema.required as string[]) : [];
}

function withoutProperties(schema: JsonSchema, names: Set<string>): JsonSchema {
  for (const key of ["anyOf", "oneOf", "allOf"]) {
    if (Array.isArray(schema[key])) return { ...schema, [key]: (schema[key] as JsonSchema[]).map((b) => withoutProperties(b, names)) };
  }
  if (!isObject(schema.properties)) return schema;
  const out: JsonSchema = { ...schema, properties: Object.fromEntries(Object.entries(schema.properties).filter(([k]) => !names.has(k))) };
  const required = requiredOf(schema).filter((k) => !names.has(k));
  if (required.length) out.required = required;
  else delete out.required;
  return out;
}

/** The schema (or each union branch) with `names` no longer required. */
function withoutRequired(schema: JsonSchema, names: Set<string>): JsonSchema {
  if (names.size === 0) return schema;
  for (const key of ["anyOf", "oneOf", "allOf"]) {
    if (Array.isArray(schema[key])) return { ...schema, [key]: (schema[key] as JsonSchema[]).map((b) => withoutRequired(b, names)) };
  }
  const required = requiredOf(schema).filter((k) => !names.has(k));
  const out: JsonSchema = { ...schema, required };
  if (required.length === 0) delete out.required;
  return out;
}

/** The object schema with one more (optional) property. */
function withProperty(schema: JsonSchema, name: string, property: JsonSchema): JsonSchema {
  if (!isObject(schema.properties)) return schema;
  return { ...schema, properties: { ...schema.properties, [name]: property } };
}

function isEmptyObjectSchema(schema: JsonSchema): boolean {
  return schema.type === "object" && isObject(schema.properties) && Object.keys(schema.properties).length === 0;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function uniqueOperationId(route: RouteDef, taken: Set<string>): string {
  let id = route.action;
  if (taken.has(id)) id = `${route.action}.${route.method.toLowerCase()}`;
  for (let n = 2; taken.has(id); n++) id = `${route.action}.${route.method.toLowerCase()}${n}`;
  taken.add(id);
  return id;
}

/**
 * A zod schema as JSON Schema 2020-12. Named or recursive parts that zod puts in `$defs` move to
 * `components.schemas`, since a `#/$defs/...` reference would resolve against the document root.
 */
function toJsonSchema(schema: z.ZodType, io: "input" | "output", components: Record<string, unknown>): JsonSchema {
  let json: JsonSchema;
  try {
    json = z.toJSONSchema(schema, { io, unrepresentable: "any" }) as JsonSchema;
  } catch {
    return { description: "(schema not representable as JSON Schema)" };
  }
  delete json.$schema;
  const defs = json.$defs as Record<string, unknown> | undefined;
  delete json.$defs;
  if (defs) for (const [name, def] of Object.entries(defs)) components[name] ??= rewriteRefs(def);
  return rewriteRefs(json) as JsonSchema;
}

function rewriteRefs(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(rewriteRefs);
  if (!isObject(value)) return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    out[k] = k === "$ref" && typeof v === "string" && v.startsWith("#/$defs/") ? `#/components/schemas/${v.slice(8)}` : rewriteRefs(v);
  }
  return out;
}
