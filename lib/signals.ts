/**
 * Shutdown signals as an operator means them. One Ctrl-C can reach a
 * program two or three times within milliseconds: the terminal signals the
 * whole foreground process group, and `deno task` and `npm exec` (npx)
 * forward the same signal to their child as well. Such repeats count once;
 * a signal sent again after a pause still means "stop now".
 *
 * @module
 */

/** What a shutdown signal means, given the ones before it. */
export type ShutdownStep =
  /** The first one: shut down gracefully. */
  | "first"
  /** A repeat within the window of the last one that counted: ignore it. */
  | "repeat"
  /** Another one after the window: stop at once. */
  | "again";

/** Options for {@linkcode createShutdownSignals}. */
export interface ShutdownSignalsOptions {
  /** Signals this soon after the last one that counted are repeats. @default {2000} */
  windowMs?: number;
  /** The clock. @default {performance.now} */
  now?: () => number;
}

/** Classifies shutdown signals as they arrive. */
export interface ShutdownSignals {
  /** Records one signal (of any kind: SIGINT and SIGTERM alike) and says what it means. */
  next(): ShutdownStep;
}

/**
 * Creates the classifier. Pure apart from the clock.
 *
 * @param options Window and clock.
 * @returns The classifier.
 *
 * @example Ctrl-C delivered twice, then once more later
 * ```ts
 * import { createShutdownSignals } from "./signals.ts";
 * let t = 0;
 * const signals = createShutdownSignals({ now: () => t });
 * signals.next(); // "first"
 * t = 5;
 * signals.next(); // "repeat"
 * t = 3000;
 * signals.next(); // "again"
 * ```
 */
export function createShutdownSignals(options: ShutdownSignalsOptions = {}): ShutdownSignals {
  const windowMs = options.windowMs ?? 2_000;
  const now = options.now ?? (() => performance.now());
  let last: number | null = null;
  return {
    next() {
      const at = now();
      if (last === null) {
        last = at;
        return "first";
      }
      if (at - last < windowMs) return "repeat";
      last = at;
      return "again";
    },
  };
}
