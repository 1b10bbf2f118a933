/**
 * The Connect adapter for clients: `Poll` registers a client and streams
 * scrapes and heartbeats to it; `Push` relays a scrape's answer.
 *
 * @module
 */

import {
  Code,
  ConnectError,
  createContextKey,
  type HandlerContext,
  type ServiceImpl,
} from "@connectrpc/connect";
import type { MessageInitShape } from "@bufbuild/protobuf";
import {
  ClientService,
  type PollRequest,
  type PollResponseSchema,
  type PushRequest,
} from "../../gen/pushprox/v1/pushprox_pb.ts";
import { formatDuration } from "../../lib/duration.ts";
import type { PiecesAtHand } from "../../lib/owned_chunks.ts";
import type { Logger } from "../../lib/logger.ts";
import {
  type Coordinator,
  CoordinatorError,
  type ScrapeTask,
  type Session,
} from "../core/coordinator.ts";
import type { ProxyMetrics } from "../core/metrics.ts";
import { errorKind, pushErrorReason } from "../core/errors.ts";
import { errorMessage } from "../../lib/error_message.ts";
import { PushRequests } from "./connect_stream.ts";

const BODY_DONE: IteratorReturnResult<undefined> = Object.freeze({ done: true, value: undefined });

/** The caller's address (`host:port`), set by the server adapter for log lines. */
export const PEER_ADDRESS: ReturnType<typeof createContextKey<string>> = createContextKey<string>(
  "",
  { description: "pushprox peer address" },
);

/** Labels as Prometheus prints them: `{role="db", zone="eu"}`; "" for none. */
function formatLabels(labels: Record<string, string>): string {
  const names = Object.keys(labels).sort();
  if (names.length === 0) return "";
  return `{${names.map((n) => `${n}=${JSON.stringify(labels[n])}`).join(", ")}}`;
}

/** What the service's hooks read of a call: its context values. */
export type CallerContext = Pick<HandlerContext, "values">;

/** One message of a Poll stream. */
export type PollMessage = MessageInitShape<typeof PollResponseSchema>;

/** Options for {@linkcode createClientService}. */
export interface ClientServiceOptions {
  coordinator: Coordinator;
  logger: Logger;
  metrics: ProxyMetrics;
  /** Interval of heartbeats on idle Poll streams. */
  heartbeatIntervalMs: number;
  /**
   * Decides whether the caller may register `fqdn`: returns its credential
   * (bound to the fqdn while the stream is open) or throws a ConnectError.
   * @default {everyone may register anything; no credential}
   */
  authorizeRegistration?: (
    context: CallerContext,
    fqdn: string,
  ) => { credential: string; name: string };
  /**
   * Told when a push's head matched a scrape and its body is being relayed:
   * the scrape's deadline bounds it from then on.
   */
  bodyBound?: (context: CallerContext) => void;
  /** The credential a push was made with, checked against the scrape's stream. */
  pushCredential?: (context: CallerContext) => string | null;
  /**
   * Checks, at every heartbeat, that the stream's credential still allows
   * `fqdn`; a reason ends the stream with PermissionDenied (revoked or
   * expired tokens, a narrowed auth configuration).
   */
  revalidate?: (context: CallerContext, fqdn: string) => Promise<string | null>;
  /** The caller's source key for per-source budgets (see sourceKey). @default {none} */
  sourceOf?: (context: CallerContext) => string;
  /** Clock for stream lifetimes in logs. @default {Date.now} */
  now?: () => number;
}

/** An open Poll stream, as {@linkcode PollCore} keeps it: a small record. */
export interface PollStream {
  readonly session: Session;
  readonly fqdn: string;
  readonly peer: string | undefined;
  readonly openedAt: number;
  /** Why it ended, for the log line; "" until known. */
  closeReason: string;
}

/**
 * The Poll service's logic, shared by the connect-es generator and the
 * fast path's callback-driven streams (fast_client_service.ts): the same
 * validation, authorization, registration, heartbeat checks, messages,
 * error mapping and close.
 */
export interface PollCore {
  /** Interval of heartbeats. */
  readonly heartbeatIntervalMs: number;
  /**
   * Authorizes and registers a stream; throws the ConnectError to end the
   * call with when refused.
   */
  open(request: PollRequest, caller: CallerContext): PollStream;
  /** The first message: the session id and heartbeat interval. */
  registered(stream: PollStream): PollMessage;
  /**
   * At a heartbeat: the heartbeat message, or the ConnectError that ends a
   * stream whose credential no longer allows it.
   */
  beat(stream: PollStream, caller: CallerContext): Promise<PollMessage | ConnectError>;
  /** A scrape's message. */
  scrape(stream: PollStream, task: ScrapeTask): PollMessage;
  /**
   * What a failed wait for work means: the goAway message to end with
   * (draining), a ConnectError (replaced), or the error itself.
   */
  waitFailed(stream: PollStream, error: unknown): PollMessage | unknown;
  /** Ends the session and logs the stream's end. Call once. */
  close(stream: PollStream, gone: boolean, error?: unknown): void;
}

/** The key under which {@linkcode createClientService} exposes its {@linkcode PollCore}. */
export const POLL_CORE: unique symbol = Symbol("pushprox poll core");

/** What the Push logic reads of a call: its context values and its signal. */
export type PushCaller = Pick<HandlerContext, "values" | "signal">;

/** The Push logic, given the call's messages: the bytes relayed, or a ConnectError thrown. */
export type PushRelay = (
  requests: AsyncIterable<PushRequest>,
  caller: PushCaller,
) => Promise<{ bytesRelayed: bigint }>;

/** The key under which {@linkcode createClientService} exposes its {@linkcode PushRelay}. */
export const PUSH_RELAY: unique symbol = Symbol("pushprox push relay");

/** The service implementation, with its shared Poll and Push logic. */
export type ClientServiceImpl = ServiceImpl<typeof ClientService> & {
  readonly [POLL_CORE]: PollCore;
  readonly [PUSH_RELAY]: PushRelay;
};

/** The heartbeat message: one object, so that writers can recognise it (and reuse its bytes). */
export const HEARTBEAT: PollMessage = { message: { case: "heartbeat", value: {} } };
/** A beat without a credential to recheck: one settled answer for all. */
const BEAT: Promise<PollMessage | ConnectError> = Promise.resolve(HEARTBEAT);
const GO_AWAY: PollMessage = { message: { case: "goAway", value: { reason: "shutting down" } } };

const NO_LABELS: Record<string, string> = Object.freeze({}) as Record<string, string>;
/** Frozen: never written to (a write would throw, not leak into other records). */
const NO_NAMES = Object.freeze([]) as readonly string[] as string[];

function isEmpty(object: object): boolean {
  for (const _ in object) return false;
  return true;
}

/** One copy of each of the strings seen, up to a count (then as given). */
class Interned {
  readonly #max: number;
  readonly #seen = new Map<string, string>();
  constructor(max: number) {
    this.#max = max;
  }

  intern(text: string): string {
    const seen = this.#seen.get(text);
    if (seen !== undefined) return seen;
    if (this.#seen.size < this.#max && text.length <= 64) this.#seen.set(text, text);
    return text;
  }
}

/**
 * Creates the Poll logic both adapters share.
 *
 * @param options Coordinator, logger, metrics, heartbeat interval, hooks.
 * @returns The shared logic.
 */
export function createPollCore(options: ClientServiceOptions): PollCore {
  const { coordinator, logger, metrics, heartbeatIntervalMs } = options;
  const now = options.now ?? Date.now;
  const versions = new Interned(64);
  // Whether debug records are written (the logger's level is fixed).
  const debug = logger.enabled?.("debug") ?? true;
  const logOf = (stream: PollStream) =>
    logger.with({ fqdn: stream.fqdn, session: stream.session.id.slice(0, 8) });

  return {
    heartbeatIntervalMs,
    open(request, context) {
      // What the client announces is checked by the coordinator (one place
      // for every adapter), after authorization.
      const grant = options.authorizeRegistration?.(context, request.fqdn) ?? null;
      let session;
      try {
        session = coordinator.register({
          fqdn: request.fqdn,
          // Shared where many clients send the same (a record per client
          // lives as long as its stream; issue #11).
          labels: isEmpty(request.labels) ? NO_LABELS : request.labels,
          version: versions.intern(request.version),
          modules: request.modules.length === 0 ? NO_NAMES : request.modules,
          protocol: "connect",
          proxies: request.proxies.length === 0 ? NO_NAMES : request.proxies,
          peerAddress: context.values.get(PEER_ADDRESS),
          modulesOnly: request.modulesOnly,
        }, {
          ...(grant === null ? {} : { credential: grant.credential }),
          source: options.sourceOf?.(context) ?? "",
        });
      } catch (error) {
        if (!(error instanceof CoordinatorError)) throw error;
        const entry = errorKind(error);
        if (entry.metric === "auth_failures") {
          metrics.authFailures.inc({ role: "client", reason: entry.label });
          logger.warn("Registration refused: fqdn held by another credential", {
            fqdn: request.fqdn,
            credential: grant?.name,
          });
          throw new ConnectError(`Cannot register: ${error.message}`, entry.code);
        }
        if (entry.metric === "limit_hits") {
          metrics.limitHits.inc({ limit: entry.label });
          logger.warn("Registration refused", {
            fqdn: request.fqdn.slice(0, 300),
            source: options.sourceOf?.(context),
            err: error.message,
          });
          throw new ConnectError(error.message, entry.code);
        }
        if (error.kind === "draining") {
          throw new ConnectError(`Cannot register: ${error.message}`, entry.code);
        }
        throw error;
      }
      metrics.registrations.inc();
      const peer = context.values.get(PEER_ADDRESS) || undefined;
      const stream: PollStream = {
        session,
        fqdn: request.fqdn,
        peer,
        openedAt: now(),
        closeReason: "",
      };
      logOf(stream).info("Client registered", {
        peer,
        labels: formatLabels(request.labels) || undefined,
        modules: request.modules.length > 0 ? request.modules.join(",") : undefined,
        raw_scrapes: request.modulesOnly ? false : undefined,
        version: request.version || undefined,
      });
      return stream;
    },
    registered(stream) {
      return {
        message: {
          case: "registered",
          value: { sessionId: stream.session.id, heartbeatIntervalMs },
        },
      };
    },
    beat(stream, context) {
      // Not async: a suspended call per stream and beat was garbage (issue #11).
      let check: Promise<string | null> | undefined;
      try {
        check = options.revalidate?.(context, stream.fqdn);
      } catch (error) {
        return Promise.reject(error);
      }
      if (check === undefined) return BEAT;
      return check.then((revoked) => {
        if (revoked === null) return HEARTBEAT;
        metrics.authFailures.inc({ role: "client", reason: "forbidden" });
        logOf(stream).warn("Ending the stream: its credential no longer allows it", {
          err: revoked,
        });
        stream.closeReason = `credential revoked: ${revoked}`;
        return new ConnectError(`Registration revoked: ${revoked}`, Code.PermissionDenied);
      });
    },
    scrape(stream, task) {
      // Not logOf(stream): a child logger per scrape, for a record rarely
      // kept (its fields built only then).
      if (debug) {
        logger.debug("Sending scrape", {
          fqdn: stream.fqdn,
          session: stream.session.id.slice(0, 8),
          scrape_id: task.id,
          url: task.url,
        });
      }
      return {
        message: {
          case: "scrape",
          value: {
            id: task.id,
            method: task.method,
            url: task.url,
            headers: task.headers,
            timeoutMs: Math.min(task.timeoutMs, 0xffffffff),
          },
        },
      };
    },
    waitFailed(stream, error) {
      if (error instanceof CoordinatorError && error.kind === "replaced") {
        stream.closeReason = "replaced by a newer stream for the same fqdn";
        // A typed error, so that a second live client with the same
        // fqdn backs off instead of taking the name back at once.
        return new ConnectError(
          `Another stream registered as "${stream.fqdn}" replaced this one`,
          errorKind(error).code,
        );
      }
      if (error instanceof CoordinatorError && error.kind === "draining") {
        stream.closeReason = "proxy shutting down (client told to go away)";
        return GO_AWAY;
      }
      return error;
    },
    close(stream, gone, error) {
      if (error !== undefined && stream.closeReason === "") {
        stream.closeReason = `error: ${errorMessage(error)}`;
      }
      stream.session.close();
      logOf(stream).info("Client stream closed", {
        reason: stream.closeReason || (gone ? "client went away" : "ended"),
        lifetime: formatDuration(Math.round(now() - stream.openedAt)),
        peer: stream.peer,
      });
    },
  };
}

/**
 * Creates the ClientService implementation.
 *
 * @param options Coordinator, logger, metrics and heartbeat interval.
 * @returns The service implementation for a Connect router, with its
 *   shared Poll logic under {@linkcode POLL_CORE} and its Push logic under
 *   {@linkcode PUSH_RELAY} (for the fast path).
 */
export function createClientService(
  options: ClientServiceOptions,
): ClientServiceImpl {
  const { logger } = options;
  const core = createPollCore(options);
  const { heartbeatIntervalMs } = core;

  const relay: PushRelay = (requests, caller) => relayPush(requests, caller, options);
  return {
    [POLL_CORE]: core,
    [PUSH_RELAY]: relay,
    async *poll(
      request,
      context,
    ): AsyncGenerator<PollMessage> {
      const stream = core.open(request, context);
      let failure: unknown;
      try {
        yield core.registered(stream);
        while (!context.signal.aborted) {
          // One timer per beat, cleared when a scrape comes first (cheaper
          // than AbortSignal.any with AbortSignal.timeout at 10,000 streams).
          const beat = new AbortController();
          const endBeat = () => beat.abort();
          const timer = setTimeout(endBeat, heartbeatIntervalMs);
          context.signal.addEventListener("abort", endBeat, { once: true });
          let task;
          try {
            task = await stream.session.next(beat.signal);
          } catch (error) {
            const outcome = core.waitFailed(stream, error);
            if (outcome === GO_AWAY) {
              yield GO_AWAY;
              return;
            }
            throw outcome;
          } finally {
            clearTimeout(timer);
            context.signal.removeEventListener("abort", endBeat);
          }
          if (context.signal.aborted) break;
          if (task === null) {
            const message = await core.beat(stream, context);
            if (message instanceof ConnectError) throw message;
            yield message;
            continue;
          }
          yield core.scrape(stream, task);
        }
      } catch (error) {
        failure = error;
        throw error;
      } finally {
        core.close(stream, context.signal.aborted, failure);
      }
    },

    async push(requests, context) {
      return await relay(requests, context);
    },
  };

  async function relayPush(
    requests: AsyncIterable<PushRequest>,
    context: PushCaller,
    { coordinator, metrics }: ClientServiceOptions,
  ): Promise<{ bytesRelayed: bigint }> {
    const iterator = requests[Symbol.asyncIterator]();
    const first = await iterator.next();
    if (first.done || first.value.message.case !== "head") {
      metrics.pushErrors.inc({ reason: "invalid" });
      throw new ConnectError(
        "The first push message must be a head",
        Code.InvalidArgument,
      );
    }
    // The head (status, Content-Length) is checked by the coordinator, once
    // it knows the push answers a scrape, so that the scrape fails at once.
    const head = first.value.message.value;
    const credential = options.pushCredential?.(context) ?? null;
    const body = new PushBody(requests, iterator, context, options.bodyBound);
    try {
      await coordinator.acceptPush(
        {
          scrapeId: head.scrapeId,
          sessionId: head.sessionId,
          status: head.status,
          headers: head.headers,
          error: head.error,
          ...(credential === null ? {} : { credential }),
        },
        body,
      );
    } catch (error) {
      throw pushError(error, context, metrics, logger);
    }
    return { bytesRelayed: BigInt(body.bytes) };
  }
}

/**
 * A Push's body, pulled only by the relay of the scrape the push answers:
 * plain async steps, not a generator, and as bytes straight from the fast
 * path's reader where the call has one. A class, not an object literal
 * with a computed key per Push (V8 makes those slowly; issue #11).
 */
class PushBody implements AsyncIterableIterator<Uint8Array>, PiecesAtHand {
  /** Body bytes read so far. */
  bytes = 0;
  readonly #pieces: PushRequests | null;
  readonly #iterator: AsyncIterator<PushRequest>;
  readonly #context: PushCaller;
  #bodyBound: ((context: CallerContext) => void) | undefined;
  #ended = false;

  constructor(
    requests: AsyncIterable<PushRequest>,
    iterator: AsyncIterator<PushRequest>,
    context: PushCaller,
    bodyBound: ((context: CallerContext) => void) | undefined,
  ) {
    this.#pieces = requests instanceof PushRequests ? requests : null;
    this.#iterator = iterator;
    this.#context = context;
    this.#bodyBound = bodyBound;
  }

  [Symbol.asyncIterator](): PushBody {
    return this;
  }

  async next(): Promise<IteratorResult<Uint8Array>> {
    if (this.#ended) return BODY_DONE;
    // Told once, when the relay first pulls.
    const bodyBound = this.#bodyBound;
    if (bodyBound !== undefined) {
      this.#bodyBound = undefined;
      bodyBound(this.#context);
    }
    let item: Uint8Array | PushRequest | null;
    try {
      if (this.#pieces !== null) item = await this.#pieces.nextBody();
      else {
        const next = await this.#iterator.next();
        item = next.done ? null : next.value;
      }
    } catch (error) {
      this.#ended = true;
      throw error;
    }
    if (item === null) {
      this.#ended = true;
      return BODY_DONE;
    }
    let value: Uint8Array;
    if (item instanceof Uint8Array) value = item;
    else if (item.message.case === "bodyChunk") value = item.message.value;
    else {
      this.#ended = true;
      throw new ConnectError("Only body chunks may follow the head", Code.InvalidArgument);
    }
    this.bytes += value.byteLength;
    return { done: false, value };
  }

  /**
   * The next piece when it is at hand (see PiecesAtHand): null at the
   * end, undefined when only {@linkcode next} can tell.
   */
  nextNow(): Uint8Array | null | undefined {
    if (this.#ended) return null;
    const pieces = this.#pieces;
    if (pieces === null) return undefined;
    // Told once, when the relay first pulls (as next).
    const bodyBound = this.#bodyBound;
    if (bodyBound !== undefined) {
      this.#bodyBound = undefined;
      bodyBound(this.#context);
    }
    let piece: Uint8Array | null | undefined;
    try {
      piece = pieces.nextBodyNow();
    } catch (error) {
      this.#ended = true;
      throw error;
    }
    if (piece === undefined) return undefined;
    if (piece === null) {
      this.#ended = true;
      return null;
    }
    this.bytes += piece.byteLength;
    return piece;
  }
}

function pushError(
  error: unknown,
  context: PushCaller,
  metrics: ProxyMetrics,
  logger: Logger,
): ConnectError {
  if (error instanceof ConnectError) return error;
  if (error instanceof CoordinatorError) {
    const entry = errorKind(error);
    metrics.pushErrors.inc({ reason: pushErrorReason(error) });
    logger[entry.level]("Push refused", { err: error.message });
    return new ConnectError(error.message, entry.code);
  }
  metrics.pushErrors.inc({ reason: "relay_failed" });
  const reason = context.signal.aborted ? "client went away" : errorMessage(error);
  return new ConnectError(`Cannot relay the scrape: ${reason}`, Code.Aborted);
}
