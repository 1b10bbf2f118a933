/**
 * The proxy's core: which clients are registered, which scrapes wait for
 * which client, and the hand-off of a client's answer to the waiting scrape.
 * It does no I/O and starts no timers; the HTTP and Connect adapters drive it.
 * Its parts: the session registry (sessions.ts), each stream's scrape queue
 * (stream_queue.ts) and the push hand-off (scrape_handoff.ts).
 *
 * @module
 */

import type { HeaderField } from "../../lib/headers.ts";
import { createScrapeStats, type StatsSnapshot } from "./scrape_stats.ts";
import { CoordinatorError } from "./coordinator_error.ts";
import {
  type ClientIdentity,
  type ClientInfo,
  type ClientRecord,
  createSessionRegistry,
  type RegistryEvent,
  type RegistryLimits,
  type RegistryListener,
  type ScrapeOutcome,
  type ScrapeResult,
} from "./sessions.ts";
import { type Handoff, handOff, type PushHead, type ScrapeReply } from "./scrape_handoff.ts";
import {
  type Session,
  type SessionHub,
  type SessionImpl,
  StreamSession,
} from "./stream_session.ts";

export { CoordinatorError } from "./coordinator_error.ts";
export type {
  ClientIdentity,
  ClientInfo,
  RegistryEvent,
  RegistryListener,
  ScrapeOutcome,
  ScrapeResult,
} from "./sessions.ts";
export type { PushHead, ScrapeReply } from "./scrape_handoff.ts";
export type { ScrapeTask, TaskCallback } from "./stream_queue.ts";
export type { Session } from "./stream_session.ts";

/** Options for {@linkcode createCoordinator}. */
export interface CoordinatorOptions extends RegistryLimits {
  /** How long a client stays listed after its stream ends. */
  registrationTimeoutMs: number;
  /** @default {Date.now} */
  now?: () => number;
  /** Makes scrape and session ids. @default {crypto.randomUUID} */
  newId?: () => string;
  /** Most scrapes in flight for one client ("client_busy"). 0: no limit. @default {0} */
  maxScrapesPerClient?: number;
  /** Most scrapes in flight in all ("proxy_busy"). 0: no limit. @default {0} */
  maxScrapes?: number;
  /** Finished scrapes kept per client for listings. @default {30} */
  recentScrapes?: number;
  /** Length of a proxy-wide statistics bucket, in ms. @default {10000} */
  statsBucketMs?: number;
  /** Proxy-wide statistics buckets kept. @default {90} */
  statsBuckets?: number;
}

/** Options of {@linkcode Coordinator.register}. */
export interface RegisterOptions {
  /**
   * Names the credential the client authenticated with ("" when none). A
   * connected fqdn can only be taken over by a stream with the same
   * credential; pushes must come with it too.
   */
  credential?: string;
  /**
   * Where the registration comes from (see sourceKey in rate_limit.ts), for
   * the per-source budgets; "" or absent: no per-source budget applies.
   */
  source?: string;
}

/** Arguments of {@linkcode Coordinator.requestScrape}. */
export interface ScrapeRequestInput {
  /** The host the scrape is for, as in the request URL. */
  host: string;
  method: string;
  url: string;
  headers: HeaderField[];
  /** The scrape's deadline on the coordinator's clock. */
  deadline: number;
  /**
   * Where the caller tells of the abort of the scrape's signal itself,
   * right after aborting it, instead of the coordinator listening on the
   * signal (an event listener added and removed per scrape, issue #11):
   * the coordinator sets `fire` while the scrape waits and clears it once
   * answered or failed. It may also stand for the signal itself (see
   * {@linkcode Coordinator.requestScrape}).
   */
  abortHook?: AbortHook;
}

/** See {@linkcode ScrapeRequestInput.abortHook}. */
export interface AbortHook {
  fire: ((reason: unknown) => void) | null;
  /** Whether the scrape was aborted, as its signal's `aborted`; read when no signal is given. */
  readonly aborted?: boolean;
  /** Why, as its signal's `reason`. */
  readonly reason?: unknown;
}

/** The proxy's registry and scrape hand-off. */
export interface Coordinator {
  /**
   * Registers a client, replacing any open stream for the same fqdn.
   * Throws a CoordinatorError of kind "draining" after {@linkcode drain}.
   */
  register(identity: ClientIdentity, options?: RegisterOptions): Session;
  /**
   * Sends a scrape to the client registered for `input.host` and waits for
   * its answer. Fails at once when no client is connected for that host.
   * Aborting `signal` withdraws the scrape and rejects with its reason.
   * Without a signal, the scrape's `abortHook` is its abort: its `aborted`
   * and `reason` as a signal's, its `fire` called with the reason (no
   * AbortController per scrape; issue #11).
   */
  requestScrape(
    input: ScrapeRequestInput,
    signal?: AbortSignal,
  ): Promise<ScrapeReply>;
  /**
   * Hands a client's answer to the scrape waiting for it. Resolves when the
   * body has been relayed, rejects when it could not be.
   */
  acceptPush(head: PushHead, body: AsyncIterable<Uint8Array>): Promise<void>;
  /** Clients listed now, sorted by fqdn. */
  listClients(): ClientInfo[];
  /** Proxy-wide scrape statistics over the last minutes. */
  stats(): StatsSnapshot;
  /**
   * Calls `listener` on every registry change from now on, synchronously.
   *
   * @returns A function that stops the calls.
   */
  subscribe(listener: RegistryListener): () => void;
  /**
   * Remembers how the last scrape of `host` ended, for listings. Ignored
   * for hosts no client is registered as.
   */
  recordScrapeResult(host: string, result: ScrapeResult): void;
  /**
   * Starts shutting down: new scrapes and registrations fail with kind
   * "draining", waiting sessions are told so at once. Scrapes already sent
   * to a client may still be answered, even after its stream ends.
   * Idempotent.
   */
  drain(): void;
  /** True after {@linkcode drain}. */
  readonly draining: boolean;
  /** Forgets clients disconnected longer than the registration timeout. */
  expire(): number;
  /** Number of clients listed. */
  readonly clientCount: number;
  /** Number of scrapes waiting for an answer or relaying one. */
  readonly scrapesInFlight: number;
  /** Estimated bytes held by the registry's records. */
  readonly registryBytes: number;
}

interface PendingScrape extends Handoff {
  record: ClientRecord<SessionImpl>;
}

/**
 * A scrape sent to its client, waiting for the push that answers it: its
 * promise's functions and its abort's sources in fields, its methods on
 * the prototype (of the closures a literal took per scrape, only the
 * abort listener is left).
 */
class WaitingScrape implements PendingScrape {
  readonly id: string;
  readonly sessionId: string;
  readonly credential: string;
  readonly record: ClientRecord<SessionImpl>;
  sent = false;
  answered = false;
  readonly #signal: AbortSignal | undefined;
  readonly #hook: AbortHook | null;
  readonly #finish: (scrape: PendingScrape) => void;
  readonly #resolve: (reply: ScrapeReply) => void;
  readonly #reject: (reason: unknown) => void;

  constructor(
    id: string,
    sessionId: string,
    record: ClientRecord<SessionImpl>,
    signal: AbortSignal | undefined,
    hook: AbortHook | null,
    finish: (scrape: PendingScrape) => void,
    resolve: (reply: ScrapeReply) => void,
    reject: (reason: unknown) => void,
  ) {
    this.id = id;
    this.sessionId = sessionId;
    this.credential = record.credential;
    this.record = record;
    this.#signal = signal;
    this.#hook = hook;
    this.#finish = finish;
    this.#resolve = resolve;
    this.#reject = reject;
  }

  /** The abort: called by the hook with the reason, by the signal with an event. */
  readonly onAbort = (reason: unknown): void => {
    if (this.answered) return; // the relaying side owns it now
    if (this.#hook !== null) this.#hook.fire = null;
    this.#finish(this);
    this.#reject(this.#signal !== undefined ? this.#signal.reason : reason);
  };

  resolve(reply: ScrapeReply): void {
    this.#stopListening();
    this.#resolve(reply);
  }

  reject(error: Error): void {
    this.#stopListening();
    this.#finish(this);
    this.#reject(error);
  }

  #stopListening(): void {
    if (this.#hook === null) this.#signal?.removeEventListener("abort", this.onAbort);
    else if (this.#hook.fire === this.onAbort) this.#hook.fire = null;
  }
}

/**
 * Creates a coordinator.
 *
 * @param options Registration timeout, clock and id source.
 * @returns The coordinator.
 */
export function createCoordinator(options: CoordinatorOptions): Coordinator {
  const now = options.now ?? Date.now;
  const newId = options.newId ?? (() => crypto.randomUUID());
  const pending = new Map<string, PendingScrape>();
  // Registration and identity bookkeeping: records, budgets, listing.
  const sessions = createSessionRegistry<SessionImpl>({ ...options, now, emit });

  const listeners = new Set<RegistryListener>();
  const recentLimit = options.recentScrapes ?? 30;
  const stats = createScrapeStats({
    ...(options.statsBucketMs ? { bucketMs: options.statsBucketMs } : {}),
    ...(options.statsBuckets ? { buckets: options.statsBuckets } : {}),
  });
  let draining = false;

  function emit(event: RegistryEvent): void {
    for (const listener of [...listeners]) {
      try {
        listener(event);
      } catch {
        // A listener's failure is its own; the registry goes on.
      }
    }
  }

  function drainingError(): CoordinatorError {
    return new CoordinatorError("The proxy is shutting down", "draining");
  }

  function replacedError(fqdn: string): CoordinatorError {
    return new CoordinatorError(`Stream for "${fqdn}" was replaced by a newer one`, "replaced");
  }

  // What every session shares (one object, not closures per session).
  const hub: SessionHub = {
    now,
    markSent(id) {
      const scrape = pending.get(id);
      if (scrape) scrape.sent = true;
      return scrape !== undefined;
    },
    refusal(session) {
      if (session.replaced) return replacedError(session.fqdn);
      return draining ? drainingError() : null;
    },
    closed(session, record, lastSeen) {
      sessions.detach(record, session, lastSeen);
      // Scrapes sent on this stream and not yet answered can no longer be:
      // fail them now instead of at their deadline. While draining, the
      // client was told to leave and may still push what it received.
      for (const scrape of pending.values()) {
        if (scrape.sessionId === session.id && !scrape.answered && !(draining && scrape.sent)) {
          scrape.reject(
            new CoordinatorError(
              `Client "${session.fqdn}" disconnected before answering`,
              "client_disconnected",
            ),
          );
        }
      }
    },
  };

  function createSession(
    identity: ClientIdentity,
    record: ClientRecord<SessionImpl>,
    source: string,
  ): SessionImpl {
    return new StreamSession(hub, newId(), identity.fqdn, source, record);
  }

  function finishScrape(scrape: PendingScrape): void {
    if (pending.delete(scrape.id)) {
      scrape.record.inFlight--;
      stats.setInFlight(pending.size, now());
    }
  }

  return {
    register(identity, registerOptions = {}) {
      if (draining) throw drainingError();
      const { record, previous } = sessions.admit(
        identity,
        registerOptions.credential ?? "",
        registerOptions.source ?? "",
      );
      if (previous) {
        // The previous stream is told to end; scrapes it already received may
        // still be answered until its adapter closes it.
        previous.replaced = true;
        previous.queue.fail(replacedError(identity.fqdn));
      }
      const session = createSession(identity, record, registerOptions.source ?? "");
      sessions.attach(record, session);
      if (previous) {
        // Queued scrapes that were not sent yet move to the new stream.
        for (const { task, deadline } of previous.queue.takeQueued()) {
          const scrape = pending.get(task.id);
          if (scrape) {
            scrape.sessionId = session.id;
            session.queue.offer(task, deadline);
          }
        }
      }
      emit({ kind: "connected", client: sessions.info(record) });
      return session;
    },

    requestScrape(input, signal) {
      const hook = input.abortHook ?? null;
      if (signal?.aborted) return Promise.reject(signal.reason);
      if (signal === undefined && hook?.aborted) return Promise.reject(hook.reason);
      if (draining) return Promise.reject(drainingError());
      const record = sessions.lookup(input.host);
      const at = now();
      if (record === undefined || !sessions.isListed(record, at)) {
        return Promise.reject(
          new CoordinatorError(
            `No client is registered as "${input.host}"`,
            "unknown_client",
          ),
        );
      }
      const session = record.session;
      if (session === null) {
        const ago = Math.round((at - record.disconnectedAt) / 1000);
        return Promise.reject(
          new CoordinatorError(
            `Client "${input.host}" is not connected (disconnected ${ago}s ago)`,
            "client_disconnected",
          ),
        );
      }
      const perClient = options.maxScrapesPerClient ?? 0;
      if (perClient > 0 && record.inFlight >= perClient) {
        return Promise.reject(
          new CoordinatorError(
            `Client "${input.host}" already has ${record.inFlight} scrapes in flight (--scrape.max-concurrent-per-client)`,
            "client_busy",
          ),
        );
      }
      const total = options.maxScrapes ?? 0;
      if (total > 0 && pending.size >= total) {
        return Promise.reject(
          new CoordinatorError(
            `The proxy already has ${pending.size} scrapes in flight (--scrape.max-concurrent)`,
            "proxy_busy",
          ),
        );
      }
      const id = newId();
      record.inFlight++;
      record.lastScrape = at;
      record.useful = true;
      return new Promise<ScrapeReply>((resolve, reject) => {
        const scrape = new WaitingScrape(
          id,
          session.id,
          record,
          signal,
          hook,
          finishScrape,
          resolve,
          reject,
        );
        pending.set(id, scrape);
        stats.setInFlight(pending.size, at);
        if (hook === null) signal?.addEventListener("abort", scrape.onAbort, { once: true });
        else hook.fire = scrape.onAbort;
        session.queue.offer(
          {
            id,
            method: input.method,
            url: input.url,
            headers: input.headers,
            timeoutMs: 0,
          },
          input.deadline,
        );
      });
    },

    acceptPush(head, body) {
      return handOff(pending.get(head.scrapeId), head, body, finishScrape);
    },

    listClients() {
      return sessions.list();
    },

    stats() {
      return stats.snapshot(now());
    },

    subscribe(listener) {
      const own = (event: RegistryEvent) => listener(event);
      listeners.add(own);
      return () => listeners.delete(own);
    },

    recordScrapeResult(host, result) {
      const at = now();
      stats.record(at, result.status >= 400 || result.error !== "");
      const record = sessions.lookup(host);
      if (record === undefined) return;
      record.lastResult = { ...result };
      const outcome: ScrapeOutcome = { ...result, at, bytes: result.bytes ?? 0 };
      record.recent.push(outcome);
      if (record.recent.length > recentLimit) record.recent.shift();
      // (No event made for no one: watchers are few and seldom.)
      if (listeners.size === 0) return;
      emit({
        kind: "scraped",
        fqdn: record.identity.fqdn,
        outcome: { ...outcome },
        inFlight: record.inFlight,
      });
    },

    drain() {
      if (draining) return;
      draining = true;
      for (const record of sessions.records()) record.session?.queue.fail(drainingError());
    },

    get draining() {
      return draining;
    },

    expire() {
      return sessions.expire();
    },

    get clientCount() {
      return sessions.count;
    },

    get scrapesInFlight() {
      return pending.size;
    },

    get registryBytes() {
      return sessions.bytes;
    },
  };
}
