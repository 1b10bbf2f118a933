/**
 * The client's Push on native I/O: the binary Connect streaming protocol
 * over HTTP/1.1 written by hand on `Deno.connect`/`Deno.connectTls`, with a
 * small keep-alive pool per proxy endpoint. The head message is encoded with
 * protobuf-es once; each body chunk goes out as a 5-byte envelope prefix and
 * the `body_chunk` field header, then the chunk's own bytes, without
 * re-encoding or copying them. Poll runs on the same footing
 * (client/transport/native_poll.ts) under the same rule, {@linkcode nativePushSupported};
 * connect-es stays for every case it does not cover (an HTTP proxy, a custom
 * CA or client certificate).
 *
 * @module
 */

import type { MessageInitShape } from "@bufbuild/protobuf";
import { CallCode, CallError, codeFromName } from "./call_error.ts";
import type { ScrapeResponseHeadSchema } from "../../gen/pushprox/v1/pushprox_pb.ts";
import { encodePushHead, PushHeadEncoder } from "./pushprox_codec.ts";
import {
  ByteReader,
  chunkSizeLineLength,
  readResponseHead,
  readResponseHeadNow,
  readWholeBodyNow,
  ResponseHeadCache,
  writeChunkSizeLine,
} from "../../lib/http1.ts";
import { bodyProgress, freeBuffer, releaseOwned } from "../../lib/owned_chunks.ts";
import { concatBytes } from "../../lib/bytes.ts";
import type { ReadBufferPool } from "../../lib/read_buffers.ts";
import { errorMessage } from "../../lib/error_message.ts";
import { offAbort, onAbort } from "../../lib/abort_hooks.ts";

/** Pushes one scrape's answer; rejects with a CallError when the push failed. */
export type PushSender = (
  head: MessageInitShape<typeof ScrapeResponseHeadSchema>,
  body: AsyncIterable<Uint8Array> | null,
  signal: AbortSignal,
) => Promise<void>;

/** Options for {@linkcode createNativePush}. */
export interface NativePushOptions {
  /** The proxy's base URL without credentials (parseProxyUrl's baseUrl). */
  baseUrl: string;
  /** Connect to this address instead of resolving the host (TLS still checks the host name). */
  address?: string | null;
  /** The Authorization header for each push; null for none. */
  authorization?: () => string | null;
  /** Largest response header block. @default {16384} */
  maxHeaderBytes?: number;
  /** Largest response body. @default {1048576} */
  maxBodyBytes?: number;
  /** Idle connections kept. @default {16} */
  maxIdle?: number;
  /** Dials (tests). @default {Deno.connect / Deno.connectTls} */
  dial?: (url: URL, address: string | null) => Promise<Deno.Conn>;
}

/** A native push sender with its connection pool. */
export interface NativePush {
  readonly send: PushSender;
  /** Closes the pooled connections. */
  close(): void;
}

const CRLF = new Uint8Array([0x0d, 0x0a]);
const LAST_CHUNK = new TextEncoder().encode("\r\n0\r\n\r\n");
const encoder = new TextEncoder();
const utf8 = new TextDecoder();

/**
 * Whether the native path (Push here, Poll in client/transport/native_poll.ts) can
 * serve a proxy connection so configured: the one decision for both.
 */
export function nativePushSupported(options: {
  baseUrl: string;
  httpProxy?: URL | null;
  tls?: { ca?: string; cert?: string; key?: string };
  address?: string | null;
}): boolean {
  if (options.httpProxy) return false;
  const url = new URL(options.baseUrl);
  if (url.protocol === "http:") return true;
  // Deno's TLS adds a CA to its roots (`caCerts`) where node:https replaces
  // them (`ca`; measured with Deno 2.9.6), so a custom CA or client
  // certificate keeps connect-es, exactly as before.
  const tls = options.tls ?? {};
  return url.protocol === "https:" && !tls.ca && !tls.cert && !tls.key;
}

/**
 * Dials the proxy: TCP without Nagle's algorithm, TLS (verified against the
 * system roots, SNI and checks with the URL's host name) for https.
 *
 * @param url The proxy's base URL.
 * @param address Connect to this address instead of resolving the host.
 * @returns The connection, its TLS handshake done.
 */
export async function dialProxy(url: URL, address: string | null): Promise<Deno.Conn> {
  const secure = url.protocol === "https:";
  const port = url.port !== "" ? Number(url.port) : secure ? 443 : 80;
  const hostname = url.hostname.replace(/^\[|\]$/g, "");
  const tcp = await Deno.connect({ hostname: address ?? hostname, port });
  // A push ends with small writes (the last chunk): Nagle's algorithm
  // would hold them for the peer's delayed ACK (40 ms per scrape).
  tcp.setNoDelay(true);
  if (!secure) return tcp;
  // TLS on the pinned address, verified and SNI'd with the URL's name.
  const tls = await Deno.startTls(tcp, { hostname });
  try {
    await tls.handshake();
  } catch (error) {
    tls.close();
    throw error;
  }
  return tls;
}

/**
 * The largest write joined in a spare buffer: a read's worth of body
 * (lib/http1.ts reads 64 KiB at most) behind its prefix, with room for the
 * request head and the end of the stream.
 */
const JOIN_BYTES = 65536 + 4096;
/**
 * A native scrape's piece is freed once written when its buffer is this
 * large; a smaller one is left to the collector (freeing it costs more
 * than it saves).
 */
const FREE_BYTES = 16384;

/**
 * Gives a native scrape's piece's buffer back to the read buffers it came
 * from (the next target read goes into it, not into a new zeroed one);
 * one they do not keep is freed when large.
 */
function giveBack(chunk: Uint8Array, pool: ReadBufferPool | null): void {
  if (pool !== null && pool.give(chunk.buffer)) return;
  if (chunk.buffer.byteLength >= FREE_BYTES) freeBuffer(chunk);
}

/** The size of a spare buffer for a push's request head and head message. */
const HEAD_BYTES = 2048;

/**
 * A sender's buffers not in use: for pushes' request heads and head
 * messages (one per push in flight at most, a few kept), and for joining
 * a piece with its framing (one per concurrent write at most, two kept).
 * A new buffer per push cost more than its bytes (issue #11).
 */
class SpareBuffers {
  readonly #heads: Uint8Array[] = [];
  readonly #joins: Uint8Array[] = [];
  /**
   * A piece's framing (chunk size line, envelope prefix, field header),
   * shared by the sender's pushes: it is copied next to the piece before
   * any wait.
   */
  readonly prefix: Uint8Array = new Uint8Array(32);

  takeHead(): Uint8Array {
    return this.#heads.pop() ?? new Uint8Array(HEAD_BYTES);
  }

  giveHead(buffer: Uint8Array): void {
    if (this.#heads.length < 4) this.#heads.push(buffer);
  }

  /** A spare buffer, or (none spare) a new one: of `length` bytes when that is small. */
  takeJoin(length: number): Uint8Array {
    return this.#joins.pop() ?? new Uint8Array(length <= 8192 ? length : JOIN_BYTES);
  }

  giveJoin(buffer: Uint8Array): void {
    if (buffer.byteLength === JOIN_BYTES && this.#joins.length < 2) this.#joins.push(buffer);
  }
}

/**
 * Creates a native push sender for one proxy endpoint.
 *
 * @param options Base URL, address, authorization and limits.
 * @returns The sender and its pool.
 */
export function createNativePush(options: NativePushOptions): NativePush {
  const base = new URL(options.baseUrl);
  const path = `${base.pathname.replace(/\/+$/, "")}/pushprox.v1.ClientService/Push`;
  const maxHeaderBytes = options.maxHeaderBytes ?? 16384;
  const maxBodyBytes = options.maxBodyBytes ?? 1 << 20;
  const maxIdle = options.maxIdle ?? 16;
  const dial = options.dial ?? dialProxy;
  const idle: Connection[] = [];
  const open = new Set<Connection>();
  let closed = false;

  class Connection {
    readonly conn: Deno.Conn;
    readonly reader: ByteReader;
    /** The proxy's last answer head, reused when the next one's bytes are the same. */
    readonly heads: ResponseHeadCache = new ResponseHeadCache();
    dead = false;
    // The idle read's ends, made once per connection, not per push.
    readonly #readWhileIdle = (): void => {
      // Bytes or the end while idle: the connection is not usable.
      if (idle.includes(this)) this.destroy();
    };
    /** Closes the connection: its idle read's failure, a push's abort; made once. */
    readonly kill = (): void => this.destroy();
    constructor(conn: Deno.Conn) {
      this.conn = conn;
      this.reader = new ByteReader((b) => conn.read(b), 4096);
      open.add(this);
    }
    destroy(): void {
      if (this.dead) return;
      this.dead = true;
      open.delete(this);
      const at = idle.indexOf(this);
      if (at >= 0) idle.splice(at, 1);
      try {
        this.conn.close();
      } catch {
        // Already closed.
      }
    }
    /** Back to the pool; a pending read notices the proxy closing it. */
    release(): void {
      if (closed || idle.length >= maxIdle || this.reader.buffered > 0) return this.destroy();
      idle.push(this);
      this.reader.prefetch().then(this.#readWhileIdle, this.kill);
    }
  }

  async function dialConnection(): Promise<Connection> {
    return new Connection(await dial(base, options.address ?? null));
  }

  const headStart = `POST ${path} HTTP/1.1\r\n` +
    `host: ${base.host}\r\n` +
    "content-type: application/connect+proto\r\n" +
    "connect-protocol-version: 1\r\n" +
    "transfer-encoding: chunked\r\n";
  // The request head's bytes, for the Authorization value they were made with.
  let headFor: string | null | undefined;
  let headBytes = new Uint8Array(0);
  // Heads alike but for their scrape id are encoded from the last one's bytes.
  const heads = new PushHeadEncoder();
  const spares = new SpareBuffers();

  function requestHead(): Uint8Array {
    const authorization = options.authorization?.() ?? null;
    if (authorization !== headFor) {
      headFor = authorization;
      headBytes = encoder.encode(
        headStart + (authorization !== null ? `authorization: ${authorization}\r\n` : "") + "\r\n",
      );
    }
    return headBytes;
  }

  const send: PushSender = async (head, body, signal) => {
    if (signal.aborted) throw abortError(signal);
    if (closed) throw new CallError("push sender closed", CallCode.Canceled);
    // An idle connection is taken at once; a new one is dialled until aborted.
    const connection = idle.pop() ?? await untilAborted(dialConnection(), signal);
    const abort = connection.kill;
    // A deadline's hook, or an abort listener (lib/abort_hooks.ts).
    onAbort(signal, abort);
    let done = false;
    let spare: Uint8Array | null = null;
    try {
      const conn = connection.conn;
      const start = requestHead();
      // The request head, the message's chunk size line (at most 8 hex
      // digits and CRLF) and envelope prefix go in front of the message,
      // in a spare buffer (a new one per push cost more than its bytes;
      // issue #11).
      const front = start.byteLength + 15;
      spare = spares.takeHead();
      let message = heads.encode(head, front, spare);
      if (message === null) {
        const slow = await encodePushHead(head);
        message = new Uint8Array(front + slow.byteLength).subarray(front);
        message.set(slow);
      }
      const length = message.byteLength;
      const size = chunkSizeLineLength(5 + length);
      const begin = message.byteOffset - 5 - size - start.byteLength;
      const first = new Uint8Array(message.buffer, begin, start.byteLength + size + 5 + length);
      first.set(start);
      writeChunkPrefix(first, start.byteLength, 5 + length, false);
      writeEnvelopePrefix(first, start.byteLength + size, length);
      // The head waits for the first piece of a native scrape's body (one
      // write, one segment for the proxy), received or not: a target's
      // answer often comes in two reads, its head and then its body (half
      // of the 57 KiB scrapes), and the head written alone was a write
      // and a wakeup of the proxy more (issue #11). A body known to be
      // complete takes the end of the stream along too.
      let pending: Uint8Array | null = first;
      let ended = false;
      if (body !== null) {
        const progress = bodyProgress(body);
        if (progress === null) {
          await writeAll(conn, pending);
          pending = null;
        }
        // A native scrape's pieces go back to its read buffers once written
        // (or are freed), not to the next GC; a marked chunk is freed.
        const owned = progress?.owned === true;
        const pool = owned ? progress!.pool ?? null : null;
        const prefix = spares.prefix;
        // As `for await` would, but a piece at hand is taken without a
        // promise per layer of the body (issue #11).
        const pieces = body[Symbol.asyncIterator]();
        const nextNow = progress?.nextNow !== undefined ? progress : null;
        let exhausted = false;
        try {
          for (;;) {
            let chunk = nextNow === null ? undefined : nextNow.nextNow!();
            if (chunk === undefined) {
              const result = await pieces.next();
              chunk = result.done === true ? null : result.value;
            }
            if (chunk === null) {
              exhausted = true;
              break;
            }
            signal.throwIfAborted();
            // (The end of the stream is written: nothing may follow it.)
            if (ended) throw new Error("the body went on after it said it was complete");
            const varint = varintLength(chunk.byteLength);
            const message = 1 + varint + chunk.byteLength;
            let n = writeChunkPrefix(prefix, 0, 5 + message, true);
            n += writeEnvelopePrefix(prefix, n, message);
            prefix[n++] = 0x12;
            n += writeVarint(prefix, n, chunk.byteLength);
            const last = progress !== null && progress.complete;
            const before = pending?.byteLength ?? 0;
            const front = before + n;
            const tail = last ? LAST_CHUNK.byteLength : 0;
            const buffer = chunk.buffer;
            if (
              owned && chunk.byteOffset >= front && buffer instanceof ArrayBuffer &&
              chunk.byteOffset + chunk.byteLength + tail <= buffer.byteLength
            ) {
              // The piece's buffer is ours, bytes around it too (BodyProgress
              // owned): the framing goes in front of it (the read's headroom
              // or the target's response head, parsed already) and the end
              // of the stream behind it; one write, nothing copied.
              const out = new Uint8Array(
                buffer,
                chunk.byteOffset - front,
                front + chunk.byteLength + tail,
              );
              if (pending !== null) out.set(pending);
              out.set(prefix.subarray(0, n), before);
              if (last) out.set(LAST_CHUNK, front + chunk.byteLength);
              pending = null;
              ended = last;
              const written = await conn.write(out);
              if (written < out.byteLength) await writeAll(conn, out, written);
              // Written: the buffer is read into again (never after a failed write).
              if (owned) giveBack(chunk, pool);
              else releaseOwned(chunk);
              // The body said it is complete: no read for its end (leaving
              // the loop gives its connection back as reading the end would).
              if (ended) break;
              continue;
            }
            const length = front + chunk.byteLength + tail;
            if (length <= JOIN_BYTES) {
              // A read's worth (lib/http1.ts reads 64 KiB at most): copying it
              // behind its prefix in a spare buffer costs less than a second
              // write, and the proxy gets one segment instead of two.
              const joined = spares.takeJoin(length);
              if (pending !== null) joined.set(pending);
              joined.set(prefix.subarray(0, n), before);
              joined.set(chunk, front);
              if (last) joined.set(LAST_CHUNK, length - LAST_CHUNK.byteLength);
              // Copied: the piece's buffer is free now. (A freed chunk reads
              // as empty: its length is taken before.)
              if (owned) giveBack(chunk, pool);
              else releaseOwned(chunk);
              pending = null;
              ended = last;
              try {
                await writeAll(conn, joined.subarray(0, length));
              } finally {
                spares.giveJoin(joined);
              }
              if (ended) break;
            } else {
              // (Copied: the shared prefix may be rewritten while this waits.)
              if (pending !== null) {
                await writeAll(conn, concatBytes([pending, prefix.subarray(0, n)]));
                pending = null;
              } else await writeAll(conn, prefix.slice(0, n));
              await writeAll(conn, chunk);
              // Written: a native scrape's piece is reused or freed now, not at the next GC.
              if (owned) giveBack(chunk, pool);
              else releaseOwned(chunk);
            }
          }
        } catch (error) {
          // Failed before its first piece: the proxy gets the head and a
          // cut stream, as when the head went first.
          if (pending !== null) await writeAll(conn, pending).catch(() => {});
          if (!exhausted) await pieces.return?.().catch(() => {});
          exhausted = true;
          throw error;
        } finally {
          // (A native body closes at once: its promise is not waited for.)
          if (!exhausted) {
            const closing = pieces.return?.();
            if (nextNow === null) await closing;
          }
        }
      }
      if (pending !== null) await writeAll(conn, concatBytes([pending, LAST_CHUNK]));
      else if (!ended) await writeAll(conn, LAST_CHUNK);
      const reader = connection.reader;
      // (The answer buffered whole, nearly always: parsed without a promise.)
      if (reader.buffered === 0) await reader.fill();
      const response = readResponseHeadNow(reader, maxHeaderBytes, connection.heads) ??
        await readResponseHead(reader, maxHeaderBytes, connection.heads);
      const framing = connection.heads.framing(response, "POST");
      // (The answer buffered whole, nearly always: read without a promise.)
      const answer = readWholeBodyNow(connection.reader, framing, maxBodyBytes);
      const bytes = answer instanceof Uint8Array ? answer : await answer;
      const keep = connection.heads.reusable(response, framing);
      if (response.status !== 200) {
        if (keep) {
          done = true;
          connection.release();
        }
        throw new CallError(
          `HTTP ${response.status}${describeBody(bytes)}`,
          codeFromHttpStatus(response.status),
        );
      }
      const error = endStreamError(bytes);
      if (keep) {
        done = true;
        // The answer is read and no view of it kept: the connection's next
        // read (its idle watch) goes into its buffer, not a new zeroed one
        // per push (a chunked body's piece; the buffer of a sized one).
        connection.reader.recycle();
        connection.reader.reuse(bytes);
        connection.release();
      }
      if (error !== null) throw error;
    } catch (error) {
      if (signal.aborted) throw abortError(signal);
      if (error instanceof CallError) throw error;
      throw new CallError(`push failed: ${errorMessage(error)}`, CallCode.Unavailable);
    } finally {
      offAbort(signal, abort);
      if (!done) connection.destroy();
      // Every write is over (done or failed): the buffer is free again.
      if (spare !== null) spares.giveHead(spare);
    }
  };

  return {
    send,
    close() {
      closed = true;
      for (const connection of [...open]) connection.destroy();
    },
  };
}

/** The connection, or the abort's error first (a late connection is closed). */
function untilAborted<T extends { destroy(): void }>(
  dialing: Promise<T>,
  signal: AbortSignal,
): Promise<T> {
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      dialing.then((c) => c.destroy(), () => {});
      reject(abortError(signal));
    };
    signal.addEventListener("abort", onAbort, { once: true });
    dialing.then(
      (c) => {
        signal.removeEventListener("abort", onAbort);
        if (signal.aborted) c.destroy();
        else resolve(c);
      },
      (error) => {
        signal.removeEventListener("abort", onAbort);
        reject(
          error instanceof CallError
            ? error
            : new CallError(`push failed: ${errorMessage(error)}`, CallCode.Unavailable),
        );
      },
    );
  });
}

/**
 * Writes the bytes from `at` on. A caller that wrote them once already
 * calls it only for a partial write's rest: one async step less per write.
 */
async function writeAll(conn: Deno.Conn, bytes: Uint8Array, at = 0): Promise<void> {
  while (at < bytes.byteLength) {
    at += await conn.write(at === 0 ? bytes : bytes.subarray(at));
  }
}

/** Writes `[CRLF] hex(size) CRLF`; returns the bytes written. */
function writeChunkPrefix(out: Uint8Array, at: number, size: number, leadingCrlf: boolean): number {
  if (!leadingCrlf) return writeChunkSizeLine(out, at, size) - at;
  out.set(CRLF, at);
  return writeChunkSizeLine(out, at + 2, size) - at;
}

/** Writes a Connect envelope prefix (flags 0, big-endian length); returns 5. */
function writeEnvelopePrefix(out: Uint8Array, at: number, length: number): number {
  out[at] = 0;
  out[at + 1] = (length >>> 24) & 0xff;
  out[at + 2] = (length >>> 16) & 0xff;
  out[at + 3] = (length >>> 8) & 0xff;
  out[at + 4] = length & 0xff;
  return 5;
}

function varintLength(value: number): number {
  let n = 1;
  while (value >= 0x80) {
    value = Math.floor(value / 128);
    n++;
  }
  return n;
}

function writeVarint(out: Uint8Array, at: number, value: number): number {
  let n = 0;
  while (value >= 0x80) {
    out[at + n++] = (value & 0x7f) | 0x80;
    value = Math.floor(value / 128);
  }
  out[at + n++] = value;
  return n;
}

/**
 * Parses a Push response body: envelopes of PushResponse messages and the
 * end-stream message. Returns its error, or null for success.
 */
export function endStreamError(bytes: Uint8Array): CallError | null {
  let at = 0;
  while (at + 5 <= bytes.byteLength) {
    const flags = bytes[at]!;
    const length = ((bytes[at + 1]! << 24) >>> 0) + (bytes[at + 2]! << 16) +
      (bytes[at + 3]! << 8) + bytes[at + 4]!;
    // Success, nearly always: `{}`, parsed without JSON.parse.
    if (
      (flags & 0x02) !== 0 && length === 2 && at + 7 <= bytes.byteLength &&
      bytes[at + 5] === 0x7b && bytes[at + 6] === 0x7d
    ) {
      return null;
    }
    const end = at + 5 + length;
    if (end > bytes.byteLength) break;
    if ((flags & 0x02) !== 0) {
      let json: { error?: { code?: string; message?: string } };
      try {
        json = JSON.parse(utf8.decode(bytes.subarray(at + 5, end)));
      } catch {
        return new CallError("protocol error: invalid end-stream message", CallCode.Internal);
      }
      if (json.error === undefined) return null;
      return new CallError(
        json.error.message ?? "",
        codeFromName(json.error.code ?? "unknown"),
      );
    }
    at = end;
  }
  return new CallError("protocol error: missing end-stream message", CallCode.Internal);
}

/**
 * As connect-es maps HTTP statuses of a failed call.
 *
 * @param status The HTTP status.
 * @returns The Connect code.
 */
export function codeFromHttpStatus(status: number): CallCode {
  switch (status) {
    case 400:
      return CallCode.Internal;
    case 401:
      return CallCode.Unauthenticated;
    case 403:
      return CallCode.PermissionDenied;
    case 404:
      return CallCode.Unimplemented;
    case 429:
    case 502:
    case 503:
    case 504:
      return CallCode.Unavailable;
    default:
      return CallCode.Unknown;
  }
}

function describeBody(bytes: Uint8Array): string {
  if (bytes.byteLength === 0) return "";
  const text = new TextDecoder().decode(bytes.subarray(0, 200)).trim();
  return text === "" ? "" : `: ${text}`;
}

/** As connect-es reports an aborted call: canceled, with the reason's message. */
function abortError(signal: AbortSignal): CallError {
  return new CallError(errorMessage(signal.reason), CallCode.Canceled);
}
