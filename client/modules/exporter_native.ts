/**
 * The native half of the exporter listener's plain-HTTP port
 * (client/modules/exporter_server.ts): a route for the front door
 * (lib/front_door.ts) that reads each request head itself and serves
 * `GET`/`HEAD` of the module path (`/proxy?module=…`) straight onto the
 * connection, keep-alive between them. The first request it does not claim
 * (any other path or method, a body, `Expect`, `Upgrade`, an unusual head)
 * hands the connection, with the bytes read pushed back, to the node:http
 * server, which answers it as it always has (issue #11: node:http's server
 * machinery was about 15 % of the client's CPU per module scrape).
 *
 * It answers as node:http would (the same status line, header fields in
 * the same order, `Connection`/`Keep-Alive`, chunked framing without a
 * length), so a scraper cannot tell which served it.
 *
 * @module
 */

import { ByteReader, chunkFrame, LAST_CHUNK } from "../../lib/http1.ts";
import type { ConnectionBudget } from "../../lib/connection_budget.ts";
import { LazyTimer } from "../../lib/lazy_timer.ts";
import type { Logger } from "../../lib/logger.ts";
import { STATUS_TEXT } from "../../lib/status_text.ts";
import { errorMessage } from "../../lib/error_message.ts";
import type { EdgeConnection, FrontDoor, NativeRoute } from "../../lib/front_door.ts";
import { readRequestHead, type RequestHead, RequestHeadCache } from "../../lib/request_head.ts";
import { httpDate } from "../../lib/http_date.ts";
import { concatBytes, joinBytes } from "../../lib/bytes.ts";
import { freeBuffer } from "../../lib/owned_chunks.ts";
import type { ModuleResponse } from "./response.ts";

/** A module request the route claimed. */
export interface NativeModuleRequest {
  /** "GET" or "HEAD". */
  readonly method: string;
  /** The query's parameters. */
  readonly searchParams: URLSearchParams;
  /** The head (raw header fields, lower-case map). */
  readonly head: RequestHead;
  /** The peer's address. */
  readonly peer: string;
}

/** What the listener answers a claimed request with. */
export interface NativeModuleAnswer {
  /** The module's response, or a plain-text refusal (`error`). */
  readonly response: ModuleResponse;
  /** Header fields after `content-type` on a refusal (a `www-authenticate` challenge). */
  readonly refusalHeaders?: readonly [string, string][];
}

/** Options for {@linkcode nativeModuleRoute}. */
export interface NativeModuleRouteOptions {
  /**
   * The one route decision: the query's parameters when the listener serves
   * this head natively, else null (node:http serves it).
   */
  claim(head: RequestHead): URLSearchParams | null;
  /** Header fields of every answer, first (web configuration headers). */
  headers: readonly [string, string][];
  /** Answers one claimed request; aborted when the scraper goes away. */
  serve(request: NativeModuleRequest, signal: AbortSignal): Promise<NativeModuleAnswer>;
  /** Longest wait for a complete request head. */
  headersTimeoutMs: number;
  /** Largest head; larger ones go to node:http (431). */
  maxHeaderBytes: number;
  /**
   * How long an idle keep-alive connection is kept, and how long a write
   * may wait for a scraper that reads nothing.
   */
  idleTimeoutMs: number;
  /** The listener's connections; requests mark them busy. */
  budget: ConnectionBudget;
  /** Aborts the requests in flight when the listener stops. */
  signal: AbortSignal;
  logger: Logger;
}

const encoder = new TextEncoder();
const HEAD_READ_BYTES = 4 * 1024;
const TIMEOUT_BODY = "Request Timeout: ERR_HTTP_REQUEST_TIMEOUT\n";
/** node:http's answer (lib/listener_guard.ts) to a head that did not arrive in time. */
const TIMEOUT_ANSWER = encoder.encode(
  `HTTP/1.1 408 Request Timeout\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${TIMEOUT_BODY.length}\r\nConnection: close\r\n\r\n${TIMEOUT_BODY}`,
);
const INTERNAL_BODY = "Internal error; see the client's log\n";

/**
 * Creates the native route of the exporter listener's front door.
 *
 * @param options The route decision, the handler, limits and budget.
 * @returns The route.
 */
export function nativeModuleRoute(options: NativeModuleRouteOptions): NativeRoute {
  const { budget, logger } = options;
  const keepAlive = `Connection: keep-alive\r\nKeep-Alive: timeout=${
    Math.max(1, Math.floor(options.idleTimeoutMs / 1000))
  }\r\n`;
  /** Requests in flight, aborted when the listener stops. */
  const inFlight = new Set<AbortController>();
  options.signal.addEventListener("abort", () => {
    for (const request of inFlight) request.abort(options.signal.reason);
  }, { once: true });

  return async function serveConnection(
    connection: EdgeConnection,
    door: FrontDoor,
  ): Promise<boolean> {
    const conn = connection.conn;
    const reader = new ByteReader(conn.read.bind(conn), HEAD_READ_BYTES);
    const timer = new LazyTimer();
    // The last head, and what was decided for it: a scraper sends the same
    // head every scrape on a kept-alive connection (issue #11).
    const heads = new RequestHeadCache();
    let claimed: RequestHead | null = null;
    let claimedQuery: URLSearchParams | null = null;
    let claimedClose = false;
    try {
      for (let first = true;; first = false) {
        const outcome = await readRequestHead(reader, first, timer, options, heads);
        if (outcome.kind === "closed" || outcome.kind === "idle") {
          connection.destroy();
          return true;
        }
        if (outcome.kind === "timeout") {
          logger.debug("Bad request refused", {
            peer: connection.remoteAddress,
            status: 408,
            err: "ERR_HTTP_REQUEST_TIMEOUT",
          });
          await conn.write(TIMEOUT_ANSWER).catch(() => {});
          connection.destroy();
          return true;
        }
        const head = outcome.kind === "head" ? outcome.head : null;
        if (head !== null && head !== claimed) {
          claimed = head;
          claimedQuery = options.claim(head);
          claimedClose = head.headers.get("connection")?.some((v) => /\bclose\b/i.test(v)) ??
            false;
        }
        const query = head === null ? null : claimedQuery;
        if (head === null || query === null) {
          door.handOver(connection, reader.peek());
          return true;
        }
        reader.take(head.length);
        reader.recycle();
        const close = claimedClose;
        budget.busy(connection);
        let kept: boolean;
        try {
          kept = await serveRequest(connection, reader, head, query, close, timer);
        } finally {
          budget.done(connection);
        }
        if (!kept || close) {
          connection.destroy();
          return true;
        }
      }
    } catch (error) {
      logger.debug("Connection failed", {
        peer: connection.remoteAddress,
        err: errorMessage(error),
      });
      connection.destroy();
      return true;
    } finally {
      timer.close();
    }
  };

  /**
   * Serves one request; resolves false when the connection cannot be kept
   * (the scraper went away, a write failed, the body failed part-way).
   */
  async function serveRequest(
    connection: EdgeConnection,
    reader: ByteReader,
    head: RequestHead,
    query: URLSearchParams,
    close: boolean,
    timer: LazyTimer,
  ): Promise<boolean> {
    const gone = new AbortController();
    if (options.signal.aborted) gone.abort(options.signal.reason);
    inFlight.add(gone);
    // Watches for the scraper's close while the answer is made and sent: a
    // read the next head's takes over (a pipelined request is kept). Not
    // with a next request buffered already: that one may be node:http's,
    // which must then get the connection with no read of ours pending.
    let finished = false;
    const closed = () => {
      if (!finished) gone.abort(new Error("the scraper closed the connection"));
    };
    if (reader.buffered === 0) {
      reader.prefetch().then((n) => {
        if (n === null) closed();
      }, closed);
    }
    // A scraper that reads nothing for the idle timeout while its answer is
    // written is gone: closing the connection ends the write and frees the
    // module's backend, instead of holding both until the kernel gives up.
    const stalled = () => {
      logger.debug("Scraper stopped reading; connection closed", {
        peer: connection.remoteAddress,
        path: head.target,
        idle_timeout_ms: options.idleTimeoutMs,
      });
      gone.abort(new Error(`the scraper read nothing for ${options.idleTimeoutMs} ms`));
      connection.destroy();
    };
    const send = async (bytes: Uint8Array): Promise<boolean> => {
      timer.set(options.idleTimeoutMs, stalled);
      try {
        return await writeAll(connection.conn, bytes);
      } finally {
        timer.clear();
      }
    };
    let ok = false;
    try {
      let answer: NativeModuleAnswer;
      try {
        answer = await options.serve({
          method: head.method,
          searchParams: query,
          head,
          peer: connection.remoteAddress,
        }, gone.signal);
      } catch (error) {
        // As the node:http path's error boundary (lib/listener_guard.ts).
        logger.error("Request failed", { path: head.target, err: errorMessage(error) });
        const text = `HTTP/1.1 500 Internal Server Error\r\n${
          options.headers.map(([name, value]) => `${name}: ${value}\r\n`).join("")
        }content-type: text/plain; charset=utf-8\r\ncontent-length: ${INTERNAL_BODY.length}\r\nconnection: close\r\nDate: ${httpDate()}\r\n\r\n${
          head.method === "HEAD" ? "" : INTERNAL_BODY
        }`;
        await send(encoder.encode(text));
        return false;
      }
      if (gone.signal.aborted) return false;
      ok = await writeResponse(send, head.method === "HEAD", answer, close, gone.signal);
    } finally {
      finished = true;
      inFlight.delete(gone);
    }
    return ok;
  }

  /** Writes a response as node:http would; false when it was cut short. */
  async function writeResponse(
    send: (bytes: Uint8Array) => Promise<boolean>,
    isHead: boolean,
    answer: NativeModuleAnswer,
    close: boolean,
    signal: AbortSignal,
  ): Promise<boolean> {
    const { response } = answer;
    const own = options.headers;
    let text = `HTTP/1.1 ${response.status} ${STATUS_TEXT[response.status] ?? "unknown"}\r\n`;
    let hasDate = false;
    for (const [name, value] of own) {
      text += `${name}: ${value}\r\n`;
      if (name.length === 4 && name.toLowerCase() === "date") hasDate = true;
    }
    const error = response.error !== "" || response.body === null;
    let length = response.contentLength;
    if (error) {
      text += "content-type: text/plain; charset=utf-8\r\n";
      for (const [name, value] of answer.refusalHeaders ?? []) text += `${name}: ${value}\r\n`;
      length = undefined;
    } else {
      for (const { name, value } of response.headers) {
        text += `${name}: ${value}\r\n`;
        if (name.length === 4 && name.toLowerCase() === "date") hasDate = true;
      }
      if (length !== undefined) text += `content-length: ${length}\r\n`;
    }
    if (!hasDate) text += `Date: ${httpDate()}\r\n`;
    text += close ? "Connection: close\r\n" : keepAlive;
    const chunked = length === undefined && !isHead;
    if (chunked) text += "Transfer-Encoding: chunked\r\n";
    text += "\r\n";
    const headBytes = encoder.encode(text);
    if (error) {
      const message = response.error.endsWith("\n") ? response.error : response.error + "\n";
      const body = encoder.encode(message);
      return await send(
        isHead ? headBytes : concatBytes([chunkFrame(body, headBytes), LAST_CHUNK]),
      );
    }
    if (isHead) {
      return await send(headBytes);
    }
    const free = response.ownedChunks === true;
    // Chunks read into these have free bytes in front: the head and the
    // chunk framing go there, and the buffer goes back once written.
    const buffers = free ? response.readBuffers : undefined;
    let pending: Uint8Array | null = headBytes;
    /** The last chunk framed in front of its data still lacks its closing CRLF. */
    let open = false;
    try {
      for await (const chunk of response.body!) {
        if (signal.aborted) return false;
        if (chunk.byteLength === 0) continue;
        let out = buffers === undefined ? null : frameInFront(chunk, pending, chunked, open);
        const inPlace = out !== null;
        if (out !== null) {
          open = chunked;
        } else if (chunked) {
          out = chunkFrame(chunk, pending ?? (open ? CRLF : undefined));
          open = false;
        } else if (pending !== null) {
          out = concatBytes([pending, chunk]);
        } else {
          out = chunk;
        }
        pending = null;
        if (!await send(out)) return false;
        if (inPlace) {
          if (!buffers!.give(chunk.buffer)) freeBuffer(chunk);
          continue;
        }
        if (free) freeBuffer(chunk);
        if (out !== chunk) freeBuffer(out);
      }
    } catch {
      // The engine logged why; the scraper sees a truncated response.
      return false;
    }
    const tail = joinBytes([
      ...(pending === null ? [] : [pending]),
      ...(chunked ? [open ? CRLF_LAST_CHUNK : LAST_CHUNK] : []),
    ]);
    return tail.byteLength === 0 || await send(tail);
  }
}

const CRLF = encoder.encode("\r\n");
const CRLF_LAST_CHUNK = encoder.encode("\r\n0\r\n\r\n");

/**
 * `chunk` behind what goes in front of it, written into the free bytes in
 * front of it in its own buffer (see `ModuleResponse.readBuffers`): the
 * previous chunk's closing CRLF (`closeChunk`), `before` (the response
 * head), and with `chunked` its chunk-size line. The chunk's closing CRLF
 * is left to what comes next. One view to write, nothing copied; null when
 * the room in front is too small.
 */
function frameInFront(
  chunk: Uint8Array,
  before: Uint8Array | null,
  chunked: boolean,
  closeChunk: boolean,
): Uint8Array | null {
  const buffer = chunk.buffer;
  if (!(buffer instanceof ArrayBuffer)) return null;
  const size = chunk.byteLength;
  const hex = chunked ? size.toString(16) : "";
  const room = (closeChunk ? 2 : 0) + (before?.byteLength ?? 0) +
    (chunked ? hex.length + 2 : 0);
  const start = chunk.byteOffset - room;
  if (start < 0) return null;
  const out = new Uint8Array(buffer, start, room + size);
  let at = 0;
  if (closeChunk) {
    out[at++] = 13;
    out[at++] = 10;
  }
  if (before !== null) {
    out.set(before, at);
    at += before.byteLength;
  }
  if (chunked) {
    for (let i = 0; i < hex.length; i++) out[at++] = hex.charCodeAt(i);
    out[at++] = 13;
    out[at++] = 10;
  }
  return out;
}

/** Writes all of `bytes`; false when the connection failed. */
async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<boolean> {
  try {
    let at = 0;
    while (at < bytes.byteLength) at += await conn.write(bytes.subarray(at));
    return true;
  } catch {
    return false;
  }
}
