/**
 * The messages the client exchanges with the proxy on the native path, coded
 * by hand: PollRequest (encoded once per stream), PollResponse (decoded per
 * message: registration, scrape requests, heartbeats, goAway) and a
 * PushRequest carrying a ScrapeResponseHead (encoded per scrape).
 * protobuf-es's reflective coders cost about 8 % of the client's busy time
 * per scrape, and loading them (with the generated descriptors) about 4 MiB
 * of RSS at start (issue #11). These read and write the same bytes for the
 * usual shapes (ASCII text, the schema's fields, no unknown fields) and hand
 * anything else to protobuf-es, loaded then (./pushprox_codec_slow.ts), so
 * that the result is always what protobuf-es gives (pushprox_codec_test.ts
 * compares them over many randomized messages).
 *
 * @module
 */

import type { MessageInitShape } from "@bufbuild/protobuf";
import type {
  GoAway,
  Header,
  Heartbeat,
  PollRequestSchema,
  PollResponse,
  Registered,
  ScrapeRequest,
  ScrapeResponseHeadSchema,
} from "../../gen/pushprox/v1/pushprox_pb.ts";
import {
  KeptTexts,
  stringFieldSize,
  utf8Length,
  varintLength,
  writeUtf8,
  writeVarint,
} from "../../lib/protobuf_wire.ts";

/** protobuf-es's coders, loaded with the first message the hand coders leave to them. */
const slow = () => import("./pushprox_codec_slow.ts");

/**
 * Decodes a PollResponse, as `fromBinary(PollResponseSchema, bytes)` does.
 *
 * @param bytes The message.
 * @returns The message.
 * @throws {Error} As protobuf-es does, on bytes that are not a PollResponse.
 */
export async function decodePollResponse(bytes: Uint8Array): Promise<PollResponse> {
  return decodePollResponseNow(bytes) ?? (await slow()).decodePollResponseSlow(bytes);
}

/**
 * Encodes `PushRequest{head}`, as `toBinary(PushRequestSchema,
 * create(PushRequestSchema, {message: {case: "head", value: head}}))` does.
 *
 * @param head The head.
 * @returns The message's bytes.
 */
export async function encodePushHead(
  head: MessageInitShape<typeof ScrapeResponseHeadSchema>,
): Promise<Uint8Array> {
  return encodePushHeadNow(head) ?? (await slow()).encodePushHeadSlow(head);
}

/**
 * Encodes a PollRequest, as `toBinary(PollRequestSchema,
 * create(PollRequestSchema, request))` does.
 *
 * @param request The request.
 * @returns The message's bytes.
 */
export async function encodePollRequest(
  request: MessageInitShape<typeof PollRequestSchema>,
): Promise<Uint8Array> {
  return encodePollRequestNow(request) ?? (await slow()).encodePollRequestSlow(request);
}

// ---- decoding ----

/** A cursor over the message; `fail` set means "not the usual shape". */
interface Cursor {
  bytes: Uint8Array;
  at: number;
  fail: boolean;
  /** Texts and the last scrape to take again for equal bytes; null: decode every one. */
  recent: RecentTexts | null;
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

/** Text at least this long is decoded natively (a loop per byte costs more). */
const LONG_TEXT = 64;
/** Longest text decoded here (and kept for the next message). */
const MAX_TEXT = 8192;
const utf8 = new TextDecoder();
/** Scratch for {@linkcode ascii}: a short text's character codes, used and let go at once. */
const CODES: number[] = [];

/** Slots of a {@linkcode RecentTexts}: method, URL and 15 headers' names and values. */
const RECENT_SLOTS = 32;

/**
 * What a Poll stream keeps of the scrape requests it decoded (issue #11):
 * the text last decoded in each slot (method, URL, header names and
 * values), taken again when the bytes are the same, instead of a new
 * string each time; and the last scrape message's fields between its id
 * and its timeout, as bytes and decoded: Prometheus sends the same fields
 * every scrape, and consecutive scrape messages differ only in their id
 * (and now and then their timeout), so a message with the same bytes
 * there is the last request with the new id and timeout (and the same
 * frozen header list), without decoding the rest.
 */
export interface RecentTexts {
  /** The slots' texts. */
  texts: KeptTexts;
  /**
   * The last kept scrape message's bytes after its leading id field, up to
   * its timeout field when that is last (a copy); null for none.
   */
  tail: Uint8Array | null;
  /** The request decoded from the message `tail` came from (frozen, headers too). */
  request: Readonly<ScrapeRequest> | null;
}

/**
 * An empty {@linkcode RecentTexts}, for one Poll stream.
 *
 * @returns Its slots.
 */
export function recentTexts(): RecentTexts {
  return { texts: new KeptTexts(RECENT_SLOTS, MAX_TEXT), tail: null, request: null };
}

/**
 * An ASCII string field's text; sets `fail` on other bytes.
 *
 * @param slot Where in the cursor's recent texts the field's last text is kept; -1 for none.
 */
function ascii(c: Cursor, end: number, slot = -1): string {
  const length = varint(c, end);
  const start = c.at;
  const stop = start + length;
  // (Longer text goes to protobuf-es: fromCharCode takes so many arguments.)
  if (c.fail || stop > end || length > MAX_TEXT) {
    c.fail = true;
    return "";
  }
  const bytes = c.bytes;
  const texts = c.recent?.texts;
  const kept = texts?.take(slot, bytes, start, stop);
  if (kept !== undefined) {
    c.at = stop;
    return kept;
  }
  let text: string;
  if (length >= LONG_TEXT) {
    // Decoded natively: ASCII exactly when no byte was taken with another
    // (a shorter text) or replaced (U+FFFD).
    text = utf8.decode(bytes.subarray(start, stop));
    if (text.length !== length || text.includes("\uFFFD")) {
      c.fail = true;
      return "";
    }
  } else {
    if (length === 0) {
      c.at = stop;
      return "";
    }
    // The codes in a plain array: `fromCharCode.apply` on a typed array
    // (and the view for it) went through the runtime, every scrape's id
    // (issue #11).
    const codes = CODES;
    codes.length = length;
    for (let i = 0; i < length; i++) {
      const byte = bytes[start + i]!;
      if (byte > 0x7f) {
        c.fail = true;
        return "";
      }
      codes[i] = byte;
    }
    text = String.fromCharCode.apply(null, codes);
  }
  c.at = stop;
  texts?.keep(slot, text, length);
  return text;
}

/**
 * A PollResponse of the usual shape (one of its four cases, ASCII text, no
 * unknown fields), decoded by hand; null for anything else.
 *
 * @param bytes The message.
 * @param recent What the Poll stream keeps of its scrape requests before
 * (see {@linkcode recentTexts}); without it each text is a new string and
 * each message decoded whole.
 * @returns The message, or null: ask protobuf-es.
 */
export function decodePollResponseNow(
  bytes: Uint8Array,
  recent: RecentTexts | null = null,
): PollResponse | null {
  if (bytes.byteLength < 2) return null;
  const tag = bytes[0];
  const c: Cursor = { bytes, at: 1, fail: false, recent };
  const length = varint(c, bytes.byteLength);
  const end = c.at + length;
  // One field, the whole message: a repeated one would be merged.
  if (c.fail || end !== bytes.byteLength) return null;
  switch (tag) {
    case 0x0a:
      return registeredNow(c, end);
    case 0x12:
      return scrapeNow(c, end);
    case 0x1a:
      return heartbeatNow(c, end);
    case 0x22:
      return goAwayNow(c, end);
    default:
      return null;
  }
}

function registeredNow(c: Cursor, end: number): PollResponse | null {
  const value: Registered = {
    $typeName: "pushprox.v1.Registered",
    sessionId: "",
    heartbeatIntervalMs: 0,
  };
  while (c.at < end && !c.fail) {
    const tag = c.bytes[c.at++];
    if (tag === 0x0a) value.sessionId = ascii(c, end);
    else if (tag === 0x10) value.heartbeatIntervalMs = varint(c, end);
    else return null;
  }
  return c.fail
    ? null
    : { $typeName: "pushprox.v1.PollResponse", message: { case: "registered", value } };
}

function heartbeatNow(c: Cursor, end: number): PollResponse | null {
  if (c.at !== end) return null;
  const value: Heartbeat = { $typeName: "pushprox.v1.Heartbeat" };
  return { $typeName: "pushprox.v1.PollResponse", message: { case: "heartbeat", value } };
}

function goAwayNow(c: Cursor, end: number): PollResponse | null {
  const value: GoAway = { $typeName: "pushprox.v1.GoAway", reason: "" };
  while (c.at < end && !c.fail) {
    if (c.bytes[c.at++] !== 0x0a) return null;
    value.reason = ascii(c, end);
  }
  return c.fail
    ? null
    : { $typeName: "pushprox.v1.PollResponse", message: { case: "goAway", value } };
}

function scrapeNow(c: Cursor, end: number): PollResponse | null {
  const bytes = c.bytes;
  const recent = c.recent;
  let id = "";
  // Where the bytes after a leading id field start; -1 when the message
  // does not start with one or has another (which would replace it).
  let tailAt = -1;
  if (recent !== null && c.at < end && bytes[c.at] === 0x0a) {
    c.at++;
    id = ascii(c, end);
    if (c.fail) return null;
    tailAt = c.at;
    const kept = recent.tail;
    if (kept !== null && kept.byteLength <= end - tailAt && sameBytes(bytes, tailAt, kept)) {
      // The kept fields, then nothing (no timeout) or the timeout alone.
      let timeoutMs = 0;
      c.at = tailAt + kept.byteLength;
      if (c.at < end && bytes[c.at++] === 0x28) timeoutMs = varint(c, end);
      else if (c.at < end) c.fail = true;
      if (!c.fail && c.at === end) {
        const last = recent.request!;
        const value: ScrapeRequest = {
          $typeName: "pushprox.v1.ScrapeRequest",
          id,
          method: last.method,
          url: last.url,
          headers: last.headers,
          timeoutMs,
        };
        return { $typeName: "pushprox.v1.PollResponse", message: { case: "scrape", value } };
      }
      // Decoded whole instead.
      c.at = tailAt;
      c.fail = false;
    }
  }
  const request: ScrapeRequest = {
    $typeName: "pushprox.v1.ScrapeRequest",
    id,
    method: "",
    url: "",
    headers: [],
    timeoutMs: 0,
  };
  // Where the last timeout field starts and ends, and how many there are.
  let timeoutAt = -1;
  let timeoutEnd = -1;
  let timeouts = 0;
  while (c.at < end && !c.fail) {
    switch (bytes[c.at++]) {
      case 0x0a:
        request.id = ascii(c, end);
        tailAt = -1;
        break;
      case 0x12:
        request.method = ascii(c, end, 0);
        break;
      case 0x1a:
        request.url = ascii(c, end, 1);
        break;
      case 0x22: {
        const size = varint(c, end);
        const stop = c.at + size;
        if (c.fail || stop > end) return null;
        const header: Header = { $typeName: "pushprox.v1.Header", name: "", value: "" };
        const slot = 2 + 2 * request.headers.length;
        while (c.at < stop && !c.fail) {
          const tag = bytes[c.at++];
          if (tag === 0x0a) header.name = ascii(c, stop, slot);
          else if (tag === 0x12) header.value = ascii(c, stop, slot + 1);
          else return null;
        }
        request.headers.push(header);
        break;
      }
      case 0x28:
        timeoutAt = c.at - 1;
        timeouts++;
        request.timeoutMs = varint(c, end);
        timeoutEnd = c.at;
        break;
      default:
        return null;
    }
  }
  if (c.fail) return null;
  if (recent !== null) {
    recent.tail = null;
    recent.request = null;
    // Kept when the fields after the id hold no timeout, or one, last.
    const tailEnd = timeouts === 0 ? end : timeouts === 1 && timeoutEnd === end ? timeoutAt : -1;
    if (tailAt >= 0 && tailEnd >= 0) {
      // The header list is shared with the requests taken from the kept
      // one, so it is frozen (readers only read it).
      for (const header of request.headers) Object.freeze(header);
      Object.freeze(request.headers);
      recent.tail = bytes.slice(tailAt, tailEnd);
      // (A copy: the request itself goes to the caller.)
      recent.request = Object.freeze({ ...request });
    }
  }
  return {
    $typeName: "pushprox.v1.PollResponse",
    message: { case: "scrape", value: request },
  };
}

/** Whether `bytes` from `at` start with all of `kept`. */
function sameBytes(bytes: Uint8Array, at: number, kept: Uint8Array): boolean {
  const length = kept.byteLength;
  for (let i = 0; i < length; i++) {
    if (bytes[at + i] !== kept[i]) return false;
  }
  return true;
}

// ---- encoding ----

/**
 * `PushRequest{head}` encoded by hand; null for what protobuf-es must do
 * (unknown fields, values of the wrong type).
 *
 * @param head The head.
 * @param front Bytes left free in front of the message, in the same buffer
 *   (for the caller's framing). @default {0}
 * @param into Where to write it (at `front`) when it fits; else a new
 *   buffer is made. No new buffer per message (issue #11).
 * @returns The message's bytes (at `front` of their buffer), or null.
 */
export function encodePushHeadNow(
  head: MessageInitShape<typeof ScrapeResponseHeadSchema>,
  front = 0,
  into?: Uint8Array,
): Uint8Array | null {
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
  let inner = stringFieldSize(idSize) + stringFieldSize(sessionSize) + stringFieldSize(errorSize) +
    (status === 0 ? 0 : 1 + varintLength(status));
  for (const header of headers) {
    const name = header.name ?? "";
    const value = header.value ?? "";
    if (typeof name !== "string" || typeof value !== "string" || "$unknown" in header) return null;
    const nameSize = utf8Length(name);
    const valueSize = utf8Length(value);
    const size = stringFieldSize(nameSize) + stringFieldSize(valueSize);
    sizes.push(nameSize, valueSize, size);
    inner += 1 + varintLength(size) + size;
  }
  const size = 1 + varintLength(inner) + inner;
  const out = into !== undefined && front + size <= into.byteLength
    ? into
    : new Uint8Array(front + size);
  try {
    const end = writeHead(out, front, inner, head, sizes, idSize, sessionSize, errorSize);
    if (end !== front + size) return null;
    return front === 0 && out.byteLength === size ? out : out.subarray(front, end);
  } catch (error) {
    if (error instanceof RangeError) return null;
    throw error;
  }
}

/**
 * {@linkcode encodePushHeadNow} for one sender's heads, which differ from
 * the last one mostly in their scrape id: the bytes after it (session id,
 * status, header fields, error) are kept, and taken again while those
 * fields are the same, the header fields the same frozen list of frozen
 * fields (a scraper's, client/scrape/scraper.ts), instead of being sized
 * and encoded per scrape (issue #11). One head's bytes are kept.
 */
export class PushHeadEncoder {
  #sessionId = "";
  #status = 0;
  #error = "";
  #headers: readonly unknown[] | null = null;
  /** The kept bytes after the scrape id field. */
  #tail: Uint8Array | null = null;

  /**
   * Encodes `PushRequest{head}`, as {@linkcode encodePushHeadNow} does.
   *
   * @param head The head.
   * @param front Bytes left free in front of the message. @default {0}
   * @param into Where to write it (at `front`) when it fits.
   * @returns The message's bytes (at `front` of their buffer), or null.
   */
  encode(
    head: MessageInitShape<typeof ScrapeResponseHeadSchema>,
    front = 0,
    into?: Uint8Array,
  ): Uint8Array | null {
    const tail = this.#tail;
    const scrapeId = head.scrapeId ?? "";
    if (
      tail !== null && head.headers === this.#headers && head.sessionId === this.#sessionId &&
      head.status === this.#status && (head.error ?? "") === this.#error &&
      typeof scrapeId === "string" && !("$unknown" in head)
    ) {
      const idSize = utf8Length(scrapeId);
      const inner = stringFieldSize(idSize) + tail.byteLength;
      const size = 1 + varintLength(inner) + inner;
      const out = into !== undefined && front + size <= into.byteLength
        ? into
        : new Uint8Array(front + size);
      out[front] = 0x0a;
      let at = writeVarint(out, front + 1, inner);
      if (idSize > 0) {
        out[at++] = 0x0a;
        at = writeUtf8(out, writeVarint(out, at, idSize), scrapeId, idSize);
      }
      out.set(tail, at);
      return out.subarray(front, at + tail.byteLength);
    }
    const message = encodePushHeadNow(head, front, into);
    this.#tail = null;
    this.#headers = null;
    const headers = head.headers;
    if (
      message === null || !Array.isArray(headers) || !Object.isFrozen(headers) ||
      !headers.every((header) => Object.isFrozen(header)) ||
      typeof head.sessionId !== "string" || typeof head.status !== "number"
    ) {
      return message;
    }
    // Past the message's tag and length, and the scrape id field.
    let at = 1;
    while (message[at]! >= 0x80) at++;
    at++;
    const idSize = utf8Length(scrapeId as string);
    at += stringFieldSize(idSize);
    this.#tail = message.slice(at);
    this.#sessionId = head.sessionId;
    this.#status = head.status;
    this.#error = head.error ?? "";
    this.#headers = headers;
    return message;
  }
}

/** Writes the message at `start`; returns where it ended. */
function writeHead(
  out: Uint8Array,
  start: number,
  inner: number,
  head: MessageInitShape<typeof ScrapeResponseHeadSchema>,
  sizes: number[],
  idSize: number,
  sessionSize: number,
  errorSize: number,
): number {
  const scrapeId = head.scrapeId ?? "";
  const sessionId = head.sessionId ?? "";
  const status = head.status ?? 0;
  const error = head.error ?? "";
  const headers = head.headers ?? [];
  out[start] = 0x0a;
  let at = writeVarint(out, start + 1, inner);
  if (idSize > 0) {
    out[at++] = 0x0a;
    at = writeUtf8(out, writeVarint(out, at, idSize), scrapeId, idSize);
  }
  if (sessionSize > 0) {
    out[at++] = 0x12;
    at = writeUtf8(out, writeVarint(out, at, sessionSize), sessionId, sessionSize);
  }
  if (status !== 0) {
    out[at++] = 0x18;
    at = writeVarint(out, at, status);
  }
  for (let i = 0; i < headers.length; i++) {
    const header = headers[i]!;
    const nameSize = sizes[3 * i]!;
    const valueSize = sizes[3 * i + 1]!;
    out[at++] = 0x22;
    at = writeVarint(out, at, sizes[3 * i + 2]!);
    if (nameSize > 0) {
      out[at++] = 0x0a;
      at = writeUtf8(out, writeVarint(out, at, nameSize), header.name!, nameSize);
    }
    if (valueSize > 0) {
      out[at++] = 0x12;
      at = writeUtf8(out, writeVarint(out, at, valueSize), header.value!, valueSize);
    }
  }
  if (errorSize > 0) {
    out[at++] = 0x2a;
    at = writeUtf8(out, writeVarint(out, at, errorSize), error, errorSize);
  }
  return at;
}

/**
 * A PollRequest encoded by hand; null for what protobuf-es must do
 * (unknown fields, values of the wrong type).
 *
 * @param request The request.
 * @returns The message's bytes, or null.
 */
export function encodePollRequestNow(
  request: MessageInitShape<typeof PollRequestSchema>,
): Uint8Array | null {
  const fqdn = request.fqdn ?? "";
  const version = request.version ?? "";
  const labels = request.labels ?? {};
  const modules = request.modules ?? [];
  const proxies = request.proxies ?? [];
  const modulesOnly = request.modulesOnly ?? false;
  if (
    typeof fqdn !== "string" || typeof version !== "string" || typeof modulesOnly !== "boolean" ||
    typeof labels !== "object" || labels === null || !Array.isArray(modules) ||
    !Array.isArray(proxies) || "$unknown" in request
  ) {
    return null;
  }
  // Fields in number order, as protobuf-es writes them: 1 fqdn, 2 labels
  // (one entry per key, key and value always written), 3 version, 4
  // modules, 5 proxies, 6 modules_only (when true).
  const parts: [tag: number, text: string, size: number][] = [];
  const text = (tag: number, value: unknown): boolean => {
    if (typeof value !== "string") return false;
    parts.push([tag, value, utf8Length(value)]);
    return true;
  };
  if (fqdn !== "") text(0x0a, fqdn);
  const entries: number[] = [];
  for (const [key, value] of Object.entries(labels)) {
    const at = parts.length;
    if (!text(0x0a, key) || !text(0x12, value)) return null;
    const size = 2 + varintLength(parts[at]![2]) + parts[at]![2] + varintLength(parts[at + 1]![2]) +
      parts[at + 1]![2];
    entries.push(at, size);
  }
  if (version !== "") text(0x1a, version);
  for (const module of modules) if (!text(0x22, module)) return null;
  for (const proxy of proxies) if (!text(0x2a, proxy)) return null;
  let total = modulesOnly ? 2 : 0;
  for (const [, , size] of parts) total += 1 + varintLength(size) + size;
  for (let i = 1; i < entries.length; i += 2) total += 1 + varintLength(entries[i]!);
  const out = new Uint8Array(total);
  try {
    let at = 0;
    let entry = 0;
    for (let i = 0; i < parts.length; i++) {
      if (entry < entries.length && entries[entry] === i) {
        out[at++] = 0x12;
        at = writeVarint(out, at, entries[entry + 1]!);
        entry += 2;
      }
      const [tag, value, size] = parts[i]!;
      out[at++] = tag;
      at = writeUtf8(out, writeVarint(out, at, size), value, size);
    }
    if (modulesOnly) {
      out[at++] = 0x30;
      out[at++] = 1;
    }
    return at === total ? out : null;
  } catch (error) {
    if (error instanceof RangeError) return null;
    throw error;
  }
}
