/**
 * Which HTTP proxy, if any, the client uses to reach a PushProx proxy, from
 * the environment as curl and Go read it: `https_proxy`/`HTTPS_PROXY` for
 * https URLs, `http_proxy`/`HTTP_PROXY` for http URLs (lower case first), and
 * `no_proxy`/`NO_PROXY` for exceptions.
 *
 * @module
 */

/** The environment variables read; a plain record so tests can pass one. */
export type ProxyEnv = Readonly<Record<string, string | undefined>>;

/**
 * Returns the HTTP proxy to tunnel through for `target`, or null for a direct
 * connection.
 *
 * `NO_PROXY` is a comma- or space-separated list of: `*` (no proxy at all),
 * host names (matching the host and its subdomains; a leading `.` or `*.`
 * is ignored), IP addresses, CIDR ranges such as `10.0.0.0/8`, each
 * optionally with `:port`.
 *
 * @param target The URL to reach.
 * @param env The environment.
 * @returns The proxy URL, or null.
 * @throws {TypeError} When the proxy variable is not an http(s) URL.
 */
export function proxyForUrl(target: URL, env: ProxyEnv): URL | null {
  const names = target.protocol === "https:"
    ? ["https_proxy", "HTTPS_PROXY"]
    : ["http_proxy", "HTTP_PROXY"];
  let proxy = "";
  let from = "";
  for (const name of names) {
    const value = env[name]?.trim();
    if (value) {
      proxy = value;
      from = name;
      break;
    }
  }
  if (proxy === "") return null;
  const noProxy = (env["no_proxy"] ?? env["NO_PROXY"] ?? "").trim();
  if (noProxy !== "" && bypasses(target, noProxy)) return null;
  // "proxy:3128" without a scheme means http, as curl takes it.
  const text = /^[a-zA-Z][a-zA-Z0-9+.-]*:\/\//.test(proxy) ? proxy : `http://${proxy}`;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new TypeError(`Cannot use ${from}="${proxy}": not a URL`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new TypeError(`Cannot use ${from}="${proxy}": only http:// and https:// proxies work`);
  }
  return url;
}

function bypasses(target: URL, noProxy: string): boolean {
  const host = stripBrackets(target.hostname).toLowerCase().replace(/\.$/, "");
  const port = target.port || (target.protocol === "https:" ? "443" : "80");
  for (let entry of noProxy.split(/[\s,]+/)) {
    entry = entry.trim().toLowerCase();
    if (entry === "") continue;
    if (entry === "*") return true;
    let entryPort = "";
    const portMatch = /^(\[[^\]]+\]|[^:]+):(\d+)$/.exec(entry);
    if (portMatch) {
      entry = portMatch[1]!;
      entryPort = portMatch[2]!;
    }
    if (entryPort !== "" && entryPort !== port) continue;
    entry = stripBrackets(entry).replace(/^\*?\./, "").replace(/\.$/, "");
    if (entry.includes("/")) {
      if (inCidr(host, entry)) return true;
      continue;
    }
    if (host === entry || host.endsWith(`.${entry}`)) return true;
  }
  return false;
}

function stripBrackets(host: string): string {
  return host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host;
}

/** IPv4 CIDR match; IPv6 ranges are compared as prefixes of the expanded form. */
function inCidr(host: string, cidr: string): boolean {
  const [base, bitsText] = cidr.split("/", 2) as [string, string];
  const bits = Number(bitsText);
  const a = ipv4(host);
  const b = ipv4(base);
  if (a !== null && b !== null && bits >= 0 && bits <= 32) {
    const mask = bits === 0 ? 0 : (~0 << (32 - bits)) >>> 0;
    return ((a & mask) >>> 0) === ((b & mask) >>> 0);
  }
  const x = ipv6(host);
  const y = ipv6(base);
  if (x === null || y === null || !(bits >= 0 && bits <= 128)) return false;
  for (let i = 0; i < bits; i++) {
    const bitX = (x[i >> 4]! >> (15 - (i & 15))) & 1;
    const bitY = (y[i >> 4]! >> (15 - (i & 15))) & 1;
    if (bitX !== bitY) return false;
  }
  return true;
}

function ipv4(text: string): number | null {
  const parts = text.split(".");
  if (parts.length !== 4) return null;
  let value = 0;
  for (const part of parts) {
    if (!/^\d{1,3}$/.test(part) || Number(part) > 255) return null;
    value = value * 256 + Number(part);
  }
  return value >>> 0;
}

function ipv6(text: string): number[] | null {
  if (!text.includes(":")) return null;
  const [head, tail, extra] = text.split("::");
  if (extra !== undefined) return null;
  const parse = (s: string | undefined) => (s ? s.split(":") : []).map((g) => parseInt(g, 16));
  const left = parse(head);
  const right = parse(tail);
  if ([...left, ...right].some((n) => !(n >= 0 && n <= 0xffff))) return null;
  if (tail === undefined) return left.length === 8 ? left : null;
  const fill = 8 - left.length - right.length;
  if (fill < 0) return null;
  return [...left, ...new Array(fill).fill(0), ...right];
}
