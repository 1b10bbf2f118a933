/**
 * A strict reader of HTTP/1.1 request heads for the native front door
 * (proxy/http/front_door.ts). It accepts only the plain shape Prometheus and
 * this project's client send; anything else is "unusual", and the front
 * door hands the connection to node:http, whose parser gives today's answers
 * (400, 431…) to malformed input. So the native edge never has to answer
 * bad input itself, beyond the header timeout.
 *
 * @module
 */

/** A parsed request head. */
export interface RequestHead {
  /** The method, e.g. "GET". */
  method: string;
  /** The request target as received. */
  target: string;
  /** Header fields flat, as node's `rawHeaders`: name, value, name, value… */
  rawHeaders: string[];
  /** Header values by lower-case name, in arrival order. */
  headers: Map<string, string[]>;
  /** Bytes of the head, its final CRLF CRLF included. */
  length: number;
}

/** What the bytes received so far hold. */
export type HeadScan =
  | { kind: "head"; head: RequestHead }
  | { kind: "incomplete" }
  | { kind: "unusual" };

const TOKEN_REGEXP = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const REQUEST_LINE_REGEXP = /^([A-Z]+) ([\x21-\x7e]+) HTTP\/1\.1$/;
/** A request line as far as it has arrived. */
const REQUEST_LINE_PREFIX_REGEXP = /^[A-Z]*(?: [\x21-\x7e]*(?: H?T?T?P?\/?1?\.?1?)?)?$/;
const DECODER = new TextDecoder();

/**
 * Looks at the bytes a connection sent so far for one request head.
 *
 * @param bytes The bytes received, from the start of the request.
 * @param maxHeaderBytes Heads larger than this are unusual (node:http answers 431).
 * @returns The head, "incomplete" when more bytes may complete a plain head,
 *   or "unusual" for anything the native edge leaves to node:http.
 */
export function scanRequestHead(bytes: Uint8Array, maxHeaderBytes: number): HeadScan {
  const end = headEnd(bytes);
  const limit = end < 0 ? bytes.byteLength : end;
  for (let i = 0; i < limit; i++) {
    const byte = bytes[i]!;
    // Visible ASCII, space, tab, CR, LF; no NUL, controls or obs-text.
    if (byte > 0x7e || (byte < 0x20 && byte !== 0x09 && byte !== 0x0d && byte !== 0x0a)) {
      return { kind: "unusual" };
    }
  }
  if (end < 0) {
    if (bytes.byteLength > maxHeaderBytes) return { kind: "unusual" };
    const lineEnd = bytes.indexOf(0x0a);
    const line = DECODER.decode(bytes.subarray(0, lineEnd < 0 ? bytes.byteLength : lineEnd));
    if (lineEnd >= 0) {
      return line.endsWith("\r") && REQUEST_LINE_REGEXP.test(line.slice(0, -1))
        ? { kind: "incomplete" }
        : { kind: "unusual" };
    }
    return REQUEST_LINE_PREFIX_REGEXP.test(line.replace(/\r$/, ""))
      ? { kind: "incomplete" }
      : { kind: "unusual" };
  }
  const length = end + 4;
  if (length > maxHeaderBytes) return { kind: "unusual" };
  const lines = DECODER.decode(bytes.subarray(0, end)).split("\r\n");
  const match = REQUEST_LINE_REGEXP.exec(lines[0]!);
  if (match === null) return { kind: "unusual" };
  const rawHeaders: string[] = [];
  const headers = new Map<string, string[]>();
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    // Bare LFs, obs-fold, missing colons, space before the colon: node's call.
    if (line.includes("\n") || line.includes("\r")) return { kind: "unusual" };
    const colon = line.indexOf(":");
    if (colon <= 0) return { kind: "unusual" };
    const name = line.slice(0, colon);
    if (!TOKEN_REGEXP.test(name)) return { kind: "unusual" };
    const value = line.slice(colon + 1).replace(/^[ \t]+|[ \t]+$/g, "");
    rawHeaders.push(name, value);
    const lower = name.toLowerCase();
    const list = headers.get(lower);
    if (list === undefined) headers.set(lower, [value]);
    else list.push(value);
  }
  return {
    kind: "head",
    head: { method: match[1]!, target: match[2]!, rawHeaders, headers, length },
  };
}

/** Index of the CRLF CRLF that ends a head, or -1. */
function headEnd(bytes: Uint8Array): number {
  for (
    let i = bytes.indexOf(0x0d);
    i >= 0 && i + 3 < bytes.byteLength;
    i = bytes.indexOf(0x0d, i + 1)
  ) {
    if (bytes[i + 1] === 0x0a && bytes[i + 2] === 0x0d && bytes[i + 3] === 0x0a) return i;
  }
  return -1;
}
