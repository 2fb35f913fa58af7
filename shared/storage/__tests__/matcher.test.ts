/**
 * compileFilter's fast path (equality, `$in`, `$type` by typeof) answers exactly as mingo, the general
 * path, does: for top-level and dotted fields, arrays, null, missing fields, NaN and Dates. (Where mingo
 * differs from MongoDB, e.g. `$type` on an array of strings, the adapters keep mingo's answer.)
 */
import type { Doc, Filter } from "../port";
import { compileFilter } from "../query/matcher";
import { mingoPredicate } from "../query/update";

const VALUES: unknown[] = [
  "a",
  "",
  0,
  1.5,
  Number.NaN,
  Number.POSITIVE_INFINITY,
  true,
  false,
  null,
  undefined,
  new Date(0),
  { a: 1 },
  [],
  ["a"],
  [1, "b"],
  [[1]],
  [null],
];

const DOCS: Doc[] = VALUES.flatMap<Doc>((value, i) => [
  { _id: `top${i}`, f: value },
  { _id: `dot${i}`, p: { f: value } },
  { _id: `arr${i}`, p: [{ f: value }, { g: 1 }] },
]).concat([{ _id: "missing" }, { _id: "null-parent", p: null }]);

const FILTERS: Filter[] = [
  { f: { $type: "string" } },
  { f: { $type: "number" } },
  { f: { $type: "bool" } },
  { "p.f": { $type: "string" } },
  { "p.f": { $type: "number" } },
  { f: "a" },
  { f: { $eq: 1.5 } },
  { f: { $in: ["a", true, 0] } },
  { "p.f": { $in: ["b", 1] } },
  { f: { $type: "number" }, _id: { $in: ["top2", "top3", "top4", "dot2"] } },
];

describe("compileFilter", () => {
  it.each(FILTERS.map((filter) => [JSON.stringify(filter), filter]))("%s matches the documents mingo matches", (_name, filter) => {
    const fast = compileFilter(filter);
    const general = mingoPredicate(filter);
    const expected = DOCS.filter((doc) => general(doc)).map((doc) => doc._id);
    expect(DOCS.filter((doc) => fast(doc)).map((doc) => doc._id)).toEqual(expected);
    expect(expected.length).toBeGreaterThan(0);
  });
});
