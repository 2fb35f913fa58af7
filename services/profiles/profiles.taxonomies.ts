/** Taxonomy rules: normalising input entries, the indexed search values, and uniting two profiles' entries. */
import { uuidv7 } from "../../shared/ids";
import { type PromoUsage, type TaxonomyEntry, type TaxonomyEntryInput, taxonomiesFitJsonLimit } from "../../shared/contracts/profiles";

/** Entries as stored: every field has an id (a new one when the caller gave none). */
export function normalizeTaxonomies(input: TaxonomyEntryInput[]): TaxonomyEntry[] {
  return input.map((entry) => ({
    taxonomy_id: entry.taxonomy_id,
    fields: entry.fields.map((field) => ({ ...field, id: field.id ?? uuidv7() }) as TaxonomyEntry["fields"][number]),
  }));
}

/** Longer values are not indexed (they could not be typed into a search box anyway). */
const MAX_SEARCH_VALUE_LENGTH = 200;

/** How a text or number value is indexed in search_values; null when it is not indexed. */
export function searchValueOf(value: unknown): string | null {
  if (typeof value !== "string" && typeof value !== "number") return null;
  const indexed = String(value).trim().toLowerCase();
  return indexed && indexed.length <= MAX_SEARCH_VALUE_LENGTH ? indexed : null;
}

/**
 * Every indexable text and number value, lowercased: what `query` matches exactly, and what narrows
 * exact-value taxonomy conditions. Complete by design (no cap beyond the input limits: 50 entries x 100
 * fields), because search relies on "not in search_values" meaning "no such value".
 */
export function searchValuesOf(taxonomies: TaxonomyEntry[]): string[] {
  const values = new Set<string>();
  for (const entry of taxonomies) {
    for (const field of entry.fields) {
      const indexed = searchValueOf(field.value);
      if (indexed !== null) values.add(indexed);
    }
  }
  return [...values];
}

/** The union of two profiles' entries by taxonomy_id and then by field key; `target` wins every conflict. */
export function uniteTaxonomies(target: TaxonomyEntry[], source: TaxonomyEntry[]): TaxonomyEntry[] {
  const result = target.map((entry) => ({ taxonomy_id: entry.taxonomy_id, fields: [...entry.fields] }));
  for (const entry of source) {
    const existing = result.find((e) => e.taxonomy_id === entry.taxonomy_id);
    if (!existing) {
      result.push({ taxonomy_id: entry.taxonomy_id, fields: [...entry.fields] });
      continue;
    }
    const keys = new Set(existing.fields.map((f) => f.key));
    for (const field of entry.fields) if (!keys.has(field.key)) existing.fields.push(field);
  }
  return result;
}

/** Promo usage of both profiles, summed per promo code. */
export function sumPromoUsage(target: PromoUsage[], source: PromoUsage[]): PromoUsage[] {
  const uses = new Map<string, number>();
  for (const p of [...target, ...source]) uses.set(p.promo_code_id, (uses.get(p.promo_code_id) ?? 0) + p.uses);
  return [...uses].map(([promo_code_id, n]) => ({ promo_code_id, uses: n }));
}

/** How a field's value compares: geo locations by their coordinates. */
function sameValue(a: unknown, b: unknown): boolean {
  return a === b || (typeof a === "object" && typeof b === "object" && JSON.stringify(a) === JSON.stringify(b));
}

/**
 * `incoming` entries merged into a profile's own by taxonomy_id and field key, the incoming value winning
 * (an import's row is newer data). A field whose type and value stay the same keeps its id, so
 * `changed` is false when a row brings nothing new.
 */
export function mergeIncoming(current: TaxonomyEntry[], incoming: TaxonomyEntryInput[]): { taxonomies: TaxonomyEntry[]; changed: boolean } {
  let changed = false;
  const result = current.map((entry) => ({ taxonomy_id: entry.taxonomy_id, fields: [...entry.fields] }));
  for (const entry of incoming) {
    let target = result.find((e) => e.taxonomy_id === entry.taxonomy_id);
    if (!target) {
      target = { taxonomy_id: entry.taxonomy_id, fields: [] };
      result.push(target);
      changed = true;
    }
    for (const field of entry.fields) {
      const at = target.fields.findIndex((f) => f.key === field.key);
      const old = at === -1 ? undefined : target.fields[at];
      if (old && old.type === field.type && sameValue(old.value, field.value)) continue;
      const merged = { ...field, id: old?.id ?? field.id ?? uuidv7() } as TaxonomyEntry["fields"][number];
      if (old) target.fields[at] = merged;
      else target.fields.push(merged);
      changed = true;
    }
  }
  return { taxonomies: result, changed };
}

/** Why merged taxonomies break a profile's limits (TaxonomiesInput's), or null when they fit. */
export function taxonomyLimitBroken(taxonomies: TaxonomyEntry[]): string | null {
  if (taxonomies.length > 50) return "with the profile's own, more than 50 taxonomy entries";
  if (taxonomies.some((e) => e.fields.length > 100)) return "with the profile's own, more than 100 fields in one taxonomy entry";
  if (!taxonomiesFitJsonLimit(taxonomies)) return "with the profile's own, more than 64 KB of taxonomies";
  return null;
}
