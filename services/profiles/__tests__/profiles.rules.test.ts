/** Unit tests of the pure rules: params schemas, query building, taxonomy union, merge planning, mapper. */
import { ProfileActions, TaxonomiesInput } from "../../../shared/contracts/profiles";
import { toProfile } from "../profiles.mapper";
import { planMerge } from "../profiles.merge";
import { emailFields, emailWordsOf, profileFilter, profileSort } from "../profiles.search";
import type { ProfileDoc } from "../profiles.store";
import { searchValuesOf, sumPromoUsage, uniteTaxonomies } from "../profiles.taxonomies";

const STORE = "0190c5d2-1111-7000-8000-000000000001";

function doc(overrides: Partial<ProfileDoc>): ProfileDoc {
  return {
    _id: "0190c5d2-2222-7000-8000-000000000001",
    store_id: STORE,
    email: null,
    email_lower: null,
    email_sort: "",
    email_words: [],
    verified: false,
    status: "active",
    taxonomies: [],
    promo_usage: [],
    search_values: [],
    created_at: 1,
    updated_at: 1,
    ...overrides,
  };
}

describe("profiles params", () => {
  it("rejects operator objects where strings belong", () => {
    expect(ProfileActions.create.safeParse({ store_id: STORE, email: { $ne: null } }).success).toBe(false);
    expect(ProfileActions.find.safeParse({ store_id: STORE, query: { $regex: ".*" } }).success).toBe(false);
    expect(ProfileActions.find.safeParse({ store_id: STORE, status: { $ne: "x" } }).success).toBe(false);
    expect(ProfileActions.get.safeParse({ store_id: STORE, id: { $gt: "" } }).success).toBe(false);
    expect(ProfileActions.update.safeParse({ store_id: STORE, id: STORE, email: ["a@b.co"] }).success).toBe(false);
  });

  it("refuses control characters (U+0000 included) in a search query, which MongoDB would refuse in a pattern", () => {
    for (const query of ["a\u0000b", "line\nbreak", "\u007f", "next\u0085line", "line\u2028separator"])
      expect(ProfileActions.find.safeParse({ store_id: STORE, query }).success).toBe(false);
    expect(ProfileActions.find.safeParse({ store_id: STORE, query: "ümlaut é 名前" }).success).toBe(true);
  });

  it("reads sort fields, their camelCase aliases and directions", () => {
    const parse = (extra: object) => ProfileActions.find.parse({ store_id: STORE, ...extra });
    expect(parse({}).sort_field).toBe("created_at");
    expect(parse({}).sort_direction).toBe("desc");
    expect(parse({ sort_field: "createdAt" }).sort_field).toBe("created_at");
    expect(parse({ sort_field: "updatedAt", sort_direction: "ASC" })).toMatchObject({ sort_field: "updated_at", sort_direction: "asc" });
    expect(parse({ sort_field: "email" }).sort_field).toBe("email");
    expect(ProfileActions.find.safeParse({ store_id: STORE, sort_field: "password" }).success).toBe(false);
    expect(ProfileActions.find.safeParse({ store_id: STORE, sort_direction: "sideways" }).success).toBe(false);
  });

  it("takes taxonomy_query as JSON text (query string) or as an array", () => {
    const tq = [{ taxonomy_id: "tier", query: [{ key: "level", type: "text", value: "gold" }] }];
    const fromText = ProfileActions.find.parse({ store_id: STORE, taxonomy_query: JSON.stringify(tq), limit: "5" });
    expect(fromText.taxonomy_query).toEqual([{ taxonomy_id: "tier", query: [{ key: "level", type: "text", operation: "eq", value: "gold" }] }]);
    expect(fromText.limit).toBe(5);
    expect(ProfileActions.find.parse({ store_id: STORE, taxonomy_query: tq }).taxonomy_query).toHaveLength(1);
  });

  it("checks a taxonomy condition's value against its type and operation", () => {
    const ok = (c: object) => ProfileActions.find.safeParse({ store_id: STORE, taxonomy_query: [{ taxonomy_id: "t", query: [c] }] }).success;
    expect(ok({ key: "age", type: "number", operation: "gte", value: 18 })).toBe(true);
    expect(ok({ key: "age", type: "number", operation: "gte", value: "18" })).toBe(false);
    expect(ok({ key: "tag", type: "text", operation: "in", value: ["a", "b"] })).toBe(true);
    expect(ok({ key: "tag", type: "text", operation: "in", value: "a" })).toBe(false);
    expect(ok({ key: "tag", type: "text", operation: "contains", value: "ab" })).toBe(true);
    expect(ok({ key: "vip", type: "boolean", operation: "contains", value: true })).toBe(false);
    expect(ok({ key: "tag", type: "text", value: { $ne: null } })).toBe(false);
    expect(ok({ key: "at", type: "geo_location", value: { lat: 1, lng: 2 } })).toBe(true);
  });

  it("refuses a search text over 200 characters and limits outside 1..100", () => {
    expect(ProfileActions.find.safeParse({ store_id: STORE, query: "a".repeat(201) }).success).toBe(false);
    expect(ProfileActions.find.safeParse({ store_id: STORE, limit: 0 }).success).toBe(false);
    expect(ProfileActions.find.safeParse({ store_id: STORE, limit: 101 }).success).toBe(false);
    for (const limit of ["abc", "2.5", "0", "101", ""]) {
      const parsed = ProfileActions.find.safeParse({ store_id: STORE, limit });
      expect(parsed.error?.issues.map((issue) => [issue.path.join("."), issue.message])).toEqual([["limit", "must be a whole number from 1 to 100"]]);
    }
    expect(ProfileActions.find.parse({ store_id: STORE, limit: "100" }).limit).toBe(100);
    const notJson = ProfileActions.find.safeParse({ store_id: STORE, taxonomy_query: "notjson" });
    expect(notJson.error?.issues[0].message).toMatch(/^must be a JSON object \{ "taxonomy_id", "query"/);
  });

  it("refuses duplicate taxonomy ids and duplicate field keys", () => {
    const field = { key: "k", type: "text", value: "v" };
    expect(
      TaxonomiesInput.safeParse([
        { taxonomy_id: "a", fields: [field] },
        { taxonomy_id: "a", fields: [] },
      ]).success,
    ).toBe(false);
    expect(TaxonomiesInput.safeParse([{ taxonomy_id: "a", fields: [field, field] }]).success).toBe(false);
  });
});

describe("profiles.find query building", () => {
  const base = { sort_field: "created_at" as const, sort_direction: "desc" as const };

  it("always scopes by store and matches a UUID as the id", () => {
    const id = "0190C5D2-2222-7000-8000-000000000001";
    expect(profileFilter(STORE, { ...base, query: id })).toEqual({ store_id: STORE, $and: [{ _id: id.toLowerCase() }] });
  });

  it("turns text into an anchored, escaped prefix of the e-mail words or an exact taxonomy value", () => {
    const filter = profileFilter(STORE, { ...base, query: "  (a+)+$.Com " });
    expect(filter).toEqual({
      store_id: STORE,
      $and: [{ $or: [{ email_words: { $regex: "^\\(a\\+\\)\\+\\$\\.com" } }, { search_values: { $eq: "(a+)+$.com" } }] }],
    });
  });

  it("wraps taxonomy values in operators so they stay data", () => {
    const filter = profileFilter(STORE, {
      ...base,
      status: "active",
      taxonomy_query: [{ taxonomy_id: "t", query: [{ key: "k", type: "text", operation: "contains", value: ".*" }] }],
    });
    expect(filter).toEqual({
      store_id: STORE,
      status: "active",
      $and: [
        {
          taxonomies: {
            $elemMatch: {
              taxonomy_id: { $eq: "t" },
              fields: { $elemMatch: { key: { $eq: "k" }, type: { $eq: "text" }, value: { $regex: "\\.\\*" } } },
            },
          },
        },
      ],
    });
  });

  it("sorts e-mail pages on a non-null key", () => {
    expect(profileSort({ sort_field: "email", sort_direction: "asc" })).toEqual({ field: "email_sort", direction: 1 });
    expect(profileSort({ sort_field: "updated_at", sort_direction: "desc" })).toEqual({ field: "updated_at", direction: -1 });
  });
});

describe("taxonomy rules", () => {
  const text = (key: string, value: string) => ({ id: key, key, type: "text" as const, value });

  it("unites entries by taxonomy and field key, the target winning conflicts", () => {
    const target = [{ taxonomy_id: "a", fields: [text("k", "target")] }];
    const source = [
      { taxonomy_id: "a", fields: [text("k", "source"), text("extra", "x")] },
      { taxonomy_id: "b", fields: [text("z", "z")] },
    ];
    expect(uniteTaxonomies(target, source)).toEqual([
      { taxonomy_id: "a", fields: [text("k", "target"), text("extra", "x")] },
      { taxonomy_id: "b", fields: [text("z", "z")] },
    ]);
  });

  it("sums promo usage per code", () => {
    expect(
      sumPromoUsage(
        [{ promo_code_id: "p", uses: 2 }],
        [
          { promo_code_id: "p", uses: 3 },
          { promo_code_id: "q", uses: 1 },
        ],
      ),
    ).toEqual([
      { promo_code_id: "p", uses: 5 },
      { promo_code_id: "q", uses: 1 },
    ]);
  });

  it("indexes lowercased text and number values only", () => {
    const values = searchValuesOf([
      { taxonomy_id: "a", fields: [text("k", "Gold"), { id: "n", key: "n", type: "number", value: 42 }, { id: "b", key: "b", type: "boolean", value: true }] },
    ]);
    expect(values).toEqual(["gold", "42"]);
  });
});

describe("merge plan", () => {
  it("takes the source's e-mail and its verification only when the target has none", () => {
    const target = doc({ verified: false });
    const source = doc({ _id: "s", ...emailFields("A@x.io"), verified: true });
    expect(planMerge(target, source)).toMatchObject({ email: "A@x.io", email_lower: "a@x.io", email_words: ["a@x.io", "x.io", "io"], verified: true });
    const owned = doc({ ...emailFields("t@x.io"), verified: false });
    expect(planMerge(owned, source)).toMatchObject({ email: "t@x.io", email_lower: "t@x.io", email_words: ["t@x.io", "x.io", "io"], verified: false });
  });
});

describe("e-mail search words", () => {
  it("are the lowercased e-mail and its parts from each word on, words split at . - _ + @", () => {
    expect(emailWordsOf("mary.jane@x.com")).toEqual(["mary.jane@x.com", "jane@x.com", "x.com", "com"]);
    expect(emailWordsOf("a_b-c+tag@mail.gmail.com")).toEqual([
      "a_b-c+tag@mail.gmail.com",
      "b-c+tag@mail.gmail.com",
      "c+tag@mail.gmail.com",
      "tag@mail.gmail.com",
      "mail.gmail.com",
      "gmail.com",
      "com",
    ]);
    expect(emailWordsOf("x..y@z")).toEqual(["x..y@z", "y@z", "z"]);
    expect(emailWordsOf(null)).toEqual([]);
    expect(emailWordsOf(`${"a.".repeat(100)}b@x.io`)).toHaveLength(32);
    expect(emailFields(" Mary.Jane@X.com ")).toEqual({
      email: "Mary.Jane@X.com",
      email_lower: "mary.jane@x.com",
      email_sort: "mary.jane@x.com",
      email_words: emailWordsOf("mary.jane@x.com"),
    });
  });
});

describe("toProfile", () => {
  it("outputs only the contract's fields and empties private ones when redacted", () => {
    const stored = doc({
      email: "a@x.io",
      verified: true,
      merge_lock: "lock",
      search_values: ["x"],
      taxonomies: [{ taxonomy_id: "t", fields: [{ id: "f", key: "k", type: "text", value: "x" }] }],
      promo_usage: [{ promo_code_id: "p", uses: 1 }],
    });
    const session = { id: "s", created_at: 1, expires_at: 2, last_used_at: null, is_verified: true, token_hash: "secret" };
    const full = toProfile(stored, { sessions: [session] });
    expect(Object.keys(full).sort()).toEqual(
      ["auth_tokens", "created_at", "email", "id", "promo_usage", "status", "store_id", "taxonomies", "updated_at", "verification_codes", "verified"].sort(),
    );
    expect(full.auth_tokens).toEqual([{ id: "s", created_at: 1, expires_at: 2, last_used_at: null, is_verified: true }]);
    const redacted = toProfile(stored, { sessions: [session], redacted: true });
    expect(redacted).toMatchObject({ email: "a@x.io", verified: true, taxonomies: [], promo_usage: [], auth_tokens: [], verification_codes: [] });
  });
});
