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
 * on a new one (as Go's Transport does).
 *
 * @module
 */

/** The backend's connection ended before the body did. */
export class BackendClosedError extends Error {
  /** @param message What happened. */
  constructor(message: string) {
    super(message);
    this.name = "BackendClosedError";
  }
}

/** Bytes asked of the socket per read. */
const READ_BYTES = 64 * 1024;
/** Longest chunk-size or trailer line accepted in a chunked body. */
const MAX_LINE_BYTES = 4096;

/** Keep-alive connections to plain-http backends, by `host:port`. */
export interface BackendPool {
  /** An idle connection to `key`, if one is kept. */
  take(key: string): Deno.TcpConn | undefined;
  /** Keeps a connection whose response was read to its end. */
  give(key: string, conn: Deno.TcpConn): void;
  /** Closes every idle connection. */
  close(): void;
}

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
  const idleMs = options.idleTimeoutMs ?? 5_000;
  const maxIdle = options.maxIdlePerBackend ?? 4;
  const idle = new Map<string, { conn: Deno.TcpConn; timer: ReturnType<typeof setTimeout> }[]>();
  const closeQuietly = (conn: Deno.Conn) => {
    try {
      conn.close();
    } catch { /* already closed */ }
  };
  return {
    take(key) {
      const list = idle.get(key);
      const entry = list?.pop();
      if (list !== undefined && list.length === 0) idle.delete(key);
      if (entry === undefined) return undefined;
      clearTimeout(entry.timer);
      return entry.conn;
    },
    give(key, conn) {
      const list = idle.get(key) ?? [];
      if (list.length >= maxIdle) {
        closeQuietly(conn);
        return;
      }
      const entry = {
        conn,
        timer: setTimeout(() => {
          const at = list.indexOf(entry);
          if (at >= 0) list.splice(at, 1);
          if (list.length === 0 && idle.get(key) === list) idle.delete(key);
          closeQuietly(conn);
        }, idleMs),
      };
      Deno.unrefTimer(entry.timer);
      list.push(entry);
      idle.set(key, list);
    },
    close() {
      for (const list of idle.values()) {
        for (const { conn, timer } of list) {
          clearTimeout(timer);
          closeQuietly(conn);
        }
      }
      idle.clear();
    },
  };
}

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
   * the pool.
   */
  readonly body: ReadableStream<Uint8Array>;
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

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

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
  let head = `GET ${url.pathname}${url.search} HTTP/1.1\r\nhost: ${
    headers["host"]?.[0] ?? url.host
  }\r\n`;
  for (const [name, values] of Object.entries(headers)) {
    if (name === "host" || name === "connection") continue;
    if (!TOKEN.test(name)) throw new TypeError(`Cannot send header name ${JSON.stringify(name)}`);
    for (const value of values) {
      if (!FIELD_VALUE.test(value)) {
        throw new TypeError(`Cannot send the value of header ${name}: it has control characters`);
      }
      head += `${name}: ${value}\r\n`;
    }
  }
  head += keepAlive ? "connection: keep-alive\r\n\r\n" : "connection: close\r\n\r\n";
  const bytes = new Uint8Array(head.length);
  for (let i = 0; i < head.length; i++) bytes[i] = head.charCodeAt(i) & 0xff;
  return bytes;
}

/**
 * Reads a connection, keeping what was read past what was asked. Every view
 * it hands out is the only reference to its buffer once handed out (the
 * rest is copied off), so a consumer may free the buffer after use.
 */
class ConnReader {
  /** Bytes read and not yet consumed. */
  pending: Uint8Array = new Uint8Array(0);
  /** Bytes read in total. */
  read = 0;
  constructor(readonly conn: Deno.TcpConn) {}

  /** Reads more after `pending` (in a new buffer); false at end of stream. */
  async more(): Promise<boolean> {
    const keep = this.pending.byteLength;
    const buffer = new Uint8Array(Math.max(READ_BYTES, keep * 2));
    buffer.set(this.pending);
    const n = await this.conn.read(buffer.subarray(keep));
    if (n === null) return false;
    this.read += n;
    this.pending = buffer.subarray(0, keep + n);
    return true;
  }

  /** Up to `max` bytes: pending ones first, else one read of at most `max`. Null at end. */
  async chunk(max: number): Promise<Uint8Array | null> {
    const pending = this.pending;
    if (pending.byteLength > 0) {
      if (pending.byteLength <= max) {
        this.pending = new Uint8Array(0);
        return pending;
      }
      this.pending = pending.slice(max);
      return pending.subarray(0, max);
    }
    const buffer = new Uint8Array(Math.min(max, READ_BYTES));
    const n = await this.conn.read(buffer);
    if (n === null) return null;
    this.read += n;
    return buffer.subarray(0, n);
  }

  /** A CRLF-terminated line (without it), reading more as needed; null at end. */
  async line(limit: number): Promise<string | null> {
    let from = 0;
    for (;;) {
      const at = indexOfCrlf(this.pending, from);
      if (at >= 0) {
        const text = latin1(this.pending.subarray(0, at));
        this.pending = this.pending.subarray(at + 2);
        return text;
      }
      if (this.pending.byteLength > limit) throw new Error(`a line longer than ${limit} bytes`);
      from = Math.max(0, this.pending.byteLength - 1);
      if (!await this.more()) return null;
    }
  }
}

function indexOfCrlf(bytes: Uint8Array, from: number): number {
  for (let i = bytes.indexOf(13, from); i >= 0; i = bytes.indexOf(13, i + 1)) {
    if (bytes[i + 1] === 10) return i;
  }
  return -1;
}

const UTF8 = new TextDecoder();

function latin1(bytes: Uint8Array): string {
  // Nearly always ASCII, where UTF-8 decoding (native) gives the same text:
  // any other byte would shorten the text or show as U+FFFD.
  const ascii = UTF8.decode(bytes);
  if (ascii.length === bytes.byteLength && !ascii.includes("\uFFFD")) return ascii;
  let text = "";
  for (let i = 0; i < bytes.byteLength; i += 8192) {
    text += String.fromCharCode(...bytes.subarray(i, i + 8192));
  }
  return text;
}

interface Head {
  status: number;
  minor: number;
  headers: [string, string][];
}

/** Reads a response head; null when the connection ended before any byte. */
async function readHead(reader: ConnReader, maxHeaderBytes: number): Promise<Head | null> {
  let from = 0;
  for (;;) {
    const bytes = reader.pending;
    let end = -1;
    for (let i = bytes.indexOf(13, from); i >= 0; i = bytes.indexOf(13, i + 1)) {
      if (bytes[i + 1] === 10 && bytes[i + 2] === 13 && bytes[i + 3] === 10) {
        end = i;
        break;
      }
    }
    if (end >= 0) {
      if (end > maxHeaderBytes) break;
      reader.pending = bytes.subarray(end + 4);
      return parseHead(latin1(bytes.subarray(0, end)));
    }
    if (bytes.byteLength > maxHeaderBytes) break;
    from = Math.max(0, bytes.byteLength - 3);
    if (!await reader.more()) {
      if (reader.read === 0) return null;
      throw new Error("the backend closed the connection inside the response headers");
    }
  }
  throw new Error(`the backend's response headers exceed ${maxHeaderBytes} bytes`);
}

const STATUS_LINE = /^HTTP\/1\.([01]) (\d{3})(?: .*)?$/;

function parseHead(text: string): Head {
  const lines = text.split("\r\n");
  const status = STATUS_LINE.exec(lines[0]!);
  if (status === null) {
    throw new Error(
      `the backend did not answer HTTP/1.x: ${JSON.stringify(lines[0]!.slice(0, 80))}`,
    );
  }
  const headers: [string, string][] = [];
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    const colon = line.indexOf(":");
    const name = colon > 0 ? line.slice(0, colon) : "";
    if (!TOKEN.test(name)) {
      throw new Error(
        `the backend sent a malformed header line ${JSON.stringify(line.slice(0, 80))}`,
      );
    }
    headers.push([name, line.slice(colon + 1).trim()]);
  }
  return { status: Number(status[2]), minor: Number(status[1]), headers };
}

type Framing =
  | { kind: "none" }
  | { kind: "length"; remaining: number }
  | { kind: "chunked" }
  | { kind: "close" };

function framingOf(head: Head): { framing: Framing; length: number | undefined } {
  if (head.status === 204 || head.status === 304) {
    return { framing: { kind: "none" }, length: undefined };
  }
  let transfer: string | undefined;
  let length: string | undefined;
  for (const [name, value] of head.headers) {
    const lower = name.toLowerCase();
    if (lower === "transfer-encoding") transfer = transfer ? `${transfer}, ${value}` : value;
    else if (lower === "content-length") {
      if (length !== undefined && length !== value) {
        throw new Error("the backend sent conflicting Content-Length headers");
      }
      length = value;
    }
  }
  if (transfer !== undefined) {
    const last = transfer.split(",").pop()!.trim().toLowerCase();
    return {
      framing: last === "chunked" ? { kind: "chunked" } : { kind: "close" },
      length: undefined,
    };
  }
  if (length !== undefined) {
    if (!/^\d{1,15}$/.test(length.trim())) {
      throw new Error(`the backend sent an invalid Content-Length ${JSON.stringify(length)}`);
    }
    const n = Number(length.trim());
    return { framing: n === 0 ? { kind: "none" } : { kind: "length", remaining: n }, length: n };
  }
  return { framing: { kind: "close" }, length: undefined };
}

function reusable(head: Head): boolean {
  const connection = head.headers
    .filter(([name]) => name.toLowerCase() === "connection")
    .map(([, value]) => value.toLowerCase())
    .join(",");
  if (/(^|[\s,])close([\s,]|$)/.test(connection)) return false;
  return head.minor === 1 || /(^|[\s,])keep-alive([\s,]|$)/.test(connection);
}

/** Errors that mean a kept-alive connection was closed by the backend meanwhile. */
function isStale(error: unknown): boolean {
  return error instanceof Deno.errors.ConnectionReset ||
    error instanceof Deno.errors.BrokenPipe ||
    error instanceof Deno.errors.ConnectionAborted ||
    error instanceof Deno.errors.UnexpectedEof;
}

function closeQuietly(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch { /* already closed */ }
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
  const hostname = url.hostname.replace(/^\[(.*)\]$/, "$1");
  const port = url.port === "" ? 80 : Number(url.port);
  const key = `${hostname}:${port}`;
  const head = requestHead(request, pool !== undefined);
  signal.throwIfAborted();
  const reused = pool?.take(key);
  if (reused !== undefined) {
    try {
      return await exchange(reused, head, request, key, signal);
    } catch (error) {
      // As Go's Transport: a GET that failed on a reused connection before
      // any answer is sent again, once, on a new one.
      if (signal.aborted || !(error instanceof StaleConnection)) throw unwrap(error);
    }
  }
  const conn = await Deno.connect({ hostname, port, signal });
  try {
    conn.setNoDelay(true);
  } catch { /* not fatal */ }
  try {
    return await exchange(conn, head, request, key, signal);
  } catch (error) {
    throw unwrap(error);
  }
}

/** A reused connection failed before any answer. */
class StaleConnection extends Error {
  constructor(readonly original: unknown) {
    super("the kept-alive connection was closed by the backend");
  }
}

function unwrap(error: unknown): unknown {
  return error instanceof StaleConnection
    ? new Error("the backend closed the connection without answering", { cause: error.original })
    : error;
}

async function exchange(
  conn: Deno.TcpConn,
  head: Uint8Array,
  request: BackendRequest,
  key: string,
  signal: AbortSignal,
): Promise<BackendResponse> {
  let released = false;
  const onAbort = () => release(false);
  function release(keep: boolean) {
    if (released) return;
    released = true;
    signal.removeEventListener("abort", onAbort);
    if (keep && request.pool !== undefined && !signal.aborted) request.pool.give(key, conn);
    else closeQuietly(conn);
  }
  signal.addEventListener("abort", onAbort, { once: true });
  const reader = new ConnReader(conn);
  let parsed: Head | null;
  try {
    let written = 0;
    while (written < head.byteLength) written += await conn.write(head.subarray(written));
    do {
      parsed = await readHead(reader, request.maxHeaderBytes);
      // 1xx answers (100 Continue, 103 Early Hints) precede the real one.
    } while (
      parsed !== null && parsed.status >= 100 && parsed.status < 200 && parsed.status !== 101
    );
  } catch (error) {
    release(false);
    if (signal.aborted) throw signal.reason;
    if (reader.read === 0 && isStale(error)) throw new StaleConnection(error);
    throw error;
  }
  if (parsed === null) {
    release(false);
    throw new StaleConnection(new Deno.errors.UnexpectedEof("no answer"));
  }
  let framing: Framing;
  let length: number | undefined;
  try {
    ({ framing, length } = framingOf(parsed));
  } catch (error) {
    release(false);
    throw error;
  }
  const keep = reusable(parsed);
  if (framing.kind === "none") {
    release(keep && reader.pending.byteLength === 0);
    const empty = new ReadableStream<Uint8Array>({ start: (controller) => controller.close() });
    return { status: parsed.status, headers: parsed.headers, contentLength: length, body: empty };
  }
  const closedMidBody = () =>
    new BackendClosedError(
      `module ${request.moduleName}: the backend closed the connection mid-body`,
    );
  /**
   * Chunked state: bytes left of the current chunk; -1 before a size line,
   * -2 before the CRLF after data, -3 in the trailers.
   */
  let chunkLeft = -1;
  /**
   * The data of the next read(s), with the chunk framing removed in place
   * (data moved over the size lines), so that one read gives one chunk.
   */
  async function dechunk(): Promise<[Uint8Array, boolean]> {
    let starved = reader.pending.byteLength === 0;
    for (;;) {
      if (starved && !await reader.more()) throw closedMidBody();
      starved = true;
      const buffer = reader.pending;
      let r = 0;
      let w = 0;
      let ended = false;
      while (r < buffer.byteLength) {
        if (chunkLeft > 0) {
          const n = Math.min(chunkLeft, buffer.byteLength - r);
          if (w !== r) buffer.copyWithin(w, r, r + n);
          w += n;
          r += n;
          chunkLeft -= n;
          if (chunkLeft === 0) chunkLeft = -2;
          continue;
        }
        const at = indexOfCrlf(buffer, r);
        if (at < 0) break;
        const line = latin1(buffer.subarray(r, at));
        r = at + 2;
        if (chunkLeft === -2) {
          if (line !== "") throw new Error("the backend sent a malformed chunked body");
          chunkLeft = -1;
        } else if (chunkLeft === -3) {
          // Trailers, up to the empty line that ends the body.
          if (line === "") {
            ended = true;
            break;
          }
        } else {
          const size = /^([0-9a-fA-F]{1,12})[\t ]*(?:;.*)?$/.exec(line);
          if (size === null) throw new Error("the backend sent a malformed chunk size");
          chunkLeft = parseInt(size[1]!, 16);
          if (chunkLeft === 0) chunkLeft = -3;
        }
      }
      const rest = buffer.subarray(r);
      if (!ended && chunkLeft <= 0 && rest.byteLength > MAX_LINE_BYTES) {
        throw new Error(`the backend sent a chunked-body line longer than ${MAX_LINE_BYTES} bytes`);
      }
      // The data view keeps the buffer to itself: what follows is copied off.
      reader.pending = w > 0 ? rest.slice() : rest;
      if (w > 0 || ended) return [buffer.subarray(0, w), ended];
    }
  }
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        switch (framing.kind) {
          case "length": {
            const chunk = await reader.chunk(framing.remaining);
            if (chunk === null) throw closedMidBody();
            framing.remaining -= chunk.byteLength;
            controller.enqueue(chunk);
            if (framing.remaining === 0) {
              release(keep && reader.pending.byteLength === 0);
              controller.close();
            }
            return;
          }
          case "close": {
            const chunk = await reader.chunk(READ_BYTES);
            if (chunk === null) {
              release(false);
              controller.close();
            } else controller.enqueue(chunk);
            return;
          }
          case "chunked": {
            const [chunk, ended] = await dechunk();
            if (chunk.byteLength > 0) controller.enqueue(chunk);
            if (ended) {
              release(keep && reader.pending.byteLength === 0);
              controller.close();
            }
            return;
          }
        }
      } catch (error) {
        release(false);
        controller.error(signal.aborted ? signal.reason : readError(error, closedMidBody));
      }
    },
    cancel() {
      release(false);
    },
  }, { highWaterMark: 0 });
  return { status: parsed.status, headers: parsed.headers, contentLength: length, body };
}

function readError(error: unknown, closedMidBody: () => Error): unknown {
  if (
    error instanceof Deno.errors.ConnectionReset || error instanceof Deno.errors.UnexpectedEof ||
    error instanceof Deno.errors.BadResource || error instanceof Deno.errors.Interrupted
  ) return closedMidBody();
  return error;
}
