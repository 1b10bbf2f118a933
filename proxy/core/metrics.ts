/**
 * The proxy's metrics, defined in one place. Names follow upstream PushProx
 * where it had them, including its `pushproxy_proxied_requests_total`
 * spelling, so existing dashboards keep working.
 *
 * @module
 */

import { Counter, Gauge, Histogram, Registry } from "../../lib/prom_client.ts";
import {
  registerBuildInfo,
  registerDefaultMetrics,
  SCRAPE_DURATION_BUCKETS,
} from "../../lib/metrics.ts";
import { PUSH_ERROR_REASONS } from "./errors.ts";

/** The metrics the proxy's adapters update. */
export interface ProxyMetrics {
  readonly registry: Registry;
  /** API requests (`/clients`, `/metrics`, RPCs) by path and status code. */
  httpRequests: Counter<"code" | "path">;
  /** Duration of API requests by path. */
  httpDuration: Histogram<"path">;
  /** Scrapes answered to Prometheus, by status code. */
  proxiedRequests: Counter<"code">;
  /** Duration of scrapes through the proxy, by status code. */
  scrapeDuration: Histogram<"code">;
  /** Body bytes relayed to Prometheus. */
  relayedBytes: Counter;
  /** Poll streams opened. */
  registrations: Counter;
  /** Pushes refused or failed, by reason. */
  pushErrors: Counter<"reason">;
  /** Requests refused for missing or wrong credentials, by role and reason. */
  authFailures: Counter<"role" | "reason">;
  /** Requests and registrations refused because a limit was reached, by limit. */
  limitHits: Counter<"limit">;
  /** Requests refused with 400 before routing (no usable Host, ...), by reason. */
  badRequests: Counter<"reason">;
  /** Requests whose handler threw or rejected (answered 500 or closed). */
  handlerErrors: Counter;
  /** Errors and rejections no handler caught, logged by the last-resort handler. */
  uncaughtErrors: Counter;
}

/** Options for {@linkcode createProxyMetrics}. */
export interface ProxyMetricsOptions {
  /** Read when the clients gauge is collected. */
  clientCount: () => number;
  /** Read when the in-flight gauge is collected. */
  scrapesInFlight: () => number;
  /** Also export process_* and nodejs_* metrics. @default {true} */
  defaultMetrics?: boolean;
}

/** Status codes pre-created so their series exist from start-up. */
const COMMON_CODES = ["200", "400", "404", "500", "502", "503", "504"];

/**
 * Creates the proxy's registry and metrics.
 *
 * @param options Readers for the gauges.
 * @returns The metrics.
 */
export function createProxyMetrics(options: ProxyMetricsOptions): ProxyMetrics {
  const registry = new Registry();
  const registers = [registry];
  if (options.defaultMetrics ?? true) {
    registerDefaultMetrics(registry);
  }

  registerBuildInfo(registry);
  new Gauge({
    name: "pushprox_proxy_clients",
    help: "Number of known pushprox clients.",
    registers,
    collect() {
      this.set(options.clientCount());
    },
  });
  new Gauge({
    name: "pushprox_proxy_scrapes_in_flight",
    help: "Scrapes waiting for a client's answer or relaying it.",
    registers,
    collect() {
      this.set(options.scrapesInFlight());
    },
  });

  const metrics: ProxyMetrics = {
    registry,
    httpRequests: new Counter({
      name: "pushprox_http_requests_total",
      help: "Number of http api requests.",
      labelNames: ["code", "path"],
      registers,
    }),
    httpDuration: new Histogram({
      name: "pushprox_http_duration_seconds",
      help: "Time taken by path",
      labelNames: ["path"],
      registers,
    }),
    proxiedRequests: new Counter({
      name: "pushproxy_proxied_requests_total",
      help: "Number of http requests proxied to clients (upstream's spelling).",
      labelNames: ["code"],
      registers,
    }),
    scrapeDuration: new Histogram({
      name: "pushprox_proxy_scrape_duration_seconds",
      help: "Duration of scrapes through the proxy, from request to last body byte.",
      labelNames: ["code"],
      buckets: [...SCRAPE_DURATION_BUCKETS],
      registers,
    }),
    relayedBytes: new Counter({
      name: "pushprox_proxy_relayed_bytes_total",
      help: "Scrape body bytes relayed from clients to Prometheus.",
      registers,
    }),
    registrations: new Counter({
      name: "pushprox_proxy_registrations_total",
      help: "Poll streams opened by clients.",
      registers,
    }),
    pushErrors: new Counter({
      name: "pushprox_proxy_push_errors_total",
      help: "Pushes refused or failed, by reason.",
      labelNames: ["reason"],
      registers,
    }),
    authFailures: new Counter({
      name: "pushprox_proxy_auth_failures_total",
      help: "Requests refused for missing, wrong, expired or insufficient credentials.",
      labelNames: ["role", "reason"],
      registers,
    }),
    limitHits: new Counter({
      name: "pushprox_proxy_limit_hits_total",
      help: "Requests and registrations refused because a limit was reached.",
      labelNames: ["limit"],
      registers,
    }),
    badRequests: new Counter({
      name: "pushprox_proxy_bad_requests_total",
      help: "Requests refused with 400 before routing, by reason.",
      labelNames: ["reason"],
      registers,
    }),
    handlerErrors: new Counter({
      name: "pushprox_proxy_handler_errors_total",
      help: "Requests whose handler failed unexpectedly; answered 500 or closed.",
      registers,
    }),
    uncaughtErrors: new Counter({
      name: "pushprox_proxy_uncaught_errors_total",
      help:
        "Errors and promise rejections that no handler caught (logged; the proxy keeps serving).",
      registers,
    }),
  };
  for (const role of ["client", "scraper", "reader", "tls"]) {
    for (const reason of ["missing", "invalid", "expired", "forbidden"]) {
      metrics.authFailures.inc({ role, reason }, 0);
    }
  }
  for (
    const limit of [
      "clients",
      "scrapes_per_client",
      "scrapes",
      "scrape_body_bytes",
      "header_bytes",
      "header_timeout",
      "poll_request_fields",
      "registry_bytes",
      "clients_per_source",
      "registrations_per_source",
      "auth_failures_per_source",
      "body_idle_timeout",
      "body_drain",
      "request_timeout",
    ]
  ) {
    metrics.limitHits.inc({ limit }, 0);
  }
  metrics.badRequests.inc({ reason: "authority" }, 0);
  for (const code of COMMON_CODES) metrics.proxiedRequests.inc({ code }, 0);
  for (const path of ["/clients", "/metrics"]) {
    metrics.httpRequests.inc({ code: "200", path }, 0);
  }
  for (const reason of [...PUSH_ERROR_REASONS, "relay_failed"]) {
    metrics.pushErrors.inc({ reason }, 0);
  }
  return metrics;
}
