/**
 * Byte helpers shared by the HTTP/1.1 code of both programs.
 *
 * @module
 */

/**
 * Copies byte arrays, in order, into one new array.
 *
 * @example
 * ```ts
 * import { concatBytes } from "./bytes.ts";
 *
 * const joined = concatBytes([new Uint8Array([1, 2]), new Uint8Array([3])]);
 * console.assert(joined.length === 3);
 * ```
 *
 * @param parts The arrays; none is modified.
 * @returns A new array holding every part's bytes (a copy even for one part).
 */
export function concatBytes(parts: readonly Uint8Array[]): Uint8Array<ArrayBuffer> {
  let total = 0;
  for (const part of parts) total += part.byteLength;
  const out = new Uint8Array(total);
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.byteLength;
  }
  return out;
}

/**
 * The parts as one array: a single part as it is (no copy), more joined
 * with {@linkcode concatBytes}.
 *
 * @param parts The arrays; none is modified.
 * @returns The only part, or a new array holding every part's bytes.
 */
export function joinBytes(parts: readonly Uint8Array[]): Uint8Array {
  return parts.length === 1 ? parts[0]! : concatBytes(parts);
}
