/**
 * Per-scrape metric updates written into prom-client's own entries.
 *
 * prom-client hashes and checks the label object on every `inc` and
 * `observe`, and its `.labels()` children do the same on each call: about
 * 2 % of each program's CPU per 57 KiB scrape (issue #11). Here the first
 * update of a label value goes through prom-client, which makes its entry;
 * later ones add to that entry directly while it is still the registered
 * one (a reset or `remove` replaces it, and the next update takes
 * prom-client's path again). What `/metrics` shows is prom-client's own
 * rendering of its own entries. A metric that records exemplars, or a
 * prom-client whose internals differ, is left to prom-client whole.
 * (client/modules/metrics.ts's summary does the same for `_sum`/`_count`.)
 *
 * @module
 */

import type { Counter, Histogram } from "./prom_client.ts";

/** prom-client's entry for one label set of a counter (its `hashMap` values). */
interface CounterEntry {
  value: number;
}

/** prom-client's entry for one label set of a histogram (its `hashMap` values). */
interface HistogramEntry {
  sum: number;
  count: number;
  bucketValues: Record<string, number>;
}

/** Label values whose entries are kept per metric (a few statuses in practice). */
const KEPT_VALUES = 32;

/** What prom-client 15 keeps per metric, as read here. */
interface Internals {
  hashMap?: unknown;
  enableExemplars?: boolean;
  upperBounds?: unknown;
}

function entries<T>(metric: object): Record<string, T | undefined> {
  return (metric as { hashMap: Record<string, T | undefined> }).hashMap;
}

/** Whether the direct path can be taken for `metric`. */
function direct(metric: object): boolean {
  const internals = metric as Internals;
  return typeof internals.hashMap === "object" && internals.hashMap !== null &&
    internals.enableExemplars !== true;
}

/** prom-client's hash of a label set of one label: `name:value,`; of none: "". */
function hashKey(label: string | null, value: string | null): string {
  return label === null ? "" : `${label}:${value},`;
}

/**
 * Adds 1 to a counter with one label, by label value.
 *
 * @example
 * ```ts
 * import { Counter, Registry } from "./prom_client.ts";
 * const registry = new Registry();
 * const counter = new Counter({
 *   name: "scrapes_total",
 *   help: "Scrapes.",
 *   labelNames: ["code"] as const,
 *   registers: [registry],
 * });
 * const scrapes = new DirectCounter(counter, "code");
 * scrapes.inc("200");
 * scrapes.inc("200");
 * ```
 */
export class DirectCounter<L extends string> {
  readonly #counter: Counter<L>;
  readonly #label: L;
  readonly #direct: boolean;
  readonly #kept = new Map<string, { key: string; entry: CounterEntry }>();

  /**
   * Updates `counter`.
   *
   * @param counter A counter whose only label is `label`.
   * @param label Its label's name.
   */
  constructor(counter: Counter<L>, label: L) {
    this.#counter = counter;
    this.#label = label;
    this.#direct = direct(counter);
  }

  /**
   * Adds 1 to the count of `value`.
   *
   * @param value The label's value.
   */
  inc(value: string): void {
    const kept = this.#kept.get(value);
    if (kept !== undefined && entries<CounterEntry>(this.#counter)[kept.key] === kept.entry) {
      kept.entry.value += 1;
      return;
    }
    this.#counter.inc({ [this.#label]: value } as Partial<Record<L, string>>);
    if (!this.#direct) return;
    const key = hashKey(this.#label, value);
    const entry = entries<CounterEntry>(this.#counter)[key];
    if (entry !== undefined && (kept !== undefined || this.#kept.size < KEPT_VALUES)) {
      this.#kept.set(value, { key, entry });
    }
  }
}

/**
 * Observes values in a histogram with one label (by label value) or none.
 *
 * @example
 * ```ts
 * import { Histogram, Registry } from "./prom_client.ts";
 * const registry = new Registry();
 * const histogram = new Histogram({
 *   name: "scrape_duration_seconds",
 *   help: "Scrape durations.",
 *   registers: [registry],
 * });
 * const durations = new DirectHistogram(histogram, null);
 * durations.observe(null, 0.012);
 * ```
 */
export class DirectHistogram<L extends string> {
  readonly #histogram: Histogram<L>;
  readonly #label: L | null;
  readonly #direct: boolean;
  readonly #kept = new Map<string | null, { key: string; entry: HistogramEntry }>();
  /** The histogram's bounds, and their keys in an entry's `bucketValues`. */
  readonly #bounds: readonly number[];
  readonly #boundKeys: readonly string[];

  /**
   * Updates `histogram`.
   *
   * @param histogram A histogram whose only label is `label`, or with none.
   * @param label Its label's name; null for a histogram without labels.
   */
  constructor(histogram: Histogram<L>, label: L | null) {
    this.#histogram = histogram;
    this.#label = label;
    const bounds = (histogram as Internals).upperBounds;
    this.#direct = direct(histogram) && Array.isArray(bounds);
    this.#bounds = this.#direct ? bounds as number[] : [];
    this.#boundKeys = this.#bounds.map(String);
  }

  /**
   * Observes `seconds` under the label's `value`.
   *
   * @param value The label's value; null for a histogram without labels.
   * @param seconds The value observed.
   * @throws {TypeError} As prom-client does, on a value it refuses (NaN).
   */
  observe(value: string | null, seconds: number): void {
    const kept = this.#kept.get(value);
    if (
      kept !== undefined && Number.isFinite(seconds) &&
      entries<HistogramEntry>(this.#histogram)[kept.key] === kept.entry
    ) {
      const entry = kept.entry;
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
      return;
    }
    if (this.#label === null) this.#histogram.observe(seconds);
    else this.#histogram.observe({ [this.#label]: value } as Partial<Record<L, string>>, seconds);
    if (!this.#direct) return;
    const key = hashKey(this.#label, value);
    const entry = entries<HistogramEntry>(this.#histogram)[key];
    if (entry !== undefined && (kept !== undefined || this.#kept.size < KEPT_VALUES)) {
      this.#kept.set(value, { key, entry });
    }
  }
}
