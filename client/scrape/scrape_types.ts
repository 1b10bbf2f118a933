/**
 * The client's vocabulary of a scrape, shared by the scraper, the module
 * route and the transports to targets: the job the proxy sends, its outcome,
 * the module hook, and a transport's request and response. Types only, at
 * the bottom of the client's imports, so that those modules need not import
 * one another's types (client/scrape/scraper.ts and client/modules/scrape_route.ts,
 * client/scrape/scrape_transport.ts and client/scrape/native_scrape.ts did, in circles).
 *
 * @module
 */

import type { HeaderField } from "../../lib/headers.ts";

/** A scrape to perform, as the proxy sent it. */
export interface ScrapeJob {
  id: string;
  method: string;
  url: string;
  headers: readonly HeaderField[];
}

/** How a scrape went. */
export interface ScrapeOutcome {
  status: number;
  headers: HeaderField[];
  /** Empty on success; otherwise the reason, and `body` is null. */
  error: string;
  body: AsyncIterable<Uint8Array> | null;
}

/**
 * Decides a scrape before the scraper dials a port: returns the outcome, or
 * null to let the scraper perform a raw scrape.
 */
export type ModuleScrapeHandler = (
  url: URL,
  job: ScrapeJob,
  signal: AbortSignal,
) => Promise<ScrapeOutcome | null>;

/** A target's response, body not yet read. */
export interface TargetResponse {
  status: number;
  /** Header fields in arrival order. */
  headers: [string, string][];
  /**
   * The body as it arrives, bytes as the target sent them (not decoded, so
   * that Content-Length and Content-Encoding stay true); stops with an error
   * when the signal aborts.
   */
  body: AsyncIterable<Uint8Array>;
}

/**
 * Sends one request to a target. Injected so tests can replace it. The URL
 * may be shared by several scrapes of it: read it, never change it.
 */
export type ScrapeTransport = (
  url: URL,
  init: {
    method: string;
    headers: readonly HeaderField[];
    signal: AbortSignal;
  },
) => Promise<TargetResponse>;

/** A transport with a connection pool to close. */
export type ClosableScrapeTransport = ScrapeTransport & { close(): void };
