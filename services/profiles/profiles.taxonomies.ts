/** Taxonomy rules: normalising input entries, the indexed search values, and uniting two profiles' entries. */
import { uuidv7 } from "../../shared/ids";
import type { PromoUsage, TaxonomyEntry, TaxonomyEntryInput } from "../../shared/contracts/profiles";

const MAX_SEARCH_VALUES = 200;
const MAX_SEARCH_VALUE_LENGTH = 200;

/** Entries as stored: every field has an id (a new one when the caller gave none). */
export function normalizeTaxonomies(input: TaxonomyEntryInput[]): TaxonomyEntry[] {
  return input.map((entry) => ({
    taxonomy_id: entry.taxonomy_id,
    fields: entry.fields.map((field) => ({ ...field, id: field.id ?? uuidv7() }) as TaxonomyEntry["fields"][number]),
  }));
}

/** Lowercased text and number values: what `query` matches exactly (through the search_values index). */
export function searchValuesOf(taxonomies: TaxonomyEntry[]): string[] {
  const values = new Set<string>();
  for (const entry of taxonomies) {
    for (const field of entry.fields) {
      if (field.type !== "text" && field.type !== "number") continue;
      const value = String(field.value).trim().toLowerCase();
      if (value && value.length <= MAX_SEARCH_VALUE_LENGTH) values.add(value);
      if (values.size >= MAX_SEARCH_VALUES) return [...values];
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
