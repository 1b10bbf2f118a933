/**
 * Part of lib/http1.ts: the body reader (chunked coding removed in place,
 * read only as fast as asked) and readWholeBody.
 *
 * @module
 */

import { concatBytes } from "./bytes.ts";
import { ByteReader, Http1Error, latin1 } from "./http1_byte_reader.ts";
import type { BodyFraming } from "./http1_head.ts";

/** No bytes, in a buffer of none: what is left after a piece, nearly always. */
const NOTHING = new Uint8Array(0);

/** Limits for {@linkcode BodyReader}. */
export interface BodyReaderOptions {
  /** Longest chunk-size line. @default {1024} */
  maxChunkLineBytes?: number;
  /** Largest chunked trailer section. @default {16384} */
  maxTrailerBytes?: number;
  /**
   * The bytes buffered at the start are the tail of a read that filled a
   * small buffer (a request head's): before the first piece, read once
   * more unless the body ends within them, so that the first piece holds
   * both (one piece to relay, not a small one and then the rest). Without
   * a full read there is nothing waiting and the bytes go on at once.
   * @default {false}
   */
  topUp?: boolean;
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
  #topUp: boolean;
  #toppedUp = false;

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
    this.#topUp = options.topUp === true && reader.buffered > 0 &&
      (framing.kind === "length" || framing.kind === "chunked");
    if (framing.kind === "none" || (framing.kind === "length" && framing.length === 0)) {
      this.#done = true;
    }
  }

  /**
   * True when the first read topped up the bytes buffered at the start
   * (see {@linkcode BodyReaderOptions.topUp}): they were copied into the
   * read's buffer before any piece was given out, so no piece is a view
   * of the buffer they were in.
   */
  get toppedUp(): boolean {
    return this.#toppedUp;
  }

  /** True once the body was read to its end. */
  get done(): boolean {
    return this.#done;
  }

  /**
   * True when {@linkcode next} can answer from bytes already received (or
   * with the end), without waiting on the connection: a hint for a consumer
   * that would rather join its writes (a chunked size line cut short may
   * still need one more read).
   */
  get ready(): boolean {
    return this.#done || this.#reader.buffered > 0;
  }

  /**
   * The next piece of the body.
   *
   * @returns The piece (never empty), or null at the end of the body.
   * @throws {Http1Error} On bad chunked framing or a body cut short.
   */
  next(): Promise<Uint8Array | null> {
    // Chunked, the usual stream: the decoder's promise itself (one async
    // step less per piece).
    if (this.#framing.kind === "chunked" && !this.#done && !this.#topUp) return this.#dechunk();
    return this.#next();
  }

  async #next(): Promise<Uint8Array | null> {
    if (this.#done) return null;
    if (this.#topUp) {
      this.#topUp = false;
      if (!this.#endsWithinBuffered()) this.#toppedUp = await this.#reader.fill();
    }
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

  /**
   * The next piece when it is at hand without waiting on the connection:
   * what {@linkcode next} returns (or throws) then, with no promise made.
   *
   * @returns The piece (never empty), null at the end of the body, or
   *   undefined when bytes must be read first (then call {@linkcode next}).
   * @throws {Http1Error} On bad chunked framing.
   */
  nextNow(): Uint8Array | null | undefined {
    if (this.#done) return null;
    if (this.#topUp || this.#reader.buffered === 0) return undefined;
    switch (this.#framing.kind) {
      case "length": {
        const piece = this.#reader.takeSome(this.#left);
        this.#left -= piece.byteLength;
        if (this.#left === 0) this.#done = true;
        return piece;
      }
      case "close":
        return this.#reader.takeSome(Number.MAX_SAFE_INTEGER);
      case "chunked":
        return this.#dechunkBuffered();
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
      const piece = this.#dechunkBuffered();
      if (piece !== undefined) return piece;
    }
  }

  /**
   * Decodes the buffered bytes: a piece, null at the end, or undefined
   * when they hold no data and not the end (read more, then call again).
   */
  #dechunkBuffered(): Uint8Array | null | undefined {
    const reader = this.#reader;
    const buffer = reader.peek();
    let r = 0;
    // The piece is buffer[start, w): the first run of data stays where it
    // was read; each later one joins it by moving the shorter side over
    // the framing between them (a read that is one chunk moves nothing;
    // one holding the end of a chunk and the start of the next moves the
    // end, not the whole read).
    let start = 0;
    let w = 0;
    let ended = false;
    while (r < buffer.byteLength) {
      if (this.#chunkLeft > 0) {
        const n = Math.min(this.#chunkLeft, buffer.byteLength - r);
        const have = w - start;
        if (have === 0) {
          start = r;
          w = r + n;
        } else if (w === r) w += n;
        else if (have <= n) {
          buffer.copyWithin(r - have, start, w);
          start = r - have;
          w = r + n;
        } else {
          buffer.copyWithin(w, r, r + n);
          w += n;
        }
        r += n;
        this.#chunkLeft -= n;
        if (this.#chunkLeft === 0) this.#chunkLeft = -2;
        continue;
      }
      // The usual framing, read off the bytes: the CRLF after a chunk's
      // data, a bare hexadecimal size line. Anything else (extensions,
      // blanks, trailers, errors) takes the line-by-line way below.
      if (this.#chunkLeft === -2 && buffer[r] === 0x0d && buffer[r + 1] === 0x0a) {
        r += 2;
        this.#chunkLeft = -1;
        continue;
      }
      // The empty line ending a body without trailers, as the line-by-line
      // way reads it (no line decoded).
      if (this.#chunkLeft === -3 && buffer[r] === 0x0d && buffer[r + 1] === 0x0a) {
        this.#trailerBytes += 2;
        if (this.#trailerBytes > this.#maxTrailer) {
          throw new Http1Error("chunked trailer too large", "too-large");
        }
        r += 2;
        ended = true;
        break;
      }
      if (this.#chunkLeft === -1) {
        let size = 0;
        let i = r;
        for (; i < r + 8 && i < buffer.byteLength; i++) {
          const digit = hexDigit(buffer[i]!);
          if (digit < 0) break;
          size = size * 16 + digit;
        }
        if (i > r && i - r <= this.#maxLine && buffer[i] === 0x0d && buffer[i + 1] === 0x0a) {
          r = i + 2;
          this.#chunkSize = size;
          this.#chunkLeft = size === 0 ? -3 : size;
          continue;
        }
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
        // Leading zeros are valid in any number (RFC 9112 §7.1: 1*HEXDIG).
        const size = /^0*([0-9A-Fa-f]{1,8})[ \t]*(?:;.*)?$/.exec(line);
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
    // The data view keeps the buffer to itself: what follows is copied
    // off (nothing, nearly always: no new empty buffer then).
    const some = w > start;
    reader.unread(some ? rest.byteLength === 0 ? NOTHING : rest.slice() : rest);
    if (ended) this.#done = true;
    if (some) return buffer.subarray(start, w);
    if (ended) return null;
    return undefined;
  }

  /**
   * Whether the body ends within the bytes buffered (before any is read):
   * when not, the peer owes more, and reading once more cannot wait for
   * bytes that never come. Chunk extensions or anything unusual count as
   * ending (no read ahead).
   */
  #endsWithinBuffered(): boolean {
    const buffer = this.#reader.peek();
    if (this.#framing.kind === "length") return buffer.byteLength >= this.#left;
    let at = 0;
    for (;;) {
      let size = 0;
      let i = at;
      for (; i < at + 8 && i < buffer.byteLength; i++) {
        const digit = hexDigit(buffer[i]!);
        if (digit < 0) break;
        size = size * 16 + digit;
      }
      if (i >= buffer.byteLength) return false;
      if (i === at || buffer[i] !== 0x0d) return true;
      if (size === 0) return true;
      // Size line, data, CRLF.
      at = i + 2 + size + 2;
      if (at >= buffer.byteLength) return false;
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

/** A hexadecimal digit's value, or -1. */
function hexDigit(byte: number): number {
  if (byte >= 0x30 && byte <= 0x39) return byte - 0x30;
  if (byte >= 0x61 && byte <= 0x66) return byte - 0x57;
  if (byte >= 0x41 && byte <= 0x46) return byte - 0x37;
  return -1;
}

/**
 * Reads a whole (small) body.
 *
 * @param reader The connection's reader.
 * @param framing From {@linkcode bodyFraming}.
 * @param maxBytes Largest body accepted.
 * @returns The body, the only view of its buffer.
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
  if (framing.kind === "length") {
    // (Buffered whole, the usual small answer: taken without a promise.)
    const bytes = reader.buffered >= framing.length
      ? reader.take(framing.length)
      : await reader.exactly(framing.length, "body");
    return bytes.slice();
  }
  return await collectBody(new BodyReader(reader, framing), [], 0, maxBytes);
}

/**
 * {@linkcode readWholeBody} without a promise when a chunked body is at
 * hand to its end (a small answer, nearly always): the body then, else
 * (bytes to read first, another framing) the promise readWholeBody gives.
 *
 * @param reader The connection's reader, at the body's start.
 * @param framing The body's framing.
 * @param maxBytes Larger bodies fail ("too-large").
 * @returns The body's bytes, or a promise of them.
 * @throws {Http1Error} As readWholeBody fails, when the bytes at hand show it.
 */
export function readWholeBodyNow(
  reader: ByteReader,
  framing: BodyFraming,
  maxBytes: number,
): Uint8Array | Promise<Uint8Array> {
  if (framing.kind !== "chunked" || reader.buffered === 0) {
    return readWholeBody(reader, framing, maxBytes);
  }
  const body = new BodyReader(reader, framing);
  // The first piece alone (nearly always all there is: no array), then any more.
  let first: Uint8Array | null = null;
  let parts: Uint8Array[] | null = null;
  let total = 0;
  for (let piece = body.nextNow(); piece !== undefined; piece = body.nextNow()) {
    if (piece !== null) {
      total += piece.byteLength;
      if (total > maxBytes) {
        throw new Http1Error(`body larger than ${maxBytes} bytes`, "too-large");
      }
      if (first === null) first = piece;
      else (parts ??= [first]).push(piece);
      if (!body.done) continue;
    }
    return parts !== null ? concatBytes(parts) : first ?? new Uint8Array(0);
  }
  return collectBody(body, parts ?? (first !== null ? [first] : []), total, maxBytes);
}

/** The rest of a body after `parts` (`total` bytes), joined with them. */
async function collectBody(
  body: BodyReader,
  parts: Uint8Array[],
  total: number,
  maxBytes: number,
): Promise<Uint8Array> {
  // (A body read to its end is not asked again; a piece buffered is taken
  // without a promise.)
  for (
    let piece = body.done ? null : body.nextNow() ?? await body.next();
    piece !== null;
    piece = body.done ? null : body.nextNow() ?? await body.next()
  ) {
    total += piece.byteLength;
    if (total > maxBytes) throw new Http1Error(`body larger than ${maxBytes} bytes`, "too-large");
    parts.push(piece);
  }
  // One piece (the usual small answer) is the only view of its buffer: as it is.
  return parts.length === 1 ? parts[0]! : concatBytes(parts);
}

const HEX = new TextEncoder().encode("0123456789abcdef");

/** The last chunk of chunked transfer coding, with no trailer. */
export const LAST_CHUNK: Uint8Array = new TextEncoder().encode("0\r\n\r\n");

/**
 * A chunk's size line put in front of it, in the chunk's own buffer, after
 * `before` (a response head, or the CRLF still owed to the chunk before):
 * one write and no copy of the data. The CRLF that ends the data is left
 * to the caller, to go in front of the next chunk's size line or of the
 * last chunk (the bytes behind a piece may be the buffer's end).
 *
 * The caller owns the buffer (lib/owned_chunks.ts): the bytes in front of
 * the chunk are overwritten.
 *
 * @param chunk The data; not empty.
 * @param before Bytes to put first.
 * @returns The framed view, or null when there is too little room in front.
 */
export function chunkFrameInPlace(chunk: Uint8Array, before?: Uint8Array): Uint8Array | null {
  const size = chunk.byteLength;
  const at = before?.byteLength ?? 0;
  if (size === 0 || size > 0xffffffff) return null;
  const front = at + chunkSizeLineLength(size);
  if (chunk.byteOffset < front) return null;
  const out = new Uint8Array(chunk.buffer, chunk.byteOffset - front, front + size);
  if (before !== undefined) out.set(before);
  writeChunkSizeLine(out, at, size);
  return out;
}

/**
 * The length of a chunk's size line (hex digits and CRLF), for a producer
 * that writes a chunk whole into its own buffer ({@linkcode writeChunkSizeLine}).
 *
 * @param size The chunk's data length; 1 to 0xffffffff.
 * @returns The size line's length in bytes.
 */
export function chunkSizeLineLength(size: number): number {
  let digits = 1;
  while (size >>> (4 * digits) !== 0 && digits < 8) digits++;
  return digits + 2;
}

/**
 * Writes a chunk's size line at `at`; the data goes right after it, and
 * CRLF after the data.
 *
 * @param out The buffer.
 * @param at Where the line starts.
 * @param size The chunk's data length; 1 to 0xffffffff.
 * @returns Where the data starts.
 */
export function writeChunkSizeLine(out: Uint8Array, at: number, size: number): number {
  const digits = chunkSizeLineLength(size) - 2;
  for (let i = 0, shift = 4 * (digits - 1); i < digits; i++, shift -= 4) {
    out[at + i] = HEX[(size >>> shift) & 0xf]!;
  }
  out[at + digits] = 13;
  out[at + digits + 1] = 10;
  return at + digits + 2;
}

/**
 * The data of a chunk framed whole (size line, data, CRLF) as
 * {@linkcode writeChunkSizeLine}'s producer writes it.
 *
 * @param framed The chunk, framed.
 * @returns A view of its data.
 */
export function chunkData(framed: Uint8Array): Uint8Array {
  let at = 0;
  while (framed[at] !== 13) at++;
  return framed.subarray(at + 2, framed.byteLength - 2);
}

/**
 * A chunk of chunked transfer coding (size line, data, CRLF) in one new
 * buffer, optionally after `before` (a response head): one write, no
 * second copy.
 *
 * @param chunk The data; not empty (an empty chunk ends the body).
 * @param before Bytes to put first.
 * @returns The framed chunk.
 */
export function chunkFrame(chunk: Uint8Array, before?: Uint8Array): Uint8Array {
  const at = before?.byteLength ?? 0;
  const size = chunk.byteLength;
  const out = new Uint8Array(at + chunkSizeLineLength(size) + size + 2);
  if (before !== undefined) out.set(before);
  const data = writeChunkSizeLine(out, at, size);
  out.set(chunk, data);
  out[data + size] = 13;
  out[data + size + 1] = 10;
  return out;
}
