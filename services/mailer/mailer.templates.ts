/**
 * A store's e-mail templates: create, find, get, update, delete (with its durable event), preview, and
 * the lookups other services make (is it usable; render it for a send). Plain functions over explicit
 * dependencies; the sources are checked when saved (template-engine.ts) and every change bumps the
 * template's version, which is what the compiled-template cache is keyed by.
 */
import type { z } from "zod";
import type { DurableEventPayload } from "../../shared/contracts/events";
import type { EmailTemplate, MailerActions, RenderedTemplate } from "../../shared/contracts/mailer";
import { decodeCursor, encodeCursor } from "../../shared/cursor";
import { uuidv7 } from "../../shared/ids";
import { escapeRegex, isDuplicateKey, type Filter } from "../../shared/storage/port";
import { MailerErrors } from "./mailer.errors";
import { type EmailTemplateDoc, type MailerStore, TEMPLATE_KEY_INDEX } from "./mailer.store";
import { type RenderMode, sourceProblem, type TemplateCache, TemplateRenderError } from "./template-engine";

export interface TemplateDeps {
  store: MailerStore;
  cache: TemplateCache;
  events: { templateDeleted(payload: DurableEventPayload<"email-template.deleted">): Promise<void> };
  log: { warn(message: string): void };
  /** Unix seconds. */
  now(): number;
}

type Params<K extends keyof typeof MailerActions> = z.infer<(typeof MailerActions)[K]>;

export interface Page<T> {
  items: T[];
  cursor: string | null;
}

/** The EmailTemplate wire object (the stored version and search words stay inside). */
export function toEmailTemplate(doc: EmailTemplateDoc): EmailTemplate {
  return {
    id: doc._id,
    store_id: doc.store_id,
    key: doc.key,
    name: doc.name,
    subject: doc.subject,
    html: doc.html,
    text: doc.text,
    status: doc.status,
    created_at: doc.created_at,
    updated_at: doc.updated_at,
  };
}

/** At most this many name words are indexed per template. */
const MAX_NAME_WORDS = 32;

/** The lowercased key, the lowercased name and each word of it: a prefix of any of them finds the template. */
export function searchWordsOf(key: string, name: string): string[] {
  const lowerName = name.toLowerCase();
  const words = lowerName.split(/[\s.,;:!?()[\]{}"'/_-]+/).filter(Boolean);
  return [...new Set([key.toLowerCase(), lowerName, ...words.slice(0, MAX_NAME_WORDS)])];
}

/** A 400 naming the first source field that does not compile. */
function checkSources(sources: Partial<Record<"subject" | "html" | "text", string | null>>): void {
  for (const field of ["subject", "html", "text"] as const) {
    const source = sources[field];
    if (typeof source !== "string") continue;
    const problem = sourceProblem(source);
    if (problem) throw MailerErrors.templateDoesNotCompile(field, problem);
  }
}

function findTemplate(deps: TemplateDeps, storeId: string, id: string): Promise<EmailTemplateDoc | null> {
  return deps.store.templates.findOne({ _id: id, store_id: storeId });
}

async function requireTemplate(deps: TemplateDeps, storeId: string, id: string): Promise<EmailTemplateDoc> {
  const doc = await findTemplate(deps, storeId, id);
  if (!doc) throw MailerErrors.templateNotFound();
  return doc;
}

export async function createTemplate(deps: TemplateDeps, p: Params<"createTemplate">): Promise<EmailTemplate> {
  checkSources(p);
  const now = deps.now();
  const name = p.name ?? p.key;
  const doc: EmailTemplateDoc = {
    _id: uuidv7(),
    store_id: p.store_id,
    key: p.key,
    name,
    subject: p.subject,
    html: p.html,
    text: p.text ?? null,
    status: p.status ?? "active",
    version: 1,
    search_words: searchWordsOf(p.key, name),
    created_at: now,
    updated_at: now,
  };
  try {
    await deps.store.templates.insertOne(doc);
  } catch (err) {
    if (isDuplicateKey(err, TEMPLATE_KEY_INDEX)) throw MailerErrors.templateKeyTaken();
    throw err;
  }
  return toEmailTemplate(doc);
}

export async function getTemplate(deps: TemplateDeps, p: Params<"getTemplate">): Promise<EmailTemplate> {
  return toEmailTemplate(await requireTemplate(deps, p.store_id, p.id));
}

/**
 * A keyset page, newest first. Every filter is served by an index: `ids` by the primary key, `query` by
 * the { store_id, search_words } range, `status` by { store_id, status, created_at }.
 */
export async function findTemplates(deps: TemplateDeps, p: Params<"findTemplates">): Promise<Page<EmailTemplate>> {
  const query = p.query?.trim().toLowerCase() || undefined;
  const bound = { scope: "mailer.findTemplates", store_id: p.store_id, ids: p.ids, status: p.status, query };
  const after = p.cursor ? decodeCursor(p.cursor, bound) : undefined;
  const filter: Filter = { store_id: p.store_id };
  if (p.status) filter.status = p.status;
  if (p.ids) filter._id = { $in: p.ids };
  if (query) filter.search_words = { $regex: `^${escapeRegex(query)}` };
  const page = await deps.store.templates.findPage({ filter, sort: { field: "created_at", direction: -1 }, limit: p.limit, after });
  const items = withinPageBytes(page.items);
  const hasMore = page.hasMore || items.length < page.items.length;
  const last = items[items.length - 1];
  return {
    items: items.map(toEmailTemplate),
    cursor: hasMore && last ? encodeCursor({ value: last.created_at, id: last._id }, bound) : null,
  };
}

/** The sources one page may carry: an answer crosses NATS, whose messages are capped at 1 MB (deploy/nats.conf). */
const PAGE_SOURCE_BYTES = 512 * 1024;

/** The first templates whose sources fit in PAGE_SOURCE_BYTES (always at least one); the rest come with the next page. */
function withinPageBytes(docs: EmailTemplateDoc[]): EmailTemplateDoc[] {
  let bytes = 0;
  for (const [i, doc] of docs.entries()) {
    bytes += Buffer.byteLength(doc.subject) + Buffer.byteLength(doc.html) + Buffer.byteLength(doc.text ?? "");
    if (bytes > PAGE_SOURCE_BYTES && i > 0) return docs.slice(0, i);
  }
  return docs;
}

export async function updateTemplate(deps: TemplateDeps, p: Params<"updateTemplate">): Promise<EmailTemplate> {
  checkSources(p);
  const current = await requireTemplate(deps, p.store_id, p.id);
  const set: Partial<EmailTemplateDoc> = {};
  for (const field of ["key", "name", "subject", "html", "status"] as const) {
    if (p[field] !== undefined && p[field] !== current[field]) Object.assign(set, { [field]: p[field] });
  }
  if (p.text !== undefined && p.text !== current.text) set.text = p.text;
  if (Object.keys(set).length === 0) return toEmailTemplate(current);
  if (set.key !== undefined || set.name !== undefined) set.search_words = searchWordsOf(set.key ?? current.key, set.name ?? current.name);
  set.updated_at = deps.now();
  let updated: EmailTemplateDoc | null;
  try {
    updated = await deps.store.templates.findOneAndUpdate({ _id: p.id, store_id: p.store_id }, { $set: set, $inc: { version: 1 } });
  } catch (err) {
    if (isDuplicateKey(err, TEMPLATE_KEY_INDEX)) throw MailerErrors.templateKeyTaken();
    throw err;
  }
  deps.cache.drop(p.id);
  if (!updated) throw MailerErrors.templateNotFound(); // deleted meanwhile
  return toEmailTemplate(updated);
}

/**
 * Deletes the template and publishes `email-template.deleted`. A pending record is written first and
 * removed once the event is out: when the bus fails after the delete, the caller gets a 503, and asking
 * again (or the next start) publishes the event that was owed.
 */
export async function deleteTemplate(deps: TemplateDeps, p: Params<"deleteTemplate">): Promise<{ deleted: true }> {
  const doc = await findTemplate(deps, p.store_id, p.id);
  if (!doc) {
    const owed = await deps.store.pendingDeletes.findOne({ _id: p.id, store_id: p.store_id });
    if (!owed) throw MailerErrors.templateNotFound();
  } else {
    await deps.store.pendingDeletes.updateOne({ _id: p.id }, { $setOnInsert: { store_id: p.store_id, created_at: deps.now() } }, { upsert: true });
    await deps.store.templates.deleteOne({ _id: p.id, store_id: p.store_id });
    deps.cache.drop(p.id);
  }
  try {
    await publishDeleted(deps, p.store_id, p.id);
  } catch (err) {
    deps.log.warn(`email-template.deleted for template ${p.id} not published yet (${(err as Error)?.message ?? err}); it stays owed`);
    throw MailerErrors.deleteEventPending();
  }
  return { deleted: true };
}

async function publishDeleted(deps: TemplateDeps, storeId: string, id: string): Promise<void> {
  await deps.events.templateDeleted({ store_id: storeId, template_id: id });
  await deps.store.pendingDeletes.deleteOne({ _id: id });
}

/** Publishes the events of deletes that a crash or a bus outage left owed (at start-up). */
export async function publishOwedDeletes(deps: TemplateDeps): Promise<number> {
  let published = 0;
  for await (const owed of deps.store.pendingDeletes.stream({})) {
    await publishDeleted(deps, owed.store_id, owed._id);
    published++;
  }
  return published;
}

/**
 * Renders with the cache; a missing variable (strict), a render over its budget or another render failure
 * is a 400 naming `vars` (the last two marked TEMPLATE_RENDER_FAILED).
 */
function renderTemplate(deps: TemplateDeps, doc: EmailTemplateDoc, mode: RenderMode, vars: Record<string, unknown>): RenderedTemplate {
  try {
    return deps.cache.render(doc, mode, vars);
  } catch (err) {
    if (!(err instanceof TemplateRenderError)) throw err;
    if (err.missing !== undefined) throw MailerErrors.templateVarsMissing(err.message);
    throw err.tooMuch ? MailerErrors.templateRendersTooMuch(err.message) : MailerErrors.templateRenderFailed(err.message);
  }
}

/** A preview renders strictly (a missing variable is a 400), whatever the template's status. */
export async function previewTemplate(deps: TemplateDeps, p: Params<"previewTemplate">): Promise<RenderedTemplate> {
  return renderTemplate(deps, await requireTemplate(deps, p.store_id, p.id), "strict", p.vars);
}

const usable = (doc: EmailTemplateDoc | null): doc is EmailTemplateDoc => doc?.status === "active";

export async function templateStatus(deps: TemplateDeps, p: Params<"templateStatus">): Promise<{ usable: boolean; archived: boolean }> {
  const doc = await findTemplate(deps, p.store_id, p.template_id);
  return { usable: usable(doc), archived: doc?.status === "archived" };
}

/**
 * The store's active template rendered leniently for a real send (a missing variable is ""); 404
 * TEMPLATE_NOT_FOUND when the store has no such template, 409 TEMPLATE_ARCHIVED when it is archived.
 */
export async function renderForSend(deps: TemplateDeps, storeId: string, templateId: string, vars: Record<string, unknown>): Promise<RenderedTemplate> {
  const doc = await findTemplate(deps, storeId, templateId);
  if (doc?.status === "archived") throw MailerErrors.templateArchived();
  if (!usable(doc)) throw MailerErrors.templateNotFound();
  return renderTemplate(deps, doc, "lenient", vars);
}
