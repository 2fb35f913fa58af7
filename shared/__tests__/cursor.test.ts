import { resetConfig } from "../config";
import { decodeCursor, encodeCursor } from "../cursor";

const query = { scope: "profiles.find", store_id: "s1", sort: "created_at" };

function reasonOf(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  return undefined;
}

describe("pagination cursors", () => {
  it("round-trip the keyset position for the same query", () => {
    const cursor = encodeCursor({ value: 1767225600, id: "0190c5d2-0000-7000-8000-000000000001" }, query);
    expect(decodeCursor(cursor, { ...query })).toEqual({ value: 1767225600, id: "0190c5d2-0000-7000-8000-000000000001" });
  });

  it("are refused (400 on field cursor) for another query, another store, an edit, or garbage", () => {
    const cursor = encodeCursor({ value: "ada@example.com", id: "x" }, query);
    const [payload, signature] = cursor.split(".");
    const edited = `${Buffer.from(JSON.stringify({ v: "zzz", i: "x" })).toString("base64url")}.${signature}`;
    for (const [bad, q] of [
      [cursor, { ...query, sort: "email" }],
      [cursor, { ...query, store_id: "s2" }],
      [edited, query],
      [`${payload}.`, query],
      ["not-a-cursor", query],
      [`${cursor}.extra`, query],
    ] as const) {
      expect(reasonOf(() => decodeCursor(bad, q))).toMatchObject({ type: "VALIDATION_ERROR", data: { validationErrors: [{ field: "cursor" }] } });
    }
  });

  it("only carry a string, number or null sort value", () => {
    const cursor = encodeCursor({ value: { $gt: "" }, id: "x" }, query);
    expect(reasonOf(() => decodeCursor(cursor, query))).toMatchObject({ type: "VALIDATION_ERROR" });
  });

  describe("across a JWT key rotation", () => {
    const saved = { JWT_SECRET: process.env.JWT_SECRET, JWT_KEYS: process.env.JWT_KEYS, CURSOR_SECRET: process.env.CURSOR_SECRET };
    const useKeys = (vars: { JWT_SECRET?: string; JWT_KEYS?: string }) => {
      delete process.env.JWT_SECRET;
      delete process.env.JWT_KEYS;
      delete process.env.CURSOR_SECRET;
      Object.assign(process.env, vars);
      resetConfig();
    };
    afterAll(() => {
      for (const [name, value] of Object.entries(saved)) {
        if (value === undefined) delete process.env[name];
        else process.env[name] = value;
      }
      resetConfig();
    });

    it("keep working when a new key is put in front (first signs, all verify), and stop when the old one is dropped", () => {
      const old = "old-secret-0123456789-0123456789-01";
      useKeys({ JWT_SECRET: old });
      const issued = encodeCursor({ value: 1, id: "a" }, query);
      useKeys({ JWT_KEYS: `k2:new-secret-0123456789-0123456789-01,k1:${old}` });
      expect(decodeCursor(issued, query)).toEqual({ value: 1, id: "a" });
      const fresh = encodeCursor({ value: 2, id: "b" }, query);
      useKeys({ JWT_KEYS: "k2:new-secret-0123456789-0123456789-01" });
      expect(decodeCursor(fresh, query)).toEqual({ value: 2, id: "b" });
      expect(reasonOf(() => decodeCursor(issued, query))).toMatchObject({ type: "VALIDATION_ERROR" });
    });
  });
});
