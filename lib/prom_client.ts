/**
 * prom-client, loaded by the parts this project uses. Its package entry
 * point also loads the Pushgateway client (node:http, node:https), the
 * cluster aggregator (node:cluster), Summary's t-digest and the default
 * collectors, which a client that never serves them pays for in memory:
 * importing `prom-client` brings a Deno program to 53.8 MiB RSS, these four
 * modules to 47.8 (issue #11; Deno 2.9.6). The types still come from the
 * package's own declarations; the values are its CommonJS modules, the same
 * objects the entry point re-exports.
 *
 * @module
 */

import type * as PromClient from "prom-client";
import RegistryModule from "prom-client/lib/registry.js";
import CounterModule from "prom-client/lib/counter.js";
import GaugeModule from "prom-client/lib/gauge.js";
import HistogramModule from "prom-client/lib/histogram.js";

/** prom-client's `Registry`. */
export const Registry: typeof PromClient.Registry = RegistryModule;
/** prom-client's `Registry`. */
export type Registry = PromClient.Registry;
/** prom-client's `Counter`. */
export const Counter: typeof PromClient.Counter = CounterModule;
/** prom-client's `Counter`. */
export type Counter<T extends string = string> = PromClient.Counter<T>;
/** prom-client's `Gauge`. */
export const Gauge: typeof PromClient.Gauge = GaugeModule;
/** prom-client's `Gauge`. */
export type Gauge<T extends string = string> = PromClient.Gauge<T>;
/** prom-client's `Histogram`. */
export const Histogram: typeof PromClient.Histogram = HistogramModule;
/** prom-client's `Histogram`. */
export type Histogram<T extends string = string> = PromClient.Histogram<T>;

/** prom-client's `Summary` (type only: the class loads with the module engine). */
export type Summary<T extends string = string> = PromClient.Summary<T>;

/**
 * prom-client's `collectDefaultMetrics`, loaded on first use.
 *
 * @returns The function.
 */
export async function loadCollectDefaultMetrics(): Promise<
  typeof PromClient.collectDefaultMetrics
> {
  return (await import("prom-client/lib/defaultMetrics.js")).default;
}
