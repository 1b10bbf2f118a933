/**
 * A small, strict HTTP/1.1 response reader over a byte source (a Deno.Conn):
 * status line, header block with a size limit, and bodies framed by
 * Content-Length, chunked transfer coding or the end of the connection.
 * Used by the client's native push path (client/native_push.ts); pure apart
 * from the `read` function it is given.
 *
 * @module
 */

/** Reads into `buffer`; resolves the byte count, or null at the end of the stream. */
export type ReadFn = (buffer: Uint8Array) => Promise<number | null>;

/** A malformed or oversized response. */
export class Http1Error extends Error {
  override name = "Http1Error";
}

/** A buffered reader that can keep one read pending while idle. */
export class ByteReader {
  #read: ReadFn;
  #data: Uint8Array = new Uint8Array(0);
  #pending: Promise<number | null> | null = null;
  #scratch: Uint8Array;
  #ended = false;

  /**
   * @param read The source.
   * @param scratchBytes Size of each read. @default {16384}
   */
  constructor(read: ReadFn, scratchBytes = 16384) {
    this.#read = read;
    this.#scratch = new Uint8Array(scratchBytes);
  }

  /** Bytes buffered and not consumed. */
  get buffered(): number {
    return this.#data.byteLength;
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
    this.#pending ??= this.#read(this.#scratch);
    return this.#pending;
  }

  /**
   * Reads once more from the source.
   *
   * @returns False at the end of the stream.
   */
  async fill(): Promise<boolean> {
    if (this.#ended) return false;
    const pending = this.#pending ?? this.#read(this.#scratch);
    this.#pending = null;
    const n = await pending;
    if (n === null) {
      this.#ended = true;
      return false;
    }
    const next = new Uint8Array(this.#data.byteLength + n);
    next.set(this.#data);
    next.set(this.#scratch.subarray(0, n), this.#data.byteLength);
    this.#data = next;
    return true;
  }

  /** The buffered bytes, not consumed. */
  peek(): Uint8Array {
    return this.#data;
  }

  /** Consumes `n` buffered bytes and returns them. */
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
      if (lf >= 0) {
        if (lf === 0 || data[lf - 1] !== 0x0d) {
          throw new Http1Error(`${what}: line not ended by CRLF`);
        }
        if (lf - 1 > max) throw new Http1Error(`${what}: longer than ${max} bytes`);
        const text = latin1(data.subarray(0, lf - 1));
        this.take(lf + 1);
        return text;
      }
      if (data.byteLength > max + 1) throw new Http1Error(`${what}: longer than ${max} bytes`);
      from = data.byteLength;
      if (!(await this.fill())) throw new Http1Error(`${what}: connection ended`);
    }
  }

  /**
   * Up to `max` bytes: the buffered ones first, else one read from the source
   * straight into a fresh buffer (handed on without another copy).
   *
   * @param max Most bytes returned.
   * @param readBytes Size of a fresh read. @default {65536}
   * @returns The bytes, or null at the end of the stream.
   */
  async readSome(max: number, readBytes = 65536): Promise<Uint8Array | null> {
    if (this.#data.byteLength === 0 && this.#pending !== null) await this.fill();
    if (this.#data.byteLength > 0) return this.take(Math.min(max, this.#data.byteLength));
    if (this.#ended) return null;
    const buffer = new Uint8Array(Math.min(max, readBytes));
    const n = await this.#read(buffer);
    if (n === null) {
      this.#ended = true;
      return null;
    }
    // A short read would pin the whole buffer while it travels on.
    return n * 4 < buffer.byteLength ? buffer.slice(0, n) : buffer.subarray(0, n);
  }

  /** Reads exactly `n` bytes. */
  async exactly(n: number, what: string): Promise<Uint8Array> {
    while (this.#data.byteLength < n) {
      if (!(await this.fill())) {
        throw new Http1Error(
          `${what}: connection ended after ${this.#data.byteLength} of ${n} bytes`,
        );
      }
    }
    return this.take(n);
  }
}

function latin1(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i++) s += String.fromCharCode(bytes[i]!);
  return s;
}

/** A response's status line and header fields. */
export interface ResponseHead {
  status: number;
  /** "1.1" or "1.0". */
  version: string;
  /** Header fields in arrival order, names lower-cased. */
  headers: [string, string][];
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
    const statusLine = await reader.line(budget, "status line");
    budget -= statusLine.length + 2;
    const match = /^HTTP\/(1\.[01]) ([1-9][0-9]{2})(?: .*)?$/.exec(statusLine);
    if (match === null) {
      throw new Http1Error(`malformed status line ${JSON.stringify(statusLine.slice(0, 64))}`);
    }
    const headers: [string, string][] = [];
    for (;;) {
      if (budget < 2) throw new Http1Error(`header block larger than ${maxHeaderBytes} bytes`);
      let line: string;
      try {
        line = await reader.line(budget - 2, "header line");
      } catch (error) {
        if (error instanceof Http1Error && /longer than/.test(error.message)) {
          throw new Http1Error(`header block larger than ${maxHeaderBytes} bytes`);
        }
        throw error;
      }
      budget -= line.length + 2;
      if (line === "") break;
      const colon = line.indexOf(":");
      const name = colon > 0 ? line.slice(0, colon) : "";
      if (!TOKEN.test(name)) {
        throw new Http1Error(`malformed header line ${JSON.stringify(line.slice(0, 64))}`);
      }
      const value = line.slice(colon + 1).replace(/^[ \t]+|[ \t]+$/g, "");
      if (!FIELD_VALUE.test(value)) throw new Http1Error(`bad characters in header ${name}`);
      headers.push([name.toLowerCase(), value]);
    }
    const status = Number(match[2]);
    if (status >= 100 && status < 200 && status !== 101) continue;
    return { status, version: match[1]!, headers };
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
export function bodyFraming(head: ResponseHead, requestMethod: string): BodyFraming {
  if (requestMethod === "HEAD" || head.status === 204 || head.status === 304) {
    return { kind: "none" };
  }
  const te = head.headers.filter(([n]) => n === "transfer-encoding").map(([, v]) => v);
  const cl = head.headers.filter(([n]) => n === "content-length").map(([, v]) => v);
  if (te.length > 0) {
    if (cl.length > 0) throw new Http1Error("both Transfer-Encoding and Content-Length");
    const codings = te.join(",").split(",").map((c) => c.trim().toLowerCase());
    if (
      codings[codings.length - 1] !== "chunked" || codings.indexOf("chunked") !== codings.length - 1
    ) {
      throw new Http1Error(`unsupported Transfer-Encoding ${JSON.stringify(te.join(", "))}`);
    }
    if (codings.length !== 1) {
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
 */
export function reusable(head: ResponseHead, framing: BodyFraming): boolean {
  if (framing.kind === "close") return false;
  const connection = head.headers.filter(([n]) => n === "connection")
    .flatMap(([, v]) => v.toLowerCase().split(",").map((t) => t.trim()));
  if (connection.includes("close")) return false;
  return head.version === "1.1" || connection.includes("keep-alive");
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
  switch (framing.kind) {
    case "none":
      return new Uint8Array(0);
    case "length":
      if (framing.length > maxBytes) {
        throw new Http1Error(`body of ${framing.length} bytes is larger than ${maxBytes}`);
      }
      return (await reader.exactly(framing.length, "body")).slice();
    case "close": {
      while (await reader.fill()) {
        if (reader.buffered > maxBytes) {
          throw new Http1Error(`body larger than ${maxBytes} bytes`);
        }
      }
      return reader.take(reader.buffered).slice();
    }
    case "chunked": {
      const parts: Uint8Array[] = [];
      let total = 0;
      for (;;) {
        const sizeLine = await reader.line(1024, "chunk size");
        const match = /^([0-9A-Fa-f]{1,8})[ \t]*(?:;.*)?$/.exec(sizeLine);
        if (match === null) {
          throw new Http1Error(`malformed chunk size ${JSON.stringify(sizeLine.slice(0, 32))}`);
        }
        const size = parseInt(match[1]!, 16);
        if (size === 0) break;
        total += size;
        if (total > maxBytes) throw new Http1Error(`body larger than ${maxBytes} bytes`);
        parts.push((await reader.exactly(size, "chunk")).slice());
        const crlf = await reader.exactly(2, "chunk");
        if (crlf[0] !== 0x0d || crlf[1] !== 0x0a) {
          throw new Http1Error("chunk data not followed by CRLF");
        }
      }
      // Trailer fields, bounded, then the empty line.
      for (let budget = 16384;;) {
        const line = await reader.line(budget, "chunked trailer");
        if (line === "") break;
        budget -= line.length + 2;
        if (budget <= 0) throw new Http1Error("chunked trailer too large");
      }
      const out = new Uint8Array(total);
      let at = 0;
      for (const part of parts) {
        out.set(part, at);
        at += part.byteLength;
      }
      return out;
    }
  }
}
