/**
 * The poll loop's timers at a cost that does not grow with the scrape rate
 * (issue #11): a watchdog re-armed by every message without touching a
 * timer, and scrape deadlines served by one shared timer instead of an
 * `AbortSignal.timeout` (a timer, and a DOMException when it fires, ten
 * seconds later, for a scrape long done) each.
 *
 * @module
 */

/** setTimeout's longest wait; a later time is reached in several. */
const MAX_TIMER_MS = 2_147_483_647;

/** Milliseconds on a monotonic clock. */
export type Clock = () => number;

/**
 * A timer that fires when it has not been re-armed for its interval. Re-arming
 * only moves the due time; the one timer behind it, when it fires early, sleeps
 * again for what is left.
 */
export class Watchdog {
  readonly #onExpire: (reason: string) => void;
  readonly #now: Clock;
  #timer: ReturnType<typeof setTimeout> | undefined;
  /** When the timer set now fires. */
  #timerAt = 0;
  /** When the watchdog expires. */
  #due = 0;
  #reason = "";

  /**
   * Creates a watchdog, not armed.
   *
   * @param onExpire Called with the reason of the last {@linkcode arm} when it expires.
   * @param now The clock. @default {performance.now}
   */
  constructor(onExpire: (reason: string) => void, now: Clock = () => performance.now()) {
    this.#onExpire = onExpire;
    this.#now = now;
  }

  /**
   * Expires `ms` from now unless armed again or cleared before.
   *
   * @param ms The interval.
   * @param reason Passed to `onExpire`.
   */
  arm(ms: number, reason: string): void {
    const due = this.#now() + ms;
    this.#due = due;
    this.#reason = reason;
    if (this.#timer !== undefined && this.#timerAt <= due) return;
    this.#schedule(ms);
  }

  /** Disarms it. */
  clear(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #schedule(ms: number): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timerAt = this.#now() + ms;
    this.#timer = setTimeout(this.#fire, Math.min(ms, MAX_TIMER_MS));
  }

  #fire = (): void => {
    this.#timer = undefined;
    const left = this.#due - this.#now();
    if (left >= 1) this.#schedule(left);
    else this.#onExpire(this.#reason);
  };
}

/** A scrape's deadline: its signal aborts when the time is up. */
export interface Deadline {
  /** Aborts (reason: a `TimeoutError` DOMException, as `AbortSignal.timeout`) at the deadline. */
  readonly signal: AbortSignal;
  /** The scrape is done: its deadline no longer needs watching. */
  release(): void;
}

interface Entry extends Deadline {
  readonly due: number;
  readonly controller: AbortController;
}

/**
 * Deadlines sharing one timer, set for the earliest of them. Scrapes done
 * before their deadline (the usual case) cost a set insertion and removal;
 * the timer is re-set only for a deadline earlier than the one it waits for.
 */
export class Deadlines {
  readonly #now: Clock;
  readonly #active = new Set<Entry>();
  #timer: ReturnType<typeof setTimeout> | undefined;
  #timerAt = Infinity;
  #closed = false;

  /**
   * Creates the set, empty.
   *
   * @param now The clock. @default {performance.now}
   */
  constructor(now: Clock = () => performance.now()) {
    this.#now = now;
  }

  /**
   * A deadline `ms` from now.
   *
   * @param ms Milliseconds; at least 1 is used.
   * @returns Its signal and release.
   */
  start(ms: number): Deadline {
    const controller = new AbortController();
    const due = this.#now() + Math.max(1, ms);
    const active = this.#active;
    const entry: Entry = {
      due,
      controller,
      signal: controller.signal,
      release() {
        active.delete(entry);
      },
    };
    active.add(entry);
    if (!this.#closed && due < this.#timerAt) this.#schedule(due);
    return entry;
  }

  /** Stops the timer; deadlines not released are aborted at once. */
  close(): void {
    this.#closed = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#timerAt = Infinity;
    for (const entry of [...this.#active]) this.#expire(entry);
  }

  #schedule(due: number): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timerAt = due;
    const ms = Math.min(Math.max(1, Math.ceil(due - this.#now())), MAX_TIMER_MS);
    this.#timer = setTimeout(this.#fire, ms);
    // As AbortSignal.timeout's: a deadline does not keep the process alive.
    Deno.unrefTimer(this.#timer);
  }

  #fire = (): void => {
    this.#timer = undefined;
    this.#timerAt = Infinity;
    const now = this.#now();
    let next = Infinity;
    for (const entry of this.#active) {
      if (entry.due <= now) this.#expire(entry);
      else if (entry.due < next) next = entry.due;
    }
    if (next !== Infinity && !this.#closed) this.#schedule(next);
  };

  #expire(entry: Entry): void {
    this.#active.delete(entry);
    entry.controller.abort(new DOMException("Signal timed out.", "TimeoutError"));
  }
}
