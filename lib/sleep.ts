/**
 * Waiting that can be cancelled, modelled on std's `async/delay.ts`.
 *
 * @module
 */

/** Options for {@linkcode sleep}. */
export interface SleepOptions {
  /** Ends the wait early: the promise rejects with the signal's reason. */
  signal?: AbortSignal;
}

/**
 * Resolves after `ms` milliseconds. `0` waits one turn of the timer queue
 * (like `setTimeout(fn, 0)`), `Infinity` waits until `signal` aborts. When
 * `signal` aborts first (or already has), the promise rejects with
 * `signal.reason` and the timer and listener are removed.
 *
 * @example Backing off until stopped
 * ```ts
 * import { sleep } from "./sleep.ts";
 * const stop = new AbortController();
 * await sleep(10, { signal: stop.signal });
 * stop.abort();
 * await sleep(1_000, { signal: stop.signal }).catch(() => {}); // rejects at once
 * ```
 *
 * @param ms How long to wait, in milliseconds: 0 or more, or Infinity.
 * @param options The signal that ends the wait.
 * @returns A promise that resolves when the time has passed.
 * @throws {RangeError} When `ms` is negative or NaN.
 */
export function sleep(ms: number, options: SleepOptions = {}): Promise<void> {
  const { signal } = options;
  if (!(ms >= 0)) {
    return Promise.reject(
      new RangeError(`Cannot sleep: ms must be 0 or more, current value is ${ms}`),
    );
  }
  if (signal?.aborted) return Promise.reject(signal.reason);
  return new Promise((resolve, reject) => {
    // setTimeout takes at most 2^31-1 ms; longer waits only end on abort.
    const timer = Number.isFinite(ms) && ms <= 2_147_483_647 ? setTimeout(done, ms) : undefined;
    signal?.addEventListener("abort", abort, { once: true });
    function done(): void {
      signal?.removeEventListener("abort", abort);
      resolve();
    }
    function abort(): void {
      clearTimeout(timer);
      reject(signal!.reason);
    }
  });
}
