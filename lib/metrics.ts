/**
 * Metric pieces both programs share.
 *
 * @module
 */

import { collectDefaultMetrics, Gauge, type Registry } from "prom-client";
import { registerProcessMetrics } from "./process_metrics.ts";
import { VERSION } from "./version.ts";

/** Histogram buckets for scrape durations, from 5 ms to a minute. */
export const SCRAPE_DURATION_BUCKETS: readonly number[] = [
  0.005,
  0.01,
  0.025,
  0.05,
  0.1,
  0.25,
  0.5,
  1,
  2.5,
  5,
  10,
  30,
  60,
];

/**
 * Registers `pushprox_build_info{version,runtime} 1`.
 *
 * @param registry Where to register it.
 */
export function registerBuildInfo(registry: Registry): void {
  new Gauge({
    name: "pushprox_build_info",
    help: "A metric with a constant '1' value labeled by version and runtime.",
    labelNames: ["version", "runtime"],
    registers: [registry],
  }).set({ version: VERSION, runtime: `deno ${Deno.version.deno}` }, 1);
}

/**
 * Registers prom-client's `nodejs_*` runtime metrics (event loop lag, V8 heap,
 * GC) and this project's `process_*` collector, which stays true under Deno's
 * permission flags where prom-client's reads 0. `nodejs_version_info` is left
 * out: under Deno it reports the Node compatibility layer's version, not a
 * Node.js; Deno's own version is in `pushprox_build_info`.
 *
 * @param registry Where to register them.
 */
export function registerDefaultMetrics(registry: Registry): void {
  collectDefaultMetrics({ register: registry });
  for (const metric of registry.getMetricsAsArray()) {
    const name = (metric as unknown as { name: string }).name;
    if (name.startsWith("process_") || name === "nodejs_version_info") {
      registry.removeSingleMetric(name);
    }
  }
  registerProcessMetrics(registry);
}
