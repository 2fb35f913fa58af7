/**
 * `find`'s query building: validated params -> a storage filter and a keyset sort. Every value lands in
 * the filter wrapped in an operator ($eq, $regex from escapeRegex, ...), so input is always data: an
 * operator-looking value cannot change the query and no input can become a regex bomb.
 */
import { isUuid } from "../../shared/ids";
import { escapeRegex, type Filter, type SortDirection } from "../../shared/storage/port";
import type { ProfileStatus, TaxonomyCondition, TaxonomyQuery } from "../../shared/contracts/profiles";

export interface ProfileSearch {
  query?: string;
  taxonomy_query?: TaxonomyQuery[];
  status?: ProfileStatus;
  sort_field: "created_at" | "updated_at" | "email";
  sort_direction: "asc" | "desc";
}

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
