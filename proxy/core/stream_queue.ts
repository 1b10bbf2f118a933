/**
 * One client stream's scrape queue: scrapes offered for the client wait here
 * until the stream asks for the next one, and a stream waiting for work is
 * handed the next scrape at once. At most one `next` waits at a time. No I/O
 * and no timers; the clock is injected. {@linkcode createCoordinator} keeps
 * one per session.
 *
 * @module
 */

import type { HeaderField } from "../../lib/headers.ts";
import { CoordinatorError } from "./coordinator_error.ts";

/** A scrape handed to a client. */
export interface ScrapeTask {
  id: string;
  method: string;
  url: string;
  headers: HeaderField[];
  /** Time left when the task is taken from the queue, in milliseconds. */
  timeoutMs: number;
}

/** A scrape waiting in the queue, with its deadline on the queue's clock. */
export interface QueuedScrape {
  task: ScrapeTask;
  deadline: number;
}

/** Options for {@linkcode createStreamQueue}. */
export interface StreamQueueOptions {
  now: () => number;
  /**
   * Called as a scrape is handed to the stream: marks it sent. False when it
   * was withdrawn meanwhile; a queued one is then skipped.
   */
  markSent(id: string): boolean;
  /**
   * Why `next` must fail instead of waiting (the stream was replaced, the
   * proxy drains), or null. Asked on every `next`.
   */
  refusal(): CoordinatorError | null;
}

/** A client stream's queue; see {@linkcode createStreamQueue}. */
export interface StreamQueue {
  /** Hands `task` to the waiting `next`, or queues it. */
  offer(task: ScrapeTask, deadline: number): void;
  /**
   * The next scrape, with `timeoutMs` set to what is left of its deadline.
   * Waits when none is queued; resolves null when `signal` aborts or the
   * queue closes, rejects with `refusal()` or what {@linkcode fail} gives.
   */
  next(signal: AbortSignal): Promise<ScrapeTask | null>;
  /**
   * The callback form of {@linkcode next}, for a stream that is a record
   * rather than a suspended call: `onTask` is called once, with the next
   * scrape (at once when one is queued), with null when the queue closes,
   * or with `refusal()` or what {@linkcode fail} gives. No promise, no
   * signal: {@linkcode unlisten} withdraws it.
   */
  listen(onTask: TaskCallback): void;
  /** Withdraws `onTask` if it still waits (a heartbeat came first). */
  unlisten(onTask: TaskCallback): void;
  /** Ends a waiting `next` with `error`; nothing when none waits. */
  fail(error: CoordinatorError): void;
  /** Removes and returns the queued scrapes, e.g. to move them to a newer stream. */
  takeQueued(): QueuedScrape[];
  /** Wakes a waiting `next` with null and drops what is queued. Idempotent. */
  close(): void;
  readonly closed: boolean;
}

/** Told the next scrape, null (closed), or an error (replaced, draining). */
export type TaskCallback = (task: ScrapeTask | null, error?: Error) => void;
type Waiter = TaskCallback;

/**
 * Creates an empty queue.
 *
 * @param options The clock and the coordinator's hooks.
 * @returns The queue.
 */
export function createStreamQueue(options: StreamQueueOptions): StreamQueue {
  return new Queue(options);
}

/**
 * The queue, a class so that its methods are shared by every stream's
 * queue rather than closures made for each (10,000 open streams).
 */
class Queue implements StreamQueue {
  readonly #options: StreamQueueOptions;
  #queue: QueuedScrape[] | null = null;
  #waiter: Waiter | null = null;
  #closed = false;

  constructor(options: StreamQueueOptions) {
    this.#options = options;
  }

  #handOut(task: ScrapeTask, deadline: number): ScrapeTask {
    return { ...task, timeoutMs: Math.max(1, deadline - this.#options.now()) };
  }

  /** The next queued scrape not withdrawn meanwhile, marked sent; null when none. */
  #take(): ScrapeTask | null {
    const queue = this.#queue;
    while (queue !== null && queue.length > 0) {
      const { task, deadline } = queue.shift()!;
      // A scrape withdrawn while queued is skipped, not sent.
      if (this.#options.markSent(task.id)) return this.#handOut(task, deadline);
    }
    return null;
  }

  offer(task: ScrapeTask, deadline: number): void {
    const wake = this.#waiter;
    if (wake) {
      this.#waiter = null;
      this.#options.markSent(task.id);
      wake(this.#handOut(task, deadline));
    } else {
      (this.#queue ??= []).push({ task, deadline });
    }
  }

  next(signal: AbortSignal): Promise<ScrapeTask | null> {
    const refused = this.#options.refusal();
    if (refused) return Promise.reject(refused);
    if (this.#closed || signal.aborted) return Promise.resolve(null);
    const task = this.#take();
    if (task !== null) return Promise.resolve(task);
    if (this.#waiter) {
      return Promise.reject(new CoordinatorError("Session is already being polled", "invalid"));
    }
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        this.#waiter = null;
        resolve(null);
      };
      signal.addEventListener("abort", onAbort, { once: true });
      this.#waiter = (task, error) => {
        signal.removeEventListener("abort", onAbort);
        if (error) reject(error);
        else resolve(task);
      };
    });
  }

  listen(onTask: TaskCallback): void {
    const refused = this.#options.refusal();
    if (refused) return onTask(null, refused);
    if (this.#closed) return onTask(null);
    const task = this.#take();
    if (task !== null) return onTask(task);
    if (this.#waiter) {
      return onTask(null, new CoordinatorError("Session is already being polled", "invalid"));
    }
    this.#waiter = onTask;
  }

  unlisten(onTask: TaskCallback): void {
    if (this.#waiter === onTask) this.#waiter = null;
  }

  fail(error: CoordinatorError): void {
    const wake = this.#waiter;
    this.#waiter = null;
    wake?.(null, error);
  }

  takeQueued(): QueuedScrape[] {
    const queue = this.#queue;
    this.#queue = null;
    return queue ?? [];
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    const wake = this.#waiter;
    this.#waiter = null;
    wake?.(null);
    this.#queue = null;
  }

  get closed(): boolean {
    return this.#closed;
  }
}
