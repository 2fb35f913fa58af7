/**
 * The list rules: create, get, find (ids, status, a key/name prefix through the `search_words` index),
 * update (the type's kind never changes), and whether a confirmation list's template is usable.
 */
import type { ProfileListStatus, ProfileListType, ProfileListTypeInput } from "../../shared/contracts/profile-lists";
import { decodeCursor, encodeCursor } from "../../shared/cursor";
import { uuidv7 } from "../../shared/ids";
import { escapeRegex, isDuplicateKey, type Filter } from "../../shared/storage/port";
import type { Deps, Page } from "./deps";
import { ProfileListsErrors } from "./profile-lists.errors";
import { toProfileList } from "./profile-lists.mapper";
import type { ListDoc } from "./profile-lists.store";
import type { ProfileList } from "../../shared/contracts/profile-lists";

/** Where search words start: after a separator, or at a lower-to-upper case change is not split (keys are typed as written). */
const WORD_SEPARATORS = /[\s._\-+/:,]/;
const MAX_WORDS = 48;
/** Above this many index matches a text query walks the sort index instead of paging in memory. */
const MAX_CANDIDATES = 500;

/** The lowercased key and name and each part of them from a word on: a prefix of any is a hit. */
export function searchWordsOf(key: string, name: string): string[] {
  const words = new Set<string>();
  for (const text of [key.toLowerCase(), name.toLowerCase().trim()]) {
    if (!text) continue;
    words.add(text);
    for (let i = 1; i < text.length && words.size < MAX_WORDS; i++) {
      if (WORD_SEPARATORS.test(text[i - 1]) && !WORD_SEPARATORS.test(text[i])) words.add(text.slice(i));
    }
  }
  return [...words];
}

export async function requireList(deps: Deps, storeId: string, id: string): Promise<ListDoc> {
  const doc = await deps.store.lists.findOne({ _id: id, store_id: storeId });
  if (!doc) throw ProfileListsErrors.listNotFound();
  return doc;
}

/** The stored type: prices get server-made ids where absent; a confirmation list keeps a null template. */
function typeOf(input: ProfileListTypeInput): ProfileListType {
  if (input.type === "standard") return { type: "standard" };
  if (input.type === "confirmation") return { type: "confirmation", confirm_template_id: input.confirm_template_id ?? null };
  return {
    type: "paid",
    prices: input.prices.map((p) => ({
      id: p.id ?? uuidv7(),
      currency: p.currency,
      amount: p.amount,
      ...(p.interval ? { interval: { ...p.interval } } : {}),
      providers: p.providers.map((s) => ({ type: s.type, id: s.id })),
    })),
  };
}

/**
 * Whether a confirmation list's template is missing, asked of the mailer. An archived template is not
 * missing (it can be made active again: a subscribe meanwhile is refused, never turned into single
 * opt-in). A mailer that does not answer counts as "usable": the list stays double opt-in, and the first
 * subscribe finds out for sure (the mailer's TEMPLATE_NOT_FOUND then marks the list and the subscription
 * goes ahead as single opt-in).
 */
export async function templateMissing(deps: Deps, storeId: string, type: ProfileListType): Promise<boolean> {
  if (type.type !== "confirmation") return false;
  if (!type.confirm_template_id) return true;
  if (await wasDeleted(deps, storeId, type.confirm_template_id)) return true;
  try {
    const { usable, archived } = await deps.mailer.templateStatus({ store_id: storeId, template_id: type.confirm_template_id });
    return !usable && !archived;
  } catch (err) {
    deps.logger.warn(`mailer.templateStatus did not answer (${(err as Error)?.message}); the list's template is assumed usable until a send says otherwise`);
    return false;
  }
}

export async function createList(
  deps: Deps,
  p: { store_id: string; key: string; name?: string; description?: string | null; type: ProfileListTypeInput },
): Promise<ProfileList> {
  const now = deps.now();
  const type = typeOf(p.type);
  const name = p.name ?? p.key;
  const doc: ListDoc = {
    _id: uuidv7(),
    store_id: p.store_id,
    key: p.key,
    name,
    description: p.description ?? null,
    status: "active",
    type,
    member_count: 0,
    confirm_template_missing: await templateMissing(deps, p.store_id, type),
    search_words: searchWordsOf(p.key, name),
    created_at: now,
    updated_at: now,
  };
  try {
    await deps.store.lists.insertOne(doc);
  } catch (err) {
    if (isDuplicateKey(err)) throw ProfileListsErrors.keyTaken();
    throw err;
  }
  return toProfileList(await markIfDeletedMeanwhile(deps, doc));
}

export async function getList(deps: Deps, p: { store_id: string; id: string }): Promise<ProfileList> {
  return toProfileList(await requireList(deps, p.store_id, p.id));
}

export async function updateList(
  deps: Deps,
  p: { store_id: string; id: string; key?: string; name?: string; description?: string | null; status?: ProfileListStatus; type?: ProfileListTypeInput },
): Promise<ProfileList> {
  const current = await requireList(deps, p.store_id, p.id);
  const set: Partial<ListDoc> = { updated_at: deps.now() };
  if (p.type !== undefined) {
    if (p.type.type !== current.type.type) throw ProfileListsErrors.typeImmutable();
    set.type = typeOf(p.type);
    if (set.type.type === "confirmation") set.confirm_template_missing = await templateMissing(deps, p.store_id, set.type);
  }
  if (p.key !== undefined) set.key = p.key;
  if (p.name !== undefined) set.name = p.name;
  if (p.description !== undefined) set.description = p.description;
  if (p.status !== undefined) set.status = p.status;
  if (p.key !== undefined || p.name !== undefined) set.search_words = searchWordsOf(set.key ?? current.key, set.name ?? current.name);
  let updated: ListDoc | null;
  try {
    // member_count is never $set here: joins and leaves $inc it concurrently.
    updated = await deps.store.lists.findOneAndUpdate({ _id: p.id, store_id: p.store_id }, { $set: set });
  } catch (err) {
    if (isDuplicateKey(err)) throw ProfileListsErrors.keyTaken();
    throw err;
  }
  if (!updated) throw ProfileListsErrors.listNotFound();
  return toProfileList(await markIfDeletedMeanwhile(deps, updated));
}

export async function findLists(
  deps: Deps,
  p: { store_id: string; ids?: string[]; status?: ProfileListStatus; query?: string; limit: number; cursor?: string },
): Promise<Page<ProfileList>> {
  const query = p.query?.trim().toLowerCase() || undefined;
  const bound = { scope: "profile-lists.find", store_id: p.store_id, ids: p.ids, status: p.status, query };
  const after = p.cursor ? decodeCursor(p.cursor, bound) : undefined;
  const filter: Filter = { store_id: p.store_id };
  if (p.status) filter.status = p.status;
  if (p.ids) filter._id = { $in: p.ids };
  if (query) filter.search_words = { $regex: `^${escapeRegex(query)}` };
  const sort = { field: "created_at", direction: -1 as const };

  let page: { items: ListDoc[]; hasMore: boolean };
  const candidates = query && !p.ids ? await deps.store.lists.find({ store_id: p.store_id, search_words: filter.search_words }, { limit: MAX_CANDIDATES + 1 }) : null;
  if (candidates && candidates.length <= MAX_CANDIDATES) {
    // A selective query: the index gave every match; page them in memory (newest first, then id).
    const newestFirst = (a: { created_at: number; _id: string }, b: { created_at: number; _id: string }) =>
      b.created_at - a.created_at || (a._id < b._id ? 1 : a._id > b._id ? -1 : 0);
    const matching = candidates.filter((d) => !p.status || d.status === p.status).sort(newestFirst);
    const rest = after ? matching.filter((d) => newestFirst(d, { created_at: after.value as number, _id: after.id }) > 0) : matching;
    page = { items: rest.slice(0, p.limit), hasMore: rest.length > p.limit };
  } else {
    page = await deps.store.lists.findPage({ filter, sort, limit: p.limit, after });
  }
  const last = page.items[page.items.length - 1];
  return { items: page.items.map(toProfileList), cursor: page.hasMore && last ? encodeCursor({ value: last.created_at, id: last._id }, bound) : null };
}

function wasDeleted(deps: Deps, storeId: string, templateId: string): Promise<boolean> {
  return deps.store.deletedTemplates.findOne({ _id: `${storeId}:${templateId}`, store_id: storeId }).then(Boolean);
}

/**
 * A list just saved with a template the mailer answered for may have raced the template's deletion event:
 * the event records the deletion before it marks lists, so a save that missed the marking sees the record.
 */
async function markIfDeletedMeanwhile(deps: Deps, doc: ListDoc): Promise<ListDoc> {
  if (doc.type.type !== "confirmation" || !doc.type.confirm_template_id || doc.confirm_template_missing) return doc;
  if (!(await wasDeleted(deps, doc.store_id, doc.type.confirm_template_id))) return doc;
  await markTemplateDeleted(deps, { store_id: doc.store_id, template_id: doc.type.confirm_template_id });
  return { ...doc, confirm_template_missing: true };
}

/** `email-template.deleted`: every confirmation list of the store that used the template falls back to single opt-in. */
export async function markTemplateDeleted(deps: Deps, p: { store_id: string; template_id: string }): Promise<number> {
  await deps.store.deletedTemplates.updateOne(
    { _id: `${p.store_id}:${p.template_id}`, store_id: p.store_id },
    { $setOnInsert: { deleted_at: deps.now() } },
    { upsert: true },
  );
  const result = await deps.store.lists.updateMany(
    { store_id: p.store_id, "type.confirm_template_id": p.template_id, confirm_template_missing: false },
    { $set: { confirm_template_missing: true, updated_at: deps.now() } },
  );
  return result.modified;
}
