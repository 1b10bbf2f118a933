/**
 * A seeded random number generator for tests that mutate or generate input:
 * a failure names its seed and replays exactly.
 *
 * @module
 */

/**
 * mulberry32: a tiny deterministic generator of numbers in [0, 1).
 *
 * @param seed The seed; the same seed gives the same sequence.
 * @returns The next number of the sequence on each call.
 */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
