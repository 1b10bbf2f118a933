/**
 * Metric pieces both programs share.
 *
 * @module
 */

import { Gauge, type Registry } from "prom-client";
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
