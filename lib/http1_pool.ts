/**
 * Part of lib/http1.ts: the bounded keep-alive connection pool.
 *
 * @module
 */

import { ByteReader, type ByteReaderOptions, Http1Error } from "./http1_byte_reader.ts";
import {
  type BodyFraming,
  readResponseHead,
  readResponseHeadNow,
  type ResponseHead,
  ResponseHeadCache,
} from "./http1_head.ts";
import { BodyReader } from "./http1_body.ts";
import { LazyTimer } from "./lazy_timer.ts";
import { offAbort, onAbort } from "./abort_hooks.ts";
import type { ReadBufferPool } from "./read_buffers.ts";
import type { PiecesAtHand } from "./owned_chunks.ts";

/** Options for {@linkcode Http1Pool}. */
export interface Http1PoolOptions {
  /** Idle connections kept per `host:port`. @default {8} */
  maxIdlePerHost?: number;
  /** Idle connections kept in all. @default {64} */
  maxIdle?: number;
  /** How long an idle connection is kept; 0 keeps it until the peer closes it. @default {0} */
  idleTimeoutMs?: number;
  /** Dials (tests). @default {Deno.connect with TCP_NODELAY} */
  dial?: (hostname: string, port: number, signal: AbortSignal) => Promise<Deno.Conn>;
  /**
   * 64 KiB buffers the connections read answers into (see
   * `ByteReaderOptions.pool`), for a consumer that gives each body piece's
   * buffer back once written. @default {none: every read a new buffer}
   */
  readBuffers?: ReadBufferPool | null;
  /**
   * Bytes left free at the front of each pool buffer, for the consumer's
   * framing in front of a piece (`ByteReaderOptions.headroom`). @default {0}
   */
  headroom?: number;
}

/** One request on an {@linkcode Http1Pool}. */
export interface Http1RequestOptions {
  /** The request's method (HEAD answers have no body). */
  method: string;
  /** The request head's bytes, from the request line to the empty line. */
  head: Uint8Array;
  /** Largest response header block. */
  maxHeaderBytes: number;
  /** Whether the connection may go back to the pool after the answer. @default {true} */
  keepAlive?: boolean;
  /** Aborts the request and its body; the connection is closed. */
  signal: AbortSignal;
}

/** An answer whose body is read on demand. */
export interface Http1Response {
  /** The status line and header fields. */
  readonly head: ResponseHead;
  /** How the body is delimited. */
  readonly framing: BodyFraming;
  /**
   * The next piece of the body (it owns its buffer), or null at its end,
   * when the connection goes back to the pool if it may.
   *
   * @throws {Http1Error} On a malformed or short body; the signal's reason once aborted.
   */
  next(): Promise<Uint8Array | null>;
  /**
   * The next piece when it is at hand without waiting on the connection
   * (as {@linkcode Http1Response.next} would return or throw it then),
   * with no promise made; undefined when a read is needed: call `next()`.
   */
  nextNow?: PiecesAtHand["nextNow"];
  /**
   * True when {@linkcode Http1Response.next} answers without waiting on the
   * connection (bytes received already, or the end): see `BodyReader.ready`.
   */
  readonly ready: boolean;
  /** True once the body was read to its end: the next {@linkcode Http1Response.next} returns null. */
  readonly complete: boolean;
  /** Gives up the body: the connection is closed unless the body was read to its end. */
  close(): void;
}

/** Where a URL is dialled, by URL object (a scraper passes the same one again). */
const endpoints = new WeakMap<URL, { href: string; hostname: string; port: number; key: string }>();

function endpointOf(url: URL): { hostname: string; port: number; key: string } {
  const href = url.href;
  const known = endpoints.get(url);
  if (known !== undefined && known.href === href) return known;
  if (url.protocol !== "http:") throw new TypeError(`not an http URL: ${url}`);
  const hostname = url.hostname.replace(/^\[(.*)\]$/, "$1");
  const port = url.port !== "" ? Number(url.port) : 80;
  const endpoint = { href, hostname, port, key: `${hostname}:${port}` };
  endpoints.set(url, endpoint);
  return endpoint;
}

/** Whether an answer so framed has body bytes to come. */
function hasBody(framing: BodyFraming): boolean {
  return framing.kind === "length" ? framing.length > 0 : framing.kind !== "none";
}

/** Errors that mean a kept-alive connection was closed by the peer meanwhile. */
function isStale(error: unknown): boolean {
  return error instanceof Http1Error ||
    error instanceof Deno.errors.ConnectionReset ||
    error instanceof Deno.errors.BrokenPipe ||
    error instanceof Deno.errors.ConnectionAborted ||
    error instanceof Deno.errors.UnexpectedEof;
}

/**
 * Writes the bytes from `at` on. A caller that wrote them once already
 * calls it only for a partial write's rest: one async step less per write.
 */
async function writeAll(conn: Deno.Conn, bytes: Uint8Array, at = 0): Promise<void> {
  while (at < bytes.byteLength) {
    at += await conn.write(at === 0 ? bytes : bytes.subarray(at));
  }
}

async function dialTcp(hostname: string, port: number, signal: AbortSignal): Promise<Deno.Conn> {
  const conn = await Deno.connect({ hostname, port, signal });
  try {
    conn.setNoDelay(true);
  } catch { /* not fatal */ }
  return conn;
}

/**
 * HTTP/1.1 requests over plain TCP with a bounded keep-alive pool per
 * `host:port`. An idle connection keeps a read pending, so the peer closing
 * it (or sending anything unasked) takes it out of the pool at once. A GET or
 * HEAD that fails on a reused connection before any byte of an answer
 * arrived is sent again, once, on a new connection (as Go's Transport does).
 */
export class Http1Pool {
  readonly #maxIdlePerHost: number;
  readonly #maxIdle: number;
  readonly #idleMs: number;
  readonly #dial: (hostname: string, port: number, signal: AbortSignal) => Promise<Deno.Conn>;
  readonly #readOptions: { pool: ReadBufferPool | null; headroom: number };
  /** Idle connections by `host:port`, oldest first. */
  readonly #idle = new Map<string, PooledConn[]>();
  readonly #open = new Set<PooledConn>();
  #idleCount = 0;
  #closed = false;

  /**
   * Creates an empty pool.
   *
   * @param options Pool bounds and the dialler.
   */
  constructor(options: Http1PoolOptions = {}) {
    this.#maxIdlePerHost = options.maxIdlePerHost ?? 8;
    this.#maxIdle = options.maxIdle ?? 64;
    this.#idleMs = options.idleTimeoutMs ?? 0;
    this.#dial = options.dial ?? dialTcp;
    this.#readOptions = { pool: options.readBuffers ?? null, headroom: options.headroom ?? 0 };
  }

  /** Idle connections kept now. */
  get idle(): number {
    return this.#idleCount;
  }

  /**
   * Sends a request and reads the answer's head; the body is read on demand.
   *
   * @param url The target (`http:` only); its host and port are dialled.
   * @param options Method, head bytes, limits and the signal.
   * @returns The answer.
   * @throws {Http1Error} On a malformed head; dial and socket errors as they come.
   */
  async request(url: URL, options: Http1RequestOptions): Promise<Http1Response> {
    const { signal, method } = options;
    signal.throwIfAborted();
    const { hostname, port, key } = endpointOf(url);
    const keepAlive = options.keepAlive ?? true;
    for (let attempt = 0;; attempt++) {
      let connection = attempt === 0 ? this.#takeIdle(key) : undefined;
      const reused = connection !== undefined;
      if (connection === undefined) {
        let dialled: Deno.Conn;
        try {
          dialled = await this.#dial(hostname, port, signal);
        } catch (error) {
          throw signal.aborted ? signal.reason : error;
        }
        connection = new PooledConn(this.#hooks, dialled, key, this.#readOptions);
      }
      const conn = connection;
      // (The connection's own callback: no closure per request.)
      const abort = conn.abort;
      // A deadline's hook, or an abort listener (lib/abort_hooks.ts).
      onAbort(signal, abort);
      const receivedBefore = conn.reader.received;
      conn.requestStart = receivedBefore;
      let head: ResponseHead;
      let framing: BodyFraming;
      try {
        signal.throwIfAborted();
        const written = await conn.conn.write(options.head);
        if (written < options.head.byteLength) await writeAll(conn.conn, options.head, written);
        // (The head buffered whole, nearly always: parsed without a promise.)
        if (conn.reader.buffered === 0) await conn.reader.fill();
        head = readResponseHeadNow(conn.reader, options.maxHeaderBytes, conn.heads) ??
          await readResponseHead(conn.reader, options.maxHeaderBytes, conn.heads);
        // The head is strings now: a pool buffer that held only the head
        // goes back for the body's read, not to the collector (issue #11).
        conn.reader.releaseConsumed();
        framing = conn.heads.framing(head, method);
        // A head received alone (a target writing head and body apart, the
        // body a moment behind): its body's first bytes are waited for here,
        // in this step, so that the answer comes with a piece at hand (one
        // read through one async step, not five layers of the body's, per
        // scrape; issue #11).
        if (conn.reader.buffered === 0 && hasBody(framing)) await conn.reader.fill();
      } catch (error) {
        offAbort(signal, abort);
        conn.destroy();
        if (signal.aborted) throw signal.reason;
        const noAnswer = conn.reader.received === receivedBefore && isStale(error);
        if (noAnswer && reused && (method === "GET" || method === "HEAD")) continue;
        if (noAnswer && error instanceof Http1Error) {
          const message = "status line: connection ended without an answer";
          throw new Http1Error(message, "ended", undefined, { cause: error });
        }
        throw error;
      }
      const keep = keepAlive && conn.heads.reusable(head, framing);
      const body = new BodyReader(conn.reader, framing, {
        maxTrailerBytes: options.maxHeaderBytes,
      });
      return new PoolResponse(head, framing, body, conn, signal, abort, keep);
    }
  }

  /** Closes every connection, idle or in use; later answers are not kept. */
  close(): void {
    this.#closed = true;
    for (const connection of [...this.#open]) connection.destroy();
  }

  #takeIdle(key: string): PooledConn | undefined {
    const list = this.#idle.get(key);
    const connection = list?.pop();
    if (connection === undefined) return undefined;
    this.#idleCount--;
    // An emptied list stays for the connection's return (a Map delete,
    // a new list and a Map set per request were garbage and work; issue
    // #11); #give drops the empty ones when there are too many.
    connection.clearTimer();
    return connection;
  }

  readonly #hooks: PoolHooks = {
    opened: (connection) => this.#open.add(connection),
    destroyed: (connection) => this.#destroyed(connection),
    give: (connection) => this.#give(connection),
    idle: (connection) => this.#idle.get(connection.key)?.includes(connection) === true,
  };

  #destroyed(connection: PooledConn): void {
    this.#open.delete(connection);
    const list = this.#idle.get(connection.key);
    const at = list?.indexOf(connection) ?? -1;
    if (at < 0) return;
    list!.splice(at, 1);
    this.#idleCount--;
    if (list!.length === 0) this.#idle.delete(connection.key);
  }

  /** Keeps a connection whose answer was read to its end. */
  #give(connection: PooledConn): void {
    const idle = this.#idle;
    let list = idle.get(connection.key);
    if (
      this.#closed || connection.reader.buffered > 0 || this.#maxIdle <= 0 ||
      (list?.length ?? 0) >= this.#maxIdlePerHost
    ) {
      return connection.destroy();
    }
    if (this.#idleCount >= this.#maxIdle) {
      this.#oldestIdle()?.destroy();
      // (The oldest may have been this list's last: its list is gone then.)
      list = idle.get(connection.key);
    }
    if (list === undefined) {
      // More lists than idle connections can fill: the empty ones go.
      if (idle.size >= this.#maxIdle) {
        for (const [key, kept] of idle) if (kept.length === 0) idle.delete(key);
      }
      list = [];
      idle.set(connection.key, list);
    }
    list.push(connection);
    this.#idleCount++;
    connection.watch(this.#idleMs);
  }

  #oldestIdle(): PooledConn | undefined {
    for (const list of this.#idle.values()) if (list.length > 0) return list[0];
    return undefined;
  }
}

/** What a connection tells its pool. */
interface PoolHooks {
  opened(connection: PooledConn): void;
  destroyed(connection: PooledConn): void;
  give(connection: PooledConn): void;
  /** Whether the connection is in the pool's idle lists. */
  idle(connection: PooledConn): boolean;
}

/**
 * An answer on a pooled connection: the connection goes back to the pool
 * (or is closed) when the body ends, fails or is given up. (A class: an
 * object literal with getters cost more to make, once per scrape.)
 */
class PoolResponse implements Http1Response {
  readonly head: ResponseHead;
  readonly framing: BodyFraming;
  readonly #body: BodyReader;
  readonly #conn: PooledConn;
  readonly #signal: AbortSignal;
  readonly #abort: () => void;
  readonly #keep: boolean;
  #finished = false;

  constructor(
    head: ResponseHead,
    framing: BodyFraming,
    body: BodyReader,
    conn: PooledConn,
    signal: AbortSignal,
    abort: () => void,
    keep: boolean,
  ) {
    this.head = head;
    this.framing = framing;
    this.#body = body;
    this.#conn = conn;
    this.#signal = signal;
    this.#abort = abort;
    this.#keep = keep;
    if (body.done) this.#finish(true);
  }

  get ready(): boolean {
    return this.#finished || this.#body.ready;
  }

  get complete(): boolean {
    return this.#body.done;
  }

  async next(): Promise<Uint8Array | null> {
    const body = this.#body;
    const signal = this.#signal;
    if (this.#finished) {
      if (body.done) return null;
      throw signal.aborted ? signal.reason : new Http1Error("body: closed", "ended");
    }
    try {
      const piece = await body.next();
      if (piece === null) this.#finish(true);
      return piece;
    } catch (error) {
      this.#finish(false);
      if (signal.aborted) throw signal.reason;
      throw error;
    }
  }

  nextNow(): Uint8Array | null | undefined {
    const body = this.#body;
    // Finished: next() answers (null, or the reason it was given up).
    if (this.#finished) return body.done ? null : undefined;
    let piece: Uint8Array | null | undefined;
    try {
      piece = body.nextNow();
    } catch (error) {
      this.#finish(false);
      const signal = this.#signal;
      if (signal.aborted) throw signal.reason;
      throw error;
    }
    if (piece === null) this.#finish(true);
    return piece;
  }

  close(): void {
    this.#finish(this.#body.done);
  }

  #finish(clean: boolean): void {
    if (this.#finished) return;
    this.#finished = true;
    offAbort(this.#signal, this.#abort);
    if (clean && this.#keep && !this.#signal.aborted) this.#conn.release();
    else this.#conn.destroy();
  }
}

/** The smallest read an idle connection waits with. */
const MIN_PREFETCH = 4096;

/** A pool's connection. */
class PooledConn {
  readonly reader: ByteReader;
  /** `reader.received` when the last request was sent. */
  requestStart = 0;
  /** The last answer's head, reused (frozen) when the next one's bytes are the same. */
  readonly heads: ResponseHeadCache = new ResponseHeadCache();
  #dead = false;
  /** Closes the connection: its request's abort callback, made once per connection. */
  readonly abort: () => void = () => this.destroy();
  /**
   * The idle deadline: a wait set per release and cleared per take moves a
   * due time, not a timer (a setTimeout and clearTimeout per request were
   * about 4 % of the client's CPU on the module path; issue #11).
   */
  #idleTimer: LazyTimer | null = null;
  #expire: (() => void) | null = null;
  /** Closes the connection when its idle read ends while idle; made once, not per release. */
  #readWhileIdle: (() => void) | null = null;

  constructor(
    readonly pool: PoolHooks,
    readonly conn: Deno.Conn,
    readonly key: string,
    readOptions: ByteReaderOptions,
  ) {
    this.reader = new ByteReader((b) => conn.read(b), 65536, readOptions);
    pool.opened(this);
  }

  release(): void {
    this.pool.give(this);
  }

  /** While idle: closes on the peer's close or unasked bytes, and after `idleMs`. */
  watch(idleMs: number): void {
    // The read waiting for the next answer is sized by the last one (a
    // target answers much the same each time): 64 KiB zeroed for a 1 KiB
    // answer cost more than the answer (issue #11). A larger answer is
    // read on in more reads.
    const last = this.reader.received - this.requestStart;
    const expire = this.#expire ??= this.abort;
    const readWhileIdle = this.#readWhileIdle ??= () => {
      if (this.pool.idle(this)) this.destroy();
    };
    this.reader.prefetch(Math.max(MIN_PREFETCH, 2 ** Math.ceil(Math.log2(last + (last >> 2) + 1))))
      .then(readWhileIdle, expire);
    if (idleMs > 0) {
      this.#idleTimer ??= new LazyTimer();
      this.#idleTimer.set(idleMs, expire);
    }
  }

  clearTimer(): void {
    this.#idleTimer?.clear();
  }

  destroy(): void {
    if (this.#dead) return;
    this.#dead = true;
    this.#idleTimer?.close();
    this.pool.destroyed(this);
    try {
      this.conn.close();
    } catch {
      // Already closed.
    }
  }
}
