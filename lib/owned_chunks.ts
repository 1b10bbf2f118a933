/**
 * Body chunks whose buffer belongs to whoever consumes them. The native
 * scrape path marks the pieces it reads from a target (each is the only
 * view of its own buffer, see lib/http1.ts); the native push frees a
 * marked chunk's buffer as soon as its bytes are written to the proxy,
 * instead of leaving it to the garbage collector. Under 8 concurrent 20 MiB
 * scrapes this lowers the client's peak RSS by about a fifth (README
 * "Performance"). Chunks from anywhere else (node:http, modules) are never
 * marked, so never freed here.
 *
 * @module
 */

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
 * Frees a marked chunk's buffer (the chunk reads as empty afterwards);
 * leaves any other chunk alone.
 *
 * @param chunk A chunk the caller is done with.
 * @returns True when it was marked and is freed now.
 */
export function releaseOwned(chunk: Uint8Array): boolean {
  if (!owned.delete(chunk)) return false;
  const buffer = chunk.buffer;
  if (buffer instanceof ArrayBuffer && !buffer.detached) buffer.transfer(0);
  return true;
}
