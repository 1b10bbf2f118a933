/**
 * The byte classes of the text exposition formats: which bytes may start or
 * continue a metric or label name. The modules that scan lines declare the
 * punctuation bytes they look for themselves (see _text_checker.ts).
 *
 * @private Internal code, does not follow semantic versioning.
 * @module
 */

const SP = 0x20;
const TAB = 0x09;
const LBRACE = 0x7b;
const UNDERSCORE = 0x5f;

/** In {@linkcode CLASS}: may start a metric name (`[a-zA-Z_:]`). */
export const NAME_START = 1;
/** In {@linkcode CLASS}: may continue a metric name (`[a-zA-Z0-9_:]`). */
export const NAME_CHAR = 2;
/** In {@linkcode CLASS}: may start a label name (`[a-zA-Z_]`). */
export const LABEL_START = 4;
/** In {@linkcode CLASS}: may continue a label name (`[a-zA-Z0-9_]`). */
export const LABEL_CHAR = 8;
/** The name classes of each byte, as bit flags. */
export const CLASS: Uint8Array = new Uint8Array(256);
for (let c = 0; c < 256; c++) {
  const alpha = (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) ||
    c === UNDERSCORE;
  const digit = c >= 0x30 && c <= 0x39;
  const colon = c === 0x3a;
  CLASS[c] = (alpha || colon ? NAME_START : 0) |
    (alpha || colon || digit ? NAME_CHAR : 0) |
    (alpha ? LABEL_START : 0) | (alpha || digit ? LABEL_CHAR : 0);
}

/**
 * Whether the bytes at `i` spell the ASCII `word`.
 *
 * @param b The bytes.
 * @param i Where to look.
 * @param word The word.
 * @returns True on a match.
 */
export function matchesWord(b: Uint8Array, i: number, word: string): boolean {
  for (let k = 0; k < word.length; k++) {
    if (b[i + k] !== word.charCodeAt(k)) return false;
  }
  return true;
}

/**
 * First index at or after `i` holding a blank, `{` or nothing.
 *
 * @param b The bytes.
 * @param i Where the token starts.
 * @param e The end of the line.
 * @returns The token's end.
 */
export function tokenEnd(b: Uint8Array, i: number, e: number): number {
  while (i < e && b[i] !== SP && b[i] !== TAB && b[i] !== LBRACE) i++;
  return i;
}
