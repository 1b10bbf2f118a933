/**
 * Part of lib/http1.ts: the read function, Http1Error and the buffered
 * ByteReader over a connection.
 *
 * @module
 */

import type { ReadBufferPool } from "./read_buffers.ts";

/** No bytes, in a buffer of none (shared: never written, never given away). */
const NOTHING = new Uint8Array(0);

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
 * free the buffer after use (`chunk.buffer.transfer(0)`), or give it back
 * to the reader's pool ({@linkcode ByteReaderOptions.pool}) once written.
 */
export class ByteReader {
  #read: ReadFn;
  readonly #pool: ReadBufferPool | null;
  readonly #headroom: number;
  #data: Uint8Array = new Uint8Array(0);
  #pending: Promise<number | null> | null = null;
  #pendingBuffer: Uint8Array | null = null;
  /** Whether the pending read's buffer is the pool's. */
  #pendingPooled = false;
  #readBytes: number;
  #ended = false;
  #received = 0;
  #lastReadFull = false;
  /** A buffer no view of which is kept (see recycle); null when none. */
  #spare: ArrayBuffer | null = null;
  /** The buffer of the last read when this reader made it (not a pool's); else null. */
  #own: ArrayBufferLike | null = null;
  /** The buffer of the last read when it is the pool's; else null. */
  #pooledRead: ArrayBufferLike | null = null;
  /** The last read's buffer, lent with the bytes handed over by letGo(true); see takeBack. */
  #lent: ArrayBuffer | null = null;
  /** Whether nothing of the lent buffer was handed over with it (no bytes were left). */
  #lentClean = false;
  /** Whether the lent buffer came back (see giveBack). */
  #lentBack = false;

  /**
   * Creates a reader over a source of bytes.
   *
   * @param read The source.
   * @param readBytes Size of each read. @default {65536}
   * @param options Where read buffers come from.
   */
  constructor(read: ReadFn, readBytes = 65536, options: ByteReaderOptions = {}) {
    this.#read = read;
    this.#readBytes = readBytes;
    const pool = options.pool ?? null;
    this.#pool = pool !== null && pool.size === readBytes ? pool : null;
    const headroom = options.headroom ?? 0;
    this.#headroom = this.#pool !== null && headroom > 0 && headroom <= readBytes / 4
      ? headroom
      : 0;
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
   * True when the last read from the source filled its buffer: more bytes
   * were probably waiting already.
   */
  get lastReadFull(): boolean {
    return this.#lastReadFull;
  }

  /**
   * Starts a read without waiting for it (an idle connection's watch); the
   * next {@linkcode fill} takes its result.
   *
   * @param size The read's size (the next answer's expected size, say):
   *   at most the reader's read size. Above a quarter of it, with a pool,
   *   the read goes into a pool buffer (behind the headroom).
   *   @default {the read size}
   * @returns The pending read: resolves when bytes or the end arrive.
   */
  prefetch(size: number = this.#readBytes): Promise<number | null> {
    if (this.#pending === null) {
      const bytes = Math.max(1, Math.min(size, this.#readBytes));
      const room = this.#headroom;
      this.#pendingPooled = this.#pool !== null && bytes > this.#readBytes / 4;
      this.#pendingBuffer = this.#pendingPooled
        ? this.#pool!.take().subarray(room, room + Math.min(bytes, this.#readBytes - room))
        : this.#fresh(bytes);
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
    let pooled = false;
    if (this.#pending !== null) {
      const pending = this.#pending;
      const read = this.#pendingBuffer!;
      this.#pending = null;
      this.#pendingBuffer = null;
      n = await pending;
      this.#lastReadFull = n === read.byteLength;
      if (n !== null && keep > 0) {
        buffer = new Uint8Array(keep + n);
        buffer.set(this.#data);
        buffer.set(read.subarray(0, n), keep);
        // Copied off: nothing else has a view of the pool's buffer.
        if (this.#pendingPooled) this.#pool!.give(read.buffer);
      } else {
        buffer = read;
        pooled = this.#pendingPooled;
      }
    } else {
      // From the pool when what is kept leaves most of a buffer to read into.
      pooled = this.#pool !== null && keep <= this.#readBytes / 4;
      buffer = pooled
        ? this.#pool!.take().subarray(this.#headroom)
        : keep === 0
        ? this.#fresh(this.#readBytes)
        : new Uint8Array(keep + Math.max(this.#readBytes, keep));
      buffer.set(this.#data);
      n = await this.#read(buffer.subarray(keep));
      this.#lastReadFull = n === buffer.byteLength - keep;
    }
    if (n === null) {
      this.#ended = true;
      return false;
    }
    this.#received += n;
    this.#data = buffer.subarray(0, keep + n);
    this.#own = pooled ? null : buffer.buffer;
    this.#pooledRead = pooled ? buffer.buffer : null;
    return true;
  }

  /**
   * The owner's word that no view of the bytes read so far is kept (a
   * request head decoded into strings, say): the buffer they are in is read
   * into again by the next read that starts with nothing buffered, instead
   * of a fresh one. Bytes still buffered keep it until they are consumed.
   */
  recycle(): void {
    const buffer = this.#data.buffer;
    // Only a buffer this reader made for its last read: not a pool's, nor
    // one of bytes handed over by unread.
    this.#spare = buffer === this.#own && buffer instanceof ArrayBuffer ? buffer : null;
  }

  /**
   * The owner's word that no view of the bytes consumed so far is kept (a
   * response head decoded into strings, its body not begun): when nothing
   * is left buffered and the buffer they were read into is the pool's, it
   * goes back to the pool, to be read into again, instead of to the
   * garbage collector (a new zeroed one taken for the body's read).
   */
  releaseConsumed(): void {
    const buffer = this.#data.buffer;
    if (this.#data.byteLength !== 0 || buffer !== this.#pooledRead || this.#pool === null) return;
    this.#pooledRead = null;
    this.#data = NOTHING;
    this.#pool.give(buffer);
  }

  /**
   * The owner's word that it is done with a piece this reader handed out
   * (body bytes decoded into strings, say) and keeps no view of its buffer:
   * when that is the buffer of the last read and this reader made it (not
   * a pool's), the next read that starts with nothing buffered goes into
   * it, instead of a fresh one. Anything else is ignored.
   *
   * @param piece A view of the buffer given back.
   */
  reuse(piece: Uint8Array): void {
    const buffer = piece.buffer;
    if (
      buffer === this.#own && buffer instanceof ArrayBuffer &&
      (this.#data.byteLength === 0 || this.#data.buffer !== buffer) &&
      this.#pendingBuffer?.buffer !== buffer
    ) {
      this.#spare = buffer;
    }
  }

  /**
   * True when no read is pending and the source did not end: a reader
   * that another one stood in for (see {@linkcode letGo}) may read again.
   */
  get idle(): boolean {
    return this.#pending === null && !this.#ended;
  }

  /**
   * Hands over the bytes buffered and lets go of every buffer (the last
   * read's, a spare one): the reader keeps nothing while another one
   * reads the source, and reads into new buffers when taken up again
   * (with {@linkcode unread}).
   *
   * @param lend Keep the last read's buffer (when this reader made it)
   *   for {@linkcode takeBack}: the bytes handed over may be in it, and
   *   only the owner can tell whether a view of them survives.
   * @returns The bytes buffered, not consumed.
   */
  letGo(lend = false): Uint8Array {
    const rest = this.#data;
    const own = this.#own;
    this.#lent = lend && own instanceof ArrayBuffer ? own : null;
    this.#lentClean = rest.byteLength === 0;
    this.#lentBack = false;
    this.#data = NOTHING;
    this.#own = this.#pooledRead = this.#spare = null;
    return rest;
  }

  /**
   * The owner's word on the buffer kept by {@linkcode letGo}(true), when
   * it takes this reader up again: `copiedOff` says the bytes handed over
   * were all copied into another buffer before any view of them was given
   * out (a body reader's first read, see BodyReader's `toppedUp`). Then, or
   * when no bytes were handed over, no view of the buffer survives and the
   * next read that starts with nothing buffered goes into it, instead of a
   * fresh one; else it is let go of.
   *
   * @param copiedOff The bytes handed over are copied off, none given out.
   */
  takeBack(copiedOff: boolean): void {
    const lent = this.#lent;
    this.#lent = null;
    if (lent !== null && (copiedOff || this.#lentClean || this.#lentBack)) this.#spare = lent;
  }

  /**
   * The owner's word that `buffer` is free: the one view of it handed out
   * (a body piece marked as owned, see lib/owned_chunks.ts) is written and
   * dropped. When it is the buffer lent by {@linkcode letGo}(true), the
   * next {@linkcode takeBack} keeps it to read into; anything else is
   * ignored.
   *
   * @param buffer A buffer no view of which is kept.
   */
  giveBack(buffer: ArrayBufferLike): void {
    if (buffer === this.#lent) this.#lentBack = true;
  }

  /** A buffer of `size` bytes to read into: the spare one when it may be, else a new one. */
  #fresh(size: number): Uint8Array {
    const spare = this.#spare;
    this.#spare = null;
    if (spare !== null && this.#data.byteLength === 0 && spare.byteLength >= size) {
      return new Uint8Array(spare, 0, size);
    }
    return new Uint8Array(size);
  }

  /** The buffered bytes, not consumed (body decoding may rewrite them in place). */
  peek(): Uint8Array {
    return this.#data;
  }

  /** Replaces the buffered bytes (what is left after decoding in place). */
  unread(rest: Uint8Array): void {
    this.#data = rest;
  }

  /**
   * Consumes `n` buffered bytes, as {@linkcode take} without making a view
   * of them (a head already parsed into strings).
   *
   * @param n Bytes to consume, at most those buffered.
   */
  skip(n: number): void {
    this.#data = this.#data.subarray(n);
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
    if (this.#data.byteLength > 0) return this.takeSome(max);
    if (this.#ended) return null;
    const size = Math.min(max, this.#readBytes);
    const room = this.#headroom;
    const buffer = this.#pool !== null
      ? this.#pool.take().subarray(room, room + Math.min(size, this.#readBytes - room))
      : new Uint8Array(size);
    const n = await this.#read(buffer);
    this.#lastReadFull = n === buffer.byteLength;
    if (n === null) {
      this.#ended = true;
      return null;
    }
    this.#received += n;
    return buffer.subarray(0, n);
  }

  /**
   * Up to `max` of the buffered bytes, without waiting: what
   * {@linkcode readSome} returns while bytes are buffered. The view
   * returned owns its buffer.
   *
   * @param max Most bytes returned.
   * @returns The bytes; empty when none are buffered.
   */
  takeSome(max: number): Uint8Array {
    const data = this.#data;
    if (data.byteLength <= max) {
      this.#data = NOTHING;
      return data;
    }
    // The rest is copied off: the view returned keeps the buffer to itself.
    this.#data = data.slice(max);
    return data.subarray(0, max);
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

/** Options for {@linkcode ByteReader}. */
export interface ByteReaderOptions {
  /**
   * Buffers of the read size to read into (used only when its size is the
   * reader's read size), for a consumer that gives each piece's buffer
   * back once done with it.
   */
  pool?: ReadBufferPool | null;
  /**
   * Bytes left unread at the start of each pool buffer (at most a quarter
   * of it), so that a piece's consumer may put a few bytes of its own in
   * front of the piece in the same buffer (a response head). @default {0}
   */
  headroom?: number;
}

const UTF8 = new TextDecoder();

/**
 * Decodes header bytes as Latin-1 (each byte one character).
 *
 * @param bytes The bytes.
 * @returns The text.
 */
export function latin1(bytes: Uint8Array): string {
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
