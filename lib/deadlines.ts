/**
 * Deadlines of work in flight on one timer: a request or scrape adds its
 * deadline and removes it when it ends, and no timer is set or cleared per
 * request (a timer per request cost about 2 % of the client's CPU at 57 KiB
 * on the module path, and `AbortSignal.timeout` per scrape a timer and a
 * DOMException each in the poll loop; issue #11). The client's module engine
 * and its poll loop share this one mechanism.
 *
 * @module
 */

import { AbortHooks } from "./abort_hooks.ts";

/** One deadline; pass it to {@linkcode Deadlines.delete}. */
export interface Deadline {
  /** When it passes, on the clock of {@linkcode Deadlines}. */
  readonly at: number;
  /** Called once when it passes, unless deleted first. */
  readonly expire: () => void;
}

/** A deadline as an abort signal, from {@linkcode Deadlines.timeout}. */
export interface TimeoutDeadline {
  /** Aborted with a `TimeoutError` when the deadline passes; it carries abort hooks. */
  readonly signal: AbortSignal;
  /** Forgets the deadline (the work ended first); a method, called on this object. */
  release(): void;
}

/** A deadline as kept: its place in the pending list, -1 when not there. */
interface Pending extends Deadline {
  slot: number;
}

/** A deadline of {@linkcode Deadlines.add}. */
class Entry implements Pending {
  readonly at: number;
  readonly expire: () => void;
  slot = -1;

  constructor(at: number, expire: () => void) {
    this.at = at;
    this.expire = expire;
  }
}

/**
 * Deadlines of requests in flight. One timer is armed for the earliest; a
 * deadline deleted before it passes leaves the timer alone, which then fires
 * for nothing and re-arms for the earliest left, if any. The timer does not
 * keep the process alive.
 */
export class Deadlines {
  readonly #now: () => number;
  /**
   * Deadlines not passed nor deleted, each knowing its place: deleting one
   * moves the last into it (a Set's table was made anew each time it
   * emptied, about once a scrape; issue #11).
   */
  #pending: Pending[] = [];
  #timer: ReturnType<typeof setTimeout> | undefined;
  #armedFor = Infinity;

  /**
   * Creates an empty set.
   *
   * @param now The clock, in milliseconds. @default {performance.now}
   */
  constructor(now: () => number = () => performance.now()) {
    this.#now = now;
  }

  /** Deadlines not passed nor deleted. */
  get size(): number {
    return this.#pending.length;
  }

  /**
   * Adds a deadline.
   *
   * @param at When it passes, on the clock.
   * @param expire Called once then.
   * @returns The deadline, to delete when the request ends.
   */
  add(at: number, expire: () => void): Deadline {
    const deadline = new Entry(at, expire);
    this.#insert(deadline);
    return deadline;
  }

  /**
   * Forgets a deadline (its request ended first); a deadline already passed
   * or deleted is ignored.
   *
   * @param deadline From {@linkcode Deadlines.add}.
   */
  delete(deadline: Deadline): void {
    const pending = this.#pending;
    const slot = (deadline as Pending).slot;
    if (slot === undefined || slot < 0 || pending[slot] !== deadline) return;
    const last = pending.pop()!;
    if (last !== deadline) {
      pending[slot] = last;
      last.slot = slot;
    }
    (deadline as Pending).slot = -1;
  }

  /**
   * A deadline as an abort signal, as `AbortSignal.timeout(ms)` gives (a
   * `TimeoutError` DOMException as its reason), on this shared timer. The
   * signal carries abort hooks (lib/abort_hooks.ts `onAbort`): run right
   * after its abort event, they cost less than a listener.
   *
   * @param ms Milliseconds from now; at least 1 is used.
   * @param now The time now on this set's clock, when the caller has just
   *   read it. @default {a read of the clock}
   * @returns The signal, and `release()` to call (on it) when the work
   *   ended first. One object per deadline: its record, its signal's hooks.
   */
  timeout(ms: number, now: number = this.#now()): TimeoutDeadline {
    const deadline = new Timeout(now + Math.max(1, ms), this);
    this.#insert(deadline);
    return deadline;
  }

  /** Clears the timer and expires every deadline left, at once. */
  close(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#armedFor = Infinity;
    const left = this.#pending;
    this.#pending = [];
    for (const deadline of left) deadline.slot = -1;
    for (const deadline of left) deadline.expire();
  }

  #insert(deadline: Pending): void {
    deadline.slot = this.#pending.push(deadline) - 1;
    if (deadline.at < this.#armedFor) this.#arm(deadline.at);
  }

  #arm(at: number): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#armedFor = at;
    this.#timer = setTimeout(() => this.#fire(), Math.max(1, Math.ceil(at - this.#now())));
    Deno.unrefTimer(this.#timer as unknown as number);
  }

  #fire(): void {
    this.#timer = undefined;
    this.#armedFor = Infinity;
    const now = this.#now();
    let next = Infinity;
    const passed: Pending[] = [];
    const pending = this.#pending;
    let kept = 0;
    for (let i = 0; i < pending.length; i++) {
      const deadline = pending[i]!;
      if (deadline.at <= now) {
        deadline.slot = -1;
        passed.push(deadline);
        continue;
      }
      if (deadline.at < next) next = deadline.at;
      deadline.slot = kept;
      pending[kept++] = deadline;
    }
    pending.length = kept;
    if (next < Infinity) this.#arm(next);
    for (const deadline of passed) deadline.expire();
  }
}

/**
 * A {@linkcode Deadlines.timeout} deadline: the deadline's record, its
 * controller's owner and its signal's hooks in one object, with no
 * closure per deadline (issue #11).
 */
class Timeout extends AbortHooks implements Pending, TimeoutDeadline {
  readonly at: number;
  slot = -1;
  readonly signal: AbortSignal;
  readonly #controller: AbortController;
  readonly #owner: Deadlines;

  constructor(at: number, owner: Deadlines) {
    super();
    this.at = at;
    this.#owner = owner;
    this.#controller = new AbortController();
    this.signal = this.#controller.signal;
    this.attach(this.signal);
  }

  expire(): void {
    this.#controller.abort(new DOMException("Signal timed out.", "TimeoutError"));
    this.run();
  }

  release(): void {
    this.#owner.delete(this);
  }
}
