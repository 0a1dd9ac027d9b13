import { lookup as dnsLookup } from "node:dns";
import net from "node:net";
import ipaddr from "ipaddr.js";
import type { DestinationGuard } from "../webhooks/validation.ts";

/**
 * Why an address may not be called, or null when it is public unicast. Uses ipaddr.js' special
 * ranges: IPv4 loopback, private, link-local (169.254.169.254 included), carrier-grade NAT,
 * multicast, broadcast, unspecified, reserved, documentation and benchmarking ranges; IPv6
 * loopback, unspecified, link-local, unique-local, multicast, site-local, documentation, NAT64,
 * 6to4, Teredo and anything outside global unicast (2000::/3). IPv4-mapped IPv6 addresses are
 * judged as the IPv4 address they carry.
 */
const RANGE_NAMES: Record<string, string> = {
  unspecified: "unspecified",
  broadcast: "broadcast",
  multicast: "multicast",
  linkLocal: "link-local",
  loopback: "loopback",
  carrierGradeNat: "carrier-grade NAT",
  private: "private",
  reserved: "reserved or documentation",
  uniqueLocal: "unique-local",
  rfc6052: "NAT64",
  rfc6145: "IPv4-translated",
  "6to4": "6to4",
  teredo: "Teredo",
  deprecatedSiteLocal: "site-local",
};

export function blockedAddressReason(address: string): string | null {
  let parsed: ipaddr.IPv4 | ipaddr.IPv6;
  try {
    parsed = ipaddr.parse(address.replace(/^\[|\]$/g, "").replace(/%.*$/, ""));
  } catch {
    return `${address} is not an IP address`;
  }
  if (parsed.kind() === "ipv6" && (parsed as ipaddr.IPv6).isIPv4MappedAddress()) {
    parsed = (parsed as ipaddr.IPv6).toIPv4Address();
  }
  const range = parsed.range();
  if (range !== "unicast") return `${address} is a non-public (${RANGE_NAMES[range] ?? range}) address`;
  if (parsed.kind() === "ipv6" && (parsed.toByteArray()[0]! & 0xe0) !== 0x20) {
    return `${address} is not a global unicast address`;
  }
  return null;
}

/** The address a URL names literally (IPv4 in any spelling Node's URL parser normalises, IPv6 in brackets). */
export function literalAddress(url: URL): string | null {
  const host = url.hostname.replace(/^\[|\]$/g, "");
  return net.isIP(host) ? host : null;
}

export type LookupAll = (hostname: string) => Promise<Array<{ address: string; family: number }>>;

/** The system resolver (getaddrinfo), every address. */
export const systemLookup: LookupAll = (hostname) =>
  new Promise((resolve, reject) => {
    dnsLookup(hostname, { all: true, verbatim: true }, (error, addresses) => (error ? reject(error) : resolve(addresses)));
  });

/** Raised by the connect-time lookup when a host resolves to a non-public address. */
export class BlockedAddressError extends Error {
  readonly code = "ERR_WEBHOOK_ADDRESS_BLOCKED";
  override name = "BlockedAddressError";
}

/**
 * The registration check: a literal address is judged as is; a host name is resolved and refused
 * when any of its addresses is not public. A name that does not resolve (yet) is accepted: every
 * attempt checks again, against the address it actually connects to.
 */
export function createDestinationGuard(options: { allowPrivate: boolean; lookup?: LookupAll }): DestinationGuard {
  if (options.allowPrivate) return async () => null;
  const resolve = options.lookup ?? systemLookup;
  return async (url) => {
    const literal = literalAddress(url);
    if (literal) return blockedAddressReason(literal);
    if (url.hostname === "localhost" || url.hostname.endsWith(".localhost")) return `${url.hostname} is a loopback name`;
    let addresses: Array<{ address: string }>;
    try {
      addresses = await resolve(url.hostname);
    } catch {
      return null;
    }
    for (const { address } of addresses) {
      const reason = blockedAddressReason(address);
      if (reason) return `${url.hostname} resolves to ${reason.replace(`${address} is a`, `${address}, a`)}`;
    }
    return null;
  };
}

/** The attempt-time check of a literal address (a literal never reaches the connect lookup). */
export function createLiteralGuard(options: { allowPrivate: boolean }): DestinationGuard {
  if (options.allowPrivate) return async () => null;
  return async (url) => {
    const literal = literalAddress(url);
    if (literal) return blockedAddressReason(literal);
    if (url.hostname === "localhost" || url.hostname.endsWith(".localhost")) return `${url.hostname} is a loopback name`;
    return null;
  };
}

type LookupCallback = (error: NodeJS.ErrnoException | null, address: string | Array<{ address: string; family: number }>, family?: number) => void;

/**
 * A `lookup` for undici's `connect` option: resolves, and fails the connection when any resolved
 * address is not public, so the socket can only ever open to an address that was checked (no DNS
 * rebinding between check and connect).
 */
export function guardedLookup(resolve: LookupAll = systemLookup) {
  return (hostname: string, options: { all?: boolean }, callback: LookupCallback): void => {
    resolve(hostname).then(
      (addresses) => {
        for (const { address } of addresses) {
          const reason = blockedAddressReason(address);
          if (reason) {
            callback(new BlockedAddressError(`blocked: ${hostname} resolves to ${reason.replace(`${address} is a`, `${address}, a`)}`), []);
            return;
          }
        }
        if (addresses.length === 0) {
          const error: NodeJS.ErrnoException = new Error(`${hostname} has no address`);
          error.code = "ENOTFOUND";
          callback(error, []);
          return;
        }
        if (options.all) callback(null, addresses);
        else callback(null, addresses[0]!.address, addresses[0]!.family);
      },
      (error: NodeJS.ErrnoException) => callback(error, []),
    );
  };
}
