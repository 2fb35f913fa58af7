/**
 * Who the client is, for rate limits and `ctx.meta.ip`. The socket's peer address, unless that peer is
 * one of TRUSTED_PROXIES: then `X-Forwarded-For` is walked from the right, skipping trusted hops, and
 * the first address a trusted proxy saw is the client. Entries left of it are the caller's to forge.
 */
import { BlockList, isIP } from "node:net";

export class TrustedProxies {
  private readonly list = new BlockList();
  readonly size: number;

  /** `TRUSTED_PROXIES`: a comma list of IPs and CIDRs (`10.0.0.0/8`, `::1`). Throws on a bad entry. */
  constructor(setting: string | undefined) {
    const entries = (setting ?? "")
      .split(",")
      .map((s) => s.trim())
      .filter(Boolean);
    for (const entry of entries) {
      const [address, prefix] = entry.split("/");
      const ip = normalizeIp(address);
      const family = isIP(ip);
      if (!family) throw new Error(`TRUSTED_PROXIES: "${entry}" is not an IP address or CIDR`);
      const type = family === 6 ? "ipv6" : "ipv4";
      if (prefix === undefined) {
        this.list.addAddress(ip, type);
        continue;
      }
      const bits = Number(prefix);
      if (!/^\d+$/.test(prefix) || bits > (family === 6 ? 128 : 32)) throw new Error(`TRUSTED_PROXIES: bad prefix in "${entry}"`);
      this.list.addSubnet(ip, bits, type);
    }
    this.size = entries.length;
  }

  has(address: string): boolean {
    if (this.size === 0) return false;
    const family = isIP(address);
    if (!family) return false;
    return this.list.check(address, family === 6 ? "ipv6" : "ipv4");
  }
}

/** `::ffff:1.2.3.4` -> `1.2.3.4`, so one client has one key whichever socket family it arrived on. */
export function normalizeIp(address: string | undefined): string {
  if (!address) return "";
  const a = address.trim();
  return a.toLowerCase().startsWith("::ffff:") && isIP(a.slice(7)) === 4 ? a.slice(7) : a;
}

export function clientIp(peer: string | undefined, forwardedFor: string | string[] | undefined, trusted: TrustedProxies): string {
  let client = normalizeIp(peer);
  if (!trusted.has(client) || forwardedFor === undefined) return client;
  const hops = (Array.isArray(forwardedFor) ? forwardedFor.join(",") : forwardedFor).split(",").map((h) => normalizeIp(h));
  for (let i = hops.length - 1; i >= 0; i--) {
    const hop = hops[i];
    if (!isIP(hop)) return client; // garbage: trust only what trusted hops reported so far
    client = hop;
    if (!trusted.has(hop)) return hop;
  }
  return client;
}
