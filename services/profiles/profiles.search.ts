/**
 * `find`: validated params -> a storage filter and a keyset page. Every value lands in the filter wrapped
 * in an operator ($eq, $in, $regex from escapeRegex), so input is always data: an operator-looking value
 * cannot change the query and no input can become a regex bomb.
 *
 * What `query` finds: the profile with that id; profiles whose e-mail, or the part of it from any word
 * on, starts with the text (words split at `. - _ + @`: "jane" finds mary.jane@x.com, "gmail" finds
 * every @gmail.com); and profiles holding it as an indexed taxonomy value. The e-mail part is served by
 * `email_words`, a multikey index of those e-mail suffixes, read as a prefix range.
 *
 * Staying fast at scale: a plain listing walks the { store_id, <sort field> } index from the cursor. A
 * selective search (a text query, or a taxonomy condition on an exact value) first collects the matching
 * ids through indexes (email_words, search_values), and when that set is small pages it in memory; only
 * an unselective search (many matches, so a page fills quickly) walks the sort index.
 */
import { isUuid } from "../../shared/ids";
import { normalizeEmail } from "../../shared/contracts/common";
import { escapeRegex, type Collection, type Filter, type Page, type SortDirection } from "../../shared/storage/port";
import type { ProfileStatus, TaxonomyCondition, TaxonomyQuery } from "../../shared/contracts/profiles";
import type { ProfileDoc } from "./profiles.store";
import { searchValueOf } from "./profiles.taxonomies";

export interface ProfileSearch {
  query?: string;
  taxonomy_query?: TaxonomyQuery[];
  status?: ProfileStatus;
  sort_field: "created_at" | "updated_at" | "email";
  sort_direction: "asc" | "desc";
}

/** Above this many index matches a condition is "unselective" and the sort index is walked instead. */
export const MAX_CANDIDATES = 500;

const SORT_KEYS = { created_at: "created_at", updated_at: "updated_at", email: "email_sort" } as const;

export function profileSort(search: Pick<ProfileSearch, "sort_field" | "sort_direction">): { field: string; direction: SortDirection } {
  return { field: SORT_KEYS[search.sort_field], direction: search.sort_direction === "asc" ? 1 : -1 };
}

export function profileFilter(storeId: string, search: ProfileSearch): Filter {
  // Store (and status) as top-level equalities, so the storage can walk its { store_id, <sort> } index.
  const filter: Filter = { store_id: storeId };
  if (search.status) filter.status = search.status;
  const and: Filter[] = [];
  const text = search.query?.trim();
  if (text) and.push(textFilter(text));
  for (const tq of search.taxonomy_query ?? []) {
    for (const condition of tq.query) {
      and.push({
        taxonomies: {
          $elemMatch: {
            taxonomy_id: { $eq: tq.taxonomy_id },
            fields: { $elemMatch: { key: { $eq: condition.key }, type: { $eq: condition.type }, value: valueMatch(condition) } },
          },
        },
      });
    }
  }
  if (and.length) filter.$and = and;
  return filter;
}

/** Where `emailWordsOf` splits an e-mail into words. */
const WORD_SEPARATORS = /[.\-_+@]/;
/** At most this many suffixes are indexed per e-mail (a hostile "a.a.a.a..." would give one per character). */
const MAX_EMAIL_WORDS = 32;

/**
 * The lowercased e-mail and each part of it that starts at a word: "mary.jane@x.com" gives
 * ["mary.jane@x.com", "jane@x.com", "x.com", "com"]. A prefix of any of them is a search hit.
 */
export function emailWordsOf(lower: string | null): string[] {
  if (!lower) return [];
  const words = new Set([lower]);
  for (let i = 1; i < lower.length && words.size < MAX_EMAIL_WORDS; i++) {
    if (WORD_SEPARATORS.test(lower[i - 1]) && !WORD_SEPARATORS.test(lower[i])) words.add(lower.slice(i));
  }
  return [...words];
}

/** The stored e-mail fields of a profile: as given, lowercased (unique per store), its sort key and search words. */
export function emailFields(email: string | null): Pick<ProfileDoc, "email" | "email_lower" | "email_sort" | "email_words"> {
  const lower = email === null ? null : normalizeEmail(email);
  return { email: email === null ? null : email.trim(), email_lower: lower, email_sort: lower ?? "", email_words: emailWordsOf(lower) };
}

const emailWordsMatch = (lower: string): Filter => ({ email_words: { $regex: `^${escapeRegex(lower)}` } });

/** A UUID matches the id; anything else a prefix of the e-mail from a word on, or an exact indexed taxonomy value. */
function textFilter(text: string): Filter {
  const lower = text.toLowerCase();
  if (isUuid(lower)) return { _id: lower };
  return { $or: [emailWordsMatch(lower), { search_values: { $eq: lower } }] };
}

function valueMatch(c: TaxonomyCondition): Filter {
  switch (c.operation) {
    case "eq":
      return { $eq: c.value };
    case "ne":
      return { $ne: c.value };
    case "gt":
      return { $gt: c.value };
    case "gte":
      return { $gte: c.value };
    case "lt":
      return { $lt: c.value };
    case "lte":
      return { $lte: c.value };
    case "in":
      return { $in: c.value as unknown[] };
    case "contains":
      return { $regex: escapeRegex(String(c.value)) };
  }
}

export interface SearchRequest {
  storeId: string;
  search: ProfileSearch;
  limit: number;
  after?: { value: unknown; id: string };
}

/** One keyset page of the profiles matching `search`, ordered by the sort field then id. */
export async function searchProfiles(profiles: Collection<ProfileDoc>, req: SearchRequest): Promise<Page<ProfileDoc>> {
  const filter = profileFilter(req.storeId, req.search);
  const sort = profileSort(req.search);
  const ids = await candidateIds(profiles, req.storeId, req.search);
  if (ids === null) return profiles.findPage({ filter, sort, limit: req.limit, after: req.after });
  if (ids.size === 0) return { items: [], hasMore: false };

  const docs = await profiles.find({ ...filter, _id: { $in: [...ids] } }, { limit: MAX_CANDIDATES });
  const order = (a: ProfileDoc, b: ProfileDoc) => sort.direction * compareKeys(a[sort.field], a._id, b[sort.field], b._id);
  docs.sort(order);
  const after = req.after;
  const rest = after ? docs.filter((d) => sort.direction * compareKeys(d[sort.field], d._id, after.value, after.id) > 0) : docs;
  return { items: rest.slice(0, req.limit), hasMore: rest.length > req.limit };
}

/**
 * The ids that can match, found through indexes; null when no condition is selective enough to say
 * (then the caller walks the sort index). Every set returned is complete: each is a necessary condition.
 */
async function candidateIds(profiles: Collection<ProfileDoc>, storeId: string, search: ProfileSearch): Promise<Set<string> | null> {
  const sets: Set<string>[] = [];
  const text = search.query?.trim().toLowerCase();
  if (text) {
    const ids = isUuid(text) ? new Set([text]) : await textCandidates(profiles, storeId, text);
    if (ids) sets.push(ids);
  }
  for (const tq of search.taxonomy_query ?? []) {
    for (const condition of tq.query) {
      const values = indexedValuesOf(condition);
      if (!values) continue;
      const ids = await valueCandidates(profiles, storeId, values);
      if (ids) sets.push(ids);
    }
  }
  if (sets.length === 0) return null;
  sets.sort((a, b) => a.size - b.size);
  return new Set([...sets[0]].filter((id) => sets.every((s) => s.has(id))));
}

/** Profiles whose e-mail words start with `text` or that hold `text` as an indexed taxonomy value. */
async function textCandidates(profiles: Collection<ProfileDoc>, storeId: string, text: string): Promise<Set<string> | null> {
  const byValue = await valueCandidates(profiles, storeId, [text]);
  if (!byValue) return null;
  const byEmail = await indexedCandidates(profiles, { store_id: storeId, ...emailWordsMatch(text) });
  if (!byEmail) return null;
  for (const id of byEmail) byValue.add(id);
  return byValue.size > MAX_CANDIDATES ? null : byValue;
}

function valueCandidates(profiles: Collection<ProfileDoc>, storeId: string, values: string[]): Promise<Set<string> | null> {
  return indexedCandidates(profiles, { store_id: storeId, search_values: values.length === 1 ? values[0] : { $in: values } });
}

/** The ids matching an index-served filter, or null when there are more than MAX_CANDIDATES. */
async function indexedCandidates(profiles: Collection<ProfileDoc>, filter: Filter): Promise<Set<string> | null> {
  const docs = await profiles.find(filter, { limit: MAX_CANDIDATES + 1 });
  return docs.length > MAX_CANDIDATES ? null : new Set(docs.map((d) => d._id));
}

/** The search_values a matching profile must hold for an exact-value condition, when they are indexed. */
function indexedValuesOf(c: TaxonomyCondition): string[] | null {
  if (c.type !== "text" && c.type !== "number") return null;
  if (c.operation !== "eq" && c.operation !== "in") return null;
  const raw = c.operation === "in" ? (c.value as unknown[]) : [c.value];
  const values: string[] = [];
  for (const v of raw) {
    const indexed = searchValueOf(v);
    if (indexed === null) return null; // a value the index does not hold: it cannot narrow the search
    values.push(indexed);
  }
  return values;
}

function compareKeys(av: unknown, aid: string, bv: unknown, bid: string): number {
  const c = compareScalar(av, bv);
  if (c !== 0) return c;
  return aid < bid ? -1 : aid > bid ? 1 : 0;
}

function compareScalar(a: unknown, b: unknown): number {
  if (typeof a === "number" && typeof b === "number") return a < b ? -1 : a > b ? 1 : 0;
  const x = String(a ?? "");
  const y = String(b ?? "");
  return x < y ? -1 : x > y ? 1 : 0;
}
