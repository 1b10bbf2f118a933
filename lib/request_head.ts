/**
 * A strict reader of HTTP/1.1 request heads for the native front door
 * (lib/front_door.ts). It accepts only the plain shape Prometheus and
 * this project's client send; anything else is "unusual", and the front
 * door hands the connection to node:http, whose parser gives today's answers
 * (400, 431…) to malformed input. So the native edge never has to answer
 * bad input itself, beyond the header timeout.
 *
 * @module
 */

import type { ByteReader } from "./http1.ts";
import { type LazyTimer, within } from "./lazy_timer.ts";

/** A parsed request head. */
export interface RequestHead {
  /** The method, e.g. "GET". */
  readonly method: string;
  /** The request target as received. */
  readonly target: string;
  /** Header fields flat, as node's `rawHeaders`: name, value, name, value… */
  readonly rawHeaders: readonly string[];
  /** Header values by lower-case name, in arrival order (never written to: heads are reused). */
  readonly headers: ReadonlyMap<string, readonly string[]>;
  /** Bytes of the head, its final CRLF CRLF included. */
  readonly length: number;
}

/** What the bytes received so far hold. */
export type HeadScan =
  | { kind: "head"; head: RequestHead }
  | { kind: "incomplete" }
  | { kind: "unusual" };

const REQUEST_LINE_REGEXP = /^([A-Z]+) ([\x21-\x7e]+) HTTP\/1\.1$/;
/** A request line as far as it has arrived. */
const REQUEST_LINE_PREFIX_REGEXP = /^[A-Z]*(?: [\x21-\x7e]*(?: H?T?T?P?\/?1?\.?1?)?)?$/;
const DECODER = new TextDecoder();
const UNUSUAL: HeadScan = Object.freeze({ kind: "unusual" });
const INCOMPLETE: HeadScan = Object.freeze({ kind: "incomplete" });

const CR = 0x0d;
const LF = 0x0a;
const SP = 0x20;
const HTAB = 0x09;
const COLON = 0x3a;
/** `HTTP/1.1` */
const VERSION = [0x48, 0x54, 0x54, 0x50, 0x2f, 0x31, 0x2e, 0x31];
/** 1 for the bytes of an RFC 9110 token: ``!#$%&'*+-.^_`|~``, digits, letters. */
const TOKEN = new Uint8Array(128);
for (const c of "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") {
  TOKEN[c.charCodeAt(0)] = 1;
}

/**
 * Looks at the bytes a connection sent so far for one request head.
 *
 * A complete head is read in one pass over its bytes (no regular
 * expressions, one decode): it is served natively only if it is exactly
 * `METHOD SP target SP HTTP/1.1 CRLF` with an upper-case method and a
 * target of visible ASCII, then `name: value CRLF` fields whose names are
 * tokens and whose values hold only visible ASCII, spaces and tabs (bare
 * CRs and LFs, obs-fold, controls, NULs and obs-text are unusual).
 *
 * @param bytes The bytes received, from the start of the request.
 * @param maxHeaderBytes Heads larger than this are unusual (node:http answers 431).
 * @returns The head, "incomplete" when more bytes may complete a plain head,
 *   or "unusual" for anything the native edge leaves to node:http.
 */
export function scanRequestHead(bytes: Uint8Array, maxHeaderBytes: number): HeadScan {
  const end = headEnd(bytes);
  if (end < 0) return scanPartial(bytes, maxHeaderBytes);
  const length = end + 4;
  if (length > maxHeaderBytes) return UNUSUAL;
  // The request line: METHOD SP target SP HTTP/1.1, then CRLF (or the end).
  let i = 0;
  while (i < end && bytes[i]! >= 0x41 && bytes[i]! <= 0x5a) i++;
  if (i === 0 || bytes[i] !== SP) return UNUSUAL;
  const methodEnd = i++;
  const targetStart = i;
  while (i < end && bytes[i]! >= 0x21 && bytes[i]! <= 0x7e) i++;
  if (i === targetStart || bytes[i] !== SP) return UNUSUAL;
  const targetEnd = i++;
  if (i + 8 > end) return UNUSUAL;
  for (let k = 0; k < 8; k++) if (bytes[i + k] !== VERSION[k]) return UNUSUAL;
  i += 8;
  if (i < end && (bytes[i] !== CR || bytes[i + 1] !== LF)) return UNUSUAL;
  // Every byte of the head is ASCII: one decode, then slices by byte index.
  const text = DECODER.decode(bytes.subarray(0, end));
  const rawHeaders: string[] = [];
  const headers = new Map<string, string[]>();
  // Field lines: name ":" value, each ended by CRLF (the last by the head's end).
  for (i += 2; i < end + 2;) {
    const lineStart = i;
    let colon = -1;
    for (;; i++) {
      const byte = bytes[i]!;
      if (byte === CR) {
        if (bytes[i + 1] !== LF) return UNUSUAL;
        break;
      }
      // Visible ASCII, space and tab only.
      if (byte > 0x7e || (byte < SP && byte !== HTAB)) return UNUSUAL;
      if (byte === COLON && colon < 0) colon = i;
    }
    const lineEnd = i;
    i += 2;
    // Missing colons, space before the colon, a name that is no token: node's call.
    if (colon <= lineStart) return UNUSUAL;
    for (let k = lineStart; k < colon; k++) {
      if (TOKEN[bytes[k]!] !== 1) return UNUSUAL;
    }
    let valueStart = colon + 1;
    let valueEnd = lineEnd;
    while (valueStart < valueEnd && (bytes[valueStart] === SP || bytes[valueStart] === HTAB)) {
      valueStart++;
    }
    while (valueEnd > valueStart && (bytes[valueEnd - 1] === SP || bytes[valueEnd - 1] === HTAB)) {
      valueEnd--;
    }
    const name = text.slice(lineStart, colon);
    const value = text.slice(valueStart, valueEnd);
    rawHeaders.push(name, value);
    const lower = name.toLowerCase();
    const list = headers.get(lower);
    if (list === undefined) headers.set(lower, [value]);
    else list.push(value);
  }
  return {
    kind: "head",
    head: {
      // The common methods as the one copy each (a slice is a copy per request).
      method: methodEnd === 4 && text.startsWith("POST")
        ? "POST"
        : methodEnd === 3 && text.startsWith("GET")
        ? "GET"
        : text.slice(0, methodEnd),
      target: text.slice(targetStart, targetEnd),
      rawHeaders,
      headers,
      length,
    },
  };
}

/** A head not complete yet: may more bytes make it a plain one? */
function scanPartial(bytes: Uint8Array, maxHeaderBytes: number): HeadScan {
  for (let i = 0; i < bytes.byteLength; i++) {
    const byte = bytes[i]!;
    // Visible ASCII, space, tab, CR, LF; no NUL, controls or obs-text.
    if (byte > 0x7e || (byte < SP && byte !== HTAB && byte !== CR && byte !== LF)) {
      return UNUSUAL;
    }
  }
  if (bytes.byteLength > maxHeaderBytes) return UNUSUAL;
  const lineEnd = bytes.indexOf(LF);
  const line = DECODER.decode(bytes.subarray(0, lineEnd < 0 ? bytes.byteLength : lineEnd));
  if (lineEnd >= 0) {
    return line.endsWith("\r") && REQUEST_LINE_REGEXP.test(line.slice(0, -1))
      ? INCOMPLETE
      : UNUSUAL;
  }
  return REQUEST_LINE_PREFIX_REGEXP.test(line.replace(/\r$/, "")) ? INCOMPLETE : UNUSUAL;
}

/** Index of the CRLF CRLF that ends a head, or -1. */
function headEnd(bytes: Uint8Array): number {
  for (
    let i = bytes.indexOf(CR);
    i >= 0 && i + 3 < bytes.byteLength;
    i = bytes.indexOf(CR, i + 1)
  ) {
    if (bytes[i + 1] === LF && bytes[i + 2] === CR && bytes[i + 3] === LF) return i;
  }
  return -1;
}

/** What {@linkcode readRequestHead} found on a connection. */
export type HeadOutcome =
  | { kind: "head"; head: RequestHead }
  | { kind: "unusual" | "closed" | "timeout" | "idle" };

/** Limits of {@linkcode readRequestHead}. */
export interface HeadLimits {
  /** Longest wait for a complete head once its first bytes are in. */
  headersTimeoutMs: number;
  /** Longest wait for a next request on a kept-alive connection. */
  idleTimeoutMs: number;
  /** Largest head. */
  maxHeaderBytes: number;
}

/**
 * A connection's last request head, kept so that the next one, byte for
 * byte the same (Prometheus and the client send the same head every
 * scrape on a kept-alive connection), is not scanned, decoded and split
 * again: what a cache hit returns is the very same parse, so it is frozen
 * (its `headers` map is read only by convention: nobody writes to it).
 * One head per connection, of at most `maxBytes` bytes.
 */
export class RequestHeadCache {
  /** Largest head kept. */
  readonly maxBytes: number;
  #bytes: Uint8Array | null = null;
  #scan: HeadScan | null = null;

  /**
   * Creates an empty cache.
   *
   * @param maxBytes Largest head kept. @default {4096}
   */
  constructor(maxBytes = 4096) {
    this.maxBytes = maxBytes;
  }

  /**
   * As {@linkcode scanRequestHead}, but the last head again when `bytes`
   * start with exactly its bytes (then they hold the same first CRLF CRLF,
   * so a scan would find the same head).
   *
   * @param bytes The bytes received, from the start of the request.
   * @param maxHeaderBytes Heads larger than this are unusual.
   * @returns What {@linkcode scanRequestHead} returns for them.
   */
  scan(bytes: Uint8Array, maxHeaderBytes: number): HeadScan {
    const last = this.#bytes;
    if (last !== null && last.byteLength <= bytes.byteLength && last.byteLength <= maxHeaderBytes) {
      let i = last.byteLength - 1;
      // From the end: the start of a head (the request line) varies least.
      while (i >= 0 && last[i] === bytes[i]) i--;
      if (i < 0) return this.#scan!;
    }
    const scan = scanRequestHead(bytes, maxHeaderBytes);
    if (scan.kind === "head" && scan.head.length <= this.maxBytes) {
      const head = scan.head;
      Object.freeze(head.rawHeaders);
      for (const list of head.headers.values()) Object.freeze(list);
      Object.freeze(head);
      this.#bytes = bytes.slice(0, head.length);
      this.#scan = Object.freeze(scan);
    }
    return scan;
  }

  /** Lets go of the last head. */
  forget(): void {
    this.#bytes = this.#scan = null;
  }
}

/**
 * Reads until one request head is buffered (not consumed): "idle" when a
 * kept-alive connection sends nothing in time, "timeout" when a head does
 * not complete in time, "unusual" for what {@linkcode scanRequestHead}
 * leaves to node:http, "closed" when the peer went away.
 *
 * @param reader The connection's reader.
 * @param first True for a connection's first request (no idle wait).
 * @param timer The connection's timer.
 * @param limits The timeouts and the size cap.
 * @param cache The connection's last head, reused when the next one's bytes are the same.
 * @param closeIdle Closes the connection (made once per connection): when
 *   given, a keep-alive wait that outlasts the idle timeout calls it (the
 *   read then ends: "closed") instead of racing the read against the timer
 *   (a promise and four closures less per request).
 * @returns What was found.
 */
export async function readRequestHead(
  reader: ByteReader,
  first: boolean,
  timer: LazyTimer,
  limits: HeadLimits,
  cache?: RequestHeadCache,
  closeIdle?: () => void,
): Promise<HeadOutcome> {
  try {
    if (!first && reader.buffered === 0) {
      // Keep-alive: wait for the next request's first bytes.
      if (closeIdle === undefined) {
        const more = await within(timer, reader.fill(), limits.idleTimeoutMs);
        if (more === "timeout") return { kind: "idle" };
        if (!more) return { kind: "closed" };
      } else {
        timer.set(limits.idleTimeoutMs, closeIdle);
        try {
          if (!await reader.fill()) return { kind: "closed" };
        } finally {
          timer.clear(closeIdle);
        }
      }
    }
    // Set when the bytes buffered first fall short of a head (the clock is
    // not read for a head that arrived whole, nearly every one): the scan
    // before it is synchronous, so the deadline still counts from them.
    let deadline = -1;
    for (;;) {
      const scan = cache === undefined
        ? scanRequestHead(reader.peek(), limits.maxHeaderBytes)
        : cache.scan(reader.peek(), limits.maxHeaderBytes);
      if (scan.kind !== "incomplete") return scan;
      // (One clock read for the deadline and the wait: the timer's.)
      const now = timer.now();
      if (deadline < 0) deadline = now + limits.headersTimeoutMs;
      const left = deadline - now;
      if (left <= 0) return { kind: "timeout" };
      const more = await within(timer, reader.fill(), left, now);
      if (more === "timeout") return { kind: "timeout" };
      if (!more) return { kind: reader.buffered === 0 ? "closed" : "unusual" };
    }
  } catch {
    return { kind: "closed" };
  }
}
