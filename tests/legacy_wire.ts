/**
 * Upstream PushProx's wire format as the Go client speaks it, for the test
 * double in legacy_client_double.ts: a poll's answer read as Go's
 * `http.ReadRequest` does, the target scraped over node:http, and the push
 * written as Go's `http.Response.Write` does.
 *
 * @module
 */

import http from "node:http";
import https from "node:https";

/** How the push frames the body. */
export type PushFraming = "auto" | "content-length" | "chunked" | "close";

/** A request parsed from a poll body, as Go's `http.ReadRequest` would. */
export interface ParsedPollRequest {
  method: string;
  url: string;
  /** Header fields in order, names as sent. */
  headers: [string, string][];
  body: Uint8Array;
}

/**
 * Parses a poll response body as an HTTP/1.x request. Errors read like Go's.
 *
 * @param bytes The body.
 * @returns The request.
 * @throws {SyntaxError} When it is not a request.
 */
export function parsePollRequest(bytes: Uint8Array): ParsedPollRequest {
  const text = latin1(bytes);
  const headEnd = text.indexOf("\r\n\r\n");
  const head = headEnd < 0 ? text : text.slice(0, headEnd);
  const lines = head.split("\r\n");
  const first = lines[0] ?? "";
  const parts = first.split(" ");
  if (parts.length !== 3) throw new SyntaxError(`malformed HTTP request ${JSON.stringify(first)}`);
  const [method, uri, proto] = parts as [string, string, string];
  if (!/^[!#$%&'*+\-.^_`|~0-9a-zA-Z]+$/.test(method)) {
    throw new SyntaxError(`invalid method ${JSON.stringify(method)}`);
  }
  if (!/^HTTP\/\d\.\d$/.test(proto)) {
    throw new SyntaxError(`malformed HTTP version ${JSON.stringify(proto)}`);
  }
  if (headEnd < 0) throw new SyntaxError("unexpected EOF");
  const headers: [string, string][] = [];
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(":");
    if (colon <= 0) throw new SyntaxError(`malformed MIME header line: ${line}`);
    headers.push([line.slice(0, colon), line.slice(colon + 1).trim()]);
  }
  const host = headerValue(headers, "host");
  let url: URL;
  try {
    url = new URL(uri.startsWith("/") ? `http://${host}${uri}` : uri);
  } catch {
    throw new SyntaxError(`parse ${JSON.stringify(uri)}: invalid URI for request`);
  }
  const length = Number(headerValue(headers, "content-length") || "0");
  const rest = bytes.subarray(headEnd + 4);
  return { method, url: url.toString(), headers, body: rest.subarray(0, length) };
}

/**
 * Writes a response as Go's `http.Response.Write` does.
 *
 * @param response Version, status, reason, headers (`Content-Length` and
 *   `Transfer-Encoding` among them are replaced by the framing) and body.
 * @param framing How to frame the body.
 * @returns The bytes to push.
 */
export function formatGoResponse(
  response: {
    major: number;
    minor: number;
    status: number;
    reason: string;
    headers: [string, string][];
    body: Uint8Array;
  },
  framing: Exclude<PushFraming, "auto">,
): Uint8Array<ArrayBuffer> {
  let head = `HTTP/${response.major}.${response.minor} ${
    String(response.status).padStart(3, "0")
  } ${response.reason}\r\n`;
  if (framing === "content-length") head += `Content-Length: ${response.body.byteLength}\r\n`;
  if (framing === "chunked") head += "Transfer-Encoding: chunked\r\n";
  if (
    framing === "close" && (response.major > 1 || (response.major === 1 && response.minor >= 1))
  ) {
    head += "Connection: close\r\n";
  }
  const grouped = new Map<string, string[]>();
  for (const [name, value] of response.headers) {
    const key = canonical(name);
    if (["Content-Length", "Transfer-Encoding", "Trailer"].includes(key)) continue;
    if (framing === "close" && key === "Connection") continue;
    grouped.set(key, [...grouped.get(key) ?? [], value]);
  }
  for (const key of [...grouped.keys()].sort()) {
    for (const value of grouped.get(key)!) head += `${key}: ${value}\r\n`;
  }
  head += "\r\n";
  const parts = [latin1Bytes(head)];
  if (framing === "chunked") {
    if (response.body.byteLength > 0) {
      parts.push(latin1Bytes(`${response.body.byteLength.toString(16)}\r\n`), response.body);
      parts.push(latin1Bytes("\r\n"));
    }
    parts.push(latin1Bytes("0\r\n\r\n"));
  } else {
    parts.push(response.body);
  }
  return concat(parts);
}

export interface TargetAnswer {
  major: number;
  minor: number;
  status: number;
  reason: string;
  headers: [string, string][];
  body: Uint8Array;
  chunked: boolean;
  hasLength: boolean;
}

export function fetchTarget(
  url: URL,
  dialHost: string,
  request: ParsedPollRequest,
  deadline: number,
): Promise<TargetAnswer> {
  const module = url.protocol === "https:" ? https : http;
  const headers: [string, string][] = request.headers.filter(([name]) =>
    name.toLowerCase() !== "host"
  );
  return new Promise((resolve, reject) => {
    const outgoing = module.request({
      host: dialHost,
      port: url.port || (url.protocol === "https:" ? 443 : 80),
      method: request.method,
      path: url.pathname + url.search,
      headers: Object.fromEntries([["host", url.host], ...headers]),
      agent: false,
    }, (incoming) => {
      const chunks: Uint8Array[] = [];
      incoming.on("data", (chunk: Uint8Array) => chunks.push(chunk));
      incoming.on("error", fail);
      incoming.on("end", () => {
        clearTimeout(timer);
        const raw = incoming.rawHeaders;
        const fields: [string, string][] = [];
        for (let i = 0; i + 1 < raw.length; i += 2) fields.push([raw[i]!, raw[i + 1]!]);
        resolve({
          major: incoming.httpVersionMajor,
          minor: incoming.httpVersionMinor,
          status: incoming.statusCode ?? 0,
          reason: incoming.statusMessage ?? "",
          headers: fields,
          body: concat(chunks),
          chunked: /chunked/i.test(String(incoming.headers["transfer-encoding"] ?? "")),
          hasLength: incoming.headers["content-length"] !== undefined,
        });
      });
    });
    const timer = setTimeout(
      () => fail(new Error("context deadline exceeded")),
      Math.max(0, deadline - Date.now()),
    );
    function fail(error: Error): void {
      clearTimeout(timer);
      outgoing.destroy();
      reject(error);
    }
    outgoing.on("error", fail);
    outgoing.end();
  });
}

export function headerValue(headers: [string, string][], name: string): string {
  return headers.find(([n]) => n.toLowerCase() === name)?.[1] ?? "";
}

export function canonical(name: string): string {
  return name.toLowerCase().replace(/(^|-)([a-z])/g, (_, dash, c) => dash + c.toUpperCase());
}

export function latin1(bytes: Uint8Array): string {
  let text = "";
  for (let i = 0; i < bytes.length; i += 4096) {
    text += String.fromCharCode(...bytes.subarray(i, i + 4096));
  }
  return text;
}

export function latin1Bytes(text: string): Uint8Array {
  return Uint8Array.from(text, (c) => c.charCodeAt(0) & 0xff);
}

export function concat(parts: readonly Uint8Array[]): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.byteLength;
  }
  return out;
}
