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
  // Added callbacks in order: the first two in fields, any more in an
  // array (a scrape's deadline has two: an array each was garbage, issue
  // #11). A deleted one's place is null (no splice per delete).
  #first: (() => void) | null = null;
  #second: (() => void) | null = null;
  #more: ((() => void) | null)[] | null = null;
  /** Places used, deleted ones within them included. */
  #count = 0;
  #ran = false;

  /**
   * Adds a callback.
   *
   * @param callback Called once when the signal aborts.
   */
  add(callback: () => void): void {
    if (this.#ran) return;
    const at = this.#count++;
    if (at === 0) this.#first = callback;
    else if (at === 1) this.#second = callback;
    else (this.#more ??= []).push(callback);
  }

  /**
   * Deletes a callback added before (the last one added, if twice).
   *
   * @param callback As given to {@linkcode AbortHooks.add}.
   */
  delete(callback: () => void): void {
    let at = this.#count - 1;
    while (at >= 0 && this.#at(at) !== callback) at--;
    if (at < 0) return;
    if (at === 0) this.#first = null;
    else if (at === 1) this.#second = null;
    else this.#more![at - 2] = null;
    // The last place freed (the usual order: added, then deleted) is used again.
    if (at === this.#count - 1) {
      this.#count--;
      if (at >= 2) this.#more!.pop();
    }
  }

  /**
   * Runs the callbacks (the signal was aborted); later ones are ignored. A
   * callback that throws is reported as a listener's error is, and the
   * others still run.
   */
  run(): void {
    if (this.#ran) return;
    this.#ran = true;
    const count = this.#count;
    const first = this.#first;
    const second = this.#second;
    const more = this.#more;
    this.#first = this.#second = this.#more = null;
    this.#count = 0;
    for (let at = 0; at < count; at++) {
      const callback = at === 0 ? first : at === 1 ? second : more![at - 2]!;
      if (callback === null) continue;
      try {
        callback();
      } catch (error) {
        reportError(error);
      }
    }
  }

  #at(at: number): (() => void) | null {
    return at === 0 ? this.#first : at === 1 ? this.#second : this.#more![at - 2]!;
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
