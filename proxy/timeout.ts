/**
 * The scrape timeout header now lives in lib/scrape_timeout.ts; this
 * re-export only keeps branches written against the old path compiling until
 * they are merged.
 *
 * @deprecated Import from `../lib/scrape_timeout.ts`.
 * @module
 */

export {
  InvalidTimeoutError,
  SCRAPE_TIMEOUT_HEADER,
  scrapeTimeoutMs,
  type ScrapeTimeoutOptions,
} from "../lib/scrape_timeout.ts";
