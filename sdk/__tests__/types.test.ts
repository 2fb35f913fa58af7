/**
 * The SDK's plain types (sdk/types.ts) against the zod contracts the services validate with: the type
 * check (`npm run typecheck`, part of `npm test`) fails when they drift apart; the test below checks
 * that real values pass both.
 */
import type { z } from "zod";
import type * as auth from "../../shared/contracts/auth";
import * as contracts from "../../shared/contracts/profiles";
import type * as sdk from "../types";

/** Each assignable to the other. */
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;

const answers: [
  Same<sdk.Profile, z.output<typeof contracts.Profile>>,
  Same<sdk.ConnectResult, z.output<typeof contracts.ConnectResult>>,
  Same<sdk.OrderLink, z.output<typeof contracts.OrderLink>>,
  Same<sdk.AuthToken, z.output<typeof auth.AuthToken>>,
  Same<sdk.ProfileStatus, z.output<typeof contracts.ProfileStatus>>,
] = [true, true, true, true, true];

// What a caller sends: the schemas' input side (defaults such as `operation` may be left out).
const requests: [Same<sdk.TaxonomyEntryInput, z.input<typeof contracts.TaxonomyEntryInput>>, Same<sdk.TaxonomyQuery, z.input<typeof contracts.TaxonomyQuery>>] = [
  true,
  true,
];

describe("SDK types", () => {
  it("mirror the contracts (checked by the type check), and a sample of each passes the contract", () => {
    expect([...answers, ...requests].every(Boolean)).toBe(true);
    const query: sdk.TaxonomyQuery = { taxonomy_id: "prefs", query: [{ key: "color", type: "text", value: "teal" }] };
    expect(contracts.TaxonomyQuery.safeParse(query).success).toBe(true);
    const entry: sdk.TaxonomyEntryInput = { taxonomy_id: "geo", fields: [{ key: "home", type: "geo_location", value: { lat: 52.5, lng: 13.4 } }] };
    expect(contracts.TaxonomyEntryInput.safeParse(entry).success).toBe(true);
  });
});
