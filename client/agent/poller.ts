/**
 * The client's poll loop: keeps a Poll stream to the proxy open, reconnects
 * with back-off, watches heartbeats, and runs each scrape it receives
 * concurrently, pushing the result back in chunks.
 *
 * @module
 */

import type { Client } from "@connectrpc/connect";
import type { MessageInitShape } from "@bufbuild/protobuf";
import type {
  ClientService,
  ScrapeRequest,
  ScrapeResponseHeadSchema,
} from "../../gen/pushprox/v1/pushprox_pb.ts";
import type { PollStream } from "../transport/native_poll.ts";
import { CallCode, callErrorOf } from "../transport/call_error.ts";
import { formatDuration } from "../../lib/duration.ts";
import { createRepeatFilter, type Logger } from "../../lib/logger.ts";
import { createBackoff } from "./backoff.ts";
import { describePollError } from "./poll_error.ts";
import { pollThrough, pushThrough } from "../transport/connect_calls.ts";
import type { ClientMetrics } from "./metrics.ts";
import { DirectCounter, DirectHistogram } from "../../lib/metric_entries.ts";
import type { PushSender } from "../transport/native_push.ts";
import type { ScrapeOutcome, Scraper } from "../scrape/scraper.ts";
import { sleep } from "../../lib/sleep.ts";
import { errorMessage } from "../../lib/error_message.ts";
import { Deadlines } from "../../lib/deadlines.ts";
import { LazyTimer } from "../../lib/lazy_timer.ts";

/** What the client announces when it registers. */
export interface PollIdentity {
  fqdn: string;
  labels: Record<string, string>;
  version: string;
  modules: string[];
  /** True when raw scrapes are refused (modules only). */
  modulesOnly?: boolean;
}

/** Options for {@linkcode runPoller}. */
export interface PollerOptions {
  /**
   * Opens a Poll stream (client/transport/native_poll.ts, or connect-es through
   * {@linkcode pollThrough}). One of `poll` and `client` is required.
   */
  poll?: PollStream;
  /** A Connect client of the proxy's ClientService: Poll and Push where `poll`/`push` are not given. */
  client?: Client<typeof ClientService>;
  identity: PollIdentity;
  scraper: Scraper;
  logger: Logger;
  metrics: ClientMetrics;
  /** First wait after a failure. @default {1000} */
  retryInitialMs?: number;
  /** Longest wait between attempts. @default {5000} */
  retryMaxMs?: number;
  /**
   * Consecutive refusals (invalid_argument, permission_denied: the proxy will
   * never accept this identity or credential) after which the poller gives up
   * and calls {@linkcode PollerOptions.onFatal}. @default {3}
   */
  maxRefusals?: number;
  /**
   * Lets a repeated failed-scrape warning through once a minute per URL and
   * status (the rest go to debug). @default {createRepeatFilter()}
   */
  repeats?: (key: string) => number | null;
  /** Called once when the poller gives up; the poller then returns. */
  onFatal?: (reason: string) => void;
  /** How long to wait for the proxy's first message. @default {30000} */
  connectTimeoutMs?: number;
  /** Called when registration succeeds and when the stream ends. */
  onState?: (connected: boolean) => void;
  /** The proxies announced in PollRequest.proxies, read at each connect. */
  proxies?: () => string[];
  /**
   * Pushes answers on the native path (client/transport/native_push.ts) instead of
   * `client.push`. @default {connect-es}
   */
  push?: PushSender | null;
  /** Stops the loop; in-flight scrapes still finish. */
  signal: AbortSignal;
}

/** Heartbeats missed before the stream counts as dead. */
const MISSED_HEARTBEATS = 3;
const NO_HEARTBEATS = `no heartbeat for ${MISSED_HEARTBEATS} intervals`;

/**
 * Polls until `options.signal` aborts, then waits for in-flight scrapes to
 * finish.
 *
 * @param options Connect client, identity, scraper, logger, metrics and the
 *   signal that stops the loop.
 * @returns Resolves (the loop's `finished`) when the loop and its scrapes are done.
 */
export async function runPoller(options: PollerOptions): Promise<void> {
  const { identity, logger, metrics, signal } = options;
  if (!options.poll && !options.client) throw new TypeError("runPoller: no poll and no client");
  const poll = options.poll ?? pollThrough(options.client!);
  const push = options.push ?? pushThrough(options.client!);
  const retryInitialMs = options.retryInitialMs ?? 1000;
  const backoff = createBackoff({
    initialMs: retryInitialMs,
    maxMs: options.retryMaxMs ?? 5000,
  });
  // Scrapes in flight, counted (a Set entry and a `.finally` per scrape were
  // garbage, issue #11): all of them, and those accepted (started before
  // stopping: once stopping, scrapes are refused, so these only go down).
  let inFlight = 0;
  let accepted = 0;
  // Called when `accepted`, or `inFlight`, reaches 0.
  let onAcceptedDone: (() => void) | null = null;
  let onAllDone: (() => void) | null = null;
  const maxRefusals = options.maxRefusals ?? 3;
  const repeats = options.repeats ?? createRepeatFilter();
  let refusals = 0;
  // One timer for every scrape's deadline (issue #11).
  const deadlines = new Deadlines();
  // Every scrape's count and duration, on prom-client's entries directly (issue #11).
  const scrapes = new DirectCounter(metrics.scrapes, "code");
  const durations = new DirectHistogram(metrics.scrapeDuration, null);
  // Per-scrape debug records' fields are built only when written (issue #11).
  const debug = logger.enabled?.("debug") ?? true;
  // `signal.aborted`, kept by its listener: read per scrape (a branded getter).
  let stopping = signal.aborted;

  while (!signal.aborted) {
    const stream = new AbortController();
    // On stop, the stream stays open until the scrapes received on it are
    // answered: the proxy fails a scrape whose stream ends before its push.
    const stopStream = () => {
      stopping = true;
      const end = () => stream.abort(signal.reason);
      if (accepted === 0) end();
      else onAcceptedDone = () => queueMicrotask(end);
    };
    signal.addEventListener("abort", stopStream, { once: true });
    // Re-armed by every message: moves a due time, not a timer (issue #11);
    // one callback per reason, made once per stream.
    const watchdog = new LazyTimer();
    const expire = (reason: string) => () => stream.abort(new Error(reason));
    const noAnswer = expire("no answer from the proxy");
    const noHeartbeats = expire(NO_HEARTBEATS);
    const noHeartbeat = expire("no heartbeat");
    let registeredAt = 0;
    let sessionId = "";
    let replaced = false;
    let goAway = false;
    try {
      watchdog.set(options.connectTimeoutMs ?? 30_000, noAnswer);
      let heartbeatMs = 0;
      const request = { ...identity, proxies: options.proxies?.() ?? [] };
      for await (const message of poll(request, stream.signal)) {
        // One clock read per message: the watchdog's and a scrape's start
        // (the watchdog's and the deadlines' clock; issue #11).
        const now = performance.now();
        if (heartbeatMs > 0) {
          watchdog.set(heartbeatMs * MISSED_HEARTBEATS, noHeartbeats, now);
        }
        const { case: kind, value } = message.message;
        if (kind === "registered") {
          registeredAt = Date.now();
          refusals = 0;
          sessionId = value.sessionId;
          heartbeatMs = value.heartbeatIntervalMs;
          if (heartbeatMs > 0) {
            watchdog.set(heartbeatMs * MISSED_HEARTBEATS, noHeartbeat);
          } else watchdog.close();
          backoff.reset();
          options.onState?.(true);
          logger.info("Registered with the proxy", { fqdn: identity.fqdn });
        } else if (kind === "scrape" && registeredAt > 0) {
          // While stopping, scrapes still arriving are refused at once.
          runScrape(value, sessionId, stopping, now);
        } else if (kind === "goAway") {
          // Scrapes already received still run and push their answers.
          goAway = true;
          logger.info("The proxy is going away; reconnecting at once", {
            reason: value.reason,
            scrapes_in_flight: inFlight,
          });
          break;
        }
      }
      if (!signal.aborted && !goAway) {
        logger.info("The proxy ended the stream; reconnecting");
      }
    } catch (error) {
      if (signal.aborted) break;
      metrics.pollErrors.inc();
      const reason = stream.signal.aborted ? stream.signal.reason : error;
      // A CallError of the native path or a ConnectError of connect-es'.
      const code = callErrorOf(error)?.code;
      replaced = code === CallCode.AlreadyExists;
      const refused = code === CallCode.InvalidArgument || code === CallCode.PermissionDenied;
      refusals = refused ? refusals + 1 : 0;
      if (refused && refusals >= maxRefusals) {
        const reason = `the proxy refused this client ${refusals} times in a row: ${
          errorMessage(error)
        }`;
        logger.error("Giving up: the proxy will not accept this client as configured", {
          fqdn: identity.fqdn,
          err: reason,
        });
        options.onFatal?.(reason);
        break;
      }
      if (replaced) {
        logger.error("Another client registered with the same fqdn; backing off", {
          fqdn: identity.fqdn,
          err: errorMessage(reason),
        });
      } else if (code === CallCode.Aborted) {
        // The proxy's connection ended under the stream: a proxy restart or
        // shutdown without a goAway (e.g. killed), not a fault of this client.
        logger.info("The proxy closed the connection (restarting or stopped?); reconnecting", {
          err: describePollError(reason),
        });
      } else {
        logger.warn("Poll stream failed", { err: describePollError(reason) });
      }
    } finally {
      watchdog.close();
      signal.removeEventListener("abort", stopStream);
      if (registeredAt > 0) {
        options.onState?.(false);
      }
    }
    // A stream that worked for a while, or that the proxy asked to leave, is
    // re-opened at once; repeated failures back off.
    const healthy = goAway || (!replaced && registeredAt > 0 &&
      Date.now() - registeredAt >= retryInitialMs);
    // Stopping ends the back-off early; the loop's condition then ends it.
    if (!healthy) await sleep(backoff.next(), { signal }).catch(() => {});
  }
  if (inFlight > 0) await new Promise<void>((resolve) => onAllDone = resolve);
  deadlines.close();

  async function runScrape(
    request: ScrapeRequest,
    sessionId: string,
    refuse: boolean,
    started: number,
  ): Promise<void> {
    inFlight++;
    if (!refuse) accepted++;
    try {
      // The scrape's records carry its id first, as a child logger's would;
      // none is made per scrape (issue #11).
      const scrapeId = request.id;
      const timer = deadlines.timeout(request.timeoutMs, started);
      const deadline = timer.signal;
      if (debug) {
        logger.debug("Scraping", {
          scrape_id: scrapeId,
          url: request.url,
          timeout: formatDuration(request.timeoutMs),
        });
      }
      const outcome: ScrapeOutcome = refuse
        ? { status: 503, headers: [], error: "the client is shutting down", body: null }
        : await options.scraper.scrape(request, deadline);
      if (outcome.error !== "") {
        metrics.scrapeErrors.inc();
        // The same refusal every scrape interval is one problem: warn once a
        // minute per URL and status, with how many were held back.
        const held = repeats(`${outcome.status} ${request.url}`);
        (held === null ? logger.debug : logger.warn)("Scrape failed", {
          scrape_id: scrapeId,
          url: request.url,
          status: outcome.status,
          err: outcome.error,
          repeated: held ? `${held} more in the last minute` : undefined,
        });
      }
      try {
        await push(pushHead(request.id, sessionId, outcome), outcome.body, deadline);
        scrapes.inc(String(outcome.status));
        if (debug) {
          logger.debug("Scrape finished", {
            scrape_id: scrapeId,
            url: request.url,
            status: outcome.status,
            duration: formatDuration(Math.round(performance.now() - started)),
          });
        }
      } catch (error) {
        metrics.pushErrors.inc();
        logger.warn("Push failed", {
          scrape_id: scrapeId,
          url: request.url,
          err: errorMessage(error),
        });
      } finally {
        timer.release();
        durations.observe(null, (performance.now() - started) / 1000);
      }
    } finally {
      if (!refuse && --accepted === 0 && onAcceptedDone !== null) onAcceptedDone();
      if (--inFlight === 0 && onAllDone !== null) onAllDone();
    }
  }
}

function pushHead(
  scrapeId: string,
  sessionId: string,
  outcome: ScrapeOutcome,
): MessageInitShape<typeof ScrapeResponseHeadSchema> {
  return {
    scrapeId,
    sessionId,
    status: outcome.status,
    headers: outcome.headers,
    error: outcome.error,
  };
}
