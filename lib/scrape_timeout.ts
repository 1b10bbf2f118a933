/**
 * Prometheus' scrape timeout header: its name, the one grammar both the proxy
 * and the client's modules read it with, the clamp, and how it is written.
 *
 * Prometheus writes the header with Go's
 * `strconv.FormatFloat(seconds, 'f', -1, 64)` ("10", "0.5"); upstream
 * PushProx reads it with `strconv.ParseFloat`. The grammar here is the
 * decimal part of what `ParseFloat` accepts: an optional `+`, digits with an
 * optional fraction (`5`, `5.`, `.5`, `9.75`) and an optional exponent
 * (`1e1`, `2.5E-1`). Go's hexadecimal floats, `_` separators, `inf` and
 * `nan` are refused, as is any value that is not a finite number above zero.
 *
 * @module
 */

/** The header Prometheus sets on every scrape, in seconds, lower case. */
export const SCRAPE_TIMEOUT_HEADER = "x-prometheus-scrape-timeout-seconds";

/** {@linkcode SCRAPE_TIMEOUT_HEADER} in Go's canonical spelling, for writing. */
export const SCRAPE_TIMEOUT_HEADER_CANONICAL = "X-Prometheus-Scrape-Timeout-Seconds";

/**
 * The header upstream's `pushprox-client` adds to its pushes (without
 * `-Seconds`: a naming slip upstream, kept for compatibility), lower case.
 */
export const LEGACY_PUSH_TIMEOUT_HEADER = "x-prometheus-scrape-timeout";

const DECIMAL_REGEXP = /^\+?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/;

/** The timeout header could not be read. */
export class InvalidTimeoutError extends RangeError {
  /** Creates the error for the header's raw value. */
  constructor(value: string) {
    super(
      `Cannot use ${SCRAPE_TIMEOUT_HEADER} ${
        JSON.stringify(value)
      }: expected a positive number of seconds`,
    );
    this.name = "InvalidTimeoutError";
  }
}

/**
 * Reads the header's value.
 *
 * @example Reading Prometheus' header
 * ```ts
 * import { parseScrapeTimeout } from "./scrape_timeout.ts";
 * parseScrapeTimeout("9.5"); // 9500
 * parseScrapeTimeout(null); // undefined
 * ```
 *
 * @param value The raw header value, or null/undefined when absent.
 * @returns The timeout in whole milliseconds (rounded up, so at least 1), or
 * undefined when absent.
 * @throws {InvalidTimeoutError} When the value is present but not a positive
 * decimal number of seconds.
 */
export function parseScrapeTimeout(value: string | null | undefined): number | undefined {
  if (value === null || value === undefined) return undefined;
  const text = value.trim();
  const seconds = DECIMAL_REGEXP.test(text) ? Number(text) : NaN;
  if (!Number.isFinite(seconds) || seconds <= 0) {
    throw new InvalidTimeoutError(value);
  }
  const ms = Math.ceil(seconds * 1000);
  if (!Number.isFinite(ms)) throw new InvalidTimeoutError(value);
  return ms;
}

/** Options for {@linkcode scrapeTimeoutMs}. */
export interface ScrapeTimeoutOptions {
  /** Used when the header is absent. */
  defaultMs: number;
  /** Longer timeouts are clamped to this. */
  maxMs: number;
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
  header: string | null | undefined,
  options: ScrapeTimeoutOptions,
): number {
  return clampTimeoutMs(parseScrapeTimeout(header) ?? options.defaultMs, options.maxMs);
}

/**
 * The one clamp: the lower of two limits, either of which may be absent.
 *
 * @param timeoutMs A timeout, if any.
 * @param limitMs A limit, if any.
 * @returns The lower of the two, or undefined when neither is set.
 */
export function clampTimeoutMs(timeoutMs: number, limitMs: number | undefined): number;
/**
 * The one clamp, for a timeout that may be absent.
 *
 * @param timeoutMs A timeout, if any.
 * @param limitMs A limit, if any.
 * @returns The lower of the two, or undefined when neither is set.
 */
export function clampTimeoutMs(
  timeoutMs: number | undefined,
  limitMs: number | undefined,
): number | undefined;
export function clampTimeoutMs(
  timeoutMs: number | undefined,
  limitMs: number | undefined,
): number | undefined {
  if (timeoutMs === undefined) return limitMs;
  if (limitMs === undefined) return timeoutMs;
  return Math.min(timeoutMs, limitMs);
}

/**
 * Writes a duration as the header's value: a decimal number of seconds with
 * at most three decimals, e.g. 9873 ms as "9.873".
 *
 * @param ms The duration; at least 1 ms is written.
 * @returns The decimal number of seconds.
 */
export function formatScrapeTimeout(ms: number): string {
  return String(Math.max(1, Math.round(ms)) / 1000);
}
