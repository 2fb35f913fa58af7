import { rateLimitSubject } from "../net";

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
