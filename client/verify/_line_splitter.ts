/**
 * Splits a body pushed in arbitrary chunks into lines without decoding it.
 * A complete line inside a chunk is handed out in place; only the current
 * partial line is copied between chunks, bounded by `maxLineBytes`.
 *
 * @private Internal code, does not follow semantic versioning.
 * @module
 */

import { VerificationError } from "./verification_error.ts";

/** Line feed. */
const NL = 0x0a;

/** A partial line buffer larger than this is dropped once its line is done. */
const SHRINK_ABOVE = 65536;

/**
 * A pull lexer of lines: {@linkcode feed} a chunk, then call
 * {@linkcode next} until it returns false; each true leaves the line in
 * `bytes[start, end)`.
 */
export class LineSplitter {
  readonly #maxLineBytes: number;
  #partial = new Uint8Array(4096);
  #partialLength = 0;
  #chunk: Uint8Array = new Uint8Array(0);
  #pos = 0;
  #fromPartial = false;

  /** Lines handed out so far (the current line's number, 1-based). */
  lineNo = 0;
  /** The current line's bytes (with others around it). */
  bytes: Uint8Array = this.#partial;
  /** Where the current line starts in {@linkcode bytes}. */
  start = 0;
  /** Where the current line ends (before its line feed). */
  end = 0;

  /**
   * Creates a splitter.
   *
   * @param maxLineBytes Longest accepted line in bytes, without its line feed.
   */
  constructor(maxLineBytes: number) {
    this.#maxLineBytes = maxLineBytes;
  }

  /**
   * Starts on the next chunk.
   *
   * @param chunk Body bytes.
   */
  feed(chunk: Uint8Array): void {
    this.#chunk = chunk;
    this.#pos = 0;
  }

  /** True while the fed chunk has bytes not handed out or carried yet. */
  get pending(): boolean {
    return this.#pos < this.#chunk.length;
  }

  /**
   * Hands out the next complete line, or carries the rest of the chunk
   * over to the next one.
   *
   * @returns True with a line; false when the chunk is used up.
   * @throws {VerificationError} When a line exceeds `maxLineBytes`.
   */
  next(): boolean {
    if (this.#fromPartial) this.#shrink();
    const chunk = this.#chunk;
    const pos = this.#pos;
    const n = chunk.length;
    if (pos >= n) return false;
    const nl = chunk.indexOf(NL, pos);
    if (nl < 0) {
      this.#carry(chunk, pos, n);
      this.#pos = n;
      return false;
    }
    this.#pos = nl + 1;
    if (this.#partialLength > 0) {
      this.#carry(chunk, pos, nl);
      this.#handOutPartial();
    } else {
      if (nl - pos > this.#maxLineBytes) this.#failLineTooLong();
      this.lineNo++;
      this.bytes = chunk;
      this.start = pos;
      this.end = nl;
    }
    return true;
  }

  /** True when a partial line was carried over from earlier chunks. */
  get carried(): boolean {
    return this.#partialLength > 0;
  }

  /**
   * Hands out the last line when the body did not end with a line feed.
   *
   * @returns True with a line; false when nothing is left.
   */
  last(): boolean {
    if (this.#partialLength === 0) return false;
    this.#handOutPartial();
    return true;
  }

  #handOutPartial(): void {
    this.lineNo++;
    this.bytes = this.#partial;
    this.start = 0;
    this.end = this.#partialLength;
    this.#partialLength = 0;
    this.#fromPartial = true;
  }

  /** Drops a grown partial buffer once the line it held was handled. */
  #shrink(): void {
    this.#fromPartial = false;
    if (this.#partial.length > SHRINK_ABOVE) this.#partial = new Uint8Array(4096);
  }

  #carry(src: Uint8Array, start: number, end: number): void {
    const needed = this.#partialLength + (end - start);
    if (needed > this.#maxLineBytes) this.#failLineTooLong();
    if (needed > this.#partial.length) {
      const grown = new Uint8Array(
        Math.min(
          this.#maxLineBytes,
          Math.max(needed, this.#partial.length * 2),
        ),
      );
      grown.set(this.#partial.subarray(0, this.#partialLength));
      this.#partial = grown;
    }
    this.#partial.set(src.subarray(start, end), this.#partialLength);
    this.#partialLength = needed;
  }

  #failLineTooLong(): never {
    const line = this.lineNo + 1;
    throw new VerificationError(
      `line ${line}: line exceeds the limit of ${this.#maxLineBytes} bytes`,
      { kind: "too_large", line },
    );
  }
}
