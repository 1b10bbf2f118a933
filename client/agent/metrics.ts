/**
 * The client's metrics, with upstream PushProx's `pushprox_client_*` names,
 * and the `--metrics-addr` listener's routes.
 *
 * @module
 */

import type { IncomingMessage, ServerResponse } from "node:http";
import { Counter, Gauge, Histogram, Registry } from "../../lib/prom_client.ts";
import { methodNotAllowed, type Readiness, serveHealth } from "../../lib/health.ts";
import {
  exposition,
  registerBuildInfo,
  registerDefaultMetrics,
  SCRAPE_DURATION_BUCKETS,
} from "../../lib/metrics.ts";

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

/** prom-client's own entry for a counter's label set (its `hashMap` values). */
interface CounterEntry {
  value: number;
}

/** prom-client's own entry for a histogram's label set (its `hashMap` values). */
interface HistogramEntry {
  sum: number;
  count: number;
  bucketValues: Record<string, number>;
}

/** Label sets of `scrapes` whose entries are kept (a few statuses in practice). */
const KEPT_CODES = 32;

/**
 * The two updates of every scrape, `scrapes{code}` and `scrapeDuration`,
 * without prom-client hashing and checking labels on each call (about 2 %
 * of the client's CPU per scrape at 57 KiB; issue #11), in the way of
 * client/modules/metrics.ts's summary: the first update of a label set
 * goes through prom-client (which makes its entry); later ones add to
 * that entry directly while it is still the registered one (a reset or
 * `remove` takes the prom-client path again). What is exposed is
 * prom-client's own rendering of its own entries, as before.
 */
export class ScrapeRecorder {
  readonly #metrics: ClientMetrics;
  /** Per status: prom-client's hash key of `{code}` and its entry. */
  readonly #codes = new Map<number, { key: string; entry: CounterEntry }>();
  #duration: HistogramEntry | undefined;
  /** The histogram's bounds, and their keys in an entry's `bucketValues`. */
  readonly #bounds: readonly number[];
  readonly #boundKeys: readonly string[];

  /**
   * Records into `metrics`.
   *
   * @param metrics The client's metrics.
   */
  constructor(metrics: ClientMetrics) {
    this.#metrics = metrics;
    const bounds = (metrics.scrapeDuration as unknown as { upperBounds: readonly number[] })
      .upperBounds;
    this.#bounds = bounds;
    this.#boundKeys = bounds.map(String);
  }

  /**
   * Counts a scrape in `scrapes` by the status returned to the proxy.
   *
   * @param status The status.
   */
  scraped(status: number): void {
    const counter = this.#metrics.scrapes;
    const map = (counter as unknown as { hashMap: Record<string, CounterEntry> }).hashMap;
    const known = this.#codes.get(status);
    if (known !== undefined && map[known.key] === known.entry) {
      known.entry.value += 1;
      return;
    }
    const code = String(status);
    counter.inc({ code });
    // prom-client's hash of a single label: `name:value,`.
    const key = `code:${code},`;
    const entry = map[key];
    if (entry !== undefined && (known !== undefined || this.#codes.size < KEPT_CODES)) {
      this.#codes.set(status, { key, entry });
    }
  }

  /**
   * Observes a scrape's duration in `scrapeDuration`.
   *
   * @param seconds The duration.
   */
  took(seconds: number): void {
    const histogram = this.#metrics.scrapeDuration;
    const map = (histogram as unknown as { hashMap: Record<string, HistogramEntry> }).hashMap;
    const entry = this.#duration;
    if (entry === undefined || map[""] !== entry || !Number.isFinite(seconds)) {
      histogram.observe(seconds);
      this.#duration = map[""];
      return;
    }
    entry.sum += seconds;
    entry.count += 1;
    // The first bound at or above it; none counts only in +Inf (the count).
    const bounds = this.#bounds;
    for (let i = 0; i < bounds.length; i++) {
      if (seconds <= bounds[i]!) {
        entry.bucketValues[this.#boundKeys[i]!]! += 1;
        return;
      }
    }
  }
}

/** Options for {@linkcode createMetricsHandler}. */
export interface MetricsHandlerOptions {
  /** Served on `/metrics`. */
  readonly registry: Registry;
  /** Answers `/-/ready`. */
  readonly ready: () => Readiness;
}

/** The paths of the `--metrics-addr` listener; others get 404. */
export const METRICS_LISTENER_PATHS: readonly string[] = ["/metrics", "/-/healthy", "/-/ready"];

/**
 * The `--metrics-addr` listener's requests: `/metrics`, `/-/healthy` and
 * `/-/ready` (lib/health.ts), GET and HEAD; 404 on other paths.
 *
 * @param options The registry and the readiness.
 * @returns A node:http request handler.
 */
export function createMetricsHandler(
  options: MetricsHandlerOptions,
): (req: IncomingMessage, res: ServerResponse) => Promise<void> | void {
  const health = { healthy: "Healthy\n", ready: options.ready };
  return function serveMetricsListener(req, res) {
    const path = (req.url ?? "/").split("?", 1)[0]!;
    if (serveHealth(health, req, res, path) !== null) return;
    const text = { "content-type": "text/plain; charset=utf-8" };
    if (path !== "/metrics") {
      res.writeHead(404, text).end(
        `Not found: ${path} (try ${METRICS_LISTENER_PATHS.join(", ")})\n`,
      );
      return;
    }
    const method = req.method ?? "GET";
    if (method !== "GET" && method !== "HEAD") {
      const answer = methodNotAllowed(method, path);
      res.writeHead(answer.status, answer.headers).end(answer.body);
      return;
    }
    return exposition(options.registry).then((body) => {
      res.writeHead(200, { "content-type": options.registry.contentType })
        .end(method === "HEAD" ? undefined : body);
    });
  };
}
