/**
 * Listen addresses in Go's form: ":8080", "127.0.0.1:9369", "[::1]:0".
 *
 * @module
 */

/** A host and port to listen on; an empty hostname means all interfaces. */
export interface ListenAddress {
  /** Host name or IP address; "" for all interfaces. */
  hostname: string;
  /** Port; 0 picks a free one. */
  port: number;
}

/**
 * Parses a listen address.
 *
 * @param text The address, e.g. ":8080".
 * @returns Host and port.
 * @throws {SyntaxError} When there is no valid port.
 */
export function parseListenAddress(text: string): ListenAddress {
  const match = /^(?:\[([^\]]*)\]|([^:\[\]]*)):(\d{1,5})$/.exec(text.trim());
  const port = match ? Number(match[3]) : NaN;
  if (!match || port > 65535) {
    throw new SyntaxError(
      `Cannot parse listen address "${text}": expected host:port, e.g. ":8080"`,
    );
  }
  return { hostname: match[1] ?? match[2] ?? "", port };
}

/**
 * Formats an address for logs and URLs ("[::1]:8080", "127.0.0.1:8080").
 *
 * @param address Host and port.
 * @returns The text.
 */
export function formatAddress(address: ListenAddress): string {
  const host = address.hostname.includes(":") ? `[${address.hostname}]` : address.hostname;
  // Joined: one flat string, not a concatenation of three (an open
  // stream's peer address lives as long as it).
  return [host, address.port].join(":");
}

/**
 * Formats a connection's remote end for listings ("10.0.0.5:51234",
 * "[2001:db8::5]:51234"); IPv4-mapped IPv6 addresses are shown as IPv4.
 *
 * @param socket The connection's remote address and port.
 * @returns The text; empty when the address is unknown (a closed socket).
 */
export function peerAddress(
  socket: { remoteAddress?: string | undefined; remotePort?: number | undefined },
): string {
  const host = socket.remoteAddress?.replace(/^::ffff:(\d+\.\d+\.\d+\.\d+)$/, "$1");
  if (!host) return "";
  return socket.remotePort === undefined
    ? host
    : formatAddress({ hostname: host, port: socket.remotePort });
}
