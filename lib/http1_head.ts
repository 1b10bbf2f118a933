/**
 * Part of lib/http1.ts: the response head (status line, header fields),
 * how its body is framed and whether the connection is reusable.
 *
 * @module
 */

import { ByteReader, Http1Error } from "./http1_byte_reader.ts";

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
 * @returns The head.
 * @throws {Http1Error} On anything malformed or too large.
 */
export async function readResponseHead(
  reader: ByteReader,
  maxHeaderBytes: number,
): Promise<ResponseHead> {
  for (;;) {
    let budget = maxHeaderBytes;
    // Most lines are buffered already: read them without a promise each.
    const statusLine = reader.lineNow(budget, "status line") ??
      await reader.line(budget, "status line");
    budget -= statusLine.length + 2;
    const match = /^HTTP\/(1\.[01]) ([1-9][0-9]{2})(?: .*)?$/.exec(statusLine);
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
  const te = head.headers.filter(([n]) => n === "transfer-encoding").map(([, v]) => v);
  const cl = head.headers.filter(([n]) => n === "content-length").map(([, v]) => v);
  if (te.length > 0) {
    if (cl.length > 0) throw new Http1Error("both Transfer-Encoding and Content-Length");
    const codings = te.join(",").split(",").map((c) => c.trim().toLowerCase());
    if (codings.length !== 1 || codings[0] !== "chunked") {
      throw new Http1Error(`unsupported Transfer-Encoding ${JSON.stringify(te.join(", "))}`);
    }
    return { kind: "chunked" };
  }
  if (cl.length > 0) {
    const values = new Set(cl.join(",").split(",").map((v) => v.trim()));
    const [only] = values;
    if (values.size !== 1 || only === undefined || !/^[0-9]{1,15}$/.test(only)) {
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
  const connection = head.headers.filter(([n]) => n === "connection")
    .flatMap(([, v]) => v.toLowerCase().split(",").map((t) => t.trim()));
  if (connection.includes("close")) return false;
  return head.version === "1.1" || connection.includes("keep-alive");
}
