/**
 * `find`: validated params -> a storage filter and a keyset page. Every value lands in the filter wrapped
 * in an operator ($eq, $in, $regex from escapeRegex), so input is always data: an operator-looking value
 * cannot change the query and no input can become a regex bomb.
 *
 * Staying fast at scale: a plain listing walks the { store_id, <sort field> } index from the cursor. A
 * selective search (a text query, or a taxonomy condition on an exact value) first collects the matching
 * ids through indexes (the e-mail order, the search_values index), and when that set is small pages it in
 * memory; only an unselective search (many matches, so a page fills quickly) walks the sort index.
 */
import { isUuid } from "../../shared/ids";
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

/** A UUID matches the id; anything else an e-mail prefix or an exact indexed taxonomy value. */
function textFilter(text: string): Filter {
  const lower = text.toLowerCase();
  if (isUuid(lower)) return { _id: lower };
  return { $or: [{ email_lower: { $regex: `^${escapeRegex(lower)}` } }, { search_values: { $eq: lower } }] };
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

/** Profiles whose e-mail starts with `text` or that hold `text` as an indexed taxonomy value. */
async function textCandidates(profiles: Collection<ProfileDoc>, storeId: string, text: string): Promise<Set<string> | null> {
  const byValue = await valueCandidates(profiles, storeId, [text]);
  if (!byValue) return null;
  const byEmail = await emailPrefixCandidates(profiles, storeId, text);
  if (!byEmail) return null;
  for (const id of byEmail) byValue.add(id);
  return byValue.size > MAX_CANDIDATES ? null : byValue;
}

/** Walks the e-mail order from the prefix (matches are contiguous there): a short walk first, a longer one if needed. */
async function emailPrefixCandidates(profiles: Collection<ProfileDoc>, storeId: string, prefix: string): Promise<string[] | null> {
  for (const limit of [32, MAX_CANDIDATES + 1]) {
    const page = await profiles.findPage({
      filter: { store_id: storeId },
      sort: { field: "email_sort", direction: 1 },
      limit,
      after: { value: prefix, id: "" },
    });
    const matches = page.items.filter((d) => d.email_sort.startsWith(prefix));
    if (matches.length < page.items.length || !page.hasMore) return matches.map((d) => d._id);
  }
  return null;
}

async function valueCandidates(profiles: Collection<ProfileDoc>, storeId: string, values: string[]): Promise<Set<string> | null> {
  const match = values.length === 1 ? values[0] : { $in: values };
  const docs = await profiles.find({ store_id: storeId, search_values: match }, { limit: MAX_CANDIDATES + 1 });
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
