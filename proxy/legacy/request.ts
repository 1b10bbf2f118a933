/**
 * The poll response of upstream PushProx's wire protocol: a scrape written as
 * an HTTP/1.1 request in proxy form, byte for byte as Go's
 * `http.Request.WriteProxy` writes it, which is what `pushprox-client` parses
 * with `http.ReadRequest`.
 *
 * @module
 */

import type { ScrapeTask } from "../core/coordinator.ts";
import {
  formatScrapeTimeout,
  SCRAPE_TIMEOUT_HEADER,
  SCRAPE_TIMEOUT_HEADER_CANONICAL,
} from "../../lib/scrape_timeout.ts";

/** The header carrying the scrape id in both directions. */
export const LEGACY_ID_HEADER = "Id";
/** Go's default User-Agent, written when the scrape had none. */
const GO_USER_AGENT = "Go-http-client/1.1";
/** Fields Go writes itself or never copies from the header map. */
const EXCLUDED: ReadonlySet<string> = new Set([
  "host",
  "user-agent",
  "content-length",
  "transfer-encoding",
  "trailer",
]);
/** Fields the proxy replaces: the id and the remaining time. */
const REPLACED: ReadonlySet<string> = new Set([
  "id",
  SCRAPE_TIMEOUT_HEADER,
]);
const TOKEN_REGEXP = /^[!#$%&'*+\-.^_`|~0-9a-zA-Z]+$/;

/**
 * Returns Go's canonical form of a header name (`textproto.CanonicalMIMEHeaderKey`):
 * the first letter and every letter after a hyphen upper case, the rest lower
 * case. Names with characters outside the token set are returned unchanged.
 *
 * @param name A header name.
 * @returns The canonical name.
 */
export function canonicalHeaderName(name: string): string {
  if (!TOKEN_REGEXP.test(name)) return name;
  return name.toLowerCase().replace(/(^|-)([a-z])/g, (_, dash, c) => dash + c.toUpperCase());
}

/**
 * Writes a scrape as the body of a poll response: request line with the
 * absolute URL, `Host`, `User-Agent`, then the other fields sorted by their
 * canonical names, with `Id` set to the scrape id and
 * `X-Prometheus-Scrape-Timeout-Seconds` set to the time left. Scrapes are
 * GET or HEAD, so no body follows.
 *
 * @example Formatting a scrape
 * ```ts
 * import { formatLegacyScrape } from "./request.ts";
 * const text = formatLegacyScrape({
 *   id: "42",
 *   method: "GET",
 *   url: "http://node-a:9100/metrics",
 *   headers: [{ name: "accept", value: "text/plain" }],
 *   timeoutMs: 10_000,
 * });
 * // "GET http://node-a:9100/metrics HTTP/1.1\r\nHost: node-a:9100\r\n…"
 * ```
 *
 * @param task The scrape, as the coordinator hands it out.
 * @returns The request text (ASCII unless header values are not).
 */
export function formatLegacyScrape(task: ScrapeTask): string {
  const url = new URL(task.url);
  const host = url.host;
  const target = `${url.protocol}//${host}${url.pathname}${url.search}`;
  const fields = new Map<string, string[]>();
  for (const { name, value } of task.headers) {
    const lower = name.toLowerCase();
    if (EXCLUDED.has(lower) || REPLACED.has(lower)) continue;
    const key = canonicalHeaderName(name);
    const list = fields.get(key);
    if (list) list.push(value);
    else fields.set(key, [value]);
  }
  // Like Go: the first User-Agent value, or Go's own when there is none.
  const agent = task.headers.find((h) => h.name.toLowerCase() === "user-agent");
  const userAgent = agent === undefined ? GO_USER_AGENT : cleanValue(agent.value);
  fields.set(LEGACY_ID_HEADER, [task.id]);
  fields.set(SCRAPE_TIMEOUT_HEADER_CANONICAL, [formatScrapeTimeout(task.timeoutMs)]);

  let text = `${task.method || "GET"} ${target} HTTP/1.1\r\nHost: ${host}\r\n`;
  if (userAgent !== "") text += `User-Agent: ${userAgent}\r\n`;
  // Go sorts by key with sort.Strings: plain UTF-16/byte order for ASCII.
  for (const key of [...fields.keys()].sort((a, b) => a < b ? -1 : a > b ? 1 : 0)) {
    for (const value of fields.get(key)!) text += `${key}: ${cleanValue(value)}\r\n`;
  }
  return text + "\r\n";
}

/** Go's header writer: newlines become spaces, then surrounding blanks go. */
function cleanValue(value: string): string {
  return value.replace(/[\r\n]/g, " ").replace(/^[ \t]+|[ \t]+$/g, "");
}
