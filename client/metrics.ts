/**
 * The client's metrics, with upstream PushProx's `pushprox_client_*` names.
 *
 * @module
 */

import { Counter, Gauge, Histogram, Registry } from "prom-client";
import {
  registerBuildInfo,
  registerDefaultMetrics,
  SCRAPE_DURATION_BUCKETS,
} from "../lib/metrics.ts";

/** The metrics the client updates. */
export interface ClientMetrics {
  readonly registry: Registry;
  /** Scrapes that failed before the target answered (refused, unreachable, deadline). */
  scrapeErrors: Counter;
  /** Pushes that failed. */
  pushErrors: Counter;
  /** Poll streams that failed or were lost. */
  pollErrors: Counter;
  /** Scrapes by the status returned to the proxy. */
  scrapes: Counter<"code">;
  /** Time from receiving a scrape to the end of its push. */
  scrapeDuration: Histogram;
  /** 1 while the Poll stream to the proxy is registered. */
  connected: Gauge;
}

/**
 * Creates the client's registry and metrics.
 *
 * @param options Whether to export process_* metrics.
 * @returns The metrics.
 */
export function createClientMetrics(
  options: { defaultMetrics?: boolean } = {},
): ClientMetrics {
  const registry = new Registry();
  const registers = [registry];
  if (options.defaultMetrics ?? true) {
    registerDefaultMetrics(registry);
  }
  registerBuildInfo(registry);
  const metrics: ClientMetrics = {
    registry,
    scrapeErrors: new Counter({
      name: "pushprox_client_scrape_errors_total",
      help: "Number of scrape errors",
      registers,
    }),
    pushErrors: new Counter({
      name: "pushprox_client_push_errors_total",
      help: "Number of push errors",
      registers,
    }),
    pollErrors: new Counter({
      name: "pushprox_client_poll_errors_total",
      help: "Number of poll errors",
      registers,
    }),
    scrapes: new Counter({
      name: "pushprox_client_scrapes_total",
      help: "Scrapes performed, by the HTTP status returned to the proxy.",
      labelNames: ["code"],
      registers,
    }),
    scrapeDuration: new Histogram({
      name: "pushprox_client_scrape_duration_seconds",
      help: "Time from receiving a scrape request to the end of its push.",
      buckets: [...SCRAPE_DURATION_BUCKETS],
      registers,
    }),
    connected: new Gauge({
      name: "pushprox_client_connected",
      help: "1 while the client is registered with the proxy.",
      registers,
    }),
  };
  return metrics;
}
