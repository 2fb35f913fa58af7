/** Client addresses as rate-limit subjects. */
import { isIPv4, isIPv6 } from "node:net";

/**
 * The subject a per-IP limit counts: the IPv4 address, or the /64 network of an IPv6 address (one
 * customer line or host usually holds a whole /64, so counting single addresses is trivially dodged).
 */
export function rateLimitSubject(ip: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  if (mapped) return mapped[1];
  if (isIPv4(ip) || !isIPv6(ip)) return ip;
  const [head, tail = ""] = ip.toLowerCase().split("::");
  const left = head ? head.split(":") : [];
  const right = tail ? tail.split(":") : [];
  const groups = ip.includes("::") ? [...left, ...Array(8 - left.length - right.length).fill("0"), ...right] : left;
  return `${groups
    .slice(0, 4)
    .map((g) => g.replace(/^0+(?=.)/, ""))
    .join(":")}::/64`;
}

/**
 * CORS_ORIGINS as a list of origins the way browsers send them (`https://shop.example`): trimmed, lower
 * case, default ports and trailing slashes dropped, empty entries ignored. Throws on an entry that is not
 * `*` or an origin with its scheme.
 */
export function corsOriginList(setting: string): string[] {
  return setting
    .split(",")
    .map((entry) => entry.trim())
    .filter(Boolean)
    .map((entry) => {
      if (entry === "*") return entry;
      let url: URL;
      try {
        url = new URL(entry);
      } catch {
        throw new Error(`"${entry}" is not an origin with its scheme`);
      }
      if (!/^https?:$/.test(url.protocol) || !/^\/?$/.test(url.pathname) || url.search || url.hash || url.username) {
        throw new Error(`"${entry}" is not an origin with its scheme`);
      }
      return url.origin;
    });
}
