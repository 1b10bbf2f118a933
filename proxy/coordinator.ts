/**
 * The proxy's core: which clients are registered, which scrapes wait for
 * which client, and the hand-off of a client's answer to the waiting scrape.
 * It does no I/O and starts no timers; the HTTP and Connect adapters drive it.
 *
 * @module
 */

import type { HeaderField } from "../lib/headers.ts";
import { hostKey } from "../lib/host.ts";

/** Who a client says it is when it registers. */
export interface ClientIdentity {
  /** The host name Prometheus scrapes; the routing key. */
  fqdn: string;
  labels: Record<string, string>;
  version: string;
  modules: string[];
  /** The wire protocol the client speaks, e.g. "connect". */
  protocol: string;
  /** The proxies the client says it streams to, from its own view. */
  proxies?: string[];
  /** True when the client refuses raw scrapes (serves only its modules). */
  modulesOnly?: boolean;
}

/** A scrape handed to a client. */
export interface ScrapeTask {
  id: string;
  method: string;
  url: string;
  headers: HeaderField[];
  /** Time left when the task is taken from the queue, in milliseconds. */
  timeoutMs: number;
}

/** What the client answered: status, headers and a body to relay. */
export interface ScrapeReply {
  status: number;
  headers: HeaderField[];
  /** Non-empty when the client could not scrape; no body follows then. */
  error: string;
  /** The body, pulled by the relaying side as fast as it can write. */
  body: AsyncIterable<Uint8Array>;
  /**
   * The relaying side calls this once when it is done with the body: without
   * an argument on success, with the reason otherwise. It ends the push.
   */
  settle(error?: Error): void;
}

/** The head of a client's push. */
export interface PushHead {
  scrapeId: string;
  sessionId: string;
  status: number;
  headers: HeaderField[];
  error: string;
  /**
   * The credential the push was made with (see {@linkcode RegisterOptions});
   * when given, it must be the one the scrape's stream registered with.
   */
  credential?: string;
}

/** How a finished scrape went, as the proxy answered Prometheus. */
export interface ScrapeResult {
  /** The HTTP status sent to Prometheus. */
  status: number;
  /** Why it failed; empty on success. */
  error: string;
  durationMs: number;
}

/** A registered client as listed by `/clients` and `ListClients`. */
export interface ClientInfo extends ClientIdentity {
  connected: boolean;
  connectedSince: number;
  /** 0 when it was never scraped. */
  lastScrape: number;
  inFlight: number;
  /** The last finished scrape; null if none finished yet. */
  lastResult?: ScrapeResult | null;
}

/** Base class of the errors the coordinator reports to its adapters. */
export class CoordinatorError extends Error {
  /** Creates the error with a machine-readable kind. */
  constructor(
    message: string,
    readonly kind:
      | "unknown_client"
      | "client_disconnected"
      | "unknown_scrape"
      | "foreign_scrape"
      | "duplicate_push"
      | "replaced"
      | "draining"
      | "credential_mismatch"
      | "too_many_clients"
      | "client_busy"
      | "proxy_busy"
      | "invalid",
  ) {
    super(message);
    this.name = "CoordinatorError";
  }
}

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
  /** Ends the session: the stream closed. Idempotent. */
  close(): void;
}

/** Options for {@linkcode createCoordinator}. */
export interface CoordinatorOptions {
  /** How long a client stays listed after its stream ends. */
  registrationTimeoutMs: number;
  /** @default {Date.now} */
  now?: () => number;
  /** Makes scrape and session ids. @default {crypto.randomUUID} */
  newId?: () => string;
  /** Most clients listed at once; more registrations fail ("too_many_clients"). 0: no limit. @default {0} */
  maxClients?: number;
  /** Most scrapes in flight for one client ("client_busy"). 0: no limit. @default {0} */
  maxScrapesPerClient?: number;
  /** Most scrapes in flight in all ("proxy_busy"). 0: no limit. @default {0} */
  maxScrapes?: number;
}

/** Options of {@linkcode Coordinator.register}. */
export interface RegisterOptions {
  /**
   * Names the credential the client authenticated with ("" when none). A
   * connected fqdn can only be taken over by a stream with the same
   * credential; pushes must come with it too.
   */
  credential?: string;
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
   */
  requestScrape(
    input: ScrapeRequestInput,
    signal: AbortSignal,
  ): Promise<ScrapeReply>;
  /**
   * Hands a client's answer to the scrape waiting for it. Resolves when the
   * body has been relayed, rejects when it could not be.
   */
  acceptPush(head: PushHead, body: AsyncIterable<Uint8Array>): Promise<void>;
  /** Clients listed now, sorted by fqdn. */
  listClients(): ClientInfo[];
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
}

interface ClientRecord {
  identity: ClientIdentity;
  session: SessionImpl | null;
  connectedSince: number;
  disconnectedAt: number;
  lastScrape: number;
  inFlight: number;
  lastResult: ScrapeResult | null;
  /** The credential of the current (or last) stream. */
  credential: string;
}

interface PendingScrape {
  id: string;
  sessionId: string;
  /** The credential of the stream the scrape was sent on. */
  credential: string;
  record: ClientRecord;
  /** Handed to the client (not only queued). */
  sent: boolean;
  answered: boolean;
  resolve(reply: ScrapeReply): void;
  reject(error: Error): void;
}

interface SessionImpl extends Session {
  closed: boolean;
  replaced: boolean;
  queue: { task: ScrapeTask; deadline: number }[];
  waiter: ((task: ScrapeTask | null, error?: Error) => void) | null;
  offer(task: ScrapeTask, deadline: number): void;
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
  const clients = new Map<string, ClientRecord>();
  const pending = new Map<string, PendingScrape>();
  let draining = false;

  function drainingError(): CoordinatorError {
    return new CoordinatorError("The proxy is shutting down", "draining");
  }

  function isListed(record: ClientRecord, at: number): boolean {
    return record.session !== null ||
      at - record.disconnectedAt < options.registrationTimeoutMs;
  }

  function createSession(
    identity: ClientIdentity,
    record: ClientRecord,
  ): SessionImpl {
    const session: SessionImpl = {
      id: newId(),
      fqdn: identity.fqdn,
      closed: false,
      replaced: false,
      queue: [],
      waiter: null,
      offer(task, deadline) {
        if (session.waiter) {
          const waiter = session.waiter;
          session.waiter = null;
          const scrape = pending.get(task.id);
          if (scrape) scrape.sent = true;
          waiter({ ...task, timeoutMs: Math.max(1, deadline - now()) });
        } else {
          session.queue.push({ task, deadline });
        }
      },
      next(signal) {
        if (session.replaced) {
          return Promise.reject(
            new CoordinatorError(
              `Stream for "${session.fqdn}" was replaced by a newer one`,
              "replaced",
            ),
          );
        }
        if (draining) return Promise.reject(drainingError());
        if (session.closed || signal.aborted) return Promise.resolve(null);
        while (session.queue.length > 0) {
          const { task, deadline } = session.queue.shift()!;
          // A scrape withdrawn while queued is skipped, not sent.
          const scrape = pending.get(task.id);
          if (scrape) {
            scrape.sent = true;
            return Promise.resolve({
              ...task,
              timeoutMs: Math.max(1, deadline - now()),
            });
          }
        }
        if (session.waiter) {
          return Promise.reject(
            new CoordinatorError("Session is already being polled", "invalid"),
          );
        }
        return new Promise((resolve, reject) => {
          const onAbort = () => {
            session.waiter = null;
            resolve(null);
          };
          signal.addEventListener("abort", onAbort, { once: true });
          session.waiter = (task, error) => {
            signal.removeEventListener("abort", onAbort);
            if (error) reject(error);
            else resolve(task);
          };
        });
      },
      close() {
        if (session.closed) return;
        session.closed = true;
        const waiter = session.waiter;
        session.waiter = null;
        waiter?.(null);
        session.queue.length = 0;
        if (record.session === session) {
          record.session = null;
          record.disconnectedAt = now();
        }
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
    return session;
  }

  function finishScrape(scrape: PendingScrape): void {
    if (pending.delete(scrape.id)) scrape.record.inFlight--;
  }

  return {
    register(identity, registerOptions = {}) {
      if (draining) throw drainingError();
      const credential = registerOptions.credential ?? "";
      const key = hostKey(identity.fqdn);
      const at = now();
      let record = clients.get(key);
      if (record?.session && record.credential !== credential) {
        throw new CoordinatorError(
          `"${identity.fqdn}" is connected with another credential; it cannot be taken over`,
          "credential_mismatch",
        );
      }
      if (record === undefined) {
        const limit = options.maxClients ?? 0;
        if (limit > 0 && clients.size >= limit) {
          // Forgotten clients make room first.
          for (const [k, r] of clients) {
            if (!isListed(r, at) && r.inFlight === 0) clients.delete(k);
          }
          if (clients.size >= limit) {
            throw new CoordinatorError(
              `Cannot register "${identity.fqdn}": the proxy already has ${clients.size} clients (--clients.max)`,
              "too_many_clients",
            );
          }
        }
        record = {
          identity,
          session: null,
          connectedSince: at,
          disconnectedAt: at,
          lastScrape: 0,
          inFlight: 0,
          lastResult: null,
          credential,
        };
        clients.set(key, record);
      }
      const previous = record.session;
      if (previous) {
        // The previous stream is told to end; scrapes it already received may
        // still be answered until its adapter closes it.
        previous.replaced = true;
        const waiter = previous.waiter;
        previous.waiter = null;
        waiter?.(
          null,
          new CoordinatorError(
            `Stream for "${identity.fqdn}" was replaced by a newer one`,
            "replaced",
          ),
        );
      }
      record.identity = identity;
      record.credential = credential;
      record.connectedSince = at;
      const session = createSession(identity, record);
      record.session = session;
      if (previous) {
        // Queued scrapes that were not sent yet move to the new stream.
        for (const { task, deadline } of previous.queue) {
          const scrape = pending.get(task.id);
          if (scrape) {
            scrape.sessionId = session.id;
            session.queue.push({ task, deadline });
          }
        }
        previous.queue.length = 0;
      }
      return session;
    },

    requestScrape(input, signal) {
      if (signal.aborted) return Promise.reject(signal.reason);
      if (draining) return Promise.reject(drainingError());
      const record = clients.get(hostKey(input.host));
      const at = now();
      if (record === undefined || !isListed(record, at)) {
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
      return new Promise<ScrapeReply>((resolve, reject) => {
        const onAbort = () => {
          if (scrape.answered) return; // the relaying side owns it now
          finishScrape(scrape);
          reject(signal.reason);
        };
        const scrape: PendingScrape = {
          id,
          sessionId: session.id,
          credential: record.credential,
          record,
          sent: false,
          answered: false,
          resolve(reply) {
            signal.removeEventListener("abort", onAbort);
            resolve(reply);
          },
          reject(error) {
            signal.removeEventListener("abort", onAbort);
            finishScrape(scrape);
            reject(error);
          },
        };
        pending.set(id, scrape);
        signal.addEventListener("abort", onAbort, { once: true });
        session.offer(
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
      const scrape = pending.get(head.scrapeId);
      if (scrape === undefined) {
        return Promise.reject(
          new CoordinatorError(
            `No scrape "${head.scrapeId}" is waiting (unknown, finished or timed out)`,
            "unknown_scrape",
          ),
        );
      }
      if (scrape.sessionId !== head.sessionId) {
        return Promise.reject(
          new CoordinatorError(
            `Scrape "${head.scrapeId}" was not sent to this stream`,
            "foreign_scrape",
          ),
        );
      }
      if (head.credential !== undefined && head.credential !== scrape.credential) {
        return Promise.reject(
          new CoordinatorError(
            `Scrape "${head.scrapeId}" was sent to a stream with another credential`,
            "foreign_scrape",
          ),
        );
      }
      if (scrape.answered) {
        return Promise.reject(
          new CoordinatorError(
            `Scrape "${head.scrapeId}" was already answered`,
            "duplicate_push",
          ),
        );
      }
      scrape.answered = true;
      return new Promise<void>((resolve, reject) => {
        let settled = false;
        scrape.resolve({
          status: head.status,
          headers: head.headers,
          error: head.error,
          body,
          settle(error) {
            if (settled) return;
            settled = true;
            finishScrape(scrape);
            if (error) reject(error);
            else resolve();
          },
        });
      });
    },

    listClients() {
      const at = now();
      const list: ClientInfo[] = [];
      for (const record of clients.values()) {
        if (!isListed(record, at)) continue;
        list.push({
          ...record.identity,
          connected: record.session !== null,
          connectedSince: record.connectedSince,
          lastScrape: record.lastScrape,
          inFlight: record.inFlight,
          proxies: record.identity.proxies ?? [],
          lastResult: record.lastResult,
        });
      }
      return list.sort((a, b) => a.fqdn < b.fqdn ? -1 : a.fqdn > b.fqdn ? 1 : 0);
    },

    recordScrapeResult(host, result) {
      const record = clients.get(hostKey(host));
      if (record !== undefined) record.lastResult = { ...result };
    },

    drain() {
      if (draining) return;
      draining = true;
      for (const record of clients.values()) {
        const session = record.session;
        const waiter = session?.waiter;
        if (session && waiter) {
          session.waiter = null;
          waiter(null, drainingError());
        }
      }
    },

    get draining() {
      return draining;
    },

    expire() {
      const at = now();
      let removed = 0;
      for (const [key, record] of clients) {
        if (!isListed(record, at) && record.inFlight === 0) {
          clients.delete(key);
          removed++;
        }
      }
      return removed;
    },

    get clientCount() {
      let count = 0;
      const at = now();
      for (const record of clients.values()) if (isListed(record, at)) count++;
      return count;
    },

    get scrapesInFlight() {
      return pending.size;
    },
  };
}
