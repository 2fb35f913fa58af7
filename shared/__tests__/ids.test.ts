import { isUuid, uuidv7 } from "../ids";

describe("uuidv7", () => {
  it("makes distinct RFC 9562 version-7 UUIDs that sort by creation", () => {
    const ids = Array.from({ length: 5000 }, () => uuidv7());
    expect(new Set(ids).size).toBe(ids.length);
    for (const id of ids) {
      expect(isUuid(id)).toBe(true);
      expect(id[14]).toBe("7");
      expect("89ab").toContain(id[19]);
    }
    expect([...ids].sort()).toEqual(ids);
  });
});
