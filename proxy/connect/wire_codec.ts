/**
 * Hand-written protobuf encoders and decoders for the few messages the
 * fast path (fast_client_service.ts, connect_stream.ts) handles once per
 * scrape, where protobuf-es' reflection-driven codec was several percent
 * of the proxy's CPU per scrape (issue #11): the Poll stream's scrape
 * message, the Push call's head and its response. Each gives exactly what
 * protobuf-es gives (wire_codec_test.ts compares them on randomized
 * messages) and leaves anything unusual (unknown fields, repeated or
 * out-of-range fields, invalid UTF-8, odd values) to protobuf-es.
 *
 * @module
 */

import { create, type MessageInitShape, toBinary } from "@bufbuild/protobuf";
import {
  type Header,
  type PollResponseSchema,
  type PushRequest,
  PushResponseSchema,
  type ScrapeRequestSchema,
} from "../../gen/pushprox/v1/pushprox_pb.ts";
import { chunkSizeLineLength, writeChunkSizeLine } from "../../lib/http1_body.ts";
import {
  KeptTexts,
  stringFieldSize,
  utf8Length,
  varintLength,
  writeStringField,
  writeVarint,
} from "../../lib/protobuf_wire.ts";

/** As protobuf-es decodes strings (proto3 verifies UTF-8); a throw means "not ours". */
const strictDecoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

const MAX_SAFE_BIGINT = BigInt(Number.MAX_SAFE_INTEGER);

/**
 * A `PushResponse`, encoded.
 *
 * @param result The bytes relayed.
 * @returns The message's bytes, as protobuf-es' `toBinary` writes them.
 */
export function encodePushResponse(result: { bytesRelayed: bigint }): Uint8Array {
  const relayed = result.bytesRelayed;
  if (relayed < 0n || relayed > MAX_SAFE_BIGINT) {
    return toBinary(PushResponseSchema, create(PushResponseSchema, result));
  }
  const value = Number(relayed);
  // proto3: a zero field is not written.
  if (value === 0) return new Uint8Array(0);
  const out = new Uint8Array(1 + varintLength(value));
  out[0] = 0x08; // field 1, varint
  writeVarint(out, 1, value);
  return out;
}

/** The fields of a scrape message, as the Poll logic builds it. */
type ScrapeInit = MessageInitShape<typeof ScrapeRequestSchema>;

/** Lengths of the header fields of the message being encoded (reused). */
const headerLengths: number[] = [];

/**
 * A Connect envelope (flags 0) holding a `PollResponse` whose `message` is
 * a `scrape`, written in one buffer; null when the message is anything
 * else or unusual (the caller then uses protobuf-es).
 *
 * @param message The Poll message.
 * @param knownFields Encoded header fields by their array, for arrays
 *   that are frozen with every field in them (a reused request head's:
 *   proxy/http/scrape_handler.ts): encoded once, then copied.
 * @param chunked When true, the envelope is written as one chunk of
 *   chunked transfer coding (its size line in front, CRLF behind: see
 *   lib/http1_body.ts chunkData), for a Poll stream's exchange to write as
 *   it is. @default {false}
 * @returns The envelope, byte for byte what `encodeEnvelope(0, toBinary(…))` gives, or null.
 */
export function encodeScrapeEnvelope(
  message: MessageInitShape<typeof PollResponseSchema>,
  knownFields?: WeakMap<object, Uint8Array>,
  chunked = false,
): Uint8Array | null {
  if (hasUnknown(message)) return null;
  const oneof = message.message;
  if (oneof === undefined || oneof.case !== "scrape") return null;
  const scrape: ScrapeInit = oneof.value;
  if (hasUnknown(scrape)) return null;
  const { id = "", method = "", url = "", headers = [], timeoutMs = 0 } = scrape;
  if (typeof id !== "string" || typeof method !== "string" || typeof url !== "string") return null;
  if (!Number.isInteger(timeoutMs) || timeoutMs < 0 || timeoutMs > 0xffffffff) return null;
  if (!Array.isArray(headers)) return null;
  const idLength = utf8Length(id);
  const methodLength = utf8Length(method);
  const urlLength = utf8Length(url);
  let size = stringFieldSize(idLength) + stringFieldSize(methodLength) +
    stringFieldSize(urlLength);
  let fields: Uint8Array | null | undefined = knownFields?.get(headers);
  if (fields === undefined && knownFields !== undefined && frozenFields(headers)) {
    fields = encodeFields(headers);
    if (fields !== null) knownFields.set(headers, fields);
  }
  if (fields === null) return null;
  if (fields !== undefined) size += fields.byteLength;
  else {
    const fieldsSize = measureFields(headers);
    if (fieldsSize < 0) return null;
    size += fieldsSize;
  }
  if (timeoutMs !== 0) size += 1 + varintLength(timeoutMs);
  // PollResponse: field 2 (scrape), length-delimited, always written (a oneof).
  const total = 1 + varintLength(size) + size;
  const before = chunked ? chunkSizeLineLength(5 + total) : 0;
  const end = before + 5 + total;
  const out = new Uint8Array(chunked ? end + 2 : end);
  if (chunked) {
    writeChunkSizeLine(out, 0, 5 + total);
    out[end] = 13;
    out[end + 1] = 10;
  }
  out[before + 1] = total >>> 24;
  out[before + 2] = (total >>> 16) & 0xff;
  out[before + 3] = (total >>> 8) & 0xff;
  out[before + 4] = total & 0xff;
  out[before + 5] = 0x12;
  let at = writeVarint(out, before + 6, size);
  at = writeStringField(out, at, 0x0a, id, idLength);
  at = writeStringField(out, at, 0x12, method, methodLength);
  at = writeStringField(out, at, 0x1a, url, urlLength);
  if (fields !== undefined) {
    out.set(fields, at);
    at += fields.byteLength;
  } else at = writeFields(out, at, headers as { name?: string; value?: string }[]);
  if (timeoutMs !== 0) {
    out[at++] = 0x28;
    at = writeVarint(out, at, timeoutMs);
  }
  return at === end ? out : null;
}

/**
 * The encoded size of the header fields (field 4), their lengths left in
 * `headerLengths` for {@linkcode writeFields}; -1 when a field is unusual
 * (protobuf-es encodes it).
 */
function measureFields(headers: readonly unknown[]): number {
  headerLengths.length = 0;
  let size = 0;
  for (const header of headers) {
    if (typeof header !== "object" || header === null || hasUnknown(header)) return -1;
    const { name = "", value = "" } = header as { name?: unknown; value?: unknown };
    if (typeof name !== "string" || typeof value !== "string") return -1;
    const nameLength = utf8Length(name);
    const valueLength = utf8Length(value);
    const length = stringFieldSize(nameLength) + stringFieldSize(valueLength);
    headerLengths.push(nameLength, valueLength, length);
    size += 1 + varintLength(length) + length;
  }
  return size;
}

/** Writes the header fields (field 4) whose lengths are in `headerLengths`. */
function writeFields(
  out: Uint8Array,
  at: number,
  headers: readonly { name?: string; value?: string }[],
): number {
  for (let i = 0; i < headers.length; i++) {
    const header = headers[i]!;
    out[at++] = 0x22;
    at = writeVarint(out, at, headerLengths[3 * i + 2]!);
    at = writeStringField(out, at, 0x0a, header.name ?? "", headerLengths[3 * i]!);
    at = writeStringField(out, at, 0x12, header.value ?? "", headerLengths[3 * i + 1]!);
  }
  return at;
}

/** True for a frozen array of frozen fields (that cannot change once encoded). */
function frozenFields(headers: readonly unknown[]): boolean {
  if (!Object.isFrozen(headers)) return false;
  for (const header of headers) {
    if (typeof header !== "object" || header === null || !Object.isFrozen(header)) return false;
  }
  return true;
}

/** The header fields (field 4 of a ScrapeRequest) alone, or null when unusual. */
function encodeFields(headers: readonly unknown[]): Uint8Array | null {
  const size = measureFields(headers);
  if (size < 0) return null;
  const out = new Uint8Array(size);
  const at = writeFields(out, 0, headers as { name?: string; value?: string }[]);
  return at === size ? out : null;
}

/** Slots of a {@linkcode PushHeadTexts}: session id, error, 15 headers' names and values. */
const PUSH_TEXT_SLOTS = 32;

/** Longest text a {@linkcode PushHeadTexts} slot keeps. */
const KEPT_TEXT_MAX = 4096;

/**
 * The texts last decoded in each field of a Push head (session id, error,
 * the target's response header names and values), kept by the connection
 * that carries the Pushes: a client's Pushes repeat all of them but the
 * scrape id and the Date (issue #11). ASCII texts of at most 4 KiB.
 */
export type PushHeadTexts = KeptTexts;

/**
 * An empty {@linkcode PushHeadTexts}, for one connection.
 *
 * @returns Its slots.
 */
export function pushHeadTexts(): PushHeadTexts {
  return new KeptTexts(PUSH_TEXT_SLOTS, KEPT_TEXT_MAX);
}

/**
 * Decodes a `PushRequest` whose `message` is a `head`, as protobuf-es'
 * `fromBinary` would; null for anything else or unusual (the caller then
 * uses protobuf-es, which also gives the errors).
 *
 * @param bytes The message.
 * @param texts The connection's texts of the heads before (see
 * {@linkcode pushHeadTexts}); without them each text is a new string.
 * @returns The message, or null.
 */
export function decodePushHead(
  bytes: Uint8Array,
  texts: PushHeadTexts | null = null,
): PushRequest | null {
  // Exactly one field: 1 (head), length-delimited, to the end.
  if (bytes[0] !== 0x0a) return null;
  const length = readVarint32(bytes, 1);
  if (length === null || readAt + length !== bytes.byteLength) return null;
  let at = readAt;
  const end = bytes.byteLength;
  let scrapeId = "";
  let sessionId = "";
  let status = 0;
  let error = "";
  const headers: Header[] = [];
  while (at < end) {
    const tag = bytes[at]!;
    if (tag === 0x18) {
      const value = readVarint32(bytes, at + 1);
      if (value === null || readAt > end) return null;
      status = value;
      at = readAt;
      continue;
    }
    if (tag !== 0x0a && tag !== 0x12 && tag !== 0x22 && tag !== 0x2a) return null;
    const fieldLength = readVarint32(bytes, at + 1);
    if (fieldLength === null) return null;
    const start = readAt;
    at = start + fieldLength;
    if (at > end) return null;
    if (tag === 0x22) {
      const header = decodeHeader(bytes, start, at, texts, 2 + 2 * headers.length);
      if (header === null) return null;
      headers.push(header);
      continue;
    }
    // (The scrape id differs in every head: not kept.)
    const text = decodeString(bytes, start, at, texts, tag === 0x0a ? -1 : tag === 0x12 ? 0 : 1);
    if (text === null) return null;
    if (tag === 0x0a) scrapeId = text;
    else if (tag === 0x12) sessionId = text;
    else error = text;
  }
  return {
    $typeName: "pushprox.v1.PushRequest",
    message: {
      case: "head",
      value: {
        $typeName: "pushprox.v1.ScrapeResponseHead",
        scrapeId,
        sessionId,
        status,
        headers,
        error,
      },
    },
  };
}

/** A header; `slot` is its name's slot in the recent texts, its value's the next. */
function decodeHeader(
  bytes: Uint8Array,
  at: number,
  end: number,
  texts: PushHeadTexts | null,
  slot: number,
): Header | null {
  let name = "";
  let value = "";
  while (at < end) {
    const tag = bytes[at]!;
    if (tag !== 0x0a && tag !== 0x12) return null;
    const length = readVarint32(bytes, at + 1);
    if (length === null) return null;
    const start = readAt;
    at = start + length;
    if (at > end) return null;
    const text = decodeString(bytes, start, at, texts, tag === 0x0a ? slot : slot + 1);
    if (text === null) return null;
    if (tag === 0x0a) name = text;
    else value = text;
  }
  return { $typeName: "pushprox.v1.Header", name, value };
}

/** Longest string decoded without TextDecoder when ASCII (as protobuf-es does). */
const ASCII_MAX_LENGTH = 64;

/**
 * A string field's text; null for invalid UTF-8.
 *
 * @param recent The connection's recent texts, if any.
 * @param slot Where in the recent texts the field's last text is kept; -1 for none.
 */
function decodeString(
  bytes: Uint8Array,
  start: number,
  end: number,
  recent: PushHeadTexts | null,
  slot: number,
): string | null {
  const length = end - start;
  const kept = recent?.take(slot, bytes, start, end);
  if (kept !== undefined) return kept;
  let text: string;
  decoded: {
    if (length <= ASCII_MAX_LENGTH) {
      const codes = new Array<number>(length);
      let i = 0;
      for (; i < length; i++) {
        const byte = bytes[start + i]!;
        if (byte > 0x7f) break;
        codes[i] = byte;
      }
      if (i === length) {
        text = String.fromCharCode.apply(String, codes);
        break decoded;
      }
    }
    try {
      text = strictDecoder.decode(bytes.subarray(start, end));
    } catch {
      return null;
    }
  }
  recent?.keep(slot, text, length);
  return text;
}

/** Where the last {@linkcode readVarint32} stopped. */
let readAt = 0;

/**
 * A varint of at most 5 bytes whose value fits 32 bits, from `at`; sets
 * `readAt`. Null for longer or larger ones (protobuf-es' business).
 */
function readVarint32(bytes: Uint8Array, at: number): number | null {
  let value = 0;
  for (let i = 0; i < 5; i++) {
    const byte = bytes[at + i];
    if (byte === undefined) return null;
    value += (byte & 0x7f) * 2 ** (7 * i);
    if ((byte & 0x80) === 0) {
      if (value > 0xffffffff || (i > 0 && byte === 0)) return null;
      readAt = at + i + 1;
      return value;
    }
  }
  return null;
}

function hasUnknown(message: object): boolean {
  const unknown = (message as { $unknown?: unknown[] }).$unknown;
  return unknown !== undefined && unknown.length > 0;
}
