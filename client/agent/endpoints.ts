/**
 * The set of proxy endpoints a client keeps a Poll stream to: one per
 * `--proxy-url`, or one per address when a URL's host resolves to several
 * (a Kubernetes headless Service lists every replica). Pure: the agent
 * resolves names and runs pollers; this decides which should run.
 *
 * @module
 */

/** One Poll stream's destination. */
export interface Endpoint {
  /** Stable identity: the URL, plus the address when pinned. */
  key: string;
  /** The `--proxy-url` as given (credentials included). */
  url: string;
  /** Connect to this IP instead of resolving the host; null to resolve. */
  address: string | null;
  /** For logs and PollRequest.proxies: no credentials. */
  label: string;
}

/** What the resolver found for one URL. */
export interface Resolution {
  /** Addresses of the URL's host; empty when it does not resolve (yet). */
  addresses: readonly string[];
  /** False when a direct lookup is pointless (IP literal, HTTP proxy in use, disabled). */
  pin: boolean;
}

/**
 * The endpoints to stream to: a URL whose host resolved gets one endpoint
 * per address (pinned, so that a changing answer moves only the streams
 * whose address changed); a URL not resolved (yet), or not to be pinned,
 * gets one endpoint that connects by name.
 *
 * @param urls The `--proxy-url` values, in order.
 * @param resolutions What the resolver found, by URL; missing means unknown.
 * @returns Endpoints in a stable order, without duplicates.
 */
export function desiredEndpoints(
  urls: readonly string[],
  resolutions: ReadonlyMap<string, Resolution>,
): Endpoint[] {
  const endpoints = new Map<string, Endpoint>();
  for (const url of urls) {
    const label = redact(url);
    const resolution = resolutions.get(url);
    const addresses = [...new Set(resolution?.addresses ?? [])].sort();
    if (resolution?.pin && addresses.length > 0) {
      for (const address of addresses) {
        const key = `${url}#${address}`;
        endpoints.set(key, { key, url, address, label: `${label} (${address})` });
      }
    } else if (!endpoints.has(url)) {
      endpoints.set(url, { key: url, url, address: null, label });
    }
  }
  return [...endpoints.values()];
}

/**
 * What to start and stop to get from the running endpoints to the desired
 * ones.
 *
 * @param running Keys of the endpoints with a poller now.
 * @param desired The endpoints wanted.
 * @returns Endpoints to start, and keys to stop.
 */
export function reconcileEndpoints(
  running: Iterable<string>,
  desired: readonly Endpoint[],
): { start: Endpoint[]; stop: string[] } {
  const current = new Set(running);
  const wanted = new Set(desired.map((e) => e.key));
  return {
    start: desired.filter((e) => !current.has(e.key)),
    stop: [...current].filter((key) => !wanted.has(key)),
  };
}

/**
 * A URL without its credentials and trailing slashes, for logs and listings.
 *
 * @param url The URL.
 * @returns The redacted URL, or the input when it is not a URL.
 */
export function redact(url: string): string {
  try {
    const parsed = new URL(url);
    parsed.username = "";
    parsed.password = "";
    return parsed.toString().replace(/\/+$/, "");
  } catch {
    return url;
  }
}

/**
 * Whether a host is an IP literal (nothing to resolve).
 *
 * @param hostname A URL's hostname (IPv6 in brackets or not).
 * @returns True for IPv4 and IPv6 literals.
 */
export function isIpLiteral(hostname: string): boolean {
  const host = hostname.replace(/^\[|\]$/g, "");
  return /^\d{1,3}(\.\d{1,3}){3}$/.test(host) || host.includes(":");
}
