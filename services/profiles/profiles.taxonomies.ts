/** Taxonomy rules: normalising input entries, the indexed search values, and uniting two profiles' entries. */
import { uuidv7 } from "../../shared/ids";
import type { PromoUsage, TaxonomyEntry, TaxonomyEntryInput } from "../../shared/contracts/profiles";

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
