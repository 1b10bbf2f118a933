/**
 * GET over plain HTTP/1.1 on `Deno.connect`, for `http` modules whose
 * backend is plain http (the common case: a local exporter). Compared with
 * node:http's client it reads bodies at about a quarter of the CPU, keeps
 * gzip bodies compressed (which `fetch` cannot), and reads the backend only
 * as fast as the body is consumed: nothing queues in JS, so a slow scraper
 * slows the backend read instead of growing the heap.
 *
 * Body chunks are the socket's own reads (views, not copies); chunked
 * transfer coding is removed on the way. Connections are kept alive per
 * `host:port` and reused when a response was read to its end; a request
 * that fails on a reused connection before any answer is sent again, once,
 * on a new one (as Go's Transport does). Parsing, framing, dechunking and
 * the pool are lib/http1.ts's, shared with the scrape path.
 *
 * @module
 */

import { Http1Error, Http1Pool } from "../../lib/http1.ts";
import { ReadBufferPool } from "../../lib/read_buffers.ts";

/** Size of the buffers a backend's answer is read into. */
const READ_BYTES = 64 * 1024;
/**
 * Bytes kept free in front of every body piece: the exporter listener puts
 * its response head and chunk framing there instead of copying the piece
 * behind them (client/modules/exporter_native.ts).
 */
const HEADROOM_BYTES = 1024;

/** The backend's connection ended before the body did. */
export class BackendClosedError extends Error {
  /** @param message What happened. */
  constructor(message: string) {
    super(message);
    this.name = "BackendClosedError";
  }
}

/** Keep-alive connections to plain-http backends, by `host:port`. */
export type BackendPool = Http1Pool;

/** Options for {@linkcode createBackendPool}. */
export interface BackendPoolOptions {
  /** How long an idle connection is kept. @default {5000} */
  idleTimeoutMs?: number;
  /** Idle connections kept per backend. @default {4} */
  maxIdlePerBackend?: number;
}

/**
 * Creates a pool of idle backend connections. Idle timers do not keep the
 * process alive.
 *
 * @param options Idle timeout and size.
 * @returns The pool.
 */
export function createBackendPool(options: BackendPoolOptions = {}): BackendPool {
  return new Http1Pool({
    idleTimeoutMs: options.idleTimeoutMs ?? 5_000,
    maxIdlePerHost: options.maxIdlePerBackend ?? 4,
    readBuffers: READ_BUFFERS,
    headroom: HEADROOM_BYTES,
  });
}

/**
 * The buffers every backend answer is read into. The exporter listener
 * gives each piece's buffer back once written: a new zeroed 64 KiB buffer
 * per read, freed after its write, was a fifth of the client's CPU on the
 * module path at 1 MiB (most of it garbage collection; issue #11).
 */
const READ_BUFFERS = new ReadBufferPool(READ_BYTES, 16);

/** Requests without a pool: every connection closes after its answer. */
const UNPOOLED = new Http1Pool({
  maxIdle: 0,
  readBuffers: READ_BUFFERS,
  headroom: HEADROOM_BYTES,
});

/** A backend's answer: status, header fields and the body as it arrives. */
export interface BackendResponse {
  /** The status code. */
  readonly status: number;
  /** Header names and values, in order, as received. */
  readonly headers: [string, string][];
  /** The declared Content-Length, when the body is framed by one. */
  readonly contentLength: number | undefined;
  /**
   * The body (transfer coding removed; content coding kept). Cancelling it
   * closes the connection; reading it to its end returns the connection to
   * the pool. Made on first use: read the body either through it or with
   * {@linkcode BackendResponse.read}, not both.
   */
  readonly body: ReadableStream<Uint8Array>;
  /**
   * The next piece of the body without a stream around it (each owns its
   * buffer), or null at its end. Errors are worded as the stream's are; the
   * connection is closed on one.
   */
  read(): Promise<Uint8Array | null>;
  /** Gives up the body read with `read()`: the connection is closed unless it was read to its end. */
  cancel(): void;
  /**
   * The buffers the body's pieces are read into. Each piece is the only
   * view of its buffer, and the bytes in front of it are free (at least
   * 1 KiB): its consumer may put its own framing there and write both as
   * one view, then give the buffer back here (`give`) once written.
   */
  readonly readBuffers: ReadBufferPool;
}

/** One GET. */
export interface BackendRequest {
  /** The backend URL (`http:` only). */
  readonly url: URL;
  /** Header fields by lower-case name (a `host` entry overrides the Host header). */
  readonly headers: Record<string, string[]>;
  /** Largest response header block. */
  readonly maxHeaderBytes: number;
  /** Names the module in errors. */
  readonly moduleName: string;
  /** Kept-alive connections; without it the connection closes after the answer. */
  readonly pool?: BackendPool | undefined;
}

/** Bytes allowed in a field name (RFC 9110 tchar). */
const TOKEN_CHARS = new Uint8Array(128);
for (const c of "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") {
  TOKEN_CHARS[c.charCodeAt(0)] = 1;
}
const ENCODER = new TextEncoder();

function isToken(name: string): boolean {
  if (name.length === 0) return false;
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c >= 128 || TOKEN_CHARS[c] === 0) return false;
  }
  return true;
}

/** 0 for a value with a control character, else the highest character code in it. */
function fieldValueMax(value: string): number {
  let max = 0x20;
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if ((c < 0x20 && c !== 0x09) || c === 0x7f || c > 0xff) return 0;
    if (c > max) max = c;
  }
  return max;
}

/**
 * Builds the request head.
 *
 * @param request The request.
 * @param keepAlive Whether to ask for a kept-alive connection.
 * @returns The head's bytes.
 * @throws {TypeError} When a header name or value cannot be sent.
 */
export function requestHead(request: BackendRequest, keepAlive: boolean): Uint8Array {
  const { url, headers } = request;
  const host = headers["host"]?.[0] ?? url.host;
  // The host is not checked (as before), but one that is not Latin-1 is
  // written byte by byte as it always was.
  let max = fieldValueMax(host) || 0x100;
  let head = `GET ${url.pathname}${url.search} HTTP/1.1\r\nhost: ${host}\r\n`;
  for (const name in headers) {
    if (name === "host" || name === "connection") continue;
    if (!isToken(name)) throw new TypeError(`Cannot send header name ${JSON.stringify(name)}`);
    for (const value of headers[name]!) {
      const highest = fieldValueMax(value);
      if (highest === 0) {
        throw new TypeError(`Cannot send the value of header ${name}: it has control characters`);
      }
      if (highest > max) max = highest;
      head += `${name}: ${value}\r\n`;
    }
  }
  head += keepAlive ? "connection: keep-alive\r\n\r\n" : "connection: close\r\n\r\n";
  // The path and query of a URL are ASCII; so is nearly every field value.
  if (max < 0x80) return ENCODER.encode(head);
  const bytes = new Uint8Array(head.length);
  for (let i = 0; i < head.length; i++) bytes[i] = head.charCodeAt(i) & 0xff;
  return bytes;
}

/**
 * Sends a GET and reads the response head; the body streams on demand.
 *
 * @param request URL, header fields, limits and pool.
 * @param signal Aborts the request and the body (the connection is closed).
 * @returns The response.
 * @throws When the backend cannot be reached or answers with a malformed head.
 */
export async function backendGet(
  request: BackendRequest,
  signal: AbortSignal,
): Promise<BackendResponse> {
  const { url, pool } = request;
  if (url.protocol !== "http:") {
    throw new TypeError(`backendGet serves http: only, not ${url.href}`);
  }
  const head = requestHead(request, pool !== undefined);
  let response;
  try {
    response = await (pool ?? UNPOOLED).request(url, {
      method: "GET",
      head,
      maxHeaderBytes: request.maxHeaderBytes,
      keepAlive: pool !== undefined,
      signal,
    });
  } catch (error) {
    throw headError(error, request.maxHeaderBytes);
  }
  const { framing } = response;
  const closedMidBody = () =>
    new BackendClosedError(
      `module ${request.moduleName}: the backend closed the connection mid-body`,
    );
  const read = async (): Promise<Uint8Array | null> => {
    try {
      return await response.next();
    } catch (error) {
      response.close();
      throw signal.aborted ? signal.reason : bodyError(error, closedMidBody);
    }
  };
  const cancel = () => response.close();
  let body: ReadableStream<Uint8Array> | undefined;
  return {
    status: response.head.status,
    headers: response.head.rawHeaders,
    contentLength: framing.kind === "length" ? framing.length : undefined,
    get body() {
      return body ??= new ReadableStream<Uint8Array>({
        async pull(controller) {
          let piece;
          try {
            piece = await read();
          } catch (error) {
            controller.error(error);
            return;
          }
          if (piece === null) controller.close();
          else controller.enqueue(piece);
        },
        cancel,
      }, { highWaterMark: 0 });
    },
    read,
    cancel,
    readBuffers: READ_BUFFERS,
  };
}

/** Words a head's failure as the module path always has. */
function headError(error: unknown, maxHeaderBytes: number): unknown {
  if (
    error instanceof Deno.errors.ConnectionReset || error instanceof Deno.errors.BrokenPipe ||
    error instanceof Deno.errors.ConnectionAborted || error instanceof Deno.errors.UnexpectedEof
  ) {
    return new Error("the backend closed the connection without answering", { cause: error });
  }
  if (!(error instanceof Http1Error)) return error;
  switch (error.kind) {
    case "too-large":
      return new Error(`the backend's response headers exceed ${maxHeaderBytes} bytes`);
    case "status-line":
      return new Error(
        `the backend did not answer HTTP/1.x: ${JSON.stringify((error.line ?? "").slice(0, 80))}`,
      );
    case "header-line":
      return new Error(
        `the backend sent a malformed header line ${
          JSON.stringify((error.line ?? "").slice(0, 80))
        }`,
      );
    case "ended":
      return error.cause !== undefined
        ? new Error("the backend closed the connection without answering", { cause: error.cause })
        : new Error("the backend closed the connection inside the response headers");
    default:
      return new Error(`the backend sent a bad response: ${error.message}`);
  }
}

function bodyError(error: unknown, closedMidBody: () => Error): unknown {
  if (error instanceof Http1Error) {
    return error.kind === "ended" ? closedMidBody() : new Error(
      `the backend sent a malformed ${
        /chunk|trailer/.test(error.message) ? "chunked body" : "body"
      }: ${error.message}`,
    );
  }
  if (
    error instanceof Deno.errors.ConnectionReset || error instanceof Deno.errors.UnexpectedEof ||
    error instanceof Deno.errors.BadResource || error instanceof Deno.errors.Interrupted
  ) return closedMidBody();
  return error;
}
