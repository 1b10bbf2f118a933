/**
 * A client's open Poll stream as the coordinator holds it: {@linkcode Session}
 * (what adapters see) and {@linkcode StreamSession}, one class shared by
 * every open stream, which delegates to the coordinator's {@linkcode SessionHub}.
 *
 * @module
 */

import type { CoordinatorError } from "./coordinator_error.ts";
import type { ClientRecord } from "./sessions.ts";
import {
  createStreamQueue,
  type ScrapeTask,
  type StreamQueue,
  type StreamQueueOptions,
  type TaskCallback,
} from "./stream_queue.ts";

/** A client's open Poll stream. */
export interface Session {
  readonly id: string;
  readonly fqdn: string;
  /**
   * Waits for the next scrape for this client. Resolves null when `signal`
   * aborts first (the caller sends a heartbeat or ends), and rejects with a
   * CoordinatorError of kind "replaced" when a newer stream for the same
   * fqdn took over, or of kind "draining" when the proxy is shutting down.
   */
  next(signal: AbortSignal): Promise<ScrapeTask | null>;
  /**
   * The callback form of `next` (see StreamQueue.listen): `onTask` gets the
   * next scrape, null when the session closes, or the error `next` rejects
   * with. One waits at a time.
   */
  listen(onTask: TaskCallback): void;
  /** Withdraws a waiting `onTask` (a heartbeat came first). */
  unlisten(onTask: TaskCallback): void;
  /**
   * Ends the session: the stream closed. Idempotent. `at` says when the
   * client was last there, when that was before now (a legacy client's
   * last poll). @default {now}
   */
  close(at?: number): void;
}

export interface SessionImpl extends Session {
  /** The per-source key it counts under; "" for none. */
  source: string;
  replaced: boolean;
  queue: StreamQueue;
}

/** What the sessions of one coordinator share; see {@linkcode StreamSession}. */
export interface SessionHub {
  now: () => number;
  markSent(id: string): boolean;
  refusal(session: SessionImpl): CoordinatorError | null;
  /** The session closed: detach it, fail what it was sent and did not answer. */
  closed(
    session: SessionImpl,
    record: ClientRecord<SessionImpl>,
    lastSeen: number | undefined,
  ): void;
}

/**
 * A session, a class so that its methods are shared by every open stream
 * (10,000 of them) instead of closures made for each; it is its own
 * queue's options (clock and hooks).
 */
export class StreamSession implements SessionImpl, StreamQueueOptions {
  readonly id: string;
  readonly fqdn: string;
  readonly source: string;
  replaced = false;
  readonly queue: StreamQueue;
  readonly #hub: SessionHub;
  readonly #record: ClientRecord<SessionImpl>;

  constructor(
    hub: SessionHub,
    id: string,
    fqdn: string,
    source: string,
    record: ClientRecord<SessionImpl>,
  ) {
    this.#hub = hub;
    this.id = id;
    this.fqdn = fqdn;
    this.source = source;
    this.#record = record;
    this.queue = createStreamQueue(this);
  }

  now(): number {
    return this.#hub.now();
  }

  markSent(id: string): boolean {
    return this.#hub.markSent(id);
  }

  refusal(): CoordinatorError | null {
    return this.#hub.refusal(this);
  }

  next(signal: AbortSignal): Promise<ScrapeTask | null> {
    return this.queue.next(signal);
  }

  listen(onTask: TaskCallback): void {
    this.queue.listen(onTask);
  }

  unlisten(onTask: TaskCallback): void {
    this.queue.unlisten(onTask);
  }

  close(lastSeen?: number): void {
    if (this.queue.closed) return;
    this.queue.close();
    this.#hub.closed(this, this.#record, lastSeen);
  }
}
