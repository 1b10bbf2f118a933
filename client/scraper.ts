/**
 * The scrape executor: turns a ScrapeRequest from the proxy into a request to
 * a local target, or into a failure with a status and a reason.
 *
 * @module
 */

import { forwardableHeaders, type HeaderField } from "../lib/headers.ts";
import { hostKey } from "../lib/host.ts";
import type { ModuleScrapeHandler } from "./modules/scrape_route.ts";
import type { ScrapeTransport } from "./scrape_transport.ts";

/** A scrape to perform, as the proxy sent it. */
export interface ScrapeJob {
  id: string;
  method: string;
  url: string;
  headers: readonly HeaderField[];
}

/** How a scrape went. */
export interface ScrapeOutcome {
  status: number;
  headers: HeaderField[];
  /** Empty on success; otherwise the reason, and `body` is null. */
  error: string;
  body: AsyncIterable<Uint8Array> | null;
}

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
  transport: ScrapeTransport;
  /**
   * With modules configured: decides `/proxy?module=` scrapes (and refuses
   * raw ones) before any port is dialled; null from it means "scrape the
   * port as usual". See client/modules/scrape_route.ts.
   */
  moduleHandler?: ModuleScrapeHandler;
}

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
  return {
    async scrape(job, signal) {
      const url = resolveTargetUrl(job.url, options.fqdn);
      if (typeof url === "string") return failure(403, url);
      if (options.moduleHandler) {
        const handled = await options.moduleHandler(url, job, signal);
        if (handled !== null) return handled;
      }
      try {
        const response = await options.transport(url, {
          method: job.method || "GET",
          headers: forwardableHeaders(
            job.headers.map((h) => [h.name, h.value]),
          ),
          signal,
        });
        return {
          status: response.status,
          headers: forwardableHeaders(response.headers),
          error: "",
          body: response.body,
        };
      } catch (error) {
        if (signal.aborted) {
          return failure(
            504,
            `scrape of ${url} hit its deadline before the target answered`,
          );
        }
        return failure(
          502,
          `target did not answer: ${(error as Error)?.message ?? error}`,
        );
      }
    },
  };
}
