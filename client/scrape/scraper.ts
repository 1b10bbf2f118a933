/**
 * The scrape executor: turns a ScrapeRequest from the proxy into a request to
 * a local target, or into a failure with a status and a reason.
 *
 * @module
 */

import {
  declaredLength,
  forwardableFields,
  forwardableHeaders,
  type HeaderField,
} from "../../lib/headers.ts";
import { hostKey } from "../../lib/host.ts";
import type {
  ModuleScrapeHandler,
  ScrapeJob,
  ScrapeOutcome,
  ScrapeTransport,
  TargetResponse,
} from "./scrape_types.ts";
import { errorMessage } from "../../lib/error_message.ts";

export type { ScrapeJob, ScrapeOutcome } from "./scrape_types.ts";

/** Performs scrapes for one client. */
export interface Scraper {
  /**
   * Scrapes the target named by the job. Never throws: every failure is an
   * outcome with a status (403 refused, 502 unreachable, 504 deadline).
   */
  scrape(job: ScrapeJob, signal: AbortSignal): Promise<ScrapeOutcome>;
}

/** Options for {@linkcode createScraper}. */
export interface ScraperOptions {
  /** The client's fqdn: the only host it scrapes. */
  fqdn: string;
  /** Sends the scrape; the URL it gets may be shared by scrapes: it reads it, never changes it. */
  transport: ScrapeTransport;
  /**
   * With modules configured: decides `/proxy?module=` scrapes (and refuses
   * raw ones) before any port is dialled; null from it means "scrape the
   * port as usual". See client/modules/scrape_route.ts.
   */
  moduleHandler?: ModuleScrapeHandler;
  /**
   * What raw (port) scrapes may fetch besides the fqdn check; module scrapes
   * are governed by their module. @default {any port and path on the fqdn}
   */
  policy?: Partial<ScrapePolicy>;
  /**
   * Reads the bearer token sent to targets (`--token-path`), on every scrape
   * so that rotated tokens are picked up. @default {no token}
   */
  readToken?: () => Promise<string>;
}

/** Limits on what a client fetches for the proxy, beyond its fqdn. */
export interface ScrapePolicy {
  /** Ports that may be scraped; null for any. A URL without a port means the scheme's default. */
  allowPorts: readonly number[] | null;
  /**
   * Paths that may be scraped; null for any. An entry ending in `*` is a
   * prefix ("/federate*"); any other entry must equal the path.
   */
  allowPaths: readonly string[] | null;
  /** Dial 127.0.0.1 instead of the fqdn (the Host header keeps the fqdn). */
  useLocalhost: boolean;
}

/** Where and how a scrape is sent after the policy. */
export interface PolicyTarget {
  /** The URL to request (host rewritten by useLocalhost). */
  url: URL;
  /** The Host header to send; null for the URL's own. */
  hostHeader: string | null;
}

/**
 * Applies the scrape policy to a resolved URL. Pure.
 *
 * @param url The URL from {@linkcode resolveTargetUrl}.
 * @param policy The policy.
 * @returns Where to send the scrape, or why it is refused.
 */
export function applyScrapePolicy(url: URL, policy: ScrapePolicy): PolicyTarget | string {
  // Unlike the Rancher fork, a URL without a port is checked too: its port is
  // the scheme's default.
  const port = url.port !== "" ? Number(url.port) : url.protocol === "https:" ? 443 : 80;
  if (policy.allowPorts !== null && !policy.allowPorts.includes(port)) {
    return `client does not have permissions to scrape port ${port}${
      url.port === "" ? ` (the default port of ${url.protocol.slice(0, -1)})` : ""
    }; allowed: ${policy.allowPorts.join(", ") || "none"}`;
  }
  if (policy.allowPaths !== null) {
    const path = url.pathname;
    const allowed = policy.allowPaths.some((entry) =>
      entry.endsWith("*") ? path.startsWith(entry.slice(0, -1)) : path === entry
    );
    if (!allowed) {
      return `client does not have permissions to scrape path ${JSON.stringify(path)}; allowed: ${
        policy.allowPaths.join(", ")
      }`;
    }
  }
  if (!policy.useLocalhost) return { url, hostHeader: null };
  const local = new URL(url);
  local.hostname = "127.0.0.1";
  return { url: local, hostHeader: url.host };
}

/** Scrape URLs whose target is kept (all are forgotten when more come). */
const KNOWN_URLS = 256;

const OPEN_POLICY: ScrapePolicy = { allowPorts: null, allowPaths: null, useLocalhost: false };

/**
 * Resolves the URL the client really requests: checks the host, applies the
 * `_scheme` parameter and removes it.
 *
 * @param rawUrl The URL from the proxy.
 * @param fqdn The client's fqdn.
 * @returns The URL, or a refusal reason.
 */
export function resolveTargetUrl(rawUrl: string, fqdn: string): URL | string {
  let url: URL;
  try {
    url = new URL(rawUrl);
  } catch {
    return `malformed scrape URL ${JSON.stringify(rawUrl)}`;
  }
  if (url.protocol !== "http:") return `scrape URL ${rawUrl} is not http`;
  if (hostKey(url.hostname) !== hostKey(fqdn)) {
    return `scrape target host "${url.hostname}" does not match the client's fqdn "${fqdn}"`;
  }
  // A `_scheme` parameter's name has a "_" (or "%5F"): most queries have neither.
  const search = url.search;
  if (!search.includes("_") && !search.includes("%")) return url;
  const scheme = url.searchParams.get("_scheme");
  if (scheme !== null) {
    if (scheme !== "http" && scheme !== "https") {
      return `_scheme must be http or https, not "${scheme}"`;
    }
    url.searchParams.delete("_scheme");
    if (scheme === "https") url.protocol = "https:";
  }
  return url;
}

/**
 * The target's header fields as pushed: the forwardable ones plus its
 * Content-Length, so that the proxy can refuse a body larger than
 * `--scrape.max-body-bytes` before relaying a byte and tell Prometheus the
 * length. The transport passes the body as the target sent it (gzip stays
 * compressed), so the length stays true; a chunked body has none.
 */
export function pushedHeaders(fields: readonly [string, string][]): HeaderField[] {
  const headers = forwardableHeaders(fields);
  let chunked = false;
  let length: string | null = null;
  let lengths = 0;
  for (let i = 0; i < fields.length; i++) {
    const lower = fields[i]![0].toLowerCase();
    if (lower === "transfer-encoding") chunked = true;
    else if (lower === "content-length") {
      length = fields[i]![1];
      lengths++;
    }
  }
  if (chunked || length === null) return headers;
  // The usual one plain value; lists and repeats as declaredLength reads them.
  if (lengths === 1 && DECIMAL.test(length)) {
    headers.push({ name: "content-length", value: String(Number(length)) });
    return headers;
  }
  const declared = declaredLength(fields);
  if ("length" in declared && declared.length !== null) {
    headers.push({ name: "content-length", value: String(declared.length) });
  }
  return headers;
}

const DECIMAL = /^\d{1,15}$/;

/** Whether `fields` hold the names and values of `pairs` ([name, value, …]), in order. */
function sameFields(fields: readonly HeaderField[], pairs: readonly string[]): boolean {
  if (fields.length * 2 !== pairs.length) return false;
  for (let i = 0; i < fields.length; i++) {
    const field = fields[i]!;
    if (field.name !== pairs[2 * i] || field.value !== pairs[2 * i + 1]) return false;
  }
  return true;
}

function failure(status: number, error: string): ScrapeOutcome {
  return { status, headers: [], error, body: null };
}

/**
 * Creates a scraper.
 *
 * @param options The fqdn and the transport.
 * @returns The scraper.
 */
export function createScraper(options: ScraperOptions): Scraper {
  const policy: ScrapePolicy = { ...OPEN_POLICY, ...options.policy };
  // Prometheus asks for the same few URLs again and again: without modules
  // (whose handler gets the URL to read as it likes), each one's target or
  // refusal is worked out once (a URL parsed per scrape was 3 % of the
  // client's busy time, issue #11). The transports only read the URL.
  const known = options.moduleHandler ? null : new Map<string, PolicyTarget | string>();
  // The target's last answer fields as pushed: a transport that hands the
  // same frozen fields again (a reused head, lib/http1_head.ts
  // ResponseHeadCache) gets the same frozen list, not a new one per scrape.
  let lastFields: readonly [string, string][] | null = null;
  let lastPushed: HeaderField[] = [];
  const pushed = (fields: readonly [string, string][]): HeaderField[] => {
    if (fields === lastFields) return lastPushed;
    const headers = pushedHeaders(fields);
    if (Object.isFrozen(fields)) {
      for (const header of headers) Object.freeze(header);
      lastFields = fields;
      lastPushed = Object.freeze(headers) as HeaderField[];
    }
    return headers;
  };
  // The last scrape's forwarded fields (Host included) for its target, and
  // the request fields they came from: the next scrape of a known URL with
  // the same fields (Prometheus sends the same ones every scrape, decoded
  // to the same strings) takes the same frozen list instead of filtering
  // and lower-casing them again (issue #11).
  // A frozen list of frozen fields is the same fields while it is the same
  // list (the Poll stream's decoder hands the last one again,
  // client/transport/pushprox_codec.ts).
  let lastTarget: PolicyTarget | null = null;
  let lastAskedList: readonly HeaderField[] | null = null;
  let lastAsked: string[] = [];
  let lastForwarded: readonly HeaderField[] = [];
  const forwarded = (
    target: PolicyTarget,
    asked: readonly HeaderField[],
  ): readonly HeaderField[] => {
    if (target === lastTarget && (asked === lastAskedList || sameFields(asked, lastAsked))) {
      return lastForwarded;
    }
    const headers = forwardableFields(asked);
    if (target.hostHeader !== null) headers.push({ name: "host", value: target.hostHeader });
    if (known === null) return headers;
    for (const header of headers) Object.freeze(header);
    lastTarget = target;
    lastAsked = asked.flatMap((field) => [field.name, field.value]);
    lastAskedList = Object.isFrozen(asked) && asked.every((field) => Object.isFrozen(field))
      ? asked
      : null;
    lastForwarded = Object.freeze(headers);
    return lastForwarded;
  };
  const resolve = async (job: ScrapeJob, signal: AbortSignal) => {
    const resolved = resolveTargetUrl(job.url, options.fqdn);
    if (typeof resolved === "string") return resolved;
    if (options.moduleHandler) {
      const handled = await options.moduleHandler(resolved, job, signal);
      if (handled !== null) return handled;
    }
    return applyScrapePolicy(resolved, policy);
  };
  // The target's answer as an outcome: made once, not per scrape.
  const answered = (response: TargetResponse): ScrapeOutcome => ({
    status: response.status,
    headers: pushed(response.headers),
    error: "",
    body: response.body,
  });
  // Sends the scrape; never rejects: a failure is an outcome.
  const send = (
    url: URL,
    headers: readonly HeaderField[],
    job: ScrapeJob,
    signal: AbortSignal,
  ): Promise<ScrapeOutcome> => {
    const failed = (error: unknown): ScrapeOutcome =>
      signal.aborted
        ? failure(504, `scrape of ${url} hit its deadline before the target answered`)
        : failure(502, `target did not answer: ${errorMessage(error)}`);
    try {
      return options.transport(url, { method: job.method || "GET", headers, signal })
        .then(answered, failed);
    } catch (error) {
      return Promise.resolve(failed(error));
    }
  };
  const scrapeSlow = async (
    job: ScrapeJob,
    signal: AbortSignal,
    target: PolicyTarget | string | undefined,
  ): Promise<ScrapeOutcome> => {
    if (target === undefined) {
      const found = await resolve(job, signal);
      if (typeof found !== "string" && !("url" in found)) return found;
      target = found;
      if (known !== null) {
        if (known.size >= KNOWN_URLS) known.clear();
        known.set(job.url, target);
      }
    }
    if (typeof target === "string") return failure(403, target);
    const url = target.url;
    let headers = forwarded(target, job.headers);
    if (options.readToken) {
      // Rancher's fork silently switches to https when --token-path is set;
      // here the scheme stays as asked, and a token never crosses the
      // network in clear.
      if (url.protocol !== "https:" && url.hostname !== "127.0.0.1") {
        return failure(
          403,
          `refusing to send the --token-path token over plain http to ${url.host}; scrape with params _scheme=[https]`,
        );
      }
      let token: string;
      try {
        token = (await options.readToken()).trim();
      } catch (error) {
        return failure(500, `cannot read token from token-path: ${errorMessage(error)}`);
      }
      // (A new list: the forwarded one may be kept for the next scrape.)
      const withToken = headers.filter((h) => h.name !== "authorization");
      withToken.push({ name: "authorization", value: `Bearer ${token}` });
      headers = withToken;
    }
    return await send(url, headers, job, signal);
  };
  return {
    scrape(job, signal) {
      const target = known?.get(job.url);
      // A known URL and no token (the usual scrape): the transport's promise
      // and one step, not an async function's frame per scrape (issue #11).
      if (target === undefined || typeof target === "string" || options.readToken) {
        return scrapeSlow(job, signal, target);
      }
      return send(target.url, forwarded(target, job.headers), job, signal);
    },
  };
}
