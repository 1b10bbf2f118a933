/**
 * Metrics of the module engine. The names are exporter_exporter's
 * (`expexp_*`), so dashboards and alerts written for it keep working; the
 * reload gauges follow Prometheus' own `…_config_last_reload_*` pair.
 *
 * @module
 */

import type * as PromClient from "prom-client";
import SummaryModule from "prom-client/lib/summary.js";
import { Counter, Gauge, type Registry, type Summary } from "../../lib/prom_client.ts";

// Loaded with the module engine, not by lib/prom_client.ts: a plain client
// has no summary.
const SummaryClass: typeof PromClient.Summary = SummaryModule;

/** prom-client's own entry for one label set of a summary (its `hashMap` values). */
interface SummaryEntry {
  count: number;
  sum: number;
}

/**
 * A summary without quantiles (`percentiles: []`: only `_sum` and `_count`
 * are exposed) that does not feed its t-digest on every observation, as
 * prom-client's Summary does whether or not it exposes a quantile: the
 * digest was 6 % of the client's CPU per module request (issue #11). The
 * first observation of a label set goes through prom-client (which makes
 * its entry); later ones add to that entry's count and sum directly while
 * it is still the registered one (a `remove` or a new entry takes the slow
 * path again). What is exposed is prom-client's own rendering.
 */
class SumCountSummary<T extends string> extends SummaryClass<T> {
  /** Per label value (a single label): its hash key and entry. */
  readonly #entries = new Map<string, { key: string; entry: SummaryEntry }>();
  readonly #label: T;

  constructor(config: PromClient.SummaryConfiguration<T> & { labelNames: readonly [T] }) {
    super({ ...config, percentiles: [] });
    this.#label = config.labelNames[0];
  }

  override observe(labels: PromClient.LabelValues<T> | number, value?: number): void {
    if (typeof labels !== "object" || typeof value !== "number" || !Number.isFinite(value)) {
      return super.observe(labels as PromClient.LabelValues<T>, value as number);
    }
    const name = labels[this.#label];
    const known = typeof name === "string" && Object.keys(labels).length === 1
      ? this.#entries.get(name)
      : undefined;
    const map = (this as unknown as { hashMap: Record<string, SummaryEntry> }).hashMap;
    if (known !== undefined && map[known.key] === known.entry) {
      known.entry.count++;
      known.entry.sum += value;
      return;
    }
    super.observe(labels, value);
    if (typeof name !== "string" || Object.keys(labels).length !== 1) return;
    // prom-client's hash of a single label: `name:value,`.
    const key = `${this.#label}:${name},`;
    const entry = map[key];
    if (entry !== undefined) this.#entries.set(name, { key, entry });
  }
}

/** The metrics the module engine updates. */
export interface ModuleMetrics {
  /** Time to serve a module request, body included. */
  duration: Summary<"module">;
  /**
   * Module requests the client answered with an error of its own (unknown
   * module under `module="unknown"`, unreachable backend, failed command,
   * verification failure, timeout).
   */
  errors: Counter<"module">;
  /** Module requests that hit their deadline. */
  timeouts: Counter<"module">;
  /** Bodies that failed verification. */
  malformed: Counter<"module">;
  /** Commands started by exec modules. */
  commandStarts: Counter<"module">;
  /** Commands that failed: non-zero exit, killed, too much output, not startable. */
  commandFails: Counter<"module">;
  /** File modules whose file could not be read. */
  fileFails: Counter<"module">;
  /** 1 when the last configuration reload succeeded. */
  reloadSuccessful: Gauge;
  /** Time of the last successful configuration (re)load. */
  reloadSuccessTimestamp: Gauge;
}

/**
 * Registers the module metrics in `registry`.
 *
 * @param registry The client's registry.
 * @returns The metrics.
 */
export function createModuleMetrics(registry: Registry): ModuleMetrics {
  const registers = [registry];
  const counter = (name: string, help: string) =>
    new Counter({ name, help, labelNames: ["module"] as const, registers });
  return {
    duration: new SumCountSummary({
      name: "expexp_proxy_duration_seconds",
      help: "Duration of proxying requests to configured exporters",
      labelNames: ["module"] as const,
      registers,
    }),
    errors: counter("expexp_proxy_errors_total", "Counts of errors"),
    timeouts: counter(
      "expexp_proxy_timeout_errors_total",
      "Counts of the number of times a proxy timeout occurred",
    ),
    malformed: counter(
      "expexp_malformed_content_errors_total",
      "Counts of unparsable scrape content errors",
    ),
    commandStarts: counter("expexp_command_starts_total", "Counts of command starts"),
    commandFails: counter(
      "expexp_command_fails_total",
      "Count of commands that failed (non-zero exit, killed, too much output)",
    ),
    fileFails: counter("expexp_file_fails_total", "Count of file modules that could not be read"),
    reloadSuccessful: new Gauge({
      name: "pushprox_client_config_last_reload_successful",
      help: "Whether the last module configuration reload attempt was successful.",
      registers,
    }),
    reloadSuccessTimestamp: new Gauge({
      name: "pushprox_client_config_last_reload_success_timestamp_seconds",
      help: "Timestamp of the last successful module configuration reload.",
      registers,
    }),
  };
}
