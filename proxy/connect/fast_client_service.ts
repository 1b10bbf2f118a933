/**
 * A fast path for `ClientService.Poll` and `Push` over the Connect protocol
 * with binary protobuf (what our client speaks), written on node:http:
 * envelopes go straight to and from the socket instead of through
 * connect-es' per-call pipeline of generators, promises and signals, and
 * pushed body bytes reach the coordinator as views of the received buffers.
 * It calls the very service implementation the Connect router serves (same
 * validation, authorization, heartbeats, relay): Poll and Push through the
 * service's shared logic (POLL_CORE, PUSH_RELAY) with the call's context
 * values, other calls with a handler context made by connect-es; other
 * protocols and codecs keep going through connect-es.
 *
 * @module
 */

import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  type ContextKey,
  type ContextValues,
  createHandlerContext,
  type HandlerContext,
  type ServiceImpl,
} from "@connectrpc/connect";
import { parseTimeout } from "@connectrpc/connect/protocol-connect";
import {
  ClientService,
  type PollRequest,
  PollRequestSchema,
  PollResponseSchema,
  PushResponseSchema,
} from "../../gen/pushprox/v1/pushprox_pb.ts";
import type { Logger } from "../../lib/logger.ts";
import { errorMessage } from "../../lib/error_message.ts";
import type { Exchange, HeaderPair } from "../../lib/http_exchange.ts";
import { chunkData } from "../../lib/http1_body.ts";
import type { ScrapeTask } from "../core/coordinator.ts";
import {
  type CallerContext,
  type ClientServiceImpl,
  HEARTBEAT,
  POLL_CORE,
  type PollCore,
  type PollMessage,
  type PollStream,
  PUSH_RELAY,
  type PushCaller,
  type PushRelay,
} from "./client_service.ts";
import { encodePushResponse, encodeScrapeEnvelope } from "./wire_codec.ts";
import {
  encodeEndStream,
  encodeEnvelope,
  EnvelopeReader,
  readPushRequests,
} from "./connect_stream.ts";

/**
 * The heartbeat's envelope, encoded once: encoding it per stream and beat
 * was a kilobyte of garbage each (issue #11). Shared, so never written to;
 * writers do not take or detach chunks that are not theirs (owned_chunks.ts).
 */
const HEARTBEAT_ENVELOPE = encodeEnvelope(
  0,
  toBinary(PollResponseSchema, create(PollResponseSchema, HEARTBEAT)),
);

/** The content type of the calls the fast path serves. */
export const CONTENT_TYPE = "application/connect+proto";
/** The Poll call's path. */
export const POLL_PATH = "/pushprox.v1.ClientService/Poll";
/** The Push call's path. */
export const PUSH_PATH = "/pushprox.v1.ClientService/Push";

/**
 * Whether the fast path serves this request: a POST to Poll or Push with
 * the binary Connect streaming content type and uncompressed messages.
 *
 * @param req The request (the route table's view of it, proxy/http/router.ts).
 * @param path Its path, without the query.
 * @returns True for the fast path; false for connect-es.
 */
export function isFastClientCall(
  req: { method: string; httpVersionMajor: number; header(name: string): string | undefined },
  path: string,
): boolean {
  if (path !== POLL_PATH && path !== PUSH_PATH) return false;
  // HTTP/2 (the gRPC port) goes to connect-es: the fast path copies the
  // request's headers, and HTTP/2 pseudo-headers (":method") are no header
  // names (a binary Poll there failed with 500, and ended the process before).
  if (req.httpVersionMajor !== 1) return false;
  if (req.method !== "POST" || req.header("content-type") !== CONTENT_TYPE) return false;
  const encoding = req.header("connect-content-encoding");
  return encoding === undefined || encoding === "identity";
}

/** Options for {@linkcode createFastClientHandler}. */
export interface FastClientHandlerOptions {
  /** The implementation the Connect router serves. */
  service: ServiceImpl<typeof ClientService>;
  /** Largest message accepted, in bytes (`readMaxBytes` of the Connect router). */
  maxMessageBytes: number;
  logger: Logger;
}

/**
 * Serves one fast-path call (see {@linkcode isFastClientCall}), on either
 * edge (node:http or the native front door; see lib/http_exchange.ts).
 *
 * @param exchange The request and its response.
 * @param values Context values for the handler (authentication).
 * @param refusal An error to end the call with before it starts (what the
 *   Connect router's interceptors would throw), or null.
 * @returns Settles when the call has ended; rejects only on a fault of the
 *   handler itself (the proxy's edge answers those).
 */
export type FastClientHandler = (
  exchange: Exchange,
  values: ContextValues,
  refusal: ConnectError | null,
) => Promise<void>;

/**
 * Creates the fast-path handler.
 *
 * @param options The service implementation, message size limit and logger.
 * @returns The handler.
 */
export function createFastClientHandler(options: FastClientHandlerOptions): FastClientHandler {
  const { service, maxMessageBytes, logger } = options;

  const core = (service as Partial<ClientServiceImpl>)[POLL_CORE];
  const relay = (service as Partial<ClientServiceImpl>)[PUSH_RELAY];
  /** The heartbeats of this handler's open Poll streams, on one timer. */
  const beats = core === undefined ? null : new BeatQueue(core.heartbeatIntervalMs);
  /**
   * Encoded header fields of scrapes, by their (frozen) array: a reused
   * request head's, the same every scrape (see encodeScrapeEnvelope).
   */
  const knownFields = new WeakMap<object, Uint8Array>();
  /**
   * The last Push answer (response and end-stream) and its count of bytes
   * relayed: the same bytes every scrape of a size. Never written to (the
   * exchange copies or only reads what `end` is given).
   */
  let lastRelayed = -1n;
  let lastAnswer: Uint8Array | null = null;

  return (exchange, values, refusal) => {
    const poll = exchange.target.startsWith(POLL_PATH);
    const timeout = parseTimeout(
      exchange.header("connect-timeout-ms") ?? null,
      Number.MAX_SAFE_INTEGER,
    );
    const timeoutMs = timeout.error ? undefined : timeout.timeoutMs;
    if (poll && core !== undefined) {
      // An open stream is a record driven by callbacks (see PollRecord),
      // not a suspended generator with a handler context; the call's
      // promise is the record's own (no promise chain held per stream).
      const record = new PollRecord(core, exchange, values, logger, beats!, knownFields);
      record.start(timeout.error, refusal, maxMessageBytes, timeoutMs);
      return record.done;
    }
    if (!poll && relay !== undefined && timeoutMs === undefined && !timeout.error) {
      // A Push without a deadline (what our client sends): no handler
      // context, signals or Headers; the relay reads the values and the
      // exchange's signal.
      return servePush(relay, exchange, values, refusal);
    }
    const { context, gone } = startCall(exchange, poll, values, timeoutMs);
    const call = new Call(exchange, context);
    const reader = new EnvelopeReader(exchange.body(), maxMessageBytes);
    const run = async (): Promise<void> => {
      if (timeout.error) throw timeout.error;
      if (poll) {
        const request = await readPollRequest(reader);
        if (refusal !== null) throw refusal;
        const messages = service.poll(request, context)[Symbol.asyncIterator]();
        try {
          for (;;) {
            const next = await messages.next();
            if (next.done || gone.aborted) break;
            await call.send(
              encodeEnvelope(
                0,
                toBinary(PollResponseSchema, create(PollResponseSchema, next.value)),
              ),
            );
          }
        } finally {
          await messages.return?.(undefined);
        }
        return;
      }
      if (refusal !== null) {
        exchange.discardBody();
        throw refusal;
      }
      const result = await service.push(
        readPushRequests(reader, exchange.connectionTexts ?? null),
        context,
      );
      await call.send(
        encodeEnvelope(0, toBinary(PushResponseSchema, create(PushResponseSchema, result))),
      );
    };
    return (async () => {
      let error: ConnectError | undefined;
      try {
        await run();
      } catch (caught) {
        error = callError(caught, exchange, logger);
        // Unread request bytes are read and dropped, so that the connection stays usable.
        if (!exchange.bodyEnded) exchange.discardBody();
      }
      // A call that ended well still aborts its context (its listeners
      // let go); a ready-made reason spares the DOMException, with its
      // stack trace, that abort() without one builds on every call.
      context.abort(error ?? CALL_ENDED);
      call.end(encodeEndStream(error, context.responseTrailer));
    })();
  };

  /**
   * A Push call on the shared Push logic, answered in one write: the
   * response message and the end-stream (or the end-stream with the error).
   */
  async function servePush(
    relay: PushRelay,
    exchange: Exchange,
    values: ContextValues,
    refusal: ConnectError | null,
  ): Promise<void> {
    let message: Uint8Array | undefined;
    let error: ConnectError | undefined;
    try {
      if (refusal !== null) {
        exchange.discardBody();
        throw refusal;
      }
      const reader = new EnvelopeReader(exchange.body(), maxMessageBytes);
      // The exchange's signal only if read (on a failure): the native
      // exchange makes its AbortController on demand.
      const result = await relay(
        readPushRequests(reader, exchange.connectionTexts ?? null),
        new PushCallOf(exchange, values),
      );
      // The response's envelope and the end-stream, in one buffer; the
      // last one again for the same count (each scrape of a size).
      if (result.bytesRelayed === lastRelayed && lastAnswer !== null) message = lastAnswer;
      else {
        const response = encodePushResponse(result);
        const length = response.byteLength;
        message = new Uint8Array(5 + length + END_STREAM_OK.byteLength);
        message[1] = length >>> 24;
        message[2] = (length >>> 16) & 0xff;
        message[3] = (length >>> 8) & 0xff;
        message[4] = length & 0xff;
        message.set(response, 5);
        message.set(END_STREAM_OK, 5 + length);
        lastRelayed = result.bytesRelayed;
        lastAnswer = message;
      }
    } catch (caught) {
      error = callError(caught, exchange, logger);
      // Unread request bytes are read and dropped, so that the connection stays usable.
      if (!exchange.bodyEnded) exchange.discardBody();
    }
    if (exchange.destroyed) return;
    if (!exchange.headersSent) exchange.respond(200, POLL_HEADERS);
    exchange.end(
      message === undefined ? encodeEndStream(error, NO_TRAILERS) : message,
    );
  }
}

/**
 * A Push call's caller, as the relay reads it: the exchange's signal only
 * if read (on a failure; the native exchange makes its AbortController on
 * demand). A class: an object literal with a getter, made per Push, was
 * ~0.5 % of the proxy's CPU per scrape (issue #11).
 */
class PushCallOf implements PushCaller {
  readonly values: ContextValues;
  readonly #exchange: Exchange;

  constructor(exchange: Exchange, values: ContextValues) {
    this.#exchange = exchange;
    this.values = values;
  }

  get signal(): AbortSignal {
    return this.#exchange.signal;
  }
}

/** A ConnectError for what a call threw; other errors are logged as faults. */
function callError(caught: unknown, exchange: Exchange, logger: Logger): ConnectError {
  if (caught instanceof ConnectError) return caught;
  logger.error("Fast-path call failed", { path: exchange.target, err: caught });
  return new ConnectError("internal error", Code.Internal, undefined, undefined, caught);
}

/** Frozen, so that the exchange may reuse the response head built with them. */
const POLL_HEADERS: readonly HeaderPair[] = Object.freeze([
  Object.freeze(["content-type", CONTENT_TYPE] as const),
]);
/** Poll's and Push's trailers: none (never written to). */
const NO_TRAILERS = new Headers();
/** The end-stream of a call that ended well, without trailers. */
const END_STREAM_OK = encodeEndStream(undefined, NO_TRAILERS);

/** Ends a call that has no handler context (a Poll on the shared logic). */
function endCall(exchange: Exchange, error: ConnectError | undefined): void {
  if (exchange.destroyed) return;
  if (!exchange.headersSent) exchange.respond(200, POLL_HEADERS);
  exchange.end(encodeEndStream(error, NO_TRAILERS));
}

/** Poll's one request message, checked as connect-es checks a server-streaming call's input. */
async function readPollRequest(reader: EnvelopeReader): Promise<PollRequest> {
  const input = await reader.message();
  if (input === null) {
    throw new ConnectError(
      "protocol error: missing input message for server-streaming method",
      Code.Unimplemented,
    );
  }
  if ((await reader.message()) !== null) {
    throw new ConnectError(
      "protocol error: received extra input message for server-streaming method",
      Code.Unimplemented,
    );
  }
  try {
    return fromBinary(PollRequestSchema, input);
  } catch (error) {
    throw new ConnectError(
      `cannot decode message ${PollRequestSchema.typeName} from binary: ${errorMessage(error)}`,
      Code.InvalidArgument,
    );
  }
}

/**
 * One Poll call on the fast path: it reads and checks the request as
 * connect-es would, registers, then is the open stream (client id,
 * identity), heartbeat timer and the exchange it writes to, driven by
 * callbacks — the session's queue hands it scrapes, the heartbeat queue
 * beats, the exchange tells the peer's departure. What it does at each
 * step is the shared Poll logic (client_service.ts PollCore), as the
 * generator does it. It is its own caller context (its `values`).
 */
class PollRecord implements CallerContext {
  /** Settles when the call has ended; never rejects. */
  readonly done: Promise<void>;
  /** The call's context values (authentication, peer address). */
  readonly values: ContextValues;
  readonly #core: PollCore;
  /** Null until the stream is registered. */
  #stream: PollStream | null = null;
  readonly #exchange: Exchange;
  readonly #logger: Logger;
  /** The heartbeats of all streams (one timer for all; see BeatQueue). */
  readonly #beats: BeatQueue;
  /** The handler's encoded header fields of reused request heads (see encodeScrapeEnvelope). */
  readonly #knownFields: WeakMap<object, Uint8Array>;
  /** When the stream's next heartbeat is due, on performance.now(); set by the queue. */
  beatAt = 0;
  #deadline: ReturnType<typeof setTimeout> | undefined = undefined;
  #ended = false;
  #resolve!: () => void;
  /**
   * Handled after the caller's step, as a promise's `then` would be: the
   * coordinator fails a replaced stream's wait from inside the newer
   * stream's registration, and closing this session there would detach
   * the fqdn's record before the newer session takes it.
   */
  readonly #onTask = (task: ScrapeTask | null, error?: Error) =>
    queueMicrotask(() => this.#task(task, error));
  readonly #onGone = () => this.#finish(undefined, true, undefined);

  constructor(
    core: PollCore,
    exchange: Exchange,
    values: ContextValues,
    logger: Logger,
    beats: BeatQueue,
    knownFields: WeakMap<object, Uint8Array>,
  ) {
    this.#core = core;
    this.#beats = beats;
    this.#knownFields = knownFields;
    this.#exchange = exchange;
    this.values = values;
    this.#logger = logger;
    this.done = new Promise<void>((resolve) => this.#resolve = resolve);
  }

  /**
   * Reads the request, then registers (see open); a failure before that
   * ends the call with its error.
   */
  start(
    timeoutError: ConnectError | undefined,
    refusal: ConnectError | null,
    maxMessageBytes: number,
    timeoutMs: number | undefined,
  ): void {
    if (timeoutError) return this.#failed(timeoutError);
    let request: Promise<PollRequest>;
    try {
      request = readPollRequest(new EnvelopeReader(this.#exchange.body(), maxMessageBytes));
    } catch (caught) {
      return this.#failed(caught);
    }
    request.then((message) => this.#open(message, refusal, timeoutMs), (caught) => {
      this.#failed(caught);
    });
  }

  /** Registers the stream and sends its first message. */
  #open(request: PollRequest, refusal: ConnectError | null, timeoutMs: number | undefined): void {
    const exchange = this.#exchange;
    let stream: PollStream;
    try {
      if (refusal !== null) throw refusal;
      if (exchange.destroyed) {
        this.#ended = true;
        this.#resolve();
        return;
      }
      stream = this.#core.open(request, this);
    } catch (caught) {
      return this.#failed(caught);
    }
    this.#stream = stream;
    try {
      // The exchange's cheaper departure callback where it has one (no
      // AbortController, signal and listener records per stream).
      if (exchange.onGone !== undefined) exchange.onGone(this.#onGone);
      else if (exchange.signal.aborted) this.#onGone();
      else exchange.signal.addEventListener("abort", this.#onGone, { once: true });
      if (this.#ended) return;
      // (Longer than setTimeout can wait: as good as none.)
      if (timeoutMs !== undefined && timeoutMs <= 0x7fffffff) {
        // The call's deadline (Connect-Timeout-Ms) ends the stream, as the
        // handler context's signal ends the generator.
        this.#deadline = setTimeout(() => this.#finish(undefined, true, undefined), timeoutMs);
      }
      this.#send(this.#core.registered(stream));
    } catch (caught) {
      this.#fault(caught);
    }
  }

  /** Ends a call that failed before its stream opened. */
  #failed(caught: unknown): void {
    if (this.#ended) return;
    this.#ended = true;
    const exchange = this.#exchange;
    try {
      const error = callError(caught, exchange, this.#logger);
      // Unread request bytes are read and dropped, so that the connection stays usable.
      if (!exchange.bodyEnded) exchange.discardBody();
      endCall(exchange, error);
    } finally {
      this.#resolve();
    }
  }

  /** Writes a message, then waits for the next scrape or heartbeat. */
  #send(message: PollMessage): void {
    const exchange = this.#exchange;
    if (!exchange.headersSent) exchange.respond(200, POLL_HEADERS);
    let written: Promise<void> | null = null;
    // A scrape encoded as a whole chunk where the exchange writes one as it
    // is (the native edge, after the first message): no copy into a new
    // buffer per scrape for its framing (issue #11).
    if (message !== HEARTBEAT && exchange.writeChunk !== undefined) {
      const chunk = encodeScrapeEnvelope(message, this.#knownFields, true);
      if (chunk !== null) written = exchange.writeChunk(chunk) ?? exchange.write(chunkData(chunk));
    }
    (written ?? exchange.write(
      message === HEARTBEAT
        ? HEARTBEAT_ENVELOPE
        : encodeScrapeEnvelope(message, this.#knownFields) ??
          encodeEnvelope(0, toBinary(PollResponseSchema, create(PollResponseSchema, message))),
    )).then(() => this.#wait());
  }

  #wait(): void {
    if (this.#ended) return;
    this.#beats.wait(this);
    // May call back at once (a queued scrape, a replaced or draining session).
    this.#stream!.session.listen(this.#onTask);
  }

  #task(task: ScrapeTask | null, error?: Error): void {
    this.#beats.clear(this);
    if (this.#ended) return;
    try {
      if (error !== undefined) {
        const outcome = this.#core.waitFailed(this.#stream!, error);
        if (outcome instanceof ConnectError) return this.#finish(outcome, false, outcome);
        if (outcome === error) return this.#fault(error);
        // Draining: the client is told to go away, then the call ends.
        this.#send(outcome as PollMessage);
        return this.#finish(undefined, false, undefined);
      }
      // The session closed under the stream: the call ends.
      if (task === null) return this.#finish(undefined, false, undefined);
      this.#send(this.#core.scrape(this.#stream!, task));
    } catch (caught) {
      this.#fault(caught);
    }
  }

  /** The stream's heartbeat is due (called by the queue, which has let go of it). */
  beat(): void {
    this.#stream!.session.unlisten(this.#onTask);
    if (this.#ended) return;
    // Called in a loop over the due streams: nothing may throw out of it.
    try {
      this.#core.beat(this.#stream!, this).then((message) => {
        if (this.#ended) return;
        if (message instanceof ConnectError) this.#finish(message, false, message);
        else this.#send(message);
      }, (caught) => this.#fault(caught));
    } catch (caught) {
      this.#fault(caught);
    }
  }

  /** A fault of the logic itself: logged, the call ends with Internal. */
  #fault(caught: unknown): void {
    this.#finish(callError(caught, this.#exchange, this.#logger), false, caught);
  }

  /** Ends the stream once: the session closes, the call's end-stream is written. */
  #finish(error: ConnectError | undefined, gone: boolean, failure: unknown): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#beats.close(this);
    clearTimeout(this.#deadline);
    const stream = this.#stream!;
    stream.session.unlisten(this.#onTask);
    // (A listener given to onGone stays: it ends nothing twice.)
    const exchange = this.#exchange;
    if (exchange.onGone === undefined) exchange.signal.removeEventListener("abort", this.#onGone);
    try {
      this.#core.close(stream, gone || exchange.destroyed, failure);
    } finally {
      endCall(this.#exchange, error);
      this.#resolve();
    }
  }
}

/**
 * The heartbeats of all open Poll streams of one handler, on one timer
 * instead of a timer per stream (at 10,000 idle streams, 10,000 timers and
 * their closures were a fifth of the proxy's heap per client; issue #11).
 * Every wait is one interval long, so the streams, re-added to a Set at each
 * wait, stand in the order of their deadlines; the timer fires at the first
 * one and beats every stream due within {@linkcode BEAT_SLACK} of it. Like
 * LazyTimer, a wait that ends early leaves the timer running: it re-arms
 * for the next deadline when it fires, and stops with no stream waiting.
 */
class BeatQueue {
  readonly #intervalMs: number;
  /** Streams waiting for a heartbeat, in deadline order. */
  readonly #waiting = new Set<PollRecord>();
  #timer: ReturnType<typeof setTimeout> | undefined;
  /** Beats this early are sent now with the others (a heartbeat need not be exact). */
  readonly #slackMs: number;
  readonly #fire = () => this.#fired();

  constructor(intervalMs: number) {
    this.#intervalMs = intervalMs;
    this.#slackMs = Math.min(intervalMs * BEAT_SLACK, 1000);
  }

  /** Starts the stream's wait: its heartbeat is due in one interval. */
  wait(record: PollRecord): void {
    const now = performance.now();
    record.beatAt = now + this.#intervalMs;
    this.#waiting.delete(record);
    this.#waiting.add(record);
    if (this.#timer === undefined) this.#arm(now);
  }

  /** Ends the stream's wait (a scrape came first); the timer runs on. */
  clear(record: PollRecord): void {
    this.#waiting.delete(record);
  }

  /** Ends the stream's wait for good; the timer stops when no stream waits. */
  close(record: PollRecord): void {
    this.#waiting.delete(record);
    if (this.#waiting.size === 0 && this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
  }

  #arm(now: number): void {
    const first = this.#waiting.values().next().value!;
    const delay = Math.min(Math.max(0, Math.ceil(first.beatAt - now)), 0x7fffffff);
    this.#timer = setTimeout(this.#fire, delay);
  }

  #fired(): void {
    this.#timer = undefined;
    const due: PollRecord[] = [];
    const now = performance.now();
    const until = now + this.#slackMs;
    for (const record of this.#waiting) {
      if (record.beatAt > until || due.length === BEAT_BATCH) break;
      due.push(record);
    }
    for (const record of due) this.#waiting.delete(record);
    // (The same reading: nothing waits between.)
    if (this.#waiting.size > 0) this.#arm(now);
    // A beat may end its stream or start its next wait (then re-armed above or by wait).
    for (const record of due) record.beat();
  }
}
/** The share of the interval by which a heartbeat may come early. */
const BEAT_SLACK = 0.05;
/**
 * Streams beaten per firing; the timer fires again for the rest. What a
 * beat allocates lives until its write is out (a turn of the event loop):
 * thousands at once outlived the young generation's scavenges, and each
 * round's garbage went to the old generation, held there (as RSS) until
 * its next major GC — about 2 KiB per idle client at 10,000 (issue #11).
 * A batch this size dies young.
 */
const BEAT_BATCH = 128;

/**
 * Context values as connect-es' `createContextValues` gives them (a value
 * set, even undefined, until deleted; else the key's default), with
 * methods shared by all instead of three closures per call (an open Poll
 * stream keeps its values for its life).
 */
export class CallValues implements ContextValues {
  // The first two keys in fields (the edge sets two per call), more in a
  // Map: a symbol-keyed property per value made every lookup a slow keyed
  // one (~1 % of the proxy's CPU per scrape; issue #11).
  #key0: symbol | null = null;
  #value0: unknown = undefined;
  #key1: symbol | null = null;
  #value1: unknown = undefined;
  #more: Map<symbol, unknown> | null = null;

  get<T>(key: ContextKey<T>): T {
    const id = key.id;
    if (this.#key0 === id) return this.#value0 as T;
    if (this.#key1 === id) return this.#value1 as T;
    const more = this.#more;
    return more !== null && more.has(id) ? more.get(id) as T : key.defaultValue;
  }

  set<T>(key: ContextKey<T>, value: T): this {
    const id = key.id;
    if (this.#key0 === id) this.#value0 = value;
    else if (this.#key1 === id) this.#value1 = value;
    else if (this.#more !== null && this.#more.has(id)) this.#more.set(id, value);
    else if (this.#key0 === null) {
      this.#key0 = id;
      this.#value0 = value;
    } else if (this.#key1 === null) {
      this.#key1 = id;
      this.#value1 = value;
    } else (this.#more ??= new Map()).set(id, value);
    return this;
  }

  delete(key: ContextKey<unknown>): this {
    const id = key.id;
    if (this.#key0 === id) {
      this.#key0 = null;
      this.#value0 = undefined;
    } else if (this.#key1 === id) {
      this.#key1 = null;
      this.#value1 = undefined;
    } else this.#more?.delete(id);
    return this;
  }
}

/** The abort reason of a call's context once the call has ended without error. */
const CALL_ENDED = new ConnectError("the call has ended", Code.Canceled);

/** A handler context with its controller's `abort`. */
type CallContext = ReturnType<typeof createHandlerContext>;

/** The handler context of a call, aborted when the client goes away. */
function startCall(
  exchange: Exchange,
  poll: boolean,
  values: ContextValues,
  timeoutMs: number | undefined,
): { context: CallContext; gone: AbortSignal } {
  const controller = new AbortController();
  const onClose = () => controller.abort(new ConnectError("client went away", Code.Canceled));
  if (exchange.signal.aborted) onClose();
  else exchange.signal.addEventListener("abort", onClose, { once: true });
  const method = poll ? ClientService.method.poll : ClientService.method.push;
  const context = createHandlerContext({
    service: ClientService,
    method,
    protocolName: "connect",
    requestMethod: "POST",
    url: exchange.target,
    requestSignal: controller.signal,
    responseHeader: { "content-type": CONTENT_TYPE },
    contextValues: values,
    ...(timeoutMs === undefined ? {} : { timeoutMs }),
  });
  // The request's headers as a Headers object, built only when read: the
  // service never reads them, and building them for every call was the
  // largest allocation of a Push (about 5 KiB of garbage; issue #11).
  let requestHeader: Headers | undefined;
  Object.defineProperty(context, "requestHeader", {
    get: () => requestHeader ??= new Headers(headerPairs(exchange.rawHeaders)),
    enumerable: true,
    configurable: true,
  });
  return { context, gone: controller.signal };
}

function headerPairs(raw: readonly string[]): [string, string][] {
  const out: [string, string][] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) out.push([raw[i]!, raw[i + 1]!]);
  return out;
}

/** Writes one call's response: headers with the first bytes, back-pressure per write. */
class Call {
  readonly #exchange: Exchange;
  readonly #context: HandlerContext;
  #ended = false;
  constructor(exchange: Exchange, context: HandlerContext) {
    this.#exchange = exchange;
    this.#context = context;
  }

  #head(): void {
    if (this.#exchange.headersSent) return;
    const headers: [string, string][] = [];
    this.#context.responseHeader.forEach((value, name) => headers.push([name, value]));
    this.#exchange.respond(200, headers);
  }

  /** Writes bytes; resolves when the socket takes more (or the call ends). */
  send(bytes: Uint8Array): Promise<void> {
    const exchange = this.#exchange;
    if (exchange.destroyed || this.#ended) return Promise.resolve();
    this.#head();
    const written = exchange.write(bytes);
    const signal = this.#context.signal;
    if (signal.aborted) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const done = () => {
        signal.removeEventListener("abort", done);
        resolve();
      };
      written.then(done, done);
      signal.addEventListener("abort", done);
    });
  }

  /** Ends the response with `bytes`. */
  end(bytes: Uint8Array): void {
    const exchange = this.#exchange;
    if (exchange.destroyed || this.#ended) return;
    this.#ended = true;
    this.#head();
    exchange.end(bytes);
  }
}
