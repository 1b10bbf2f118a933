/**
 * Graceful shutdown of the proxy: refuse new scrapes and registrations, tell
 * connected clients to go away, and wait for scrapes in flight to finish.
 *
 * @module
 */

import { formatDuration } from "../../lib/duration.ts";
import type { Logger } from "../../lib/logger.ts";
import type { Coordinator } from "../core/coordinator.ts";

/** Options for {@linkcode drainProxy}. */
export interface DrainOptions {
  /** Longest wait for scrapes in flight. */
  timeoutMs: number;
  logger: Logger;
  /** Ends the wait early (e.g. a second SIGTERM). */
  signal?: AbortSignal;
  /** How often the in-flight count is checked. @default {50} */
  pollIntervalMs?: number;
}

/** How a drain ended. */
export interface DrainResult {
  /** Scrapes still in flight when the wait ended (0 when all finished). */
  abandoned: number;
  waitedMs: number;
}

/**
 * Drains the proxy. The listener keeps running meanwhile, so that clients
 * can still push the answers to scrapes they already received.
 *
 * @param proxy The proxy's coordinator, and `close` ending state that
 *   outlives requests (legacy sessions, which cannot be told to go away).
 * @param options Timeout, logger and an early stop.
 * @returns How it ended.
 */
export async function drainProxy(
  proxy: { readonly coordinator: Coordinator; close(): void },
  options: DrainOptions,
): Promise<DrainResult> {
  const started = performance.now();
  const { coordinator } = proxy;
  const { logger } = options;
  coordinator.drain();
  proxy.close();
  const inFlight = coordinator.scrapesInFlight;
  logger.info("Draining: new scrapes are refused, clients were told to go away", {
    scrapes_in_flight: inFlight,
    timeout: formatDuration(options.timeoutMs),
  });
  const until = Date.now() + options.timeoutMs;
  const interval = options.pollIntervalMs ?? 50;
  while (
    coordinator.scrapesInFlight > 0 && Date.now() < until && !options.signal?.aborted
  ) {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, Math.min(interval, Math.max(1, until - Date.now())));
      options.signal?.addEventListener("abort", done, { once: true });
      function done() {
        clearTimeout(timer);
        options.signal?.removeEventListener("abort", done);
        resolve();
      }
    });
  }
  const abandoned = coordinator.scrapesInFlight;
  const waitedMs = Math.round(performance.now() - started);
  if (abandoned > 0) {
    logger.warn("Drain ended with scrapes still in flight", {
      scrapes_in_flight: abandoned,
      waited: formatDuration(Math.round(waitedMs)),
    });
  } else {
    logger.info("Drained", { waited: formatDuration(Math.round(waitedMs)) });
  }
  return { abandoned, waitedMs };
}
