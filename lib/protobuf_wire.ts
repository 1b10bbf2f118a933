/**
 * The protobuf wire primitives the hand-written coders of both programs
 * share (proxy/connect/wire_codec.ts, client/transport/pushprox_codec.ts):
 * sizes and writes of varints and UTF-8 string fields, byte for byte as
 * protobuf-es writes them (their tests compare with protobuf-es over
 * randomized messages).
 *
 * @module
 */

const encoder = new TextEncoder();

/**
 * Bytes of a string in UTF-8, as TextEncoder writes it (a lone surrogate
 * becomes U+FFFD, 3 bytes).
 *
 * @param text The string.
 * @returns Its UTF-8 length.
 */
export function utf8Length(text: string): number {
  let length = text.length;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code < 0x80) continue;
    if (code < 0x800) {
      length += 1;
    } else if (code >= 0xd800 && code <= 0xdbff && i + 1 < text.length) {
      const next = text.charCodeAt(i + 1);
      // A pair: 2 code units, 4 bytes; a lone high surrogate: 3 bytes.
      length += 2;
      if (next >= 0xdc00 && next <= 0xdfff) i++;
    } else {
      length += 2;
    }
  }
  return length;
}

/**
 * Bytes of a varint.
 *
 * @param value A safe non-negative integer.
 * @returns 1 to 8.
 */
export function varintLength(value: number): number {
  let length = 1;
  while (value >= 0x80) {
    value = Math.floor(value / 0x80);
    length++;
  }
  return length;
}

/**
 * Writes a varint.
 *
 * @param out The buffer.
 * @param at Where.
 * @param value A safe non-negative integer.
 * @returns The index after it.
 */
export function writeVarint(out: Uint8Array, at: number, value: number): number {
  while (value >= 0x80) {
    out[at++] = (value % 0x80) | 0x80;
    value = Math.floor(value / 0x80);
  }
  out[at++] = value;
  return at;
}

/**
 * Bytes of a string field: tag, length and text; 0 for an empty string
 * (proto3 leaves it out).
 *
 * @param length The text's UTF-8 length ({@linkcode utf8Length}).
 * @returns The field's size.
 */
export function stringFieldSize(length: number): number {
  return length === 0 ? 0 : 1 + varintLength(length) + length;
}

/**
 * Writes text in UTF-8.
 *
 * @param out The buffer.
 * @param at Where.
 * @param text The text.
 * @param length Its UTF-8 length ({@linkcode utf8Length}).
 * @returns The index after it.
 * @throws {RangeError} When the text did not take `length` bytes.
 */
export function writeUtf8(out: Uint8Array, at: number, text: string, length: number): number {
  if (length === text.length) {
    // ASCII: a UTF-8 length equal to the UTF-16 length means no code unit above 0x7f.
    for (let i = 0; i < length; i++) out[at + i] = text.charCodeAt(i);
    return at + length;
  }
  const { read, written } = encoder.encodeInto(text, out.subarray(at, at + length));
  if (read !== text.length || written !== length) {
    throw new RangeError(`UTF-8 length miscounted: ${written} bytes, not ${length}`);
  }
  return at + length;
}

/**
 * Writes a string field (nothing for an empty string).
 *
 * @param out The buffer.
 * @param at Where.
 * @param tag The field's tag byte (field number << 3 | 2).
 * @param text The text.
 * @param length Its UTF-8 length ({@linkcode utf8Length}).
 * @returns The index after it.
 */
export function writeStringField(
  out: Uint8Array,
  at: number,
  tag: number,
  text: string,
  length: number,
): number {
  if (length === 0) return at;
  out[at++] = tag;
  return writeUtf8(out, writeVarint(out, at, length), text, length);
}

/**
 * The texts of string fields last decoded, by slot (a field's place in a
 * message that repeats: method, URL, header names and values), kept by the
 * stream or connection that decodes such messages: the string made before
 * is taken again when the field's bytes are the same, instead of a new one
 * each time (issue #11). Only ASCII texts are kept (equal bytes are then
 * the same text), in a fixed number of slots, each of bounded length.
 */
export class KeptTexts {
  readonly #texts: (string | undefined)[];
  readonly #maxLength: number;

  /**
   * Creates an empty set of slots.
   *
   * @param slots How many slots.
   * @param maxLength The longest text kept.
   */
  constructor(slots: number, maxLength: number) {
    this.#texts = new Array(slots);
    this.#maxLength = maxLength;
  }

  /** How many slots there are. */
  get slots(): number {
    return this.#texts.length;
  }

  /**
   * The text kept in `slot`, if any.
   *
   * @param slot The slot.
   * @returns Its text, or undefined.
   */
  text(slot: number): string | undefined {
    return this.#texts[slot];
  }

  /**
   * The text kept in `slot` when `bytes[start, end)` are its bytes.
   *
   * @param slot The field's slot; outside the slots (-1, say): none.
   * @param bytes The message.
   * @param start Where the field's bytes start.
   * @param end Where they end.
   * @returns The kept text, or undefined: decode them.
   */
  take(slot: number, bytes: Uint8Array, start: number, end: number): string | undefined {
    const kept = slot >= 0 ? this.#texts[slot] : undefined;
    const length = end - start;
    if (kept === undefined || kept.length !== length) return undefined;
    for (let i = 0; i < length; i++) {
      if (bytes[start + i] !== kept.charCodeAt(i)) return undefined;
    }
    return kept;
  }

  /**
   * Keeps `text`, decoded from `byteLength` bytes, in `slot` when it is
   * ASCII (one code unit per byte: valid UTF-8 takes more bytes for any
   * other) and not too long.
   *
   * @param slot The field's slot; outside the slots: nothing kept.
   * @param text The decoded text.
   * @param byteLength How many bytes it was decoded from.
   */
  keep(slot: number, text: string, byteLength: number): void {
    if (
      slot >= 0 && slot < this.#texts.length && text.length === byteLength &&
      byteLength <= this.#maxLength
    ) {
      this.#texts[slot] = text;
    }
  }
}
