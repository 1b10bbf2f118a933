/**
 * The client's one HTTP/1.1 client on `Deno.connect`: a strict response
 * reader (status line, header block with a size limit, bodies framed by
 * Content-Length, chunked transfer coding or the end of the connection;
 * HEAD/204/304 have none), a body reader that removes chunked coding in
 * place and reads only as fast as it is asked, and a bounded keep-alive
 * pool. Used by native push (client/transport/native_push.ts), native scrape
 * (client/scrape/native_scrape.ts) and the modules' http backend
 * (client/modules/backend_http.ts), so a parsing fix lands in one place.
 *
 * @module
 */

/** Reads into `buffer`; resolves the byte count, or null at the end of the stream. */
export type ReadFn = (buffer: Uint8Array) => Promise<number | null>;

/** Why a response was refused: lets callers word the error their own way. */
export type Http1ErrorKind =
  | "status-line"
  | "header-line"
  | "too-large"
  | "ended"
  | "framing"
  | "body";

/** A malformed, oversized or cut-short response. */
export class Http1Error extends Error {
  /** Always "Http1Error". */
  override name = "Http1Error";
  /** What was wrong. */
  readonly kind: Http1ErrorKind;
  /** The offending line, for a malformed status or header line. */
  readonly line: string | undefined;
  /**
   * Creates the error.
   *
   * @param message What was wrong.
   * @param kind Its class.
   * @param line The offending line.
   * @param options The cause.
   */
  constructor(
    message: string,
    kind: Http1ErrorKind = "framing",
    line?: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.kind = kind;
    this.line = line;
  }
}

/**
 * A buffered reader over a connection that can keep one read pending while
 * idle. Every read lands in a fresh buffer; a view handed out as body data
 * ({@linkcode ByteReader.readSome}, {@linkcode readBody}) is the only
 * reference to its buffer (what follows is copied off), so a consumer may
 * free the buffer after use (`chunk.buffer.transfer(0)`).
 */
export class ByteReader {
  #read: ReadFn;
  #data: Uint8Array = new Uint8Array(0);
  #pending: Promise<number | null> | null = null;
  #pendingBuffer: Uint8Array | null = null;
  #readBytes: number;
  #ended = false;
  #received = 0;

  /**
   * Creates a reader over a source of bytes.
   *
   * @param read The source.
   * @param readBytes Size of each read. @default {65536}
   */
  constructor(read: ReadFn, readBytes = 65536) {
    this.#read = read;
    this.#readBytes = readBytes;
  }

  /** Bytes buffered and not consumed. */
  get buffered(): number {
    return this.#data.byteLength;
  }

  /** Bytes received from the source so far. */
  get received(): number {
    return this.#received;
  }

  /** True once the source ended. */
  get ended(): boolean {
    return this.#ended;
  }

  /**
   * Starts a read without waiting for it (an idle connection's watch); the
   * next {@linkcode fill} takes its result.
   *
   * @returns The pending read: resolves when bytes or the end arrive.
   */
  prefetch(): Promise<number | null> {
    if (this.#pending === null) {
      this.#pendingBuffer = new Uint8Array(this.#readBytes);
      this.#pending = this.#read(this.#pendingBuffer);
    }
    return this.#pending;
  }

  /**
   * Reads once more from the source, into a new buffer holding the
   * unconsumed bytes first.
   *
   * @returns False at the end of the stream.
   */
  async fill(): Promise<boolean> {
    if (this.#ended) return false;
    const keep = this.#data.byteLength;
    let buffer: Uint8Array;
    let n: number | null;
    if (this.#pending !== null) {
      const pending = this.#pending;
      const read = this.#pendingBuffer!;
      this.#pending = null;
      this.#pendingBuffer = null;
      n = await pending;
      if (n !== null && keep > 0) {
        buffer = new Uint8Array(keep + n);
        buffer.set(this.#data);
        buffer.set(read.subarray(0, n), keep);
      } else buffer = read;
    } else {
      buffer = new Uint8Array(keep + Math.max(this.#readBytes, keep));
      buffer.set(this.#data);
      n = await this.#read(buffer.subarray(keep));
    }
    if (n === null) {
      this.#ended = true;
      return false;
    }
    this.#received += n;
    this.#data = buffer.subarray(0, keep + n);
    return true;
  }

  /** The buffered bytes, not consumed (body decoding may rewrite them in place). */
  peek(): Uint8Array {
    return this.#data;
  }

  /** Replaces the buffered bytes (what is left after decoding in place). */
  unread(rest: Uint8Array): void {
    this.#data = rest;
  }

  /** Consumes `n` buffered bytes and returns them (a view). */
  take(n: number): Uint8Array {
    const out = this.#data.subarray(0, n);
    this.#data = this.#data.subarray(n);
    return out;
  }

  /**
   * Reads through the next CRLF.
   *
   * @param max Longest line accepted, CRLF excluded.
   * @param what Names the line in errors.
   * @returns The line without CRLF, as latin-1 text.
   */
  async line(max: number, what: string): Promise<string> {
    for (let from = 0;;) {
      const data = this.#data;
      const lf = data.indexOf(0x0a, from);
      if (lf >= 0) return this.#takeLine(lf, max, what);
      if (data.byteLength > max + 1) {
        throw new Http1Error(`${what}: longer than ${max} bytes`, "too-large");
      }
      from = data.byteLength;
      if (!(await this.fill())) throw new Http1Error(`${what}: connection ended`, "ended");
    }
  }

  /**
   * The next line when it is buffered whole, without waiting: what
   * {@linkcode line} returns (or throws) then, but with no promise made.
   *
   * @param max Longest line accepted, CRLF excluded.
   * @param what Names the line in errors.
   * @returns The line without CRLF, or null when more bytes are needed
   *   (then call {@linkcode line}).
   */
  lineNow(max: number, what: string): string | null {
    const lf = this.#data.indexOf(0x0a);
    return lf < 0 ? null : this.#takeLine(lf, max, what);
  }

  #takeLine(lf: number, max: number, what: string): string {
    const data = this.#data;
    if (lf === 0 || data[lf - 1] !== 0x0d) {
      throw new Http1Error(`${what}: line not ended by CRLF`, "framing");
    }
    if (lf - 1 > max) throw new Http1Error(`${what}: longer than ${max} bytes`, "too-large");
    const text = latin1(data.subarray(0, lf - 1));
    this.#data = data.subarray(lf + 1);
    return text;
  }

  /**
   * Up to `max` bytes: the buffered ones first, else one read from the source
   * straight into a fresh buffer. The view returned owns its buffer.
   *
   * @param max Most bytes returned.
   * @returns The bytes, or null at the end of the stream.
   */
  async readSome(max: number): Promise<Uint8Array | null> {
    if (this.#data.byteLength === 0 && this.#pending !== null) await this.fill();
    const data = this.#data;
    if (data.byteLength > 0) {
      if (data.byteLength <= max) {
        this.#data = new Uint8Array(0);
        return data;
      }
      // The rest is copied off: the view returned keeps the buffer to itself.
      this.#data = data.slice(max);
      return data.subarray(0, max);
    }
    if (this.#ended) return null;
    const buffer = new Uint8Array(Math.min(max, this.#readBytes));
    const n = await this.#read(buffer);
    if (n === null) {
      this.#ended = true;
      return null;
    }
    this.#received += n;
    return buffer.subarray(0, n);
  }

  /** Reads exactly `n` bytes. */
  async exactly(n: number, what: string): Promise<Uint8Array> {
    while (this.#data.byteLength < n) {
      if (!(await this.fill())) {
        throw new Http1Error(
          `${what}: connection ended after ${this.#data.byteLength} of ${n} bytes`,
          "ended",
        );
      }
    }
    return this.take(n);
  }
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

/** A response's status line and header fields. */
export interface ResponseHead {
  /** The status code. */
  status: number;
  /** "1.1" or "1.0". */
  version: string;
  /** Header fields in arrival order, names lower-cased. */
  headers: [string, string][];
  /** The same fields with names as received. */
  rawHeaders: [string, string][];
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
// Field values: visible characters, spaces, tabs and obs-text; no CR, LF or NUL.
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

/**
 * Reads a status line and header block; skips 1xx interim responses.
 *
 * @param reader The connection's reader.
 * @param maxHeaderBytes Largest header block accepted (status line included).
 * @returns The head.
 * @throws {Http1Error} On anything malformed or too large.
 */
export async function readResponseHead(
  reader: ByteReader,
  maxHeaderBytes: number,
): Promise<ResponseHead> {
  for (;;) {
    let budget = maxHeaderBytes;
    // Most lines are buffered already: read them without a promise each.
    const statusLine = reader.lineNow(budget, "status line") ??
      await reader.line(budget, "status line");
    budget -= statusLine.length + 2;
    const match = /^HTTP\/(1\.[01]) ([1-9][0-9]{2})(?: .*)?$/.exec(statusLine);
    if (match === null) {
      throw new Http1Error(
        `malformed status line ${JSON.stringify(statusLine.slice(0, 64))}`,
        "status-line",
        statusLine,
      );
    }
    const headers: [string, string][] = [];
    const rawHeaders: [string, string][] = [];
    for (;;) {
      if (budget < 2) {
        throw new Http1Error(`header block larger than ${maxHeaderBytes} bytes`, "too-large");
      }
      let line: string;
      try {
        line = reader.lineNow(budget - 2, "header line") ??
          await reader.line(budget - 2, "header line");
      } catch (error) {
        if (error instanceof Http1Error && error.kind === "too-large") {
          throw new Http1Error(`header block larger than ${maxHeaderBytes} bytes`, "too-large");
        }
        throw error;
      }
      budget -= line.length + 2;
      if (line === "") break;
      const colon = line.indexOf(":");
      const name = colon > 0 ? line.slice(0, colon) : "";
      if (!TOKEN.test(name)) {
        throw new Http1Error(
          `malformed header line ${JSON.stringify(line.slice(0, 64))}`,
          "header-line",
          line,
        );
      }
      const value = line.slice(colon + 1).replace(/^[ \t]+|[ \t]+$/g, "");
      if (!FIELD_VALUE.test(value)) {
        throw new Http1Error(`bad characters in header ${name}`, "header-line", line);
      }
      headers.push([name.toLowerCase(), value]);
      rawHeaders.push([name, value]);
    }
    const status = Number(match[2]);
    if (status >= 100 && status < 200 && status !== 101) continue;
    return { status, version: match[1]!, headers, rawHeaders };
  }
}

/** How a response body is delimited. */
export type BodyFraming =
  | { kind: "length"; length: number }
  | { kind: "chunked" }
  | { kind: "close" }
  | { kind: "none" };

/**
 * Decides the body framing from the head (RFC 9112 §6.3).
 *
 * @param head The response head.
 * @param requestMethod The request's method (HEAD responses have no body).
 * @returns The framing.
 * @throws {Http1Error} On conflicting or invalid framing headers.
 */
export function bodyFraming(
  head: Pick<ResponseHead, "status" | "headers">,
  requestMethod: string,
): BodyFraming {
  if (requestMethod === "HEAD" || head.status === 204 || head.status === 304) {
    return { kind: "none" };
  }
  const te = head.headers.filter(([n]) => n === "transfer-encoding").map(([, v]) => v);
  const cl = head.headers.filter(([n]) => n === "content-length").map(([, v]) => v);
  if (te.length > 0) {
    if (cl.length > 0) throw new Http1Error("both Transfer-Encoding and Content-Length");
    const codings = te.join(",").split(",").map((c) => c.trim().toLowerCase());
    if (codings.length !== 1 || codings[0] !== "chunked") {
      throw new Http1Error(`unsupported Transfer-Encoding ${JSON.stringify(te.join(", "))}`);
    }
    return { kind: "chunked" };
  }
  if (cl.length > 0) {
    const values = new Set(cl.join(",").split(",").map((v) => v.trim()));
    const [only] = values;
    if (values.size !== 1 || only === undefined || !/^[0-9]{1,15}$/.test(only)) {
      throw new Http1Error(`invalid Content-Length ${JSON.stringify(cl.join(", "))}`);
    }
    return { kind: "length", length: Number(only) };
  }
  return { kind: "close" };
}

/**
 * Whether the connection may carry another request after this response.
 *
 * @param head The response head.
 * @param framing Its body framing.
 * @returns True when it may.
 */
export function reusable(head: ResponseHead, framing: BodyFraming): boolean {
  if (framing.kind === "close") return false;
  const connection = head.headers.filter(([n]) => n === "connection")
    .flatMap(([, v]) => v.toLowerCase().split(",").map((t) => t.trim()));
  if (connection.includes("close")) return false;
  return head.version === "1.1" || connection.includes("keep-alive");
}

/** Limits for {@linkcode BodyReader}. */
export interface BodyReaderOptions {
  /** Longest chunk-size line. @default {1024} */
  maxChunkLineBytes?: number;
  /** Largest chunked trailer section. @default {16384} */
  maxTrailerBytes?: number;
}

/**
 * Reads a body piece by piece, only when asked (nothing is read ahead of
 * the consumer). Chunked transfer coding is removed in place: the data of
 * one socket read is moved over the chunk framing inside that read's
 * buffer, and the piece returned is the only reference to its buffer.
 */
export class BodyReader {
  readonly #reader: ByteReader;
  readonly #framing: BodyFraming;
  readonly #maxLine: number;
  readonly #maxTrailer: number;
  #left: number;
  /** Chunked: bytes left of the chunk; -1 before a size line, -2 before the CRLF after data, -3 in the trailers. */
  #chunkLeft = -1;
  #chunkSize = 0;
  #trailerBytes = 0;
  #done = false;

  /**
   * Creates a body reader.
   *
   * @param reader The connection's reader, just past the head.
   * @param framing From {@linkcode bodyFraming}.
   * @param options Limits.
   */
  constructor(reader: ByteReader, framing: BodyFraming, options: BodyReaderOptions = {}) {
    this.#reader = reader;
    this.#framing = framing;
    this.#maxLine = options.maxChunkLineBytes ?? 1024;
    this.#maxTrailer = options.maxTrailerBytes ?? 16384;
    this.#left = framing.kind === "length" ? framing.length : 0;
    if (framing.kind === "none" || (framing.kind === "length" && framing.length === 0)) {
      this.#done = true;
    }
  }

  /** True once the body was read to its end. */
  get done(): boolean {
    return this.#done;
  }

  /**
   * The next piece of the body.
   *
   * @returns The piece (never empty), or null at the end of the body.
   * @throws {Http1Error} On bad chunked framing or a body cut short.
   */
  async next(): Promise<Uint8Array | null> {
    if (this.#done) return null;
    switch (this.#framing.kind) {
      case "length": {
        const total = this.#framing.length;
        const piece = await this.#reader.readSome(this.#left);
        if (piece === null) {
          throw new Http1Error(
            `body ended after ${total - this.#left} of ${total} bytes`,
            "ended",
          );
        }
        this.#left -= piece.byteLength;
        if (this.#left === 0) this.#done = true;
        return piece;
      }
      case "close": {
        const piece = await this.#reader.readSome(Number.MAX_SAFE_INTEGER);
        if (piece === null) this.#done = true;
        return piece;
      }
      case "chunked":
        return await this.#dechunk();
      default:
        return null;
    }
  }

  async #dechunk(): Promise<Uint8Array | null> {
    const reader = this.#reader;
    let starved = reader.buffered === 0;
    for (;;) {
      if (starved && !await reader.fill()) throw this.#endedError();
      starved = true;
      const buffer = reader.peek();
      let r = 0;
      let w = 0;
      let ended = false;
      while (r < buffer.byteLength) {
        if (this.#chunkLeft > 0) {
          const n = Math.min(this.#chunkLeft, buffer.byteLength - r);
          if (w !== r) buffer.copyWithin(w, r, r + n);
          w += n;
          r += n;
          this.#chunkLeft -= n;
          if (this.#chunkLeft === 0) this.#chunkLeft = -2;
          continue;
        }
        const lf = buffer.indexOf(0x0a, r);
        if (lf < 0) break;
        if (lf === r || buffer[lf - 1] !== 0x0d) {
          throw new Http1Error(
            this.#chunkLeft === -2
              ? "chunk data not followed by CRLF"
              : `${this.#what()}: line not ended by CRLF`,
          );
        }
        const lineBytes = lf - 1 - r;
        if (this.#chunkLeft === -3) {
          this.#trailerBytes += lineBytes + 2;
          if (this.#trailerBytes > this.#maxTrailer) {
            throw new Http1Error("chunked trailer too large", "too-large");
          }
        } else if (lineBytes > this.#maxLine) {
          throw new Http1Error(`${this.#what()}: longer than ${this.#maxLine} bytes`, "too-large");
        }
        const line = latin1(buffer.subarray(r, lf - 1));
        r = lf + 1;
        if (this.#chunkLeft === -2) {
          if (line !== "") throw new Http1Error("chunk data not followed by CRLF");
          this.#chunkLeft = -1;
        } else if (this.#chunkLeft === -3) {
          if (line === "") {
            ended = true;
            break;
          }
        } else {
          const size = /^([0-9A-Fa-f]{1,8})[ \t]*(?:;.*)?$/.exec(line);
          if (size === null) {
            throw new Http1Error(`malformed chunk size ${JSON.stringify(line.slice(0, 32))}`);
          }
          this.#chunkSize = parseInt(size[1]!, 16);
          this.#chunkLeft = this.#chunkSize === 0 ? -3 : this.#chunkSize;
        }
      }
      const rest = buffer.subarray(r);
      if (!ended && this.#chunkLeft <= 0) {
        if (this.#chunkLeft === -3) {
          if (this.#trailerBytes + rest.byteLength > this.#maxTrailer + 2) {
            throw new Http1Error("chunked trailer too large", "too-large");
          }
        } else if (rest.byteLength > this.#maxLine + 2) {
          throw new Http1Error(`${this.#what()}: longer than ${this.#maxLine} bytes`, "too-large");
        }
      }
      // The data view keeps the buffer to itself: what follows is copied off.
      reader.unread(w > 0 ? rest.slice() : rest);
      if (ended) this.#done = true;
      if (w > 0) return buffer.subarray(0, w);
      if (ended) return null;
    }
  }

  #what(): string {
    return this.#chunkLeft === -3 ? "chunked trailer" : "chunk size";
  }

  #endedError(): Http1Error {
    if (this.#chunkLeft > 0) {
      return new Http1Error(
        `body ended inside a chunk: connection ended after ${
          this.#chunkSize - this.#chunkLeft
        } of ${this.#chunkSize} bytes`,
        "ended",
      );
    }
    return new Http1Error(
      `${this.#chunkLeft === -2 ? "chunk" : this.#what()}: connection ended`,
      "ended",
    );
  }
}

/**
 * Reads a whole (small) body.
 *
 * @param reader The connection's reader.
 * @param framing From {@linkcode bodyFraming}.
 * @param maxBytes Largest body accepted.
 * @returns The body.
 * @throws {Http1Error} On bad chunked framing, a short body or one above `maxBytes`.
 */
export async function readWholeBody(
  reader: ByteReader,
  framing: BodyFraming,
  maxBytes: number,
): Promise<Uint8Array> {
  if (framing.kind === "length" && framing.length > maxBytes) {
    throw new Http1Error(`body of ${framing.length} bytes is larger than ${maxBytes}`, "too-large");
  }
  if (framing.kind === "length") return (await reader.exactly(framing.length, "body")).slice();
  const body = new BodyReader(reader, framing);
  const parts: Uint8Array[] = [];
  let total = 0;
  for (let piece = await body.next(); piece !== null; piece = await body.next()) {
    total += piece.byteLength;
    if (total > maxBytes) throw new Http1Error(`body larger than ${maxBytes} bytes`, "too-large");
    parts.push(piece);
  }
  if (parts.length === 1) return parts[0]!.slice();
  const out = new Uint8Array(total);
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.byteLength;
  }
  return out;
}

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
  /** Gives up the body: the connection is closed unless the body was read to its end. */
  close(): void;
}

/** Errors that mean a kept-alive connection was closed by the peer meanwhile. */
function isStale(error: unknown): boolean {
  return error instanceof Http1Error ||
    error instanceof Deno.errors.ConnectionReset ||
    error instanceof Deno.errors.BrokenPipe ||
    error instanceof Deno.errors.ConnectionAborted ||
    error instanceof Deno.errors.UnexpectedEof;
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  for (let at = 0; at < bytes.byteLength;) {
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
    if (url.protocol !== "http:") throw new TypeError(`not an http URL: ${url}`);
    const hostname = url.hostname.replace(/^\[(.*)\]$/, "$1");
    const port = url.port !== "" ? Number(url.port) : 80;
    const key = `${hostname}:${port}`;
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
        connection = new PooledConn(this.#hooks, dialled, key);
      }
      const conn = connection;
      const abort = () => conn.destroy();
      signal.addEventListener("abort", abort, { once: true });
      const receivedBefore = conn.reader.received;
      let head: ResponseHead;
      let framing: BodyFraming;
      try {
        signal.throwIfAborted();
        await writeAll(conn.conn, options.head);
        head = await readResponseHead(conn.reader, options.maxHeaderBytes);
        framing = bodyFraming(head, method);
      } catch (error) {
        signal.removeEventListener("abort", abort);
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
      const keep = keepAlive && reusable(head, framing);
      const body = new BodyReader(conn.reader, framing, {
        maxTrailerBytes: options.maxHeaderBytes,
      });
      let finished = false;
      const finish = (clean: boolean) => {
        if (finished) return;
        finished = true;
        signal.removeEventListener("abort", abort);
        if (clean && keep && !signal.aborted) conn.release();
        else conn.destroy();
      };
      if (body.done) finish(true);
      return {
        head,
        framing,
        async next() {
          if (finished) {
            if (body.done) return null;
            throw signal.aborted ? signal.reason : new Http1Error("body: closed", "ended");
          }
          try {
            const piece = await body.next();
            if (piece === null) finish(true);
            return piece;
          } catch (error) {
            finish(false);
            if (signal.aborted) throw signal.reason;
            throw error;
          }
        },
        close() {
          finish(body.done);
        },
      };
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
    if (list!.length === 0) this.#idle.delete(key);
    connection.clearTimer();
    return connection;
  }

  readonly #hooks: PoolHooks = {
    opened: (connection) => this.#open.add(connection),
    destroyed: (connection) => this.#destroyed(connection),
    give: (connection) => this.#give(connection),
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
    const list = this.#idle.get(connection.key) ?? [];
    if (
      this.#closed || connection.reader.buffered > 0 || list.length >= this.#maxIdlePerHost ||
      this.#maxIdle <= 0
    ) {
      return connection.destroy();
    }
    if (this.#idleCount >= this.#maxIdle) this.#oldestIdle()?.destroy();
    list.push(connection);
    this.#idle.set(connection.key, list);
    this.#idleCount++;
    connection.watch(this.#idleMs, () => this.#idle.get(connection.key)?.includes(connection));
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
}

/** A pool's connection. */
class PooledConn {
  readonly reader: ByteReader;
  #dead = false;
  #timer: ReturnType<typeof setTimeout> | undefined;

  constructor(readonly pool: PoolHooks, readonly conn: Deno.Conn, readonly key: string) {
    this.reader = new ByteReader((b) => conn.read(b));
    pool.opened(this);
  }

  release(): void {
    this.pool.give(this);
  }

  /** While idle: closes on the peer's close or unasked bytes, and after `idleMs`. */
  watch(idleMs: number, isIdle: () => boolean | undefined): void {
    this.reader.prefetch().then(
      () => {
        if (isIdle()) this.destroy();
      },
      () => this.destroy(),
    );
    if (idleMs > 0) {
      this.#timer = setTimeout(() => this.destroy(), idleMs);
      Deno.unrefTimer(this.#timer);
    }
  }

  clearTimer(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  destroy(): void {
    if (this.#dead) return;
    this.#dead = true;
    this.clearTimer();
    this.pool.destroyed(this);
    try {
      this.conn.close();
    } catch {
      // Already closed.
    }
  }
}
