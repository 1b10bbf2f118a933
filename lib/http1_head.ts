/**
 * Part of lib/http1.ts: the response head (status line, header fields),
 * how its body is framed and whether the connection is reusable.
 *
 * @module
 */

import { ByteReader, Http1Error, latin1 } from "./http1_byte_reader.ts";

/** A response's status line and header fields. */
export interface ResponseHead {
  /** The status code. */
  status: number;
  /** "1.1" or "1.0". */
  version: string;
  /** Header fields in arrival order, names lower-cased. */
  headers: [string, string][];
  /** The same fields with names as received. */
  rawHeaders: [string, string][];
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
// Field values: visible characters, spaces, tabs and obs-text; no CR, LF or NUL.
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

/**
 * Reads a status line and header block; skips 1xx interim responses.
 *
 * @param reader The connection's reader.
 * @param maxHeaderBytes Largest header block accepted (status line included).
 * @param cache The connection's last head, reused when the next one's bytes are the same.
 * @returns The head (frozen when it went through `cache`).
 * @throws {Http1Error} On anything malformed or too large.
 */
export async function readResponseHead(
  reader: ByteReader,
  maxHeaderBytes: number,
  cache?: ResponseHeadCache,
): Promise<ResponseHead> {
  for (;;) {
    // Nearly always the whole head comes in one read: parsed in one go.
    // (A reader at its end leaves the error to the line-by-line reading.)
    if (reader.buffered === 0) await reader.fill();
    const now = headNow(reader, maxHeaderBytes, cache);
    if (now !== null) {
      if (now.status >= 100 && now.status < 200 && now.status !== 101) continue;
      return now;
    }
    let budget = maxHeaderBytes;
    // Most lines are buffered already: read them without a promise each.
    const statusLine = reader.lineNow(budget, "status line") ??
      await reader.line(budget, "status line");
    budget -= statusLine.length + 2;
    const match = STATUS_LINE.exec(statusLine);
    if (match === null) {
      throw new Http1Error(
        `malformed status line ${JSON.stringify(statusLine.slice(0, 64))}`,
        "status-line",
        statusLine,
      );
    }
    const headers: [string, string][] = [];
    const rawHeaders: [string, string][] = [];
    for (;;) {
      if (budget < 2) {
        throw new Http1Error(`header block larger than ${maxHeaderBytes} bytes`, "too-large");
      }
      let line: string;
      try {
        line = reader.lineNow(budget - 2, "header line") ??
          await reader.line(budget - 2, "header line");
      } catch (error) {
        if (error instanceof Http1Error && error.kind === "too-large") {
          throw new Http1Error(`header block larger than ${maxHeaderBytes} bytes`, "too-large");
        }
        throw error;
      }
      budget -= line.length + 2;
      if (line === "") break;
      const colon = line.indexOf(":");
      const name = colon > 0 ? line.slice(0, colon) : "";
      if (!TOKEN.test(name)) {
        throw new Http1Error(
          `malformed header line ${JSON.stringify(line.slice(0, 64))}`,
          "header-line",
          line,
        );
      }
      const value = line.slice(colon + 1).replace(/^[ \t]+|[ \t]+$/g, "");
      if (!FIELD_VALUE.test(value)) {
        throw new Http1Error(`bad characters in header ${name}`, "header-line", line);
      }
      headers.push([name.toLowerCase(), value]);
      rawHeaders.push([name, value]);
    }
    const status = Number(match[2]);
    if (status >= 100 && status < 200 && status !== 101) continue;
    return { status, version: match[1]!, headers, rawHeaders };
  }
}

const DECIMAL = /^[0-9]{1,15}$/;
const STATUS_LINE = /^HTTP\/(1\.[01]) ([1-9][0-9]{2})(?: .*)?$/;

/** 1 for each byte allowed in a field name (RFC 9110 tchar), as {@linkcode TOKEN} reads them. */
const TCHAR = new Uint8Array(128);
for (const c of "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") {
  TCHAR[c.charCodeAt(0)] = 1;
}

/**
 * The status of a status line as {@linkcode STATUS_LINE} reads it (`HTTP/1.0`
 * or `HTTP/1.1`, a space, three digits not starting with 0, then nothing or
 * a space and a reason without CR), or -1; without a regular expression
 * and its match array per answer (issue #11).
 */
function statusOf(text: string, stop: number): number {
  // `stop` is the line's length: "HTTP/1.1 200" takes 12 characters.
  if (stop < 12 || !text.startsWith("HTTP/1.")) return -1;
  const minor = text.charCodeAt(7);
  if ((minor !== 0x30 && minor !== 0x31) || text.charCodeAt(8) !== 0x20) return -1;
  const a = text.charCodeAt(9) - 0x30;
  const b = text.charCodeAt(10) - 0x30;
  const c = text.charCodeAt(11) - 0x30;
  if (a < 1 || a > 9 || b < 0 || b > 9 || c < 0 || c > 9) return -1;
  if (stop > 12) {
    if (text.charCodeAt(12) !== 0x20) return -1;
    const cr = text.indexOf("\r", 13);
    if (cr >= 0 && cr < stop) return -1;
  }
  return a * 100 + b * 10 + c;
}

/**
 * {@linkcode readResponseHead} without a promise when the head is buffered
 * whole: the head, or null to call it (nothing consumed then but a 1xx
 * interim head, skipped as it would skip it).
 *
 * @param reader The connection's reader.
 * @param maxHeaderBytes Largest header block accepted (status line included).
 * @param cache The connection's last head, reused when the next one's bytes are the same.
 * @returns The head, or null.
 */
export function readResponseHeadNow(
  reader: ByteReader,
  maxHeaderBytes: number,
  cache?: ResponseHeadCache,
): ResponseHead | null {
  if (reader.buffered === 0) return null;
  const now = headNow(reader, maxHeaderBytes, cache);
  if (now === null || (now.status >= 100 && now.status < 200 && now.status !== 101)) return null;
  return now;
}

/**
 * The head when it is received whole and well-formed, consumed; null
 * (nothing consumed) otherwise, for the line-by-line reader to read it or
 * word the error. Accepts exactly what that reader accepts: the same
 * checks on a block decoded once, written out as loops over the text (the
 * regular expressions per field were most of this function's time, 3–5 %
 * of the client's profile per scrape; issue #11).
 */
function headNow(
  reader: ByteReader,
  maxHeaderBytes: number,
  cache: ResponseHeadCache | undefined,
): ResponseHead | null {
  const data = reader.peek();
  // The block, its empty line included, fits the limit (what the budget
  // of the line-by-line reader comes to).
  const limit = Math.min(data.byteLength, maxHeaderBytes);
  if (cache !== undefined) {
    // The kept head's bytes again, at the front: the same head, ending
    // where it ended, without looking for its lines first.
    const kept = cache.matchStart(data, limit);
    if (kept !== null) {
      reader.take(cache.keptBytes);
      return kept;
    }
  }
  let end = -1;
  for (let from = 0;;) {
    const lf = data.indexOf(0x0a, from);
    if (lf < 0 || lf >= limit || lf === from || data[lf - 1] !== 0x0d) return null;
    if (lf === from + 1) {
      end = lf + 1;
      break;
    }
    from = lf + 1;
  }
  if (end === 2) return null;
  if (cache !== undefined) {
    const kept = cache.match(data, end);
    if (kept !== null) {
      reader.take(end);
      return kept;
    }
  }
  // Every line with its CRLF; the empty line's left out.
  const text = latin1(data.subarray(0, end - 2));
  let lf = text.indexOf("\n");
  const status = statusOf(text, lf - 1);
  if (status < 0) return null;
  const headers: [string, string][] = [];
  const rawHeaders: [string, string][] = [];
  for (let from = lf + 1; from < text.length; from = lf + 1) {
    lf = text.indexOf("\n", from);
    const stop = lf - 1;
    const colon = text.indexOf(":", from);
    if (colon <= from || colon > stop) return null;
    for (let i = from; i < colon; i++) {
      const c = text.charCodeAt(i);
      if (c >= 128 || TCHAR[c] === 0) return null;
    }
    let start = colon + 1;
    let last = stop;
    while (start < last && isBlank(text.charCodeAt(start))) start++;
    while (last > start && isBlank(text.charCodeAt(last - 1))) last--;
    // Visible characters, spaces, tabs and obs-text (FIELD_VALUE).
    for (let i = start; i < last; i++) {
      const c = text.charCodeAt(i);
      if ((c < 0x20 && c !== 0x09) || c === 0x7f || c > 0xff) return null;
    }
    const name = text.slice(from, colon);
    const value = text.slice(start, last);
    const lower = name.toLowerCase();
    headers.push([lower, value]);
    rawHeaders.push([name, value]);
  }
  const head: ResponseHead = {
    status,
    version: text.charCodeAt(7) === 0x31 ? "1.1" : "1.0",
    headers,
    rawHeaders,
  };
  reader.take(end);
  return cache === undefined ? head : cache.keep(data.subarray(0, end), head);
}

/**
 * A connection's last response head, kept so that the next one, byte for
 * byte the same (a keep-alive peer answers every scrape or push with the
 * same head while its Date field and body size stay the same), is not
 * decoded and split again (issue #11). What a hit returns is the very same
 * parse, frozen (head, field lists and fields): nobody may write to it.
 * One head per connection, of at most `maxBytes` bytes.
 */
export class ResponseHeadCache {
  /** Largest head kept. */
  readonly maxBytes: number;
  #bytes: Uint8Array | null = null;
  #head: ResponseHead | null = null;
  #framedHead: ResponseHead | null = null;
  #framedMethod = "";
  #framing: BodyFraming | null = null;
  #reusable = false;

  /**
   * Creates an empty cache.
   *
   * @param maxBytes Largest head kept. @default {4096}
   */
  constructor(maxBytes = 4096) {
    this.maxBytes = maxBytes;
  }

  /**
   * {@linkcode bodyFraming} of a head, worked out once for the kept head
   * (frozen); any other head's computed as usual.
   *
   * @param head The response head.
   * @param requestMethod The request's method.
   * @returns The framing.
   * @throws {Http1Error} As {@linkcode bodyFraming}.
   */
  framing(head: ResponseHead, requestMethod: string): BodyFraming {
    if (head === this.#framedHead && requestMethod === this.#framedMethod) return this.#framing!;
    const framing = bodyFraming(head, requestMethod);
    if (head === this.#head) {
      this.#framedHead = head;
      this.#framedMethod = requestMethod;
      this.#framing = Object.freeze(framing);
      this.#reusable = reusable(head, framing);
    }
    return framing;
  }

  /**
   * {@linkcode reusable}, worked out once for the kept head's framing.
   *
   * @param head The response head.
   * @param framing Its body framing.
   * @returns True when the connection may carry another request.
   */
  reusable(head: ResponseHead, framing: BodyFraming): boolean {
    if (head === this.#framedHead && framing === this.#framing) return this.#reusable;
    return reusable(head, framing);
  }

  /**
   * The last head when `data`'s first `end` bytes are exactly its bytes.
   *
   * @param data The bytes received, from the start of the head.
   * @param end The length of the head in them (its empty line included).
   * @returns The kept head, or null.
   */
  match(data: Uint8Array, end: number): ResponseHead | null {
    const last = this.#bytes;
    if (last === null || last.byteLength !== end) return null;
    // From the end: a head's front (its Date field, often) varies most.
    for (let i = end - 1; i >= 0; i--) if (last[i] !== data[i]) return null;
    return this.#head;
  }

  /**
   * The last head when `data` starts with exactly its bytes, all within
   * `limit` bytes (its length is {@linkcode ResponseHeadCache.keptBytes}).
   *
   * @param data The bytes received, from the start of the head.
   * @param limit How far the head may reach into them.
   * @returns The kept head, or null.
   */
  matchStart(data: Uint8Array, limit: number): ResponseHead | null {
    const last = this.#bytes;
    if (last === null || last.byteLength > limit) return null;
    return this.match(data, last.byteLength);
  }

  /** The length of the kept head's bytes, 0 for none. */
  get keptBytes(): number {
    return this.#bytes?.byteLength ?? 0;
  }

  /**
   * Keeps a head just parsed from `bytes` (when small enough), frozen.
   *
   * @param bytes The head's bytes, its empty line included (copied).
   * @param head Their parse.
   * @returns `head`.
   */
  keep(bytes: Uint8Array, head: ResponseHead): ResponseHead {
    if (bytes.byteLength > this.maxBytes) return head;
    for (const field of head.headers) Object.freeze(field);
    for (const field of head.rawHeaders) Object.freeze(field);
    Object.freeze(head.headers);
    Object.freeze(head.rawHeaders);
    this.#bytes = bytes.slice();
    this.#head = Object.freeze(head);
    return head;
  }

  /** Lets go of the last head. */
  forget(): void {
    this.#bytes =
      this.#head =
      this.#framedHead =
      this.#framing =
        null;
  }
}

function isBlank(code: number): boolean {
  return code === 0x20 || code === 0x09;
}

/** How a response body is delimited. */
export type BodyFraming =
  | { kind: "length"; length: number }
  | { kind: "chunked" }
  | { kind: "close" }
  | { kind: "none" };

/**
 * Decides the body framing from the head (RFC 9112 §6.3).
 *
 * @param head The response head.
 * @param requestMethod The request's method (HEAD responses have no body).
 * @returns The framing.
 * @throws {Http1Error} On conflicting or invalid framing headers.
 */
export function bodyFraming(
  head: Pick<ResponseHead, "status" | "headers">,
  requestMethod: string,
): BodyFraming {
  if (requestMethod === "HEAD" || head.status === 204 || head.status === 304) {
    return { kind: "none" };
  }
  let te: string[] | null = null;
  let cl: string[] | null = null;
  // Indexed: no iterator per answer (issue #11).
  const headers = head.headers;
  for (let i = 0; i < headers.length; i++) {
    const field = headers[i]!;
    const name = field[0];
    if (name === "transfer-encoding") (te ??= []).push(field[1]);
    else if (name === "content-length") (cl ??= []).push(field[1]);
  }
  if (te !== null) {
    if (cl !== null) throw new Http1Error("both Transfer-Encoding and Content-Length");
    if (te.length === 1 && te[0]!.toLowerCase() === "chunked") return { kind: "chunked" };
    const codings = te.join(",").split(",").map((c) => c.trim().toLowerCase());
    if (codings.length !== 1 || codings[0] !== "chunked") {
      throw new Http1Error(`unsupported Transfer-Encoding ${JSON.stringify(te.join(", "))}`);
    }
    return { kind: "chunked" };
  }
  if (cl !== null) {
    // The usual one plain value, then lists and repeats.
    if (cl.length === 1 && DECIMAL.test(cl[0]!)) return { kind: "length", length: Number(cl[0]) };
    const values = new Set(cl.join(",").split(",").map((v) => v.trim()));
    const [only] = values;
    if (values.size !== 1 || only === undefined || !DECIMAL.test(only)) {
      throw new Http1Error(`invalid Content-Length ${JSON.stringify(cl.join(", "))}`);
    }
    return { kind: "length", length: Number(only) };
  }
  return { kind: "close" };
}

/**
 * Whether the connection may carry another request after this response.
 *
 * @param head The response head.
 * @param framing Its body framing.
 * @returns True when it may.
 */
export function reusable(head: ResponseHead, framing: BodyFraming): boolean {
  if (framing.kind === "close") return false;
  let close = false;
  let keepAlive = false;
  const headers = head.headers;
  for (let i = 0; i < headers.length; i++) {
    if (headers[i]![0] !== "connection") continue;
    for (const token of headers[i]![1].toLowerCase().split(",")) {
      const t = token.trim();
      if (t === "close") close = true;
      else if (t === "keep-alive") keepAlive = true;
    }
  }
  if (close) return false;
  return head.version === "1.1" || keepAlive;
}
