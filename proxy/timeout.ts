/**
 * The scrape deadline, computed once at the edge from Prometheus' header.
 *
 * @module
 */

/** The header Prometheus sets on every scrape, in seconds (e.g. "10"). */
export const SCRAPE_TIMEOUT_HEADER = "x-prometheus-scrape-timeout-seconds";

/** Options for {@linkcode scrapeTimeoutMs}. */
export interface ScrapeTimeoutOptions {
  /** Used when the header is absent. */
  defaultMs: number;
  /** Longer timeouts are clamped to this. */
  maxMs: number;
}

/** The timeout header could not be read. */
export class InvalidTimeoutError extends Error {
  /** Creates the error for the header's raw value. */
  constructor(value: string) {
    super(
      `Cannot use ${SCRAPE_TIMEOUT_HEADER} "${value}": expected a positive number of seconds`,
    );
    this.name = "InvalidTimeoutError";
  }
}

/**
 * Returns how long a scrape may take: the header's value, or the default when
 * it is absent, clamped to the maximum.
 *
 * @param header The raw header value, or null when absent.
 * @param options Default and maximum.
 * @returns The timeout in milliseconds.
 * @throws {InvalidTimeoutError} When the header is present but not a positive number.
 */
export function scrapeTimeoutMs(
  header: string | null,
  options: ScrapeTimeoutOptions,
): number {
  if (header === null) return Math.min(options.defaultMs, options.maxMs);
  const text = header.trim();
  const seconds = /^(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/.test(text) ? Number(text) : NaN;
  if (!Number.isFinite(seconds) || seconds <= 0) {
    throw new InvalidTimeoutError(header);
  }
  return Math.min(Math.ceil(seconds * 1000), options.maxMs);
}
