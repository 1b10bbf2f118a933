/**
 * Exponential back-off with jitter for reconnecting to the proxy, with the
 * defaults of upstream PushProx (1s initial, ×1.5, 5s max, ±50% jitter).
 *
 * @module
 */

/** Successive waits after failures. */
export interface Backoff {
  /** The next wait in milliseconds; grows until the maximum. */
  next(): number;
  /** Starts again at the initial wait (after a success). */
  reset(): void;
}

/** Options for {@linkcode createBackoff}. */
export interface BackoffOptions {
  initialMs: number;
  maxMs: number;
  /** @default {1.5} */
  multiplier?: number;
  /** Fraction of random spread around each wait. @default {0.5} */
  jitter?: number;
  /** @default {Math.random} */
  random?: () => number;
}

/**
 * Creates a back-off sequence.
 *
 * @param options Initial and maximum waits, growth and jitter.
 * @returns The sequence.
 */
export function createBackoff(options: BackoffOptions): Backoff {
  const multiplier = options.multiplier ?? 1.5;
  const jitter = options.jitter ?? 0.5;
  const random = options.random ?? Math.random;
  let current = options.initialMs;
  return {
    next() {
      const base = current;
      current = Math.min(current * multiplier, options.maxMs);
      const spread = base * jitter;
      return Math.max(0, Math.round(base - spread + random() * 2 * spread));
    },
    reset() {
      current = options.initialMs;
    },
  };
}
