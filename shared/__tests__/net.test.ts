import { corsOriginList, rateLimitSubject } from "../net";

describe("rateLimitSubject", () => {
  it("counts an IPv4 address (also IPv4-mapped IPv6) as itself", () => {
    expect(rateLimitSubject("203.0.113.7")).toBe("203.0.113.7");
    expect(rateLimitSubject("::ffff:203.0.113.7")).toBe("203.0.113.7");
  });

  it("counts every address of one IPv6 /64 as one subject", () => {
    const a = rateLimitSubject("2001:db8:1:2:aaaa:bbbb:cccc:dddd");
    expect(a).toBe("2001:db8:1:2::/64");
    expect(rateLimitSubject("2001:0db8:0001:0002::1")).toBe(a);
    expect(rateLimitSubject("2001:db8:1:2::ffff")).toBe(a);
    expect(rateLimitSubject("2001:db8:1:3::1")).not.toBe(a);
    expect(rateLimitSubject("::1")).toBe("0:0:0:0::/64");
  });

  it("leaves anything that is not an IP address as it is", () => {
    expect(rateLimitSubject("unknown")).toBe("unknown");
  });
});

describe("corsOriginList", () => {
  it("normalises origins the way browsers send them and refuses what is not one", () => {
    expect(corsOriginList("https://Shop.Example/, https://shop.example:443 ,http://localhost:5173,, *")).toEqual([
      "https://shop.example",
      "https://shop.example",
      "http://localhost:5173",
      "*",
    ]);
    for (const bad of ["example.com", "https://shop.example/path", "ftp://shop.example", "https://user@shop.example"]) {
      expect(() => corsOriginList(bad)).toThrow(/is not an origin/);
    }
  });
});
