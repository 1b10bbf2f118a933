/**
 * The client's HTTP/1.1 requests to plain-http targets on native I/O
 * (`Deno.connect`), with a bounded keep-alive pool per target. Bodies are
 * passed on as the reads deliver them (bytes as the target sent them: gzip
 * stays compressed, which `fetch` would not do) and parsed strictly
 * (client/http1.ts): header block size limit, Content-Length, chunked or
 * close-delimited framing, short bodies reported as errors.
 *
 * @module
 */

import type { HeaderField } from "../lib/headers.ts";
import { bodyFraming, ByteReader, Http1Error, readResponseHead, reusable } from "./http1.ts";
import type { ScrapeTransport, TargetResponse } from "./scrape_transport.ts";

/** Options for {@linkcode createNativeScrapeTransport}. */
export interface NativeScrapeOptions {
  /** Largest response header block. @default {16384} */
  maxHeaderBytes?: number;
  /** Idle connections kept per target. @default {8} */
  maxIdlePerTarget?: number;
  /** Idle connections kept in all. @default {64} */
  maxIdle?: number;
  /** Dials (tests). @default {Deno.connect} */
  dial?: (hostname: string, port: number) => Promise<Deno.Conn>;
}

/** A transport with a connection pool to close. */
export type ClosableScrapeTransport = ScrapeTransport & { close(): void };

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;
const encoder = new TextEncoder();

/**
 * Creates the native transport for `http:` URLs.
 *
 * @param options Limits and pool sizes.
 * @returns The transport; `close()` ends its pooled connections.
 */
export function createNativeScrapeTransport(
  options: NativeScrapeOptions = {},
): ClosableScrapeTransport {
  const maxHeaderBytes = options.maxHeaderBytes ?? 16384;
  const maxIdlePerTarget = options.maxIdlePerTarget ?? 8;
  const maxIdle = options.maxIdle ?? 64;
  const dial = options.dial ?? (async (hostname: string, port: number) => {
    const conn = await Deno.connect({ hostname, port });
    conn.setNoDelay(true);
    return conn;
  });
  /** Idle connections by "host:port", oldest first. */
  const idle = new Map<string, Connection[]>();
  let idleCount = 0;
  const open = new Set<Connection>();
  let closed = false;

  class Connection {
    readonly reader: ByteReader;
    dead = false;
    constructor(readonly conn: Deno.Conn, readonly key: string) {
      this.reader = new ByteReader((b) => conn.read(b), 16384);
      open.add(this);
    }
    destroy(): void {
      if (this.dead) return;
      this.dead = true;
      open.delete(this);
      this.unpool();
      try {
        this.conn.close();
      } catch {
        // Already closed.
      }
    }
    unpool(): void {
      const list = idle.get(this.key);
      const at = list?.indexOf(this) ?? -1;
      if (at < 0) return;
      list!.splice(at, 1);
      idleCount--;
      if (list!.length === 0) idle.delete(this.key);
    }
    release(): void {
      const list = idle.get(this.key) ?? [];
      if (closed || this.reader.buffered > 0 || list.length >= maxIdlePerTarget) {
        return this.destroy();
      }
      if (idleCount >= maxIdle) oldestIdle()?.destroy();
      list.push(this);
      idle.set(this.key, list);
      idleCount++;
      // A read stays pending while idle: the target closing the connection
      // (or sending anything unasked) takes it out of the pool at once.
      this.reader.prefetch().then(
        () => {
          if (idle.get(this.key)?.includes(this)) this.destroy();
        },
        () => this.destroy(),
      );
    }
  }

  function oldestIdle(): Connection | undefined {
    for (const list of idle.values()) if (list.length > 0) return list[0];
    return undefined;
  }

  async function acquire(hostname: string, port: number): Promise<[Connection, boolean]> {
    const key = `${hostname}:${port}`;
    const reused = idle.get(key)?.pop();
    if (reused !== undefined) {
      idleCount--;
      if (idle.get(key)!.length === 0) idle.delete(key);
      return [reused, true];
    }
    return [new Connection(await dial(hostname, port), key), false];
  }

  const send = async (
    url: URL,
    init: { method: string; headers: readonly HeaderField[]; signal: AbortSignal },
  ): Promise<TargetResponse> => {
    const { signal } = init;
    signal.throwIfAborted();
    if (url.protocol !== "http:") throw new TypeError(`not an http URL: ${url}`);
    const hostname = url.hostname.replace(/^\[|\]$/g, "");
    const port = url.port !== "" ? Number(url.port) : 80;
    const request = encoder.encode(requestHead(url, init.method, init.headers));
    for (let attempt = 0;; attempt++) {
      const [connection, reused] = await acquire(hostname, port);
      const abort = () => connection.destroy();
      signal.addEventListener("abort", abort, { once: true });
      let head;
      try {
        if (signal.aborted) throw signal.reason;
        await writeAll(connection.conn, request);
        head = await readResponseHead(connection.reader, maxHeaderBytes);
      } catch (error) {
        signal.removeEventListener("abort", abort);
        connection.destroy();
        if (signal.aborted) throw signal.reason;
        // A kept-alive connection the target closed just as it was reused:
        // an idempotent request is sent once more on a new connection.
        if (
          reused && attempt === 0 && (init.method === "GET" || init.method === "HEAD") &&
          connection.reader.buffered === 0
        ) continue;
        throw error;
      }
      const framing = bodyFraming(head, init.method);
      const keep = reusable(head, framing);
      return {
        status: head.status,
        headers: head.headers,
        body: readBody(connection, framing, keep, signal, abort),
      };
    }
  };

  return Object.assign(send, {
    close() {
      closed = true;
      for (const connection of [...open]) connection.destroy();
    },
  });

  async function* readBody(
    connection: Connection,
    framing: ReturnType<typeof bodyFraming>,
    keep: boolean,
    signal: AbortSignal,
    abort: () => void,
  ): AsyncGenerator<Uint8Array> {
    const reader = connection.reader;
    let clean = false;
    try {
      switch (framing.kind) {
        case "none":
          break;
        case "length":
          for (let left = framing.length; left > 0;) {
            const piece = await reader.readSome(left);
            if (piece === null) {
              throw new Http1Error(
                `body ended after ${framing.length - left} of ${framing.length} bytes`,
              );
            }
            left -= piece.byteLength;
            yield piece;
          }
          break;
        case "close":
          for (;;) {
            const piece = await reader.readSome(Number.MAX_SAFE_INTEGER);
            if (piece === null) break;
            yield piece;
          }
          break;
        case "chunked":
          for (;;) {
            const sizeLine = await reader.line(1024, "chunk size");
            const match = /^([0-9A-Fa-f]{1,8})[ \t]*(?:;.*)?$/.exec(sizeLine);
            if (match === null) {
              throw new Http1Error(`malformed chunk size ${JSON.stringify(sizeLine.slice(0, 32))}`);
            }
            const size = parseInt(match[1]!, 16);
            if (size === 0) break;
            for (let left = size; left > 0;) {
              const piece = await reader.readSome(left);
              if (piece === null) throw new Http1Error("body ended inside a chunk");
              left -= piece.byteLength;
              yield piece;
            }
            const crlf = await reader.exactly(2, "chunk");
            if (crlf[0] !== 0x0d || crlf[1] !== 0x0a) {
              throw new Http1Error("chunk data not followed by CRLF");
            }
          }
          for (let budget = maxHeaderBytes;;) {
            const line = await reader.line(budget, "chunked trailer");
            if (line === "") break;
            budget -= line.length + 2;
            if (budget <= 0) throw new Http1Error("chunked trailer too large");
          }
          break;
      }
      clean = true;
    } catch (error) {
      if (signal.aborted) throw signal.reason;
      throw error;
    } finally {
      signal.removeEventListener("abort", abort);
      if (clean && keep && !signal.aborted) connection.release();
      else connection.destroy();
    }
  }
}

/** The request line and header block; throws on a header that cannot be sent. */
function requestHead(url: URL, method: string, headers: readonly HeaderField[]): string {
  if (!TOKEN.test(method)) throw new TypeError(`invalid method ${JSON.stringify(method)}`);
  let host = url.host;
  let text = "";
  for (const { name, value } of headers) {
    if (!TOKEN.test(name) || !FIELD_VALUE.test(value)) {
      throw new TypeError(`invalid header ${JSON.stringify(name)}`);
    }
    if (name.toLowerCase() === "host") host = value;
    else text += `${name}: ${value}\r\n`;
  }
  return `${method} ${url.pathname}${url.search} HTTP/1.1\r\nhost: ${host}\r\n${text}\r\n`;
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  for (let at = 0; at < bytes.byteLength;) {
    at += await conn.write(at === 0 ? bytes : bytes.subarray(at));
  }
}
