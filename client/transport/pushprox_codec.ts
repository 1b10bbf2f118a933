/**
 * The two messages the client handles once per scrape, coded by hand: a
 * PollResponse carrying a ScrapeRequest (decoded) and a PushRequest carrying
 * a ScrapeResponseHead (encoded). protobuf-es's reflective coders cost about
 * 8 % of the client's busy time per scrape (issue #11); these read and write
 * the same bytes for the usual shapes (ASCII text, fields 1 to 5, no
 * unknown fields) and hand anything else to protobuf-es, so that the result
 * is always what protobuf-es gives (pushprox_codec_test.ts compares them
 * over many randomized messages).
 *
 * @module
 */

import { create, fromBinary, type MessageInitShape, toBinary } from "@bufbuild/protobuf";
import {
  type Header,
  type PollResponse,
  PollResponseSchema,
  PushRequestSchema,
  type ScrapeRequest,
  type ScrapeResponseHeadSchema,
} from "../../gen/pushprox/v1/pushprox_pb.ts";

/**
 * Decodes a PollResponse, as `fromBinary(PollResponseSchema, bytes)` does.
 *
 * @param bytes The message.
 * @returns The message.
 * @throws {Error} As protobuf-es does, on bytes that are not a PollResponse.
 */
export function decodePollResponse(bytes: Uint8Array): PollResponse {
  return decodeScrapeNow(bytes) ?? fromBinary(PollResponseSchema, bytes);
}

/**
 * Encodes `PushRequest{head}`, as `toBinary(PushRequestSchema,
 * create(PushRequestSchema, {message: {case: "head", value: head}}))` does.
 *
 * @param head The head.
 * @returns The message's bytes.
 */
export function encodePushHead(
  head: MessageInitShape<typeof ScrapeResponseHeadSchema>,
): Uint8Array {
  return encodeHeadNow(head) ??
    toBinary(
      PushRequestSchema,
      create(PushRequestSchema, { message: { case: "head", value: head } }),
    );
}

// ---- decoding ----

/** A cursor over the message; `fail` set means "not the usual shape". */
interface Cursor {
  bytes: Uint8Array;
  at: number;
  fail: boolean;
}

/** A varint of at most 32 bits; sets `fail` on anything else. */
function varint(c: Cursor, end: number): number {
  let value = 0;
  for (let shift = 0; shift < 35; shift += 7) {
    if (c.at >= end) break;
    const byte = c.bytes[c.at++]!;
    value += (byte & 0x7f) * 2 ** shift;
    if (byte < 0x80) {
      if (value > 0xffffffff) break;
      return value;
    }
  }
  c.fail = true;
  return 0;
}

/** An ASCII string field's text; sets `fail` on other bytes. */
function ascii(c: Cursor, end: number): string {
  const length = varint(c, end);
  const start = c.at;
  const stop = start + length;
  // (Longer text goes to protobuf-es: fromCharCode takes so many arguments.)
  if (c.fail || stop > end || length > 8192) {
    c.fail = true;
    return "";
  }
  const bytes = c.bytes;
  for (let i = start; i < stop; i++) {
    if (bytes[i]! > 0x7f) {
      c.fail = true;
      return "";
    }
  }
  c.at = stop;
  return length === 0 ? "" : String.fromCharCode.apply(null, bytes.subarray(start, stop) as never);
}

/** `PollResponse{scrape}` of the usual shape, or null. */
function decodeScrapeNow(bytes: Uint8Array): PollResponse | null {
  if (bytes.byteLength < 2 || bytes[0] !== 0x12) return null;
  const c: Cursor = { bytes, at: 1, fail: false };
  const length = varint(c, bytes.byteLength);
  const end = c.at + length;
  // One field, the whole message: a repeated one would be merged.
  if (c.fail || end !== bytes.byteLength) return null;
  const request: ScrapeRequest = {
    $typeName: "pushprox.v1.ScrapeRequest",
    id: "",
    method: "",
    url: "",
    headers: [],
    timeoutMs: 0,
  };
  while (c.at < end && !c.fail) {
    switch (bytes[c.at++]) {
      case 0x0a:
        request.id = ascii(c, end);
        break;
      case 0x12:
        request.method = ascii(c, end);
        break;
      case 0x1a:
        request.url = ascii(c, end);
        break;
      case 0x22: {
        const size = varint(c, end);
        const stop = c.at + size;
        if (c.fail || stop > end) return null;
        const header: Header = { $typeName: "pushprox.v1.Header", name: "", value: "" };
        while (c.at < stop && !c.fail) {
          const tag = bytes[c.at++];
          if (tag === 0x0a) header.name = ascii(c, stop);
          else if (tag === 0x12) header.value = ascii(c, stop);
          else return null;
        }
        request.headers.push(header);
        break;
      }
      case 0x28:
        request.timeoutMs = varint(c, end);
        break;
      default:
        return null;
    }
  }
  if (c.fail) return null;
  return {
    $typeName: "pushprox.v1.PollResponse",
    message: { case: "scrape", value: request },
  };
}

// ---- encoding ----

const encoder = new TextEncoder();

/** UTF-8 length of text as TextEncoder writes it (a lone surrogate as U+FFFD). */
function utf8Length(text: string): number {
  let n = text.length;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code < 0x80) continue;
    if (code < 0x800) n += 1;
    else if (code >= 0xd800 && code <= 0xdbff && i + 1 < text.length) {
      const next = text.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) {
        // A pair: two code units, four bytes.
        n += 2;
        i++;
      } else n += 2;
    } else n += 2;
  }
  return n;
}

function varintSize(value: number): number {
  return value < 0x80 ? 1 : value < 0x4000 ? 2 : value < 0x200000 ? 3 : value < 0x10000000 ? 4 : 5;
}

function putVarint(out: Uint8Array, at: number, value: number): number {
  while (value >= 0x80) {
    out[at++] = (value & 0x7f) | 0x80;
    value = Math.floor(value / 128);
  }
  out[at++] = value;
  return at;
}

/** Thrown (and caught) when the encoder wrote another length than counted. */
const MISCOUNTED = new Error("UTF-8 length miscounted");

/** Writes text of UTF-8 length `size` (as {@linkcode utf8Length} gave). */
function putText(out: Uint8Array, at: number, text: string, size: number): number {
  if (size === text.length) {
    for (let i = 0; i < size; i++) out[at + i] = text.charCodeAt(i);
    return at + size;
  }
  const { read, written } = encoder.encodeInto(text, out.subarray(at, at + size));
  if (read !== text.length || written !== size) throw MISCOUNTED;
  return at + size;
}

/** A string field's size on the wire (0 when it is empty: not written). */
function fieldSize(size: number): number {
  return size === 0 ? 0 : 1 + varintSize(size) + size;
}

/** `PushRequest{head}` of the usual shape, or null. */
function encodeHeadNow(head: MessageInitShape<typeof ScrapeResponseHeadSchema>): Uint8Array | null {
  const scrapeId = head.scrapeId ?? "";
  const sessionId = head.sessionId ?? "";
  const status = head.status ?? 0;
  const error = head.error ?? "";
  const headers = head.headers ?? [];
  if (
    typeof scrapeId !== "string" || typeof sessionId !== "string" || typeof error !== "string" ||
    typeof status !== "number" || !Number.isInteger(status) || status < 0 ||
    status > 0xffffffff || !Array.isArray(headers) || "$unknown" in head
  ) {
    return null;
  }
  const idSize = utf8Length(scrapeId);
  const sessionSize = utf8Length(sessionId);
  const errorSize = utf8Length(error);
  const sizes: number[] = [];
  let inner = fieldSize(idSize) + fieldSize(sessionSize) + fieldSize(errorSize) +
    (status === 0 ? 0 : 1 + varintSize(status));
  for (const header of headers) {
    const name = header.name ?? "";
    const value = header.value ?? "";
    if (typeof name !== "string" || typeof value !== "string" || "$unknown" in header) return null;
    const nameSize = utf8Length(name);
    const valueSize = utf8Length(value);
    const size = fieldSize(nameSize) + fieldSize(valueSize);
    sizes.push(nameSize, valueSize, size);
    inner += 1 + varintSize(size) + size;
  }
  const out = new Uint8Array(1 + varintSize(inner) + inner);
  try {
    return writeHead(out, inner, head, sizes, [idSize, sessionSize, errorSize]);
  } catch (error) {
    if (error === MISCOUNTED) return null;
    throw error;
  }
}

function writeHead(
  out: Uint8Array,
  inner: number,
  head: MessageInitShape<typeof ScrapeResponseHeadSchema>,
  sizes: number[],
  [idSize, sessionSize, errorSize]: [number, number, number],
): Uint8Array | null {
  const scrapeId = head.scrapeId ?? "";
  const sessionId = head.sessionId ?? "";
  const status = head.status ?? 0;
  const error = head.error ?? "";
  const headers = head.headers ?? [];
  out[0] = 0x0a;
  let at = putVarint(out, 1, inner);
  if (idSize > 0) {
    out[at++] = 0x0a;
    at = putText(out, putVarint(out, at, idSize), scrapeId, idSize);
  }
  if (sessionSize > 0) {
    out[at++] = 0x12;
    at = putText(out, putVarint(out, at, sessionSize), sessionId, sessionSize);
  }
  if (status !== 0) {
    out[at++] = 0x18;
    at = putVarint(out, at, status);
  }
  for (let i = 0; i < headers.length; i++) {
    const header = headers[i]!;
    const nameSize = sizes[3 * i]!;
    const valueSize = sizes[3 * i + 1]!;
    out[at++] = 0x22;
    at = putVarint(out, at, sizes[3 * i + 2]!);
    if (nameSize > 0) {
      out[at++] = 0x0a;
      at = putText(out, putVarint(out, at, nameSize), header.name!, nameSize);
    }
    if (valueSize > 0) {
      out[at++] = 0x12;
      at = putText(out, putVarint(out, at, valueSize), header.value!, valueSize);
    }
  }
  if (errorSize > 0) {
    out[at++] = 0x2a;
    at = putText(out, putVarint(out, at, errorSize), error, errorSize);
  }
  return at === out.byteLength ? out : null;
}
