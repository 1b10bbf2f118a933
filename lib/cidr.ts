/**
 * Source-address allow lists in CIDR form (`--allow.net=10.0.0.0/8`), as
 * exporter_exporter's `-allow.net`.
 *
 * @module
 */

import { BlockList, isIP } from "node:net";

/** A parsed network. */
export interface Cidr {
  /** The network address as written. */
  address: string;
  /** Prefix length. */
  prefix: number;
  /** IP version. */
  family: "ipv4" | "ipv6";
}

/**
 * Parses `a.b.c.d/n` or `x::y/n`; a bare address means a single host.
 *
 * @param text The network.
 * @returns The network.
 * @throws {SyntaxError} When it is not an address with a valid prefix.
 */
export function parseCidr(text: string): Cidr {
  const slash = text.indexOf("/");
  const address = (slash < 0 ? text : text.slice(0, slash)).trim();
  const version = isIP(address);
  const max = version === 4 ? 32 : 128;
  const prefixText = slash < 0 ? String(max) : text.slice(slash + 1).trim();
  const prefix = /^\d{1,3}$/.test(prefixText) ? Number(prefixText) : NaN;
  if (version === 0 || !(prefix >= 0 && prefix <= max)) {
    throw new SyntaxError(
      `Cannot parse network ${
        JSON.stringify(text)
      }: expected CIDR notation such as 10.0.0.0/8 or ::1/128`,
    );
  }
  return { address, prefix, family: version === 4 ? "ipv4" : "ipv6" };
}

/** Says whether a peer address is allowed. */
export type AllowList = (address: string | undefined) => boolean;

/**
 * Builds an allow list. IPv4 peers seen as IPv4-mapped IPv6 addresses
 * (`::ffff:127.0.0.1`) match IPv4 networks.
 *
 * @param networks The networks.
 * @returns The check; an empty list allows nothing.
 */
export function createAllowList(networks: readonly Cidr[]): AllowList {
  const list = new BlockList();
  for (const net of networks) list.addSubnet(net.address, net.prefix, net.family);
  return (address) => {
    if (address === undefined) return false;
    const version = isIP(address);
    if (version === 0) return false;
    return list.check(address, version === 4 ? "ipv4" : "ipv6");
  };
}
