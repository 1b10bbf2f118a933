/**
 * Byte-level helpers shared by the text and protobuf checkers.
 *
 * @private Internal code, does not follow semantic versioning.
 * @module
 */

const LOSSY_DECODER = new TextDecoder("utf-8");
const PREVIEW_BYTES = 64;

/**
 * Reports whether `b[start, end)` is well-formed UTF-8 (no overlongs, no
 * surrogates, nothing above U+10FFFF).
 *
 * @param b The buffer.
 * @param start First byte.
 * @param end One past the last byte.
 * @returns True when the range is valid UTF-8.
 */
export function isValidUtf8(
  b: Uint8Array,
  start: number,
  end: number,
): boolean {
  let i = start;
  while (i < end) {
    const c = b[i]!;
    if (c < 0x80) {
      i++;
      continue;
    }
    if (c < 0xc2) return false;
    if (c < 0xe0) {
      if (i + 1 >= end || (b[i + 1]! & 0xc0) !== 0x80) return false;
      i += 2;
      continue;
    }
    if (c < 0xf0) {
      if (i + 2 >= end) return false;
      const c1 = b[i + 1]!;
      if ((c1 & 0xc0) !== 0x80 || (b[i + 2]! & 0xc0) !== 0x80) return false;
      if (c === 0xe0 && c1 < 0xa0) return false;
      if (c === 0xed && c1 >= 0xa0) return false;
      i += 3;
      continue;
    }
    if (c < 0xf5) {
      if (i + 3 >= end) return false;
      const c1 = b[i + 1]!;
      if (
        (c1 & 0xc0) !== 0x80 || (b[i + 2]! & 0xc0) !== 0x80 ||
        (b[i + 3]! & 0xc0) !== 0x80
      ) {
        return false;
      }
      if (c === 0xf0 && c1 < 0x90) return false;
      if (c === 0xf4 && c1 >= 0x90) return false;
      i += 4;
      continue;
    }
    return false;
  }
  return true;
}

/**
 * Decodes `b[start, end)` as UTF-8, replacing invalid sequences.
 *
 * @param b The buffer.
 * @param start First byte.
 * @param end One past the last byte.
 * @returns The decoded text.
 */
export function decodeLossy(b: Uint8Array, start: number, end: number): string {
  return LOSSY_DECODER.decode(b.subarray(start, end));
}

/**
 * Quotes `b[start, end)` for an error message, shortened to a few dozen bytes.
 *
 * @param b The buffer.
 * @param start First byte.
 * @param end One past the last byte.
 * @returns A JSON-quoted preview such as `"1abc"`.
 */
export function quoteBytes(b: Uint8Array, start: number, end: number): string {
  if (end - start > PREVIEW_BYTES) {
    return JSON.stringify(decodeLossy(b, start, start + PREVIEW_BYTES) + "…");
  }
  return JSON.stringify(decodeLossy(b, start, end));
}

function lower(c: number): number {
  return c >= 0x41 && c <= 0x5a ? c | 0x20 : c;
}

function equalsIgnoreCase(
  b: Uint8Array,
  start: number,
  end: number,
  word: string,
): boolean {
  if (end - start !== word.length) return false;
  for (let i = 0; i < word.length; i++) {
    if (lower(b[start + i]!) !== word.charCodeAt(i)) return false;
  }
  return true;
}

/**
 * Checks a sample value the way Prometheus does (Go `strconv.ParseFloat`
 * without hex floats or underscores): decimal numbers with optional exponent,
 * `NaN`, and `Inf`/`Infinity` with an optional sign, case-insensitive.
 *
 * @param b The buffer.
 * @param start First byte of the token.
 * @param end One past the last byte of the token.
 * @returns `undefined` when valid, otherwise a short reason.
 */
export function checkFloat(
  b: Uint8Array,
  start: number,
  end: number,
): string | undefined {
  if (start >= end) return "empty number";
  let i = start;
  const first = b[i]!;
  const signed = first === 0x2b || first === 0x2d;
  if (signed) i++;
  if (i >= end) return "sign without digits";
  const c = lower(b[i]!);
  if (c === 0x69 /* i */) {
    return equalsIgnoreCase(b, i, end, "inf") ||
        equalsIgnoreCase(b, i, end, "infinity")
      ? undefined
      : "not a number";
  }
  if (c === 0x6e /* n */) {
    return !signed && equalsIgnoreCase(b, i, end, "nan") ? undefined : "not a number";
  }
  let digits = 0;
  while (i < end && b[i]! >= 0x30 && b[i]! <= 0x39) {
    i++;
    digits++;
  }
  if (i < end && b[i] === 0x2e /* . */) {
    i++;
    while (i < end && b[i]! >= 0x30 && b[i]! <= 0x39) {
      i++;
      digits++;
    }
  }
  if (digits === 0) return "not a number";
  let exponent = false;
  if (i < end && lower(b[i]!) === 0x65 /* e */) {
    exponent = true;
    i++;
    if (i < end && (b[i] === 0x2b || b[i] === 0x2d)) i++;
    const expStart = i;
    while (i < end && b[i]! >= 0x30 && b[i]! <= 0x39) i++;
    if (i === expStart) return "exponent without digits";
  }
  if (i !== end) return "not a number";
  if (exponent || digits > 300) {
    const value = Number(decodeLossy(b, start, end));
    if (!Number.isFinite(value)) return "number out of range";
  }
  return undefined;
}

/**
 * Reports whether a float token (already accepted by {@linkcode checkFloat})
 * is NaN or infinite.
 *
 * @param b The buffer.
 * @param start First byte of the token.
 * @returns True for NaN and ±Inf spellings.
 */
export function isNonFiniteFloat(b: Uint8Array, start: number): boolean {
  let i = start;
  if (b[i] === 0x2b || b[i] === 0x2d) i++;
  const c = lower(b[i] ?? 0);
  return c === 0x69 || c === 0x6e;
}

const INT64_MAX_DIGITS = "9223372036854775807";
const INT64_MIN_DIGITS = "9223372036854775808";

/**
 * Checks a decimal int64 (`-?[0-9]+`, within int64 range), the timestamp
 * syntax of the Prometheus text format.
 *
 * @param b The buffer.
 * @param start First byte of the token.
 * @param end One past the last byte of the token.
 * @returns `undefined` when valid, otherwise a short reason.
 */
export function checkInt64(
  b: Uint8Array,
  start: number,
  end: number,
): string | undefined {
  let i = start;
  const negative = b[i] === 0x2d;
  if (negative) i++;
  if (i >= end) return "not an integer";
  for (let j = i; j < end; j++) {
    const c = b[j]!;
    if (c < 0x30 || c > 0x39) return "not an integer";
  }
  while (i < end - 1 && b[i] === 0x30) i++;
  const length = end - i;
  if (length < 19) return undefined;
  if (length > 19) return "integer out of range";
  const limit = negative ? INT64_MIN_DIGITS : INT64_MAX_DIGITS;
  for (let j = 0; j < 19; j++) {
    const d = b[i + j]!;
    const l = limit.charCodeAt(j);
    if (d < l) return undefined;
    if (d > l) return "integer out of range";
  }
  return undefined;
}
