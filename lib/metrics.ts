/**
 * Metric pieces both programs share.
 *
 * @module
 */

import { Gauge, loadCollectDefaultMetrics, Registry } from "./prom_client.ts";
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

/** Registries whose `nodejs_*` collectors load with their first exposition. */
const lazyDefaults = new WeakMap<Registry, Promise<void> | null>();

/**
 * Registers this project's `process_*` collector, which stays true under
 * Deno's permission flags where prom-client's reads 0, and prom-client's
 * `nodejs_*` runtime metrics (event loop lag, V8 heap, GC). Those load with
 * the registry's first {@linkcode exposition}, not at start: a program
 * whose own metrics are never scraped does not carry them (about 3.7 MiB
 * RSS; their counters and the event loop monitor start at that first
 * scrape). `nodejs_version_info` is left out: under Deno it reports the Node
 * compatibility layer's version, not a Node.js; Deno's own version is in
 * `pushprox_build_info`.
 *
 * @param registry Where to register them.
 */
export function registerDefaultMetrics(registry: Registry): void {
  registerProcessMetrics(registry);
  lazyDefaults.set(registry, null);
}

/**
 * The registry's text exposition, as `registry.metrics()`; loads the
 * default collectors that {@linkcode registerDefaultMetrics} deferred first.
 *
 * @param registry The registry.
 * @returns The exposition text.
 */
export async function exposition(registry: Registry): Promise<string> {
  if (lazyDefaults.has(registry)) {
    let loading = lazyDefaults.get(registry) ?? null;
    if (loading === null) {
      loading = loadDefaults(registry);
      lazyDefaults.set(registry, loading);
    }
    try {
      await loading;
      lazyDefaults.delete(registry);
    } catch (error) {
      // Tried again at the next scrape; this one fails (the caller answers 500).
      lazyDefaults.set(registry, null);
      throw error;
    }
  }
  return await registry.metrics();
}

async function loadDefaults(registry: Registry): Promise<void> {
  const collectDefaultMetrics = await loadCollectDefaultMetrics();
  // Collected into a scratch registry, so that prom-client's process_*
  // (ours are registered) never meet ours.
  const scratch = new Registry();
  collectDefaultMetrics({ register: scratch });
  for (const { name } of scratch.getMetricsAsArray()) {
    if (name.startsWith("process_") || name === "nodejs_version_info") continue;
    const metric = scratch.getSingleMetric(name);
    if (metric !== undefined && registry.getSingleMetric(name) === undefined) {
      registry.registerMetric(metric);
    }
  }
}
