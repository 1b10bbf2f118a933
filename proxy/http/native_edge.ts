/**
 * The native half of the front door: reads each request head of a
 * connection itself (header timeout, size cap), serves the requests its
 * route table claims as {@linkcode NativeExchange}s, keep-alive between
 * them, and hands the connection to node:http at the first request it does
 * not claim, or at anything unusual, with the bytes read pushed back.
 *
 * @module
 */

import { type BodyFraming, BodyReader, ByteReader } from "../../lib/http1.ts";
import type { ConnectionBudget } from "../../lib/connection_budget.ts";
import { LazyTimer, within } from "../../lib/lazy_timer.ts";
import { ReadBufferPool } from "../../lib/read_buffers.ts";
import type { Logger } from "../../lib/logger.ts";
import type { HeaderPair } from "../../lib/http_exchange.ts";
import type { EdgeConnection, FrontDoor, NativeRoute } from "../../lib/front_door.ts";
import {
  type BuiltHead,
  NativeExchange,
  type ResponseHeads,
  type WholeResponse,
} from "./native_exchange.ts";
import { POLL_PATH } from "../connect/fast_client_service.ts";
import type { PushHeadTexts } from "../connect/wire_codec.ts";
import {
  type HeadOutcome,
  readRequestHead,
  type RequestHead,
  RequestHeadCache,
} from "../../lib/request_head.ts";
import { errorMessage } from "../../lib/error_message.ts";

/** Serves one request natively. */
export type NativeHandler = (exchange: NativeExchange) => Promise<void>;

/** Options for {@linkcode nativeEdge}. */
export interface NativeEdgeOptions {
  /** The route table: a handler for the requests served natively, null for node:http. */
  route(head: RequestHead): NativeHandler | null;
  /** Longest wait for a complete request head. */
  headersTimeoutMs: number;
  /** Largest head; larger ones go to node:http (431). */
  maxHeaderBytes: number;
  /** How long an idle keep-alive connection is kept. */
  idleTimeoutMs: number;
  budget?: ConnectionBudget | undefined;
  /** Counts a limit hit ("header_timeout", "body_drain"). */
  onLimit(limit: string): void;
  /** Most request body bytes read and dropped after the answer, before the connection is closed. */
  drainMaxBytes: number;
  /** Longest wait for the rest of a request body after the answer, before the connection is closed. */
  drainMaxMs: number;
  /** Headers added to the proxy's own responses (origin-form targets). */
  headers?: readonly HeaderPair[];
  logger?: Logger | undefined;
}

const encoder = new TextEncoder();
const NO_HEADERS: readonly HeaderPair[] = Object.freeze([]);
const NO_BYTES = new Uint8Array(0);
const HEAD_READ_BYTES = 4 * 1024;
const BODY_READ_BYTES = 64 * 1024;
/**
 * Left free at the start of each body read buffer: a relayed scrape's
 * response head goes there, in front of the first piece, instead of both
 * being copied into a new buffer (see NativeExchange.write).
 */
const HEADROOM_BYTES = 1024;
/**
 * The read that watches an open Poll stream's connection for its close:
 * the client sends nothing more while the stream is open, and at 10,000
 * streams 4 KiB each would be 40 MiB of buffers waiting for nothing. (Reads
 * after it, of a next request, are of the usual size.)
 */
const POLL_WATCH_BYTES = 16;
/** The fields an open Poll stream's exchange keeps: what a credential recheck reads. */
const KEPT_POLL_FIELDS: readonly string[] = Object.freeze(["authorization", "proxy-authorization"]);
/**
 * Stands for an open Poll stream's connection timers, let go of while it
 * lasts: closed, never set.
 */
const NO_TIMER = new LazyTimer();
const TIMEOUT_BODY = "Request Timeout: ERR_HTTP_REQUEST_TIMEOUT\n";
/** node:http's answer to a head that did not arrive in time (see serveProxy's clientError). */
const TIMEOUT_ANSWER = encoder.encode(
  `HTTP/1.1 408 Request Timeout\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${TIMEOUT_BODY.length}\r\nConnection: close\r\n\r\n${TIMEOUT_BODY}`,
);

/**
 * Creates the native route of the front door.
 *
 * @param options Route table, limits, budget.
 * @returns The route.
 */
export function nativeEdge(options: NativeEdgeOptions): NativeRoute {
  const { budget, logger } = options;
  const keepAliveSeconds = Math.max(1, Math.floor(options.idleTimeoutMs / 1000));
  // Request bodies are read into these; a pushed body's pieces come back
  // once relayed (see NativeExchange.write).
  const pool = new ReadBufferPool(BODY_READ_BYTES);
  // Frozen, so that the exchange may reuse a response head built with them.
  const ownHeaders: readonly HeaderPair[] = Object.freeze([...(options.headers ?? [])]);

  /** Reads and drops the rest of a body, within the drain limits; false past them. */
  async function drain(body: BodyReader, timer: LazyTimer): Promise<boolean> {
    // (The timer's clock, each reading shared with its wait.)
    let now = timer.now();
    const deadline = now + options.drainMaxMs;
    let bytes = 0;
    try {
      for (let first = true; !body.done; first = false) {
        if (!first) now = timer.now();
        const left = deadline - now;
        if (left <= 0) return false;
        const piece = await within(timer, body.next(), left, now);
        if (piece === "timeout") return false;
        if (piece === null) return true;
        bytes += piece.byteLength;
        if (bytes > options.drainMaxBytes) return false;
      }
      return true;
    } catch {
      return false;
    }
  }

  return serveConnection;

  function serveConnection(connection: EdgeConnection, door: FrontDoor): Promise<boolean> {
    return serveRequests(new EdgeState(connection, door), true);
  }

  /**
   * Serves the connection's requests from its state's reader on. An open Poll stream
   * goes on by callbacks, with no suspended frame of this function: it
   * resolves true then, the connection kept (see afterPoll, which serves
   * the next request after the stream). Closes the timers when the
   * connection is done.
   */
  async function serveRequests(state: EdgeState, first: boolean): Promise<boolean> {
    const { connection, door, read, kept } = state;
    const conn = connection.conn;
    /** The timers are the open Poll stream's callbacks' to close. */
    let handedOn = false;
    try {
      for (;; first = false) {
        // Let go of (null) once the exchange has it: this frame waits as
        // long as the exchange, and an open Poll stream's exchange keeps
        // only some of its head (see watch).
        let outcome: HeadOutcome | null = await readRequestHead(
          state.reader,
          first,
          state.timer,
          options,
          kept,
          state.closeIdle,
        );
        if (outcome.kind === "closed" || outcome.kind === "idle") {
          connection.destroy();
          return true;
        }
        if (outcome.kind === "timeout") {
          options.onLimit("header_timeout");
          logger?.debug("Bad request refused", {
            remote: connection.remoteAddress,
            status: 408,
            err: "ERR_HTTP_REQUEST_TIMEOUT",
          });
          await conn.write(TIMEOUT_ANSWER).catch(() => {});
          connection.destroy();
          return true;
        }
        let handler: NativeHandler | null = null;
        let framing: BodyFraming | null = null;
        if (outcome.kind === "head") {
          // The same head again (see RequestHeadCache): the same route and framing.
          if (outcome.head === kept.routed) {
            handler = kept.handler;
            framing = kept.framing;
          } else {
            handler = options.route(outcome.head);
            kept.routed = outcome.head;
            kept.handler = handler;
            kept.framing = framing = handler === null ? null : bodyFramingOf(outcome.head);
          }
        }
        if (handler === null) {
          // Node's from here on, with what was read so far.
          door.handOver(connection, state.reader.peek());
          return true;
        }
        let head: RequestHead | null = (outcome as { head: RequestHead }).head;
        outcome = null;
        state.reader.skip(head.length);
        // Without a body nothing of the buffer is lent (the head is strings):
        // the next head is read into it again.
        if (framing === null) state.reader.recycle();
        // The head's read filled its small buffer: the body's first bytes
        // in it go on with the next read's (one piece, one write to relay).
        const topUp = state.reader.lastReadFull;
        /** Whether the head reader lent its buffer to this body's reader. */
        const lent = framing !== null && !state.bodyReads;
        if (lent) {
          // The connection's body reader again (a Push each scrape), if any.
          let larger = kept.bodyReader;
          if (larger === null || !larger.idle) {
            larger = new ByteReader(read, BODY_READ_BYTES, { pool, headroom: HEADROOM_BYTES });
            kept.bodyReader = larger;
          }
          kept.headReader = state.reader;
          // (The head reader keeps its buffer: see watch.)
          larger.unread(state.reader.letGo(true));
          state.reader = larger;
          state.bodyReads = true;
        }
        const body = framing === null ? null : new BodyReader(state.reader, framing, { topUp });
        // Once the body is read (or at once without one), a close or reset by
        // the peer abandons the exchange (as node:http does); the read that
        // watches for it uses a small buffer (an idle Poll stream waits on it).
        const poll = head.target === POLL_PATH;
        const watch = (bodyEnded: boolean) => {
          if (state.bodyReads || poll) {
            // The head reader the body's stood in for (not for a Poll: a
            // new one, that keeps nothing of the head's read).
            let smaller = poll ? null : kept.headReader;
            if (smaller === null || !smaller.idle) smaller = new ByteReader(read, HEAD_READ_BYTES);
            // Its buffer again for the next head when the body's first
            // bytes in it were copied off before any piece was given out
            // (or none were there): no view of it survives.
            else smaller.takeBack(lent && body !== null && body.toppedUp);
            // The body reader keeps no buffer while the head reader reads.
            const rest = state.reader.letGo();
            // A Poll's own copy of what is left (mostly nothing): a view
            // would keep the whole buffer it was read into (4 or 64 KiB)
            // for the stream's life, as would the body's reader.
            // (Nothing left, the usual: the one shared empty view.)
            smaller.unread(poll ? (rest.byteLength === 0 ? NO_BYTES : rest.slice()) : rest);
            state.reader = smaller;
            state.bodyReads = false;
          }
          if (poll && bodyEnded) {
            // The Poll is in (routed, authenticated, its request read): an
            // open stream needs no connection timers while it lasts (its
            // heartbeats have their own), nor more of its head than what a
            // credential recheck reads.
            state.timer.close();
            state.handlerTimer.close();
            // Let go of, too (made anew if the connection carries more).
            state.timer = state.handlerTimer = NO_TIMER;
            exchange.timer = null;
            exchange.keepOnly(KEPT_POLL_FIELDS);
            // Nor the connection its head (a Poll's is seldom sent again),
            // nor its readers but the one watching.
            kept.forget();
          }
          // One callback for both outcomes: the end (null) or a failure
          // (an error) is the peer gone; bytes are the next request's.
          const settled = (n: unknown) => {
            if (typeof n !== "number") exchange.peerGone();
          };
          state.reader.prefetch(poll ? POLL_WATCH_BYTES : HEAD_READ_BYTES).then(settled, settled);
        };
        const exchange: NativeExchange = new NativeExchange(conn, head, {
          keepAliveSeconds,
          body,
          headers: head.target.startsWith("/") ? ownHeaders : NO_HEADERS,
          onBodyEnd: () => watch(true),
          timer: state.handlerTimer,
          pool,
          // A body piece read into the head reader's buffer comes back to it once written.
          giveBack: lent ? state.giveBack : null,
          peerAddress: connection.peerAddress,
          // (Not an open Poll stream's: its connection keeps nothing.)
          heads: poll ? null : kept,
        });
        head = null;
        if (body === null || body.done) watch(false);
        budget?.busy(connection);
        if (poll) {
          // The stream's life: callbacks from here (see serveRequests).
          let served: Promise<void>;
          try {
            served = handler(exchange);
          } catch (error) {
            budget?.done(connection);
            throw error;
          }
          handedOn = true;
          // The front door hears at once that the edge keeps the
          // connection: no promise chain above the stream's, which ends in
          // callbacks that never reject (failures close the connection).
          served.then(
            () => afterPoll(state, exchange),
            (error) => {
              budget?.done(connection);
              state.timer.close();
              state.handlerTimer.close();
              connectionFailed(connection, error);
            },
          );
          return true;
        }
        let reusable = false;
        try {
          await handler(exchange);
          // (As exchange.finished(), without its promise.)
          if (exchange.endQueued) {
            await exchange.drained;
            reusable = !exchange.destroyed;
          }
        } finally {
          budget?.done(connection);
        }
        // The usual end, a body read to its end and the connection kept,
        // decided here (no async call and its turn per request).
        const goOn = reusable && (body === null || body.done) && !exchange.closing &&
          !connection.destroyed;
        if (!goOn && !await reusableAfter(connection, exchange, body, state.timer, reusable)) {
          return true;
        }
      }
    } finally {
      if (!handedOn) {
        state.timer.close();
        state.handlerTimer.close();
      }
    }
  }

  /**
   * After a Poll stream's exchange: serves the connection's next requests,
   * or closes it. Never rejects.
   */
  async function afterPoll(state: EdgeState, exchange: NativeExchange): Promise<void> {
    const connection = state.connection;
    if (state.timer === NO_TIMER) {
      state.timer = new LazyTimer();
      state.handlerTimer = new LazyTimer();
    }
    try {
      let reusable = false;
      try {
        reusable = await exchange.finished();
      } finally {
        budget?.done(connection);
      }
      // (The body is read: the exchange let go of it; null then.)
      if (await reusableAfter(connection, exchange, exchange.bodyReader, state.timer, reusable)) {
        await serveRequests(state, false);
        return;
      }
      state.timer.close();
      state.handlerTimer.close();
    } catch (error) {
      state.timer.close();
      state.handlerTimer.close();
      connectionFailed(connection, error);
    }
  }

  /** As the front door ends a connection whose serving failed. */
  function connectionFailed(connection: EdgeConnection, error: unknown): void {
    logger?.debug("Connection failed", { err: errorMessage(error) });
    connection.destroy();
  }

  /**
   * After an exchange: drains what is left of its body (within limits) and
   * says whether the connection may carry another request; destroys it if not.
   */
  async function reusableAfter(
    connection: EdgeConnection,
    exchange: NativeExchange,
    body: BodyReader | null,
    timer: LazyTimer,
    reusable: boolean,
  ): Promise<boolean> {
    if (reusable && body !== null && !body.done && !await drain(body, timer)) {
      options.onLimit("body_drain");
      logger?.debug("Unread request body after the answer: closing the connection", {
        remote: connection.remoteAddress,
        target: exchange.target.slice(0, 200),
      });
      reusable = false;
    }
    if (!reusable || exchange.closing || connection.destroyed) {
      connection.destroy();
      return false;
    }
    return true;
  }
}

/**
 * One connection's serving state, carried from request to request and
 * across an open Poll stream (whose callbacks hand it back to
 * serveRequests): the connection, its front door, its read function, what
 * it keeps between requests, its timers and the reader of its next bytes.
 */
class EdgeState {
  readonly connection: EdgeConnection;
  readonly door: FrontDoor;
  /** Bound, not a closure with a scope of its own: kept per connection. */
  readonly read: (buffer: Uint8Array) => Promise<number | null>;
  readonly kept: Kept = new Kept();
  /**
   * The edge's waits (head, idle, drain); NO_TIMER while an open Poll
   * stream needs none (made anew if the connection carries more).
   */
  timer: LazyTimer = new LazyTimer();
  /** The handler's own (the pipeline's body timeout), set per request; NO_TIMER as `timer`. */
  handlerTimer: LazyTimer = new LazyTimer();
  /**
   * The reader of the connection's next bytes: heads are read with small
   * buffers (what an idle or handed-over connection keeps is small); a
   * body switches to the 64 KiB body reader.
   */
  reader: ByteReader;
  /** Whether `reader` is the body reader. */
  bodyReads = false;
  /**
   * Hands a written body piece's buffer back to the head reader, which
   * lent it to the body reader (see ByteReader.giveBack); made once.
   */
  readonly giveBack = (buffer: ArrayBufferLike): void => {
    this.kept.headReader?.giveBack(buffer);
  };

  /** Closes an idle keep-alive connection (see readRequestHead); made once. */
  readonly closeIdle = (): void => {
    this.connection.destroy();
  };

  constructor(connection: EdgeConnection, door: FrontDoor) {
    this.connection = connection;
    this.door = door;
    const conn = connection.conn;
    this.read = conn.read.bind(conn);
    this.reader = new ByteReader(this.read, HEAD_READ_BYTES);
  }
}

/**
 * What a connection keeps from one request to the next: its last request
 * head (reused when the next one is byte for byte the same) and the route
 * decided for it (the route table's answer depends on the head alone), its
 * last response head (reused when the next one is the same), and the reader that is not reading (the head reader while a body is read,
 * the body reader between bodies), holding no buffer but the head reader's
 * own while a body is read (see ByteReader.takeBack).
 */
class Kept extends RequestHeadCache implements ResponseHeads {
  /** The head last routed. */
  routed: RequestHead | null = null;
  /** Its handler. */
  handler: NativeHandler | null = null;
  /** Its body's framing (never written to). */
  framing: BodyFraming | null = null;
  /** The small-buffered reader of heads, while the body reader reads. */
  headReader: ByteReader | null = null;
  /** The body reader, once made. */
  bodyReader: ByteReader | null = null;
  /** The last response head written (see NativeExchange's ResponseHeads). */
  lastHead: BuiltHead | null = null;
  /** The last whole response written at once (see NativeExchange's ResponseHeads). */
  lastWhole: WholeResponse | null = null;
  /** Its Push heads' texts (see NativeExchange's connectionTexts). */
  texts: PushHeadTexts | null = null;

  override forget(): void {
    super.forget();
    this.routed = this.handler = this.framing = null;
    this.headReader = this.bodyReader = null;
    this.lastHead = null;
    this.lastWhole = null;
    this.texts = null;
  }
}

/** The framing of a request body (nativeRouteOf admits only these); null without a body. */
function bodyFramingOf(head: RequestHead): BodyFraming | null {
  if (head.headers.has("transfer-encoding")) return { kind: "chunked" };
  const length = Number(head.headers.get("content-length")?.[0] ?? "0");
  return length > 0 ? { kind: "length", length } : null;
}
