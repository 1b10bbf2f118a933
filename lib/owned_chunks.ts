/**
 * Body chunks whose buffer belongs to whoever consumes them. The native
 * scrape path's bodies say so of every piece they read from a target (each
 * is the only view of its own buffer, see lib/http1.ts) through their
 * {@linkcode BodyProgress}; single chunks can be marked
 * ({@linkcode markOwned}). The native push gives such a chunk's buffer
 * back to the body's read buffers ({@linkcode BodyProgress.pool}), or
 * frees it, as soon as its bytes are written to the proxy, instead of
 * leaving it to the garbage collector. Under 8 concurrent 20 MiB scrapes
 * this lowers the client's peak RSS by about a fifth (README
 * "Performance"). Chunks from anywhere else (node:http, modules) are
 * never marked, so never freed here.
 *
 * @module
 */

import type { ReadBufferPool } from "./read_buffers.ts";

const owned = new WeakSet<Uint8Array>();

/**
 * Marks a chunk as the only view of its buffer, handed to its consumer.
 *
 * @param chunk The chunk.
 * @returns The same chunk.
 */
export function markOwned(chunk: Uint8Array): Uint8Array {
  owned.add(chunk);
  return chunk;
}

/**
 * Whether a chunk is marked ({@linkcode markOwned}).
 *
 * @param chunk The chunk.
 * @returns True when marked.
 */
export function isOwned(chunk: Uint8Array): boolean {
  return owned.has(chunk);
}

/**
 * Takes the mark off a chunk, for a consumer that does with its buffer
 * what it likes (gives it back to a pool once written, say).
 *
 * @param chunk The chunk.
 * @returns True when it was marked.
 */
export function takeOwned(chunk: Uint8Array): boolean {
  return owned.delete(chunk);
}

/**
 * Frees a marked chunk's buffer (the chunk reads as empty afterwards);
 * leaves any other chunk alone.
 *
 * @param chunk A chunk the caller is done with.
 * @returns True when it was marked and is freed now.
 */
export function releaseOwned(chunk: Uint8Array): boolean {
  if (!owned.delete(chunk)) return false;
  freeBuffer(chunk);
  return true;
}

/**
 * Frees a chunk's buffer (it reads as empty afterwards): only for a chunk
 * known to be the only view of its buffer, such as a piece of a body whose
 * {@linkcode BodyProgress.owned} is true.
 *
 * @param chunk The chunk.
 */
export function freeBuffer(chunk: Uint8Array): void {
  const buffer = chunk.buffer;
  if (buffer instanceof ArrayBuffer && !buffer.detached) buffer.transfer(0);
}

/**
 * What a body can tell its consumer without waiting. The native scrape's
 * bodies carry it under {@linkcode BODY_PROGRESS}; the native push uses it
 * to join its writes: the request head with a first piece already received,
 * the last piece with the end of the stream (Content-Length told that it was
 * the last). A body without it is streamed as it comes, piece by piece.
 */
export interface BodyProgress {
  /** True when the next piece (or the end) is at hand: asking for it does not wait on the network. */
  readonly ready: boolean;
  /** True once the body was read to its end: the next ask returns the end. */
  readonly complete: boolean;
  /**
   * True when each piece is the only view of its buffer, handed to the
   * consumer: it may free it ({@linkcode freeBuffer}) once done with it,
   * as with a chunk marked by {@linkcode markOwned}, without the marking.
   * The buffer's bytes around the piece (before it: read and parsed
   * already, or headroom; after it: never read into) are no one's: the
   * consumer may put its framing there, in front of and behind the piece,
   * and write all as one view instead of copying the piece.
   */
  readonly owned: boolean;
  /**
   * Where an owned piece's buffer may go once its consumer is done with it
   * (written it): the read buffers it was read into, reused for the next
   * read instead of a new zeroed buffer. Given back only after a write that
   * completed; a buffer it does not keep may be freed. @default {none}
   */
  readonly pool?: ReadBufferPool | null;
  /**
   * The body's next piece when it is at hand (see `ready`), taken without
   * a promise: what its iterator's `next()` would give then (null for the
   * end), or undefined when that must wait: ask the iterator.
   */
  nextNow?: PiecesAtHand["nextNow"];
}

/** The key under which a body offers its {@linkcode BodyProgress}. */
export const BODY_PROGRESS: unique symbol = Symbol("BodyProgress");

/**
 * A body's progress, when it offers one.
 *
 * @param body The body.
 * @returns Its progress, or null.
 */
export function bodyProgress(body: AsyncIterable<Uint8Array>): BodyProgress | null {
  return (body as { [BODY_PROGRESS]?: BodyProgress })[BODY_PROGRESS] ?? null;
}

/**
 * A source of byte pieces (an iterator, a body's progress) that can also
 * hand out a piece already received without a promise (issue #11: fewer
 * promise steps per piece on both programs' paths).
 */
export interface PiecesAtHand {
  /**
   * The next piece when it is at hand: null at the end, undefined when
   * only the iterator's `next` can tell (nothing is consumed then).
   */
  nextNow(): Uint8Array | null | undefined;
}

/**
 * The iterator as {@linkcode PiecesAtHand} when it is one, else null.
 *
 * @param iterator Any iterator of pieces.
 * @returns The same object, or null.
 */
export function piecesAtHand(iterator: object): PiecesAtHand | null {
  return typeof (iterator as Partial<PiecesAtHand>).nextNow === "function"
    ? iterator as PiecesAtHand
    : null;
}
