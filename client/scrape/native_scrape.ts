/**
 * The client's HTTP/1.1 requests to plain-http targets on native I/O
 * (`Deno.connect`), with a bounded keep-alive pool per target. Bodies are
 * passed on as the reads deliver them (bytes as the target sent them: gzip
 * stays compressed, which `fetch` would not do) and parsed strictly
 * (lib/http1.ts): header block size limit, Content-Length, chunked or
 * close-delimited framing, short bodies reported as errors.
 *
 * @module
 */

import type { HeaderField } from "../../lib/headers.ts";
import { Http1Pool, type Http1Response } from "../../lib/http1.ts";
import { BODY_PROGRESS, type BodyProgress } from "../../lib/owned_chunks.ts";
import { ReadBufferPool } from "../../lib/read_buffers.ts";
import type { ClosableScrapeTransport, TargetResponse } from "./scrape_types.ts";

/** Options for {@linkcode createNativeScrapeTransport}. */
export interface NativeScrapeOptions {
  /** Largest response header block. @default {16384} */
  maxHeaderBytes?: number;
  /** Idle connections kept per target. @default {8} */
  maxIdlePerTarget?: number;
  /** Idle connections kept in all. @default {64} */
  maxIdle?: number;
  /** Dials (tests). @default {Deno.connect} */
  dial?: (hostname: string, port: number) => Promise<Deno.Conn>;
}

export type { ClosableScrapeTransport } from "./scrape_types.ts";

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;
const encoder = new TextEncoder();
/** The size of a target read (lib/http1_pool.ts reads 64 KiB at most). */
const READ_BYTES = 65536;
/**
 * Left free at the front of each read buffer: the native push writes its
 * framing there (chunk size, envelope prefix; on the first piece the Push's
 * request head and head message too), in front of the piece, instead of
 * copying the piece behind it (client/transport/native_push.ts).
 */
const HEADROOM_BYTES = 1024;

/**
 * Creates the native transport for `http:` URLs.
 *
 * @param options Limits and pool sizes.
 * @returns The transport; `close()` ends its pooled connections.
 */
export function createNativeScrapeTransport(
  options: NativeScrapeOptions = {},
): ClosableScrapeTransport {
  const maxHeaderBytes = options.maxHeaderBytes ?? 16384;
  const dial = options.dial;
  // Targets' answers are read into these; the native push gives each
  // piece's buffer back once written to the proxy (issue #11: a new zeroed
  // 64 KiB buffer per read cost CPU and churned the heap). At most 8 kept.
  const buffers = new ReadBufferPool(READ_BYTES);
  // What a body's return() gives, made once: a push closes every body
  // with it, and a new promise and result each were garbage (issue #11).
  const ended: Promise<IteratorResult<Uint8Array, undefined>> = Promise.resolve(
    Object.freeze({ done: true, value: undefined }),
  );
  const pool = new Http1Pool({
    maxIdlePerHost: options.maxIdlePerTarget ?? 8,
    maxIdle: options.maxIdle ?? 64,
    readBuffers: buffers,
    headroom: HEADROOM_BYTES,
    ...(dial !== undefined
      ? { dial: (hostname: string, port: number) => dial(hostname, port) }
      : {}),
  });

  // The last request's URL, method and fields and its head's bytes: the
  // next scrape of the same URL with equal fields (Prometheus sends the
  // same ones every scrape) skips building, checking and encoding the
  // head (issue #11). The bytes are only ever written, never changed.
  let lastUrl: URL | null = null;
  let lastHref = "";
  let lastMethod = "";
  let lastFields: readonly HeaderField[] = [];
  // The same list again, when frozen (a scraper's, fields frozen too): equal without a look.
  let lastFrozen: readonly HeaderField[] | null = null;
  let lastHead: Uint8Array | null = null;
  const headFor = (url: URL, method: string, fields: readonly HeaderField[]): Uint8Array => {
    if (
      lastHead !== null && url === lastUrl && url.href === lastHref && method === lastMethod &&
      (fields === lastFrozen || sameFields(fields, lastFields))
    ) {
      return lastHead;
    }
    const head = encoder.encode(requestHead(url, method, fields));
    lastUrl = url;
    lastHref = url.href;
    lastMethod = method;
    lastFields = fields.map(({ name, value }) => ({ name, value }));
    lastFrozen = Object.isFrozen(fields) && fields.every((field) => Object.isFrozen(field))
      ? fields
      : null;
    lastHead = head;
    return head;
  };

  // The target's answer as the scraper takes it: made once, not a closure
  // (nor an async function's frame) per scrape (issue #11).
  const answer = (response: Http1Response): TargetResponse => ({
    status: response.head.status,
    headers: response.head.headers,
    body: new NativeBody(response, buffers, ended),
  });

  const send = (
    url: URL,
    init: { method: string; headers: readonly HeaderField[]; signal: AbortSignal },
  ): Promise<TargetResponse> => {
    // (Failures before the request reject the promise, as an async function's would;
    // the pool refuses a URL that is not http.)
    try {
      init.signal.throwIfAborted();
      const head = headFor(url, init.method, init.headers);
      return pool.request(url, {
        method: init.method,
        head,
        maxHeaderBytes,
        signal: init.signal,
      }).then(answer);
    } catch (error) {
      return Promise.reject(error);
    }
  };

  return Object.assign(send, {
    close() {
      pool.close();
    },
  });
}

/**
 * A target's body as it is read: each piece is the only view of its buffer
 * (native push gives it back to the read buffers once sent), and the body tells without waiting
 * whether its next piece is at hand ({@linkcode BODY_PROGRESS}). What an
 * async generator did, without one's per-piece cost; the connection is
 * given back (or closed) when the body ends, fails or is given up.
 */
class NativeBody implements AsyncIterableIterator<Uint8Array>, BodyProgress {
  readonly #response: Http1Response;
  readonly #buffers: ReadBufferPool;
  readonly #ended: Promise<IteratorResult<Uint8Array, undefined>>;
  #closed = false;

  constructor(
    response: Http1Response,
    buffers: ReadBufferPool,
    ended: Promise<IteratorResult<Uint8Array, undefined>>,
  ) {
    this.#response = response;
    this.#buffers = buffers;
    this.#ended = ended;
  }

  get [BODY_PROGRESS](): BodyProgress {
    return this;
  }

  get ready(): boolean {
    return this.#closed || this.#response.ready;
  }

  get complete(): boolean {
    return this.#closed || this.#response.complete;
  }

  /** Each piece is the only view of its buffer (lib/http1.ts): native push reuses it once sent. */
  get owned(): boolean {
    return true;
  }

  /** The read buffers a piece's buffer goes back to once written. */
  get pool(): ReadBufferPool {
    return this.#buffers;
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<Uint8Array> {
    return this;
  }

  nextNow(): Uint8Array | null | undefined {
    if (this.#closed) return null;
    let piece: Uint8Array | null | undefined;
    try {
      piece = this.#response.nextNow?.();
    } catch (error) {
      this.#close();
      throw error;
    }
    if (piece === null) this.#close();
    return piece;
  }

  async next(): Promise<IteratorResult<Uint8Array, undefined>> {
    if (this.#closed) return { done: true, value: undefined };
    let piece: Uint8Array | null;
    try {
      piece = await this.#response.next();
    } catch (error) {
      this.#close();
      throw error;
    }
    if (piece === null) {
      this.#close();
      return { done: true, value: undefined };
    }
    return { done: false, value: piece };
  }

  /** Gives the body up; the result is the transport's one frozen `done` result. */
  return(): Promise<IteratorResult<Uint8Array, undefined>> {
    this.#close();
    return this.#ended;
  }

  #close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#response.close();
  }
}

/** Whether two field lists hold the same names and values in the same order. */
function sameFields(a: readonly HeaderField[], b: readonly HeaderField[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    if (a[i]!.name !== b[i]!.name || a[i]!.value !== b[i]!.value) return false;
  }
  return true;
}

/** The request line and header block; throws on a header that cannot be sent. */
function requestHead(url: URL, method: string, headers: readonly HeaderField[]): string {
  if (!TOKEN.test(method)) throw new TypeError(`invalid method ${JSON.stringify(method)}`);
  let host = url.host;
  let text = "";
  for (const { name, value } of headers) {
    if (!TOKEN.test(name) || !FIELD_VALUE.test(value)) {
      throw new TypeError(`invalid header ${JSON.stringify(name)}`);
    }
    if (name.toLowerCase() === "host") host = value;
    else text += `${name}: ${value}\r\n`;
  }
  return `${method} ${url.pathname}${url.search} HTTP/1.1\r\nhost: ${host}\r\n${text}\r\n`;
}
