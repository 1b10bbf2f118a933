/**
 * The two metric updates of every proxied scrape, on prom-client's own
 * entries.
 *
 * @module
 */

import type { Counter, Histogram } from "../../lib/prom_client.ts";

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

/** What is kept per status: prom-client's hash key of `{code}` and both entries. */
interface CodeEntries {
  key: string;
  requests: CounterEntry;
  duration: HistogramEntry;
}

/** Statuses whose entries are kept (a few in practice). */
const KEPT_CODES = 32;

/**
 * Counts a scrape in `pushproxy_proxied_requests_total{code}` and observes
 * its duration in `pushprox_proxy_scrape_duration_seconds{code}` without
 * prom-client hashing and checking the labels on each call, and making a
 * closure per observation (about 1.5 % of the proxy's CPU per scrape at
 * 57 KiB; issue #11), the way the client's ScrapeRecorder does
 * (client/agent/metrics.ts): the first update of a status goes through
 * prom-client (which makes its entries); later ones add to those entries
 * directly while they are still the registered ones (a reset or `remove`
 * takes the prom-client path again). What is exposed is prom-client's own
 * rendering of its own entries, as before.
 */
export class ScrapeRecorder {
  readonly #requests: Counter<"code">;
  readonly #duration: Histogram<"code">;
  readonly #codes = new Map<number, CodeEntries>();
  /** The histogram's bounds, and their keys in an entry's `bucketValues`. */
  readonly #bounds: readonly number[];
  readonly #boundKeys: readonly string[];
  /** False when a metric records exemplars (then prom-client does it all). */
  readonly #direct: boolean;

  /**
   * Records into the two metrics.
   *
   * @param requests Scrapes by status code.
   * @param duration Scrape durations by status code.
   */
  constructor(requests: Counter<"code">, duration: Histogram<"code">) {
    this.#requests = requests;
    this.#duration = duration;
    const internals = duration as unknown as { upperBounds?: readonly number[] };
    this.#bounds = internals.upperBounds ?? [];
    this.#boundKeys = this.#bounds.map(String);
    this.#direct = Array.isArray(internals.upperBounds) &&
      typeof (requests as unknown as { hashMap?: unknown }).hashMap === "object" &&
      (requests as unknown as { enableExemplars?: boolean }).enableExemplars !== true &&
      (duration as unknown as { enableExemplars?: boolean }).enableExemplars !== true;
  }

  /**
   * Records one scrape.
   *
   * @param status The status answered to Prometheus.
   * @param seconds The scrape's duration.
   */
  record(status: number, seconds: number): void {
    if (!this.#direct) {
      const code = String(status);
      this.#requests.inc({ code });
      this.#duration.observe({ code }, seconds);
      return;
    }
    const requests = hashMap<CounterEntry>(this.#requests);
    const duration = hashMap<HistogramEntry>(this.#duration);
    const known = this.#codes.get(status);
    if (
      known !== undefined && requests[known.key] === known.requests &&
      duration[known.key] === known.duration && Number.isFinite(seconds)
    ) {
      known.requests.value += 1;
      const entry = known.duration;
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
    const code = String(status);
    this.#requests.inc({ code });
    this.#duration.observe({ code }, seconds);
    // prom-client's hash of a single label: `name:value,`.
    const key = `code:${code},`;
    const counted = requests[key];
    const observed = duration[key];
    if (
      counted !== undefined && observed !== undefined &&
      (known !== undefined || this.#codes.size < KEPT_CODES)
    ) {
      this.#codes.set(status, { key, requests: counted, duration: observed });
    }
  }
}

/** prom-client's entries of a metric, by the hash of their labels (replaced on reset). */
function hashMap<T>(metric: object): Record<string, T | undefined> {
  return (metric as { hashMap: Record<string, T | undefined> }).hashMap;
}
