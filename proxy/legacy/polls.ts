/**
 * The legacy poll state machine, apart from HTTP: which upstream client
 * holds a session, which poll is waiting for it, what scrapes were taken
 * from the coordinator that no poll could carry yet, when an idle session
 * is closed, and which scrapes were sent and may be pushed.
 *
 * An upstream client has at most one poll outstanding and re-polls as soon
 * as a poll is answered, so its registration spans successive polls: the
 * first poll for an fqdn registers a session with the coordinator, later
 * polls reuse it, and it is closed when no poll has been held for
 * `sessionGraceMs`. A waiting poll ends when a scrape comes, its connection
 * goes, a newer poll for the same fqdn displaces it, a newer registration
 * replaces the session, or the proxy shuts down. A scrape the poll could not
 * carry is kept for the next one.
 *
 * No I/O; the clock and the grace timer are injected.
 * {@linkcode createLegacyHandler} in legacy.ts is the HTTP adapter around it.
 *
 * @module
 */

import { hostKey } from "../../lib/host.ts";
import type { Logger } from "../../lib/logger.ts";
import {
  type Coordinator,
  CoordinatorError,
  type ScrapeTask,
  type Session,
} from "../core/coordinator.ts";
import { errorKind } from "../core/errors.ts";
import type { ProxyMetrics } from "../core/metrics.ts";

/** Schedules and cancels the grace timer; a fake clock replaces it in tests. */
export interface GraceTimers {
  /** Returns a handle for `clearTimeout`. */
  setTimeout(callback: () => void, ms: number): unknown;
  /** Cancels a timer; ignores undefined and fired timers. */
  clearTimeout(id: unknown): void;
}

/** Options for {@linkcode createLegacyPolls}. */
export interface LegacyPollsOptions {
  coordinator: Coordinator;
  logger: Logger;
  /** Registrations and refusals for a limit are counted here. */
  metrics: Pick<ProxyMetrics, "registrations" | "limitHits">;
  /** How long a session outlives its last poll before it is closed. @default {10000} */
  sessionGraceMs?: number;
  /** The coordinator's clock. @default {Date.now} */
  now?: () => number;
  /** @default {globalThis's setTimeout and clearTimeout} */
  timers?: GraceTimers;
}

/** An upstream client's registration, spanning its successive polls. */
export interface LegacySession {
  readonly fqdn: string;
  /** The credential it was opened with ("" without authorization). */
  readonly credential: string;
  /** The coordinator's session. */
  readonly session: Session;
  readonly log: Logger;
}

/** Why a session could not be opened, with the status to answer. */
export interface LegacyRefusal {
  status: number;
  message: string;
  /** Non-zero when the client may retry after this long (Retry-After). */
  retryAfterMs: number;
}

/** How a poll ended. */
export type PollOutcome =
  /** Carry this scrape; `timeoutMs` is what is left of its deadline. */
  | { kind: "scrape"; task: ScrapeTask; timeoutMs: number }
  /**
   * `displaced`: a newer poll for the fqdn took over; `replaced`: a newer
   * registration for the fqdn took over the session; `draining`: the
   * coordinator is draining; `shutdown`: the session was closed; `gone`: the
   * poll's connection went away.
   */
  | { kind: "displaced" | "replaced" | "draining" | "shutdown" | "gone" };

/** A poll held for a session; see {@linkcode LegacyPolls.hold}. */
export interface HeldPoll {
  /** True when a scrape was already waiting, so the poll is answered at once. */
  readonly ready: boolean;
  /** The poll's connection went away: it ends (a scrape it held is kept). */
  gone(): void;
  /**
   * Waits until the poll ends. `connected` is asked once a scrape is in
   * hand: when false, the scrape is kept for the next poll.
   */
  outcome(connected: () => boolean): Promise<PollOutcome>;
}

/** A scrape written to a poll response, until it is pushed or expires. */
export interface SentScrape {
  readonly legacy: LegacySession;
  readonly method: string;
  readonly expiresAt: number;
}

/** The legacy sessions and their polls. */
export interface LegacyPolls {
  /** The fqdn's session, opened (and registered) on its first poll. */
  open(
    fqdn: string,
    credential: string,
    source: string,
    peer: string,
  ): LegacySession | LegacyRefusal;
  /** Holds a poll for `legacy`, displacing the one it held. */
  hold(legacy: LegacySession): HeldPoll;
  /** The scrape sent under `id`, if it can still be pushed. */
  sent(id: string): SentScrape | undefined;
  /** Takes `entry` for a push: false when it was pushed (or expired) meanwhile. */
  claim(id: string, entry: SentScrape): boolean;
  /** Closes every session and wakes held polls ("shutdown"). Idempotent. */
  close(): void;
  readonly closed: boolean;
  /** Sessions currently open. */
  readonly sessionCount: number;
}

interface Taken {
  task: ScrapeTask;
  /** When it left the coordinator's queue; its timeout counts from here. */
  takenAt: number;
}

type Wake =
  | { kind: "displaced" | "gone" | "shutdown" }
  | { kind: "deliver"; taken: Taken };

interface Waiter {
  controller: AbortController;
}

interface State extends LegacySession {
  key: string;
  /** The poll waiting for a scrape, if any. */
  poll: Waiter | null;
  /** Scrapes taken from the coordinator that no poll could carry yet. */
  undelivered: Taken[];
  grace: unknown;
  /** When its last poll ended, while no poll is held. */
  goneAt: number | undefined;
  closed: boolean;
}

interface Sent extends SentScrape {
  readonly legacy: State;
}

/** How long a sent scrape may still be pushed after its deadline. */
const SENT_SLACK_MS = 5_000;
/** Expired sent scrapes are swept at most this often. */
const SWEEP_EVERY_MS = 10_000;

/**
 * Creates the legacy poll state machine.
 *
 * @param options Coordinator, logger, metrics, clock and timers.
 * @returns The state machine; call `close` when the server stops.
 */
export function createLegacyPolls(options: LegacyPollsOptions): LegacyPolls {
  const { coordinator, logger, metrics } = options;
  const now = options.now ?? Date.now;
  const graceMs = options.sessionGraceMs ?? 10_000;
  const timers: GraceTimers = options.timers ?? {
    setTimeout: (callback, ms) => setTimeout(callback, ms),
    clearTimeout: (id) => clearTimeout(id as ReturnType<typeof setTimeout> | undefined),
  };
  /** Open sessions by host key. */
  const sessions = new Map<string, State>();
  /** Every session not closed yet, including ones a newer client replaced. */
  const live = new Set<State>();
  /** Scrapes written to a poll response, by scrape id, until pushed. */
  const sentScrapes = new Map<string, Sent>();
  let nextSweep = 0;
  let closed = false;

  function open(
    fqdn: string,
    credential: string,
    source: string,
    peer: string,
  ): State | LegacyRefusal {
    const key = hostKey(fqdn);
    const existing = sessions.get(key);
    if (existing !== undefined) {
      return existing.credential === credential
        ? existing
        : { status: 403, message: `${fqdn} is polled with another credential`, retryAfterMs: 0 };
    }
    let session: Session;
    try {
      session = coordinator.register({
        fqdn,
        labels: {},
        version: "",
        modules: [],
        protocol: "legacy",
        peerAddress: peer,
      }, { credential, source });
    } catch (error) {
      if (!(error instanceof CoordinatorError)) throw error;
      const entry = errorKind(error);
      // Limits answer with their own status; anything else keeps the poll
      // from registering, which upstream's clients take as 403.
      if (entry.metric === "limit_hits") metrics.limitHits.inc({ limit: entry.label });
      const status = entry.metric === "limit_hits" ? entry.status : 403;
      return { status, message: error.message, retryAfterMs: error.retryAfterMs };
    }
    metrics.registrations.inc();
    const legacy: State = {
      key,
      fqdn,
      credential,
      session,
      log: logger.with({ fqdn, session: session.id.slice(0, 8), protocol: "legacy" }),
      poll: null,
      undelivered: [],
      grace: undefined,
      goneAt: undefined,
      closed: false,
    };
    sessions.set(key, legacy);
    live.add(legacy);
    legacy.log.info("Client registered");
    return legacy;
  }

  /** Stops offering `legacy` to new polls; closes it after the grace period. */
  function retire(legacy: State): void {
    if (sessions.get(legacy.key) === legacy) sessions.delete(legacy.key);
    startGrace(legacy);
  }

  function startGrace(legacy: State): void {
    if (legacy.closed || closed) return;
    timers.clearTimeout(legacy.grace);
    legacy.goneAt ??= now();
    legacy.grace = timers.setTimeout(
      () => shut(legacy, "no poll within the grace period"),
      graceMs,
    );
  }

  function shut(legacy: State, reason: string): void {
    if (legacy.closed) return;
    legacy.closed = true;
    timers.clearTimeout(legacy.grace);
    // Disconnected since its last poll ended, not since the grace period did.
    const lastSeen = legacy.poll === null ? legacy.goneAt : undefined;
    live.delete(legacy);
    if (sessions.get(legacy.key) === legacy) sessions.delete(legacy.key);
    if (legacy.poll) wake(legacy, legacy.poll, { kind: "shutdown" });
    legacy.undelivered.length = 0;
    // Unanswered scrapes sent to this client fail now (503), not at their deadline.
    legacy.session.close(lastSeen);
    // Its sent scrapes stay until they expire: while the proxy drains,
    // scrapes sent before may still be answered.
    legacy.log.info("Client session closed", { reason });
  }

  function wake(legacy: State, waiter: Waiter, why: Wake): void {
    if (legacy.poll === waiter) legacy.poll = null;
    waiter.controller.abort(why);
  }

  /** Gives a taken scrape to the waiting poll, or keeps it for the next one. */
  function dispatch(legacy: State, taken: Taken, first = false): void {
    if (legacy.closed) return;
    if (legacy.poll) wake(legacy, legacy.poll, { kind: "deliver", taken });
    else if (first) legacy.undelivered.unshift(taken);
    else legacy.undelivered.push(taken);
  }

  function takeUndelivered(legacy: State): Taken | null {
    for (;;) {
      const taken = legacy.undelivered.shift();
      if (taken === undefined) return null;
      if (remainingMs(taken) > 0) return taken;
    }
  }

  function remainingMs(taken: Taken): number {
    return taken.task.timeoutMs - (now() - taken.takenAt);
  }

  function sweepSent(): void {
    const at = now();
    if (at < nextSweep) return;
    nextSweep = at + SWEEP_EVERY_MS;
    for (const [id, entry] of sentScrapes) if (entry.expiresAt < at) sentScrapes.delete(id);
  }

  function hold(session: LegacySession): HeldPoll {
    const legacy = session as State;
    if (legacy.poll) wake(legacy, legacy.poll, { kind: "displaced" });
    timers.clearTimeout(legacy.grace);
    legacy.goneAt = undefined;
    const waiter: Waiter = { controller: new AbortController() };
    legacy.poll = waiter;
    let taken = takeUndelivered(legacy);
    return {
      ready: taken !== null,
      gone: () => wake(legacy, waiter, { kind: "gone" }),
      async outcome(connected) {
        let replaced = false;
        let draining = false;
        if (taken === null) {
          try {
            const task = await legacy.session.next(waiter.controller.signal);
            if (task !== null) taken = { task, takenAt: now() };
          } catch (error) {
            if (!(error instanceof CoordinatorError)) throw error;
            if (error.kind === "replaced") replaced = true;
            else if (error.kind === "draining") draining = true;
            else throw error;
          }
        }
        if (legacy.poll === waiter) legacy.poll = null;
        const signal = waiter.controller.signal;
        const why = signal.aborted ? signal.reason as Wake : null;
        if (why?.kind === "deliver") {
          if (taken === null) taken = why.taken;
          else dispatch(legacy, why.taken, true);
        }
        if (replaced) {
          legacy.log.info("Client replaced by a newer registration for its fqdn");
          retire(legacy);
        } else if (legacy.poll === null) {
          startGrace(legacy);
        }

        if (taken !== null) {
          if (!connected() || why?.kind === "gone" || why?.kind === "displaced") {
            // Not lost: the next poll for this fqdn carries it.
            dispatch(legacy, taken, true);
            return { kind: why?.kind === "displaced" ? "displaced" : "gone" };
          }
          const timeoutMs = Math.max(1, remainingMs(taken));
          sweepSent();
          sentScrapes.set(taken.task.id, {
            legacy,
            method: taken.task.method,
            expiresAt: now() + timeoutMs + SENT_SLACK_MS,
          });
          legacy.log.debug("Sending scrape", { scrape_id: taken.task.id, url: taken.task.url });
          return { kind: "scrape", task: taken.task, timeoutMs };
        }
        if (replaced) return { kind: "replaced" };
        if (draining) return { kind: "draining" };
        switch (why?.kind) {
          case "displaced":
          case "shutdown":
            return { kind: why.kind };
          default:
            return { kind: "gone" };
        }
      },
    };
  }

  return {
    open,
    hold,
    sent(id) {
      sweepSent();
      return sentScrapes.get(id);
    },
    claim(id, entry) {
      if (sentScrapes.get(id) !== entry) return false;
      sentScrapes.delete(id);
      return true;
    },
    close() {
      if (closed) return;
      closed = true;
      for (const legacy of [...live]) shut(legacy, "the proxy is shutting down");
    },
    get closed() {
      return closed;
    },
    get sessionCount() {
      return sessions.size;
    },
  };
}
