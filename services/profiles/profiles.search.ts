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
 * selective search (a text query, or a taxonomy condition on an exact value) reads its matches through
 * an index (email_words, search_values) and pages them in memory while they are few; with many, it walks
 * the sort index, where a page fills quickly (see searchProfiles).
 */
import { isUuid } from "../../shared/ids";
import { normalizeEmail } from "../../shared/contracts/common";
import { escapeRegex, isScanLimit, type Collection, type Filter, type Page, type SortDirection } from "../../shared/storage/port";
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

/** Matches of a selective condition read before the sort index is tried (one read of its index). */
export const PROBE_CANDIDATES = 500;
/**
 * The most matches of a selective condition read and paged in memory, when they are too sparse for a
 * walk of the sort index (2% of a store of 1,000,000 profiles).
 */
export const MAX_CANDIDATES = 20_000;

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
  /** How many matches are read before the sort index is tried, and at most (tests lower them). */
  candidates?: { probe: number; max: number };
}

/**
 * One keyset page of the profiles matching `search`, ordered by the sort field then id.
 *
 * A search with a selective condition (a text query, an exact taxonomy value) first reads the matches
 * of that condition through its index, up to PROBE_CANDIDATES: most searches end there, and are paged
 * in memory. With more matches than that, the sort index is walked (many matches fill a page fast); when
 * the matches are too sparse for the walk (the storage stops it with SCAN_LIMIT), the matches are read
 * on, up to MAX_CANDIDATES, and paged in memory. Only a search with more matches still, and so sparse
 * that a page walks past thousands of other profiles, is refused (400).
 */
export async function searchProfiles(profiles: Collection<ProfileDoc>, req: SearchRequest): Promise<Page<ProfileDoc>> {
  const filter = profileFilter(req.storeId, req.search);
  const sort = profileSort(req.search);
  const { probe, max } = req.candidates ?? { probe: PROBE_CANDIDATES, max: MAX_CANDIDATES };
  const walk = () => profiles.findPage({ filter, sort, limit: req.limit, after: req.after });
  const sources = candidateFilters(filter, req.search).map((filters) => new Candidates(profiles, filters, sort.field));
  if (sources.length === 0) return walk();
  try {
    for (const source of sources) if (await source.collect(probe)) return pageOf(profiles, filter, source, sort, req);
    let tooSparse: unknown;
    try {
      return await walk();
    } catch (err) {
      if (!isScanLimit(err)) throw err;
      tooSparse = err;
    }
    for (const source of sources) if (await source.collect(max)) return pageOf(profiles, filter, source, sort, req);
    throw tooSparse;
  } finally {
    await Promise.all(sources.map((source) => source.close()));
  }
}

/**
 * For each selective condition of the search, the filters whose matches together are the search's
 * matches: the whole filter with that condition's index-served part added at the top level, where the
 * storage plans with it (a text query is two: its e-mail words, and its exact taxonomy value).
 */
function candidateFilters(filter: Filter, search: ProfileSearch): Filter[][] {
  const sources: Filter[][] = [];
  const text = search.query?.trim().toLowerCase();
  if (text)
    sources.push(
      isUuid(text)
        ? [{ ...filter, _id: text }]
        : [
            { ...filter, search_values: text },
            { ...filter, ...emailWordsMatch(text) },
          ],
    );
  for (const tq of search.taxonomy_query ?? []) {
    for (const condition of tq.query) {
      const values = indexedValuesOf(condition);
      if (values) sources.push([{ ...filter, search_values: values.length === 1 ? values[0] : { $in: values } }]);
    }
  }
  return sources;
}

/**
 * The matches of one selective condition, read through its index as a stream and kept as (sort value,
 * id) pairs only, so that reading on to MAX_CANDIDATES holds a few MB at most.
 */
class Candidates {
  readonly keys = new Map<string, unknown>();
  private readonly reads: AsyncIterator<ProfileDoc>[];
  private done = false;

  constructor(
    profiles: Collection<ProfileDoc>,
    filters: Filter[],
    private readonly field: string,
  ) {
    this.reads = filters.map((filter) => profiles.stream(filter)[Symbol.asyncIterator]());
  }

  /** Reads on while there are at most `cap` matches; true once every match is in. */
  async collect(cap: number): Promise<boolean> {
    while (!this.done && this.keys.size <= cap) {
      const next = await this.reads[0].next();
      if (next.done) {
        this.reads.shift();
        this.done = this.reads.length === 0;
      } else this.keys.set(next.value._id, next.value[this.field]);
    }
    return this.done;
  }

  async close(): Promise<void> {
    await Promise.all(this.reads.map((read) => read.return?.()));
  }
}

/** The page after `req.after` of a complete set of matches, its documents read again by id. */
async function pageOf(
  profiles: Collection<ProfileDoc>,
  filter: Filter,
  candidates: Candidates,
  sort: { field: string; direction: SortDirection },
  req: SearchRequest,
): Promise<Page<ProfileDoc>> {
  const order = (a: { value: unknown; id: string }, b: { value: unknown; id: string }) => sort.direction * compareKeys(a.value, a.id, b.value, b.id);
  const after = req.after;
  const rest = [...candidates.keys].map(([id, value]) => ({ id, value })).filter((key) => !after || order(key, after) > 0);
  rest.sort(order);
  const page = rest.slice(0, req.limit);
  if (page.length === 0) return { items: [], hasMore: false };
  // Read again with the whole filter: a profile changed since it was collected is left out, not shown stale.
  const docs = new Map((await profiles.find({ ...filter, _id: { $in: page.map((key) => key.id) } }, { limit: page.length })).map((doc) => [doc._id, doc]));
  const items = page.flatMap((key) => docs.get(key.id) ?? []);
  return { items, hasMore: rest.length > req.limit };
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
