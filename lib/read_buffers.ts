/**
 * A small pool of read buffers of one size, for a reader whose pieces come
 * back once written (the proxy's native edge: a pushed body's pieces are
 * given back by the exchange that relayed them, see
 * proxy/http/native_exchange.ts). A fresh buffer is zeroed by the runtime
 * (a 64 KiB `memset` per read); a recycled one is not, and only the bytes a
 * read wrote are ever handed out.
 *
 * @module
 */

/** Recycled read buffers of one size; see the module doc. */
export class ReadBufferPool {
  /** The size of every buffer. */
  readonly size: number;
  readonly #max: number;
  readonly #free: ArrayBuffer[] = [];

  /**
   * Creates a pool.
   *
   * @param size The size of every buffer, bytes.
   * @param max Most buffers kept for reuse (a burst allocates more; they
   *   are left to the garbage collector). @default {8}
   */
  constructor(size: number, max = 8) {
    this.size = size;
    this.#max = max;
  }

  /** Buffers kept for reuse now. */
  get free(): number {
    return this.#free.length;
  }

  /**
   * A buffer of {@linkcode size} bytes: a recycled one (its bytes are
   * stale), else a new one.
   *
   * @returns The buffer.
   */
  take(): Uint8Array {
    const buffer = this.#free.pop();
    return buffer === undefined ? new Uint8Array(this.size) : new Uint8Array(buffer);
  }

  /**
   * Gives a buffer back for reuse. Only the caller may hold a view of it
   * (whoever took it handed its one view on): no view of it may be read or
   * written after this. Buffers of another size, detached or shared ones,
   * and any beyond the pool's maximum are left alone.
   *
   * @param buffer The buffer.
   * @returns True when it is kept for reuse (else the caller may free it).
   */
  give(buffer: ArrayBufferLike): boolean {
    if (
      !(buffer instanceof ArrayBuffer) || buffer.byteLength !== this.size ||
      this.#free.length >= this.#max || this.#free.includes(buffer)
    ) {
      return false;
    }
    this.#free.push(buffer);
    return true;
  }
}
