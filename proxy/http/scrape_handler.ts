/**
 * The forward-proxy adapter: Prometheus' absolute-form requests
 * (`GET http://fqdn:port/path`, sent because of `proxy_url`) become scrapes
 * for the client registered as `fqdn`, and the client's answer is streamed
 * back as it arrives.
 *
 * @module
 */

import { forwardableFields, forwardableHeaders, type HeaderField } from "../../lib/headers.ts";
import type { Logger } from "../../lib/logger.ts";
import { type Coordinator, CoordinatorError, type ScrapeReply } from "../core/coordinator.ts";
import type { ProxyMetrics } from "../core/metrics.ts";
import { DirectCounter, DirectHistogram } from "../../lib/metric_entries.ts";
import { errorKind } from "../core/errors.ts";
import {
  InvalidTimeoutError,
  SCRAPE_TIMEOUT_HEADER,
  scrapeTimeoutMs,
} from "../../lib/scrape_timeout.ts";
import { formatDuration } from "../../lib/duration.ts";
import type { Exchange, HeaderPair } from "../../lib/http_exchange.ts";
import { piecesAtHand } from "../../lib/owned_chunks.ts";

/** Options for {@linkcode createScrapeHandler}. */
export interface ScrapeHandlerOptions {
  coordinator: Coordinator;
  logger: Logger;
  metrics: ProxyMetrics;
  /** Timeout when Prometheus sends no timeout header. */
  defaultTimeoutMs: number;
  /** Longer timeouts are clamped to this. */
  maxTimeoutMs: number;
  /** The coordinator's clock. @default {Date.now} */
  now?: () => number;
  /** Largest scrape body relayed, in bytes; 0 for no limit. @default {0} */
  maxBodyBytes?: number;
}

/** An absolute-form target that passed the checks: its host and normalized URL. */
interface ParsedTarget {
  hostname: string;
  href: string;
}
/** Most targets a handler keeps parsed (the map is cleared when full). */
const PARSED_TARGETS_MAX = 1024;
/** Longest target kept parsed: what the map holds stays under 1 MiB whatever is sent. */
const PARSED_TARGET_MAX_LENGTH = 256;

/** Handles one absolute-form request, on either edge (see lib/http_exchange.ts). */
export type ScrapeHandler = (exchange: Exchange) => Promise<void>;

/** The scrape's deadline passed before the client answered. */
class ScrapeTimeoutError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ScrapeTimeoutError";
  }
}

/**
 * Creates the handler for Prometheus' scrapes through the proxy.
 *
 * @param options Coordinator, logger, metrics and timeouts.
 * @returns The handler.
 */
export function createScrapeHandler(
  options: ScrapeHandlerOptions,
): ScrapeHandler {
  const { coordinator, logger, metrics } = options;
  const now = options.now ?? Date.now;
  /** Targets that passed the checks, parsed, by request target. */
  const parsedTargets = new Map<string, ParsedTarget>();
  /**
   * The fields forwarded for a request head's fields, by those fields when
   * they are frozen: a head the native edge reuses for the same bytes
   * (lib/request_head.ts RequestHeadCache), sent again every scrape on a
   * kept-alive connection. Frozen too; gone with the head.
   */
  const forwardedFields = new WeakMap<readonly string[], HeaderField[]>();
  const timeoutLimits = { defaultMs: options.defaultTimeoutMs, maxMs: options.maxTimeoutMs };
  /** The last scrape timeout header parsed, and its timeout (the same nearly every scrape). */
  let knownTimeoutHeader: string | null = null;
  let knownTimeoutMs = 0;
  // The two metric updates of every scrape, on prom-client's entries (no
  // labels hashed and checked per call; lib/metric_entries.ts).
  const proxiedRequests = new DirectCounter(metrics.proxiedRequests, "code");
  const scrapeDurations = new DirectHistogram(metrics.scrapeDuration, "code");
  const answerFields = new AnswerFields();

  /** A scrape's logger: made only when something is logged (a child logger per scrape was garbage). */
  const logWith = (target: string): Logger => logger.with({ target });

  /** The fields of a scrape request forwarded to the client. */
  function forwarded(raw: readonly string[]): HeaderField[] {
    let fields = forwardedFields.get(raw);
    if (fields !== undefined) return fields;
    fields = forwardableHeaders(headerPairs(raw));
    if (Object.isFrozen(raw)) {
      for (const field of fields) Object.freeze(field);
      forwardedFields.set(raw, Object.freeze(fields) as HeaderField[]);
    }
    return fields;
  }

  return async function handleScrape(exchange) {
    const res = exchange;
    const method = exchange.method;
    const requestTarget = exchange.target;
    // The connection's timer, for the scrape's deadline, where the edge has
    // one free. The clock is read once to start with (for the duration and
    // the deadline both) and once at the end.
    const timer = res.timer && !res.timer.waiting ? res.timer : null;
    const started = timer !== null ? timer.now() : performance.now();
    // For the status page: the host scraped and why it failed, if it did.
    let host: string | null = null;
    let failure = "";
    let target = "";
    let bytes = 0;
    const finish = (code: number) => {
      const seconds = ((timer !== null ? timer.now() : performance.now()) - started) / 1000;
      // (Its fields built only when debug records are written.)
      if (logger.enabled?.("debug") ?? true) {
        logger.debug("Scrape finished", {
          target: target || requestTarget.slice(0, 200),
          status: code,
          bytes,
          duration: formatDuration(Math.round(seconds * 1000)),
          err: failure || undefined,
        });
      }
      const status = String(code);
      proxiedRequests.inc(status);
      scrapeDurations.observe(status, seconds);
      if (host !== null) {
        coordinator.recordScrapeResult(host, {
          status: code,
          error: failure,
          durationMs: seconds * 1000,
          bytes,
        });
      }
    };
    const fail = (code: number, message: string) => {
      failure = message;
      if (!res.headersSent && !res.destroyed) {
        res.respond(code, [["content-type", "text/plain; charset=utf-8"]]);
        res.end(message + "\n");
      } else {
        res.abort();
      }
      finish(code);
    };

    if (method !== "GET" && method !== "HEAD") {
      return fail(
        405,
        `Method ${method} cannot be proxied: only GET and HEAD scrapes are supported`,
      );
    }
    // A target seen before is not parsed again (URL parsing per scrape
    // was ~1 % of the proxy's CPU; issue #11).
    let parsed = parsedTargets.get(requestTarget);
    if (parsed === undefined) {
      let url: URL;
      try {
        url = new URL(requestTarget);
      } catch {
        return fail(
          400,
          `Malformed request target ${
            JSON.stringify(requestTarget)
          }: expected an absolute http URL`,
        );
      }
      if (url.protocol !== "http:" || url.hostname === "") {
        return fail(
          400,
          `Cannot proxy ${
            JSON.stringify(requestTarget)
          }: only absolute http:// URLs with a host are proxied`,
        );
      }
      if (url.username !== "" || url.password !== "") {
        return fail(400, "Cannot proxy a URL with credentials in it");
      }
      parsed = { hostname: url.hostname, href: url.toString() };
      if (requestTarget.length <= PARSED_TARGET_MAX_LENGTH) {
        if (parsedTargets.size >= PARSED_TARGETS_MAX) parsedTargets.clear();
        // Keyed by a copy: the target is a slice of the request head's text.
        parsedTargets.set(JSON.parse(JSON.stringify(requestTarget)), parsed);
      }
    }
    const url = parsed;
    host = url.hostname;

    let timeoutMs: number;
    try {
      const header = res.header(SCRAPE_TIMEOUT_HEADER);
      const value = typeof header === "string" ? header : null;
      if (value !== null && value === knownTimeoutHeader) timeoutMs = knownTimeoutMs;
      else {
        timeoutMs = scrapeTimeoutMs(value, timeoutLimits);
        if (value !== null && value.length <= 32) {
          knownTimeoutHeader = value;
          knownTimeoutMs = timeoutMs;
        }
      }
    } catch (error) {
      if (error instanceof InvalidTimeoutError) return fail(400, error.message);
      throw error;
    }

    // The one deadline for this scrape, set here at the edge and passed
    // down: one signal, aborted when Prometheus goes away or at the
    // deadline, timed by the connection's timer where the edge has one
    // (AbortSignal.timeout + AbortSignal.any per scrape cost ~3 % of the
    // proxy's CPU, their listeners included).
    // The relay hears of the abort through `relay.fire`, set while it
    // waits, not through a listener of its own on the signal; the edge's
    // abandonment through `onGone` where it offers it (no signal made).
    // The relay object is that signal (the coordinator's and the relay's
    // both): no AbortController per scrape.
    let timedOut = false;
    const relay: RelayAbort = { fire: null, aborted: false, reason: undefined };
    const abortScope = (reason: unknown) => {
      if (relay.aborted) return;
      relay.aborted = true;
      relay.reason = reason;
      relay.fire?.(reason);
    };
    const onDeadline = () => {
      timedOut = true;
      abortScope(new DOMException("Signal timed out.", "TimeoutError"));
    };
    let timeout: ReturnType<typeof setTimeout> | undefined;
    if (timer !== null) timer.set(timeoutMs, onDeadline, started);
    else timeout = setTimeout(onDeadline, timeoutMs);
    let stopGone: () => void;
    if (res.onGone !== undefined) stopGone = res.onGone(abortScope);
    else {
      const onGone = () => abortScope(res.signal.reason);
      if (res.signal.aborted) onGone();
      else res.signal.addEventListener("abort", onGone, { once: true });
      stopGone = () => res.signal.removeEventListener("abort", onGone);
    }
    try {
      target = url.href;

      let reply: ScrapeReply;
      try {
        reply = await coordinator.requestScrape(
          {
            host: url.hostname,
            method,
            url: target,
            headers: forwarded(res.rawHeaders),
            deadline: now() + timeoutMs,
            // Told of the abort through `relay.fire` while it waits (no
            // listener on the signal); the relay's own hook after.
            abortHook: relay,
          },
        );
      } catch (error) {
        if (error instanceof CoordinatorError) {
          const entry = errorKind(error);
          if (entry.metric === "limit_hits") metrics.limitHits.inc({ limit: entry.label });
          logWith(target)[entry.level]("Scrape refused", { err: error.message });
          return fail(entry.status, `Cannot scrape ${target}: ${error.message}`);
        }
        if (timedOut) {
          logWith(target).warn("Scrape timed out waiting for the client", {
            timeout: formatDuration(timeoutMs),
          });
          return fail(
            504,
            `Cannot scrape ${target}: the client did not answer within ${
              formatDuration(timeoutMs)
            }`,
          );
        }
        logWith(target).debug("Scrape abandoned by Prometheus");
        failure = "Prometheus closed the connection before the client answered";
        return finish(499);
      }

      if (reply.error !== "") {
        reply.settle();
        logWith(target).debug("Client reported a scrape error", {
          status: reply.status,
          err: reply.error,
        });
        return fail(reply.status, `Cannot scrape ${target}: ${reply.error}`);
      }

      const maxBodyBytes = options.maxBodyBytes ?? 0;
      // A body follows unless the request was HEAD or the status has none; its
      // declared length is then known before any byte is relayed.
      const hasBody = method !== "HEAD" && reply.status !== 204 && reply.status !== 304;
      const declared = reply.contentLength;
      if (maxBodyBytes > 0 && hasBody && declared !== null && declared > maxBodyBytes) {
        const reason = new BodyTooLargeError(
          `Scrape body of ${declared} bytes exceeds --scrape.max-body-bytes=${maxBodyBytes}`,
        );
        reply.settle(reason);
        metrics.limitHits.inc({ limit: "scrape_body_bytes" });
        logWith(target).warn("Scrape refused", { err: reason.message });
        return fail(502, `Cannot scrape ${target}: ${reason.message}`);
      }
      try {
        res.respond(
          reply.status,
          answerFields.of(reply.headers, reply.status === 204 ? null : declared),
        );
        await relayBody(
          reply.body,
          res,
          relay,
          maxBodyBytes,
          hasBody ? declared : null,
          (n) => bytes += n,
        );
        res.end();
        metrics.relayedBytes.inc(bytes);
        reply.settle();
        finish(reply.status);
      } catch (error) {
        const reason = timedOut
          ? new ScrapeTimeoutError(
            `Scrape deadline of ${formatDuration(timeoutMs)} passed while relaying the body`,
          )
          : error instanceof Error
          ? error
          : new Error(String(error));
        reply.settle(reason);
        if (reason instanceof BodyTooLargeError) {
          metrics.limitHits.inc({ limit: "scrape_body_bytes" });
        }
        logWith(target).warn("Scrape failed while relaying the body", {
          err: reason.message,
        });
        failure = reason.message;
        res.abort();
        finish(timedOut ? 504 : 502);
      }
    } finally {
      timer?.clear(onDeadline);
      clearTimeout(timeout);
      stopGone();
    }
  };
}

/**
 * The response fields of a scrape's answer: the client's forwardable
 * fields and the declared length. The last list again, frozen, while its
 * input repeats (a target answers with the same fields every scrape, its
 * Date changing once a second): no lists, pairs and fields per scrape, and
 * the exchange's kept head matches by identity. One per handler.
 */
class AnswerFields {
  /** The last input's fields, flat: name, value, name, value… */
  #from: string[] = [];
  #length: number | null = null;
  #pairs: readonly HeaderPair[] | null = null;

  of(headers: readonly HeaderField[], contentLength: number | null): readonly HeaderPair[] {
    const from = this.#from;
    if (
      this.#pairs !== null && contentLength === this.#length &&
      from.length === 2 * headers.length
    ) {
      let i = 0;
      while (
        i < headers.length && from[2 * i] === headers[i]!.name &&
        from[2 * i + 1] === headers[i]!.value
      ) i++;
      if (i === headers.length) return this.#pairs;
    }
    const out: HeaderPair[] = [];
    for (const { name, value } of forwardableFields(headers)) {
      out.push(Object.freeze([name, value] as const));
    }
    if (contentLength !== null) {
      out.push(Object.freeze(["content-length", String(contentLength)] as const));
    }
    from.length = 0;
    for (const { name, value } of headers) from.push(name, value);
    this.#length = contentLength;
    return this.#pairs = Object.freeze(out);
  }
}

/** Pairs of a flat `rawHeaders` array (an array, not a generator: once per scrape). */
function headerPairs(raw: readonly string[]): [string, string][] {
  const pairs: [string, string][] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) pairs.push([raw[i]!, raw[i + 1]!]);
  return pairs;
}

/** A client's answer is larger than --scrape.max-body-bytes. */
class BodyTooLargeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "BodyTooLargeError";
  }
}

/**
 * Where the scrape tells its relay that the scrape's signal aborted (see
 * relayBody): `aborted` and `reason` as the signal's (read per piece: the
 * signal's own getters, branded, were ~1 % of the proxy's CPU per scrape;
 * issue #11), and `fire` when it happens.
 */
interface RelayAbort {
  fire: ((reason: unknown) => void) | null;
  aborted: boolean;
  reason: unknown;
}

/**
 * Copies the body with back-pressure; stops when the scrape aborts (which
 * the caller reports through `abort.fire`) or when more than `maxBytes` (0: no
 * limit) arrive. With a declared `length`, a body longer or shorter than it
 * is an error (the response was sent with that Content-Length and cannot be
 * framed otherwise).
 */
async function relayBody(
  body: AsyncIterable<Uint8Array>,
  res: Exchange,
  abort: RelayAbort,
  maxBytes: number,
  length: number | null,
  onBytes: (count: number) => void,
): Promise<number> {
  const iterator = body[Symbol.asyncIterator]();
  let bytes = 0;
  // One abort hook for the whole relay, rejecting whatever is awaited now.
  // (Racing each chunk against one long-lived promise would keep every
  // chunk reachable from that promise until the scrape ends.)
  let rejectWaiting: ((reason: unknown) => void) | null = null;
  abort.fire = (reason) => rejectWaiting?.(reason);
  const orAbort = <T>(promise: Promise<T>): Promise<T> => {
    if (abort.aborted) return Promise.reject(abort.reason);
    return new Promise<T>((resolve, reject) => {
      rejectWaiting = reject;
      promise.then(resolve, reject);
    });
  };
  // Pieces already received are taken without a promise (issue #11).
  const atHand = piecesAtHand(iterator);
  try {
    for (;;) {
      if (abort.aborted) throw abort.reason;
      let value = atHand === null ? undefined : atHand.nextNow();
      if (value === undefined) {
        const next = await orAbort(iterator.next());
        rejectWaiting = null;
        value = next.done ? null : next.value;
      }
      if (value === null) {
        if (length !== null && bytes < length) {
          throw new Error(
            `The client's body ended after ${bytes} of its declared ${length} bytes (Content-Length)`,
          );
        }
        return bytes;
      }
      bytes += value.byteLength;
      onBytes(value.byteLength);
      if (length !== null && bytes > length) {
        throw new Error(
          `The client's body is longer than its declared ${length} bytes (Content-Length)`,
        );
      }
      if (maxBytes > 0 && bytes > maxBytes) {
        throw new BodyTooLargeError(
          `Scrape body exceeds --scrape.max-body-bytes=${maxBytes}; the relay was aborted`,
        );
      }
      await orAbort(res.write(value));
      rejectWaiting = null;
    }
  } finally {
    abort.fire = null;
  }
}
