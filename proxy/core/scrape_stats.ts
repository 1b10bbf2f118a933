/**
 * Proxy-wide scrape statistics in fixed time buckets (10 s by default, the
 * last 15 minutes): scrapes finished, how many failed, and the most scrapes
 * in flight at once. A bounded ring driven by the caller's clock; it starts
 * no timers.
 *
 * @module
 */

/** The scrapes of one time bucket. */
export interface StatsBucket {
  /** When the bucket starts, in ms since the epoch. */
  start: number;
  /** Scrapes that finished in it. */
  scrapes: number;
  /** Of those, how many failed. */
  errors: number;
  /** The most scrapes in flight at once during the bucket. */
  maxInFlight: number;
}

/** A copy of the statistics at one moment. */
export interface StatsSnapshot {
  /** Length of each bucket, in milliseconds. */
  bucketMs: number;
  /** Oldest first; the last one is the current, still filling bucket. */
  buckets: StatsBucket[];
  /** Scrapes in flight now. */
  inFlight: number;
}

/** Options for {@linkcode createScrapeStats}. */
export interface ScrapeStatsOptions {
  /** Length of a bucket, in milliseconds. @default {10000} */
  bucketMs?: number;
  /** Buckets kept, the current one included. @default {90} */
  buckets?: number;
}

/** The statistics' ring of buckets. */
export interface ScrapeStats {
  /** Counts a finished scrape at time `at`. */
  record(at: number, failed: boolean): void;
  /** Notes how many scrapes are in flight from time `at` on. */
  setInFlight(count: number, at: number): void;
  /** The buckets up to time `at`, copied. */
  snapshot(at: number): StatsSnapshot;
}

/**
 * Creates an empty ring of statistics.
 *
 * @param options Bucket length and count.
 * @returns The statistics.
 */
export function createScrapeStats(options: ScrapeStatsOptions = {}): ScrapeStats {
  const bucketMs = options.bucketMs ?? 10_000;
  const size = options.buckets ?? 90;
  if (!(bucketMs > 0) || !(size > 0)) {
    throw new RangeError(
      `Cannot keep scrape statistics: bucket length ${bucketMs} ms and count ${size} must be positive`,
    );
  }
  const buckets: StatsBucket[] = [];
  let inFlight = 0;

  /** The bucket `at` falls in, after opening any buckets since the last one. */
  function current(at: number): StatsBucket {
    const start = Math.floor(at / bucketMs) * bucketMs;
    let last = buckets[buckets.length - 1];
    if (last !== undefined && start <= last.start) return last;
    // Idle buckets in between had as many scrapes in flight as now.
    let next = last === undefined
      ? start
      : Math.max(last.start + bucketMs, start - (size - 1) * bucketMs);
    if (last !== undefined && next > last.start + bucketMs) buckets.length = 0;
    while (next <= start) {
      last = { start: next, scrapes: 0, errors: 0, maxInFlight: inFlight };
      buckets.push(last);
      next += bucketMs;
    }
    while (buckets.length > size) buckets.shift();
    return last!;
  }

  return {
    record(at, failed) {
      const bucket = current(at);
      bucket.scrapes++;
      if (failed) bucket.errors++;
    },
    setInFlight(count, at) {
      const bucket = current(at);
      inFlight = count;
      if (count > bucket.maxInFlight) bucket.maxInFlight = count;
    },
    snapshot(at) {
      current(at);
      return { bucketMs, buckets: buckets.map((b) => ({ ...b })), inFlight };
    },
  };
}
