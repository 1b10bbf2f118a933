/**
 * The authority (`host[:port]`) of a request, checked with a strict grammar
 * before anything routes on it or builds a URL from it: a Host header, an
 * HTTP/2 `:authority`, or the authority of an absolute-form request target.
 *
 * @module
 */

import { isIPv6 } from "node:net";

const LABEL = /^[a-z0-9_-]{1,63}$/i;
const NUMERIC_LABEL = /^(?:\d+|0x[0-9a-f]*)$/i;
const IPV4_PART = /^(?:0|[1-9]\d{0,2})$/;
const PORT = /^\d{0,5}$/;
/**
 * Authorities found usable (the check is pure): the same few arrive on
 * every request, and checking one costs a URL parse (issue #11). Bounded.
 */
const USABLE = new Set<string>();
const USABLE_MAX = 256;

/**
 * Why an authority is unusable, or null when it is usable. Accepted: a
 * reg-name (letters, digits, `-` and `_` in dot-separated labels of at most
 * 63 characters, an optional trailing dot, at most 253 characters), a
 * dotted-quad IPv4 address, or an IPv6 address in brackets (no zone), each
 * with an optional `:port` (0–65535; empty allowed, as RFC 3986 does).
 * Anything a URL parser would read differently (`1.2.3`, `0x7f.1`, percent
 * escapes, user info) is refused.
 *
 * @param authority The authority; undefined or "" when the request had none.
 * @returns The problem, for a 400 answer, or null.
 *
 * @example Usage
 * ```ts
 * import { authorityProblem } from "./authority.ts";
 * authorityProblem("proxy.example.com:8080"); // null
 * authorityProblem("a:b:c"); // "…"
 * ```
 */
export function authorityProblem(authority: string | undefined): string | null {
  if (authority === undefined || authority === "") return "the request has no Host";
  if (USABLE.has(authority)) return null;
  if (authority.length > 300) return "the Host is longer than 300 characters";
  let host = authority;
  let port: string | null = null;
  if (host.startsWith("[")) {
    const end = host.indexOf("]");
    if (end < 0) return "the Host has an unclosed '['";
    const rest = host.slice(end + 1);
    if (rest !== "") {
      if (!rest.startsWith(":")) return "the Host has characters after its IPv6 address";
      port = rest.slice(1);
    }
    if (!isIPv6(host.slice(1, end))) return "the Host's IPv6 address is invalid";
  } else {
    const colon = host.indexOf(":");
    if (colon >= 0) {
      port = host.slice(colon + 1);
      host = host.slice(0, colon);
    }
    const problem = hostProblem(host);
    if (problem !== null) return problem;
  }
  if (port !== null && (!PORT.test(port) || Number(port) > 65535)) {
    return "the Host's port is not a number from 0 to 65535";
  }
  if (!URL.canParse(`http://${authority}/`)) return "the Host is not a valid URL authority";
  if (USABLE.size >= USABLE_MAX) USABLE.clear();
  USABLE.add(authority);
  return null;
}

function hostProblem(host: string): string | null {
  if (host === "") return "the Host has an empty host name";
  const name = host.endsWith(".") ? host.slice(0, -1) : host;
  if (name.length > 253) return "the Host's name is longer than 253 characters";
  const labels = name.split(".");
  if (labels.every((label) => /^\d+$/.test(label))) {
    if (labels.length === 4 && labels.every((p) => IPV4_PART.test(p) && Number(p) <= 255)) {
      return null;
    }
    return "the Host is neither a dotted-quad IPv4 address nor a host name";
  }
  if (!labels.every((label) => LABEL.test(label))) {
    return "the Host's name has characters other than letters, digits, '-', '_' and dots";
  }
  if (NUMERIC_LABEL.test(labels.at(-1)!)) {
    return "the Host's name ends in a numeric label (not an IPv4 address)";
  }
  return null;
}
