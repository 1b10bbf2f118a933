/**
 * The last resort: an error or promise rejection that no handler caught is
 * logged loudly and counted, and the process keeps serving. Every request
 * already runs inside the edge's error boundary; reaching this handler
 * means a bug, which the log line says.
 *
 * @module
 */

import type { Logger } from "./logger.ts";

/** Options for {@linkcode installLastResort}. */
export interface LastResortOptions {
  /** Logs each uncaught error as `Uncaught …`. */
  logger: Logger;
  /** Counts one uncaught error (`pushprox_*_uncaught_errors_total`). */
  count: () => void;
  /** Where to listen. @default {globalThis} */
  target?: EventTarget;
}

/**
 * Installs `unhandledrejection` and `error` listeners that prevent the
 * default (ending the process), log at error level and count.
 *
 * @param options Logger, counter and event target.
 * @returns A function that removes the listeners.
 */
export function installLastResort(options: LastResortOptions): () => void {
  const { logger, count } = options;
  const target = options.target ?? globalThis;
  const onRejection = (event: Event) => {
    event.preventDefault();
    count();
    logger.error("Uncaught promise rejection (a bug; still serving)", {
      err: (event as PromiseRejectionEvent).reason,
    });
  };
  const onError = (event: Event) => {
    event.preventDefault();
    count();
    const error = (event as ErrorEvent).error ?? (event as ErrorEvent).message;
    logger.error("Uncaught error (a bug; still serving)", { err: error });
  };
  target.addEventListener("unhandledrejection", onRejection);
  target.addEventListener("error", onError);
  return () => {
    target.removeEventListener("unhandledrejection", onRejection);
    target.removeEventListener("error", onError);
  };
}

/** Environment variable with which tests make a process raise one uncaught error. */
export const RAISE_FOR_TEST_ENV = "PUSHPROX_TEST_RAISE_UNCAUGHT";

/**
 * For tests of the last resort only: when `PUSHPROX_TEST_RAISE_UNCAUGHT` is
 * `rejection` or `error`, raises one of that kind shortly after start-up.
 * Does nothing without the variable (or without permission to read it).
 */
export function raiseForTest(): void {
  let value: string | undefined;
  try {
    value = Deno.env.get(RAISE_FOR_TEST_ENV);
  } catch {
    return;
  }
  if (value === "rejection") {
    setTimeout(() => void Promise.reject(new Error("raised on purpose for a test")), 10);
  } else if (value === "error") {
    setTimeout(() => {
      throw new Error("raised on purpose for a test");
    }, 10);
  }
}
