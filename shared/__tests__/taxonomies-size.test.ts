/**
 * taxonomiesFitJsonLimit: its bound never lets through taxonomies whose JSON is over 64 KB, on the
 * costliest bytes there are (control characters escaped as \u0001, 3-byte characters, surrogate pairs,
 * the longest numbers and geo_locations), and it agrees with serializing them on either side of the limit.
 */
import { TAXONOMIES_MAX_BYTES, TaxonomiesInput, type TaxonomyEntryInput, taxonomiesFitJsonLimit } from "../contracts/profiles";

const exactBytes = (entries: TaxonomyEntryInput[]) => Buffer.byteLength(JSON.stringify(entries));

/** Entries of `fields` fields each, filled with `text` values (cut to 1000 UTF-16 units) and numbers and places. */
function entriesOf(count: number, fields: number, text: string): TaxonomyEntryInput[] {
  return Array.from({ length: count }, (_, e) => ({
    taxonomy_id: `t${e}${text.slice(0, 100)}`,
    fields: Array.from({ length: fields }, (_, f): TaxonomyEntryInput["fields"][number] => {
      if (f % 3 === 1) return { id: `id-${f}`, key: `n${f}`, type: "number", value: -1.234567890123456e-100 };
      if (f % 3 === 2) return { key: `g${f}`, type: "geo_location", value: { lat: -89.1234567890123, lng: -179.123456789012 } };
      return { key: `k${f}${text.slice(0, 90)}`, type: "text", value: text.repeat(1000).slice(0, 1000) };
    }),
  }));
}

describe("taxonomiesFitJsonLimit", () => {
  const texts = ["\u0001", "€", "😀", "a", '"'];
  it.each(texts)("agrees with the serialized size around the limit (text %j)", (text) => {
    const answersOnBothSides = new Set<boolean>();
    for (let count = 1; count <= 50; count++) {
      for (const fields of [1, 3, 10]) {
        const entries = entriesOf(count, fields, text);
        const fits = taxonomiesFitJsonLimit(entries);
        expect(fits).toBe(exactBytes(entries) <= TAXONOMIES_MAX_BYTES);
        answersOnBothSides.add(fits);
      }
    }
    expect([...answersOnBothSides].sort()).toEqual([false, true]);
  });

  it("is never reached with a malformed entry: TaxonomiesInput fails those without throwing", () => {
    const malformed: unknown[] = [
      [null],
      [{ taxonomy_id: "a" }],
      [{ taxonomy_id: "a", fields: [null] }],
      [{ taxonomy_id: "a", fields: [{ type: "text", value: "x" }] }],
      [{ taxonomy_id: "a", fields: [{ key: 5, type: "text", value: "x" }] }],
      [{ taxonomy_id: "a", fields: [{ key: "k", id: 7, type: "text", value: "x" }] }],
      [{ taxonomy_id: { $ne: null }, fields: [] }],
      [{ taxonomy_id: "a".repeat(200), fields: [{ key: "k".repeat(200), type: "text", value: "x".repeat(5000) }] }],
    ];
    for (const value of malformed) expect(TaxonomiesInput.safeParse(value).success).toBe(false);
  });

  it("is what TaxonomiesInput refuses", () => {
    const over = entriesOf(30, 3, "\u0001");
    expect(exactBytes(over)).toBeGreaterThan(TAXONOMIES_MAX_BYTES);
    expect(TaxonomiesInput.safeParse(over).error?.issues[0].message).toMatch(/64 KB/);
    expect(TaxonomiesInput.safeParse(entriesOf(2, 3, "a")).success).toBe(true);
  });
});
