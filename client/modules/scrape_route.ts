/**
 * Modules through the proxy: the scrape executor asks this route first. With
 * modules configured, Prometheus scrapes `http://<fqdn>:<any port>/proxy?module=NAME`
 * (`metrics_path: /proxy`, `params: module: [NAME]`, `proxy_url:` the
 * proxy); the port is not dialled. `/-/metrics` on any port is the client's
 * own metrics. Any other path is a raw port scrape, refused unless
 * `--allow.raw-scrapes` is set.
 *
 * @module
 */

import type { ModuleScrapeHandler, ScrapeOutcome } from "../scrape/scrape_types.ts";
import type { ModuleEngine } from "./engine.ts";
import { errorMessage } from "../../lib/error_message.ts";

/** The path that reaches modules, as on exporter_exporter. */
export const MODULE_PATH = "/proxy";
/** The path that reaches the client's own metrics through the proxy. */
export const OWN_METRICS_PATH = "/-/metrics";

export type { ModuleScrapeHandler } from "../scrape/scrape_types.ts";

/** Options for {@linkcode createModuleScrapeHandler}. */
export interface ModuleScrapeHandlerOptions {
  /** The module engine. */
  engine: ModuleEngine;
  /** The client's own metrics in the text format. */
  ownMetrics: () => Promise<{ contentType: string; body: string }>;
  /** `--allow.raw-scrapes`: other paths are scraped from their port as without modules. */
  allowRawScrapes: boolean;
}

function failure(status: number, error: string): ScrapeOutcome {
  return { status, headers: [], error, body: null };
}

/**
 * Creates the route.
 *
 * @param options Engine, own metrics and the raw-scrape policy.
 * @returns The handler for the scraper's `moduleHandler` option.
 */
export function createModuleScrapeHandler(
  options: ModuleScrapeHandlerOptions,
): ModuleScrapeHandler {
  return async function routeModuleScrape(url, job, signal) {
    const path = url.pathname;
    if (path !== MODULE_PATH && path !== OWN_METRICS_PATH) {
      if (options.allowRawScrapes) return null;
      return failure(
        403,
        `raw scrapes of ${url.host}${path} are refused: this client serves modules (${MODULE_PATH}?module=NAME) and its own metrics (${OWN_METRICS_PATH}); start it with --allow.raw-scrapes to also scrape ports directly`,
      );
    }
    const method = job.method || "GET";
    if (method !== "GET" && method !== "HEAD") {
      return failure(405, `${path} answers GET and HEAD only, not ${method}`);
    }
    if (path === OWN_METRICS_PATH) {
      let metrics;
      try {
        metrics = await options.ownMetrics();
      } catch (error) {
        return failure(500, `cannot collect the client's metrics: ${errorMessage(error)}`);
      }
      const { contentType, body } = metrics;
      const bytes = new TextEncoder().encode(body);
      return {
        status: 200,
        headers: [{ name: "content-type", value: contentType }],
        error: "",
        body: (async function* () {
          yield bytes;
        })(),
      };
    }
    const response = await options.engine.serve(
      { query: url.searchParams, headers: job.headers },
      signal,
    );
    return {
      status: response.status,
      headers: response.headers,
      error: response.error,
      body: response.error === "" ? response.body : null,
    };
  };
}
