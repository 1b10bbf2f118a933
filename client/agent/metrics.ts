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
