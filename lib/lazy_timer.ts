/**
 * A deadline timer for waits that are set and cleared far more often than
 * they expire (a wait per request or per message on a long-lived
 * connection or stream). `setTimeout` plus `clearTimeout` per wait was
 * about 5 % of the proxy's CPU per scrape (issue #11); this timer keeps one
 * underlying timer per owner and re-arms it only when it fires early, so
 * a wait costs a clock read and two field writes.
 *
 * @module
 */

/** The longest delay setTimeout takes; longer ones fire at once. */
const MAX_DELAY_MS = 0x7fffffff;
/** The default clock, shared (a closure per timer was heap per idle connection). */
const performanceNow = (): number => performance.now();

/** Options for {@linkcode LazyTimer}. */
export interface LazyTimerOptions {
  /** The clock, in milliseconds. @default {performance.now} */
  now?: () => number;
}

/**
 * One re-armable deadline: {@linkcode LazyTimer.set} starts a wait (ending
 * the one before), {@linkcode LazyTimer.clear} ends it. The underlying timer
 * is left running when a wait ends; when it fires before the current
 * deadline it re-arms for the rest, and with no wait it stops. Call
 * {@linkcode LazyTimer.close} when the owner is done (the running timer
 * would keep the event loop alive until it fires).
 *
 * @example Expiry
 * ```ts
 * import { LazyTimer } from "./lazy_timer.ts";
 *
 * const timer = new LazyTimer();
 * const expired = await new Promise<boolean>((resolve) => {
 *   timer.set(10, () => resolve(true));
 * });
 * timer.close();
 * console.assert(expired);
 * ```
 */
export class LazyTimer {
  readonly #now: () => number;
  #timer: ReturnType<typeof setTimeout> | undefined;
  /** When the running timer fires, on the clock; meaningless without one. */
  #firesAt = 0;
  /** The current wait's deadline. */
  #at = 0;
  #onExpire: (() => void) | null = null;

  /**
   * Creates a timer with no wait.
   *
   * @param options The clock.
   */
  constructor(options: LazyTimerOptions = {}) {
    this.#now = options.now ?? performanceNow;
  }

  /**
   * Starts a wait: `onExpire` is called once in `ms` unless the wait is
   * cleared or another one set first.
   *
   * @param ms The delay, in milliseconds (>= 0).
   * @param onExpire Called at the deadline.
   * @param now The time now on this timer's clock, when the caller has
   *   just read it. @default {a read of the clock}
   */
  set(ms: number, onExpire: () => void, now: number = this.#now()): void {
    this.#at = now + ms;
    this.#onExpire = onExpire;
    // A timer that fires before the deadline re-arms then; one that fires
    // later must be replaced.
    if (this.#timer === undefined || this.#firesAt > this.#at) this.#arm(ms, now);
  }

  /**
   * Reads this timer's clock: a caller that also needs the time passes the
   * reading on to {@linkcode LazyTimer.set} (one read for both).
   *
   * @returns The time now, in milliseconds.
   */
  now(): number {
    return this.#now();
  }

  /** True while a wait is set (neither expired nor cleared). */
  get waiting(): boolean {
    return this.#onExpire !== null;
  }

  /**
   * Ends the current wait without calling its `onExpire`.
   *
   * @param onExpire When given, only the wait set with this callback is
   *   ended (a later wait stays).
   */
  clear(onExpire?: () => void): void {
    if (onExpire === undefined || this.#onExpire === onExpire) this.#onExpire = null;
  }

  /** Ends the current wait and stops the underlying timer. */
  close(): void {
    this.#onExpire = null;
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #arm(ms: number, now: number): void {
    clearTimeout(this.#timer);
    const delay = Math.min(Math.max(0, Math.ceil(ms)), MAX_DELAY_MS);
    this.#firesAt = now + delay;
    // The timer as the callback's argument: no closure per LazyTimer.
    this.#timer = setTimeout(LazyTimer.#fire, delay, this);
  }

  static #fire(timer: LazyTimer): void {
    timer.#fired();
  }

  #fired(): void {
    this.#timer = undefined;
    const onExpire = this.#onExpire;
    if (onExpire === null) return;
    const now = this.#now();
    const left = this.#at - now;
    if (left > 0) {
      this.#arm(left, now);
      return;
    }
    this.#onExpire = null;
    onExpire();
  }
}

/**
 * Waits for `promise`, or `ms` on `timer`: resolves "timeout" then (the
 * promise's later outcome is ignored). One timer per owner, re-armed only
 * when it fires early, instead of a timer per wait.
 *
 * @param timer The owner's timer; its current wait is replaced.
 * @param promise What is waited for.
 * @param ms The longest wait.
 * @param now The time now on the timer's clock, when the caller has just
 *   read it (see {@linkcode LazyTimer.set}). @default {a read of the clock}
 * @returns The promise's value, or "timeout".
 */
export function within<T>(
  timer: LazyTimer,
  promise: Promise<T>,
  ms: number,
  now?: number,
): Promise<T | "timeout"> {
  return new Promise<T | "timeout">((resolve, reject) => {
    const expire = () => resolve("timeout");
    timer.set(ms, expire, now);
    promise.then((value) => {
      timer.clear(expire);
      resolve(value);
    }, (error) => {
      timer.clear(expire);
      reject(error);
    });
  });
}
