/**
 * Abort callbacks without abort event listeners: a signal made by
 * {@linkcode Deadlines.timeout} (lib/deadlines.ts) carries its
 * {@linkcode AbortHooks}, and the one who aborts it calls them. Adding and
 * removing an event listener on a scrape's deadline signal, twice per
 * scrape (the target's pool connection and the push's), was about 3 % of
 * the client's CPU at 57 KiB (issue #11). Any other signal gets a listener,
 * as before.
 *
 * @module
 */

/** Where a signal keeps its {@linkcode AbortHooks}. */
export const ABORT_HOOKS: unique symbol = Symbol("abortHooks");

/** A signal that may carry abort hooks. */
type HookedSignal = AbortSignal & { [ABORT_HOOKS]?: AbortHooks };

/**
 * Callbacks run once, right after their signal aborted, in the order
 * added. Unlike event listeners, the same function added twice runs twice
 * (and is deleted once per add); one added after the abort never runs, as
 * a listener added to an aborted signal never does.
 */
export class AbortHooks {
  /** Added callbacks; a deleted one's place is null (no splice per delete). */
  #callbacks: ((() => void) | null)[] | null = null;
  #ran = false;

  /**
   * Adds a callback.
   *
   * @param callback Called once when the signal aborts.
   */
  add(callback: () => void): void {
    if (this.#ran) return;
    (this.#callbacks ??= []).push(callback);
  }

  /**
   * Deletes a callback added before (the last one added, if twice).
   *
   * @param callback As given to {@linkcode AbortHooks.add}.
   */
  delete(callback: () => void): void {
    const callbacks = this.#callbacks;
    if (callbacks === null) return;
    const at = callbacks.lastIndexOf(callback);
    if (at < 0) return;
    if (at === callbacks.length - 1) callbacks.pop();
    else callbacks[at] = null;
  }

  /**
   * Runs the callbacks (the signal was aborted); later ones are ignored. A
   * callback that throws is reported as a listener's error is, and the
   * others still run.
   */
  run(): void {
    if (this.#ran) return;
    this.#ran = true;
    const callbacks = this.#callbacks;
    this.#callbacks = null;
    if (callbacks === null) return;
    for (const callback of callbacks) {
      if (callback === null) continue;
      try {
        callback();
      } catch (error) {
        reportError(error);
      }
    }
  }

  /**
   * Gives `signal` these hooks; whoever aborts it must then call
   * {@linkcode AbortHooks.run}.
   *
   * @param signal A signal of a controller only its owner aborts.
   */
  attach(signal: AbortSignal): void {
    (signal as HookedSignal)[ABORT_HOOKS] = this;
  }
}

/**
 * Calls `callback` when `signal` aborts: through its hooks when it has
 * them, else as an abort event listener.
 *
 * @param signal The signal.
 * @param callback Called once on abort; remove it with {@linkcode offAbort}.
 */
export function onAbort(signal: AbortSignal, callback: () => void): void {
  const hooks = (signal as HookedSignal)[ABORT_HOOKS];
  if (hooks !== undefined) hooks.add(callback);
  else signal.addEventListener("abort", callback);
}

/**
 * Undoes {@linkcode onAbort}.
 *
 * @param signal The signal.
 * @param callback As given to {@linkcode onAbort}.
 */
export function offAbort(signal: AbortSignal, callback: () => void): void {
  const hooks = (signal as HookedSignal)[ABORT_HOOKS];
  if (hooks !== undefined) hooks.delete(callback);
  else signal.removeEventListener("abort", callback);
}
