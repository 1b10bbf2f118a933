/**
 * An {@linkcode Exchange} on a connection the native front door serves
 * itself: the response is written straight to the `Deno.Conn`, each write
 * awaited (back-pressure), framed by Content-Length when known, else
 * chunked.
 *
 * @module
 */

import { STATUS_TEXT } from "../../lib/status_text.ts";
import { joinBytes } from "../../lib/bytes.ts";
import { type BodyReader, chunkFrame, chunkFrameInPlace, LAST_CHUNK } from "../../lib/http1.ts";
import type { Exchange, HeaderPair } from "../../lib/http_exchange.ts";
import type { RequestHead } from "../../lib/request_head.ts";
import type { LazyTimer } from "../../lib/lazy_timer.ts";
import { POLL_PATH } from "../connect/fast_client_service.ts";
import { type PushHeadTexts, pushHeadTexts } from "../connect/wire_codec.ts";
import { markOwned, takeOwned } from "../../lib/owned_chunks.ts";
import type { ReadBufferPool } from "../../lib/read_buffers.ts";
import { httpDate } from "../../lib/http_date.ts";
import { peerAddress } from "../../lib/address.ts";

const encoder = new TextEncoder();
const CRLF = encoder.encode("\r\n");

/** Options for {@linkcode NativeExchange}. */
export interface NativeExchangeOptions {
  /** Keep-alive timeout announced in the `Keep-Alive` header, in seconds. */
  keepAliveSeconds: number;
  /** The request body; null when there is none. */
  body?: BodyReader | null;
  /** Headers sent before the handler's own (`http_server_config.headers`). */
  headers?: readonly HeaderPair[];
  /** Called once the handler has read the body to its end. */
  onBodyEnd?: () => void;
  /** A timer of the connection that the exchange's handler may use (free while it runs). */
  timer?: LazyTimer;
  /**
   * Where the buffer of a body chunk marked as owned (lib/owned_chunks.ts)
   * goes once the chunk is written: the edge's read buffers. The request
   * body's pieces are marked (each is the only view of its buffer).
   */
  pool?: ReadBufferPool | null;
  /** Where such a buffer goes when the pool does not take it (one of another size). */
  giveBack?: ((buffer: ArrayBufferLike) => void) | null;
  /** The peer's "host:port" (lib/address.ts peerAddress), when the connection has it made. */
  peerAddress?: string;
  /**
   * Where the connection keeps its last response head, reused by the next
   * exchange whose head is the same (see ResponseHeads); none by default.
   */
  heads?: ResponseHeads | null;
}

/**
 * A connection's last response head, for its next exchange: a kept-alive
 * connection answers the same head to the same request (a scrape's, a
 * Push's), and building and encoding it was ~1.5 % of the proxy's CPU per
 * scrape (issue #11). One head per connection.
 */
export interface ResponseHeads {
  lastHead: BuiltHead | null;
  /**
   * The last whole response written by `end` in one go: its head, its body
   * (both by identity, never written to) and the two joined (a Push's
   * answer, the same bytes every scrape of a size: no buffer per answer).
   */
  lastWhole?: WholeResponse | null;
  /** The connection's Push head texts (see Exchange.connectionTexts), made when first asked for. */
  texts?: PushHeadTexts | null;
}

const noop = (): void => {};
/** Largest whole response a connection keeps (see ResponseHeads.lastWhole). */
const WHOLE_KEPT_BYTES = 1024;

type GoneListener = (reason: unknown) => void;

/** A body's pieces, marked as owned; `ended` is called at its end. */
class BodyPieces implements AsyncIterableIterator<Uint8Array> {
  readonly #body: BodyReader;
  readonly #ended: () => void;

  constructor(body: BodyReader, ended: () => void) {
    this.#body = body;
    this.#ended = ended;
  }

  // A class, not an object literal with a computed key per body (V8 makes
  // those slowly: ~0.5 % of the proxy's CPU per scrape; issue #11).
  [Symbol.asyncIterator](): BodyPieces {
    return this;
  }

  async next(): Promise<IteratorResult<Uint8Array>> {
    const piece = await this.#body.next();
    // The only view of its buffer (BodyReader's contract): its
    // consumer may give the buffer back once done (see write).
    if (piece !== null) return { done: false, value: markOwned(piece) };
    this.#ended();
    return { done: true, value: undefined };
  }

  /**
   * The next piece when the bytes received hold it, without waiting
   * (BodyReader.nextNow): null at the end, undefined when only
   * {@linkcode next} can tell.
   */
  nextNow(): Uint8Array | null | undefined {
    const piece = this.#body.nextNow();
    if (piece === undefined) return undefined;
    if (piece !== null) return markOwned(piece);
    this.#ended();
    return null;
  }
}

/** The pieces of no body (shared: it keeps no state). */
const EMPTY: AsyncIterableIterator<Uint8Array> = Object.freeze({
  next: () => Promise.resolve({ done: true, value: undefined } as const),
  [Symbol.asyncIterator]() {
    return EMPTY;
  },
});

/** One request served by the front door; see the module doc. */
export class NativeExchange implements Exchange {
  readonly method: string;
  /** The request target (replaced by a copy when the head is let go; see {@linkcode keepOnly}). */
  target: string;
  readonly httpVersionMajor = 1;
  readonly remoteAddress: string | undefined;
  readonly remotePort: number | undefined;
  readonly peer = null;
  /**
   * Set once a Push's head matched a scrape (see RequestContext.bodyBound):
   * the scrape's deadline bounds the body from then, not the edge's body
   * idle timeout.
   */
  bodyBound = false;
  /**
   * A timer of the connection for the handler's deadlines; null when none
   * was given, or once the edge took it back (an open Poll stream's).
   */
  timer: LazyTimer | null;
  /** Let go of once read to its end (with it its reader and read buffer). */
  #body: BodyReader | null;
  readonly #extraHeaders: readonly HeaderPair[];
  #onBodyEnd: (() => void) | undefined;
  readonly #conn: Deno.Conn;
  #head: RequestHead;
  readonly #keepAliveSeconds: number;
  readonly #pool: ReadBufferPool | null;
  readonly #giveBack: ((buffer: ArrayBufferLike) => void) | null;
  /** Made when the signal is first read (a Push's handler never reads it). */
  #gone: AbortController | null = null;
  /** Why the exchange was abandoned; null while it is not. */
  #goneReason: Error | null = null;
  /** Called when the exchange is abandoned (see onGone): one, several, or null for none. */
  #goneListeners: GoneListener | GoneListener[] | null = null;
  /** The peer asked to close (Connection: close), or a failure requires it. */
  #close: boolean;
  #status = 0;
  #headers: readonly HeaderPair[] = [];
  #responded = false;
  #headSent = false;
  #ended = false;
  #destroyed = false;
  #chunked = false;
  /**
   * Chunked: the CRLF that ends the last chunk's data is not written yet
   * (an owned chunk framed in its own buffer); it goes in front of the next
   * chunk's size line, or of the last chunk.
   */
  #crlfOwed = false;
  #noBody = false;
  /** Writes in order; resolves when the last one is out. */
  #queue: Promise<void> = Promise.resolve();
  /** Writes started and not settled (0: the queue is settled). */
  #writing = 0;
  /** Set once `end` has queued the last bytes (see finished). */
  #over = false;
  #peerAddress: string | null;
  readonly #heads: ResponseHeads | null;

  /**
   * @param conn The connection.
   * @param head The request head.
   * @param options Keep-alive timeout.
   */
  constructor(conn: Deno.Conn, head: RequestHead, options: NativeExchangeOptions) {
    this.#conn = conn;
    this.#head = head;
    this.#keepAliveSeconds = options.keepAliveSeconds;
    this.method = head.method;
    // The one copy of the Poll path, not a slice of each stream's head text.
    this.target = head.target === POLL_PATH ? POLL_PATH : head.target;
    this.remoteAddress = (conn.remoteAddr as Deno.NetAddr).hostname;
    this.remotePort = (conn.remoteAddr as Deno.NetAddr).port;
    this.#body = options.body ?? null;
    this.#extraHeaders = options.headers ?? [];
    this.#onBodyEnd = options.onBodyEnd;
    this.timer = options.timer ?? null;
    this.#pool = options.pool ?? null;
    this.#giveBack = options.giveBack ?? null;
    this.#peerAddress = options.peerAddress ?? null;
    this.#heads = options.heads ?? null;
    this.#close = (head.headers.get("connection") ?? []).some((value) =>
      value.toLowerCase().split(",").some((token) => token.trim() === "close")
    );
  }

  /** The connection's texts kept from request to request, if it keeps any (see ResponseHeads). */
  get connectionTexts(): PushHeadTexts | null {
    const heads = this.#heads;
    return heads === null ? null : (heads.texts ??= pushHeadTexts());
  }

  /** The peer's "host:port" for listings (lib/address.ts peerAddress); "" when unknown. */
  get peerAddress(): string {
    return this.#peerAddress ??= peerAddress(this);
  }

  /** Header fields flat, as node's `rawHeaders`: name, value, name, value… */
  get rawHeaders(): readonly string[] {
    return this.#head.rawHeaders;
  }

  header(name: string): string | undefined {
    return this.#head.headers.get(name)?.[0];
  }

  /**
   * Lets go of the request head but for the fields named (lower-case) and
   * the target, each copied apart from the head's text: a long-lived
   * exchange (an open Poll stream) then keeps a few short strings, not the
   * whole head's text that every field and the target are slices of.
   *
   * @param names The fields still read later (e.g. credentials for a recheck).
   */
  keepOnly(names: readonly string[]): void {
    const rawHeaders: string[] = [];
    const headers = new Map<string, string[]>();
    const old = this.#head.rawHeaders;
    for (let i = 0; i + 1 < old.length; i += 2) {
      const lower = old[i]!.toLowerCase();
      if (!names.includes(lower)) continue;
      const name = flat(old[i]!);
      const value = flat(old[i + 1]!);
      rawHeaders.push(name, value);
      const list = headers.get(lower);
      if (list === undefined) headers.set(lower, [value]);
      else list.push(value);
    }
    this.target = this.target === POLL_PATH ? POLL_PATH : flat(this.target);
    this.#head = { method: this.method, target: this.target, rawHeaders, headers, length: 0 };
  }

  body(): AsyncIterable<Uint8Array> {
    const body = this.#body;
    const ended = () => {
      this.#body = null;
      const onBodyEnd = this.#onBodyEnd;
      this.#onBodyEnd = undefined;
      onBodyEnd?.();
    };
    return body === null ? EMPTY : new BodyPieces(body, ended);
  }

  get bodyEnded(): boolean {
    return this.#body === null || this.#body.done;
  }

  discardBody(): void {
    // The edge reads and drops what is left after the answer (within its drain limits).
  }

  /** The request body's reader, for the edge to drain it after the answer; null when none or read. */
  get bodyReader(): BodyReader | null {
    return this.#body;
  }

  /** The response's status; 0 until the handler responded. */
  get statusCode(): number {
    return this.#status;
  }

  get headersSent(): boolean {
    return this.#headSent;
  }

  get destroyed(): boolean {
    return this.#destroyed;
  }

  get signal(): AbortSignal {
    if (this.#gone === null) {
      this.#gone = new AbortController();
      if (this.#goneReason !== null) this.#gone.abort(this.#goneReason);
    }
    return this.#gone.signal;
  }

  onGone(listener: (reason: unknown) => void): () => void {
    if (this.#goneReason !== null) {
      listener(this.#goneReason);
      return noop;
    }
    // One listener is kept as is (an open Poll stream's), more in an array.
    const listeners = this.#goneListeners;
    if (listeners === null) this.#goneListeners = listener;
    else if (typeof listeners === "function") this.#goneListeners = [listeners, listener];
    else listeners.push(listener);
    return () => {
      const listeners = this.#goneListeners;
      if (listeners === listener) this.#goneListeners = null;
      else if (Array.isArray(listeners)) {
        const at = listeners.indexOf(listener);
        if (at >= 0) listeners.splice(at, 1);
      }
    };
  }

  /** True when the connection must close after this exchange. */
  get closing(): boolean {
    return this.#close || this.#destroyed;
  }

  /** The peer closed or reset its connection: the exchange is abandoned. */
  peerGone(): void {
    if (this.#ended && this.#over) return;
    this.#destroyed = true;
    this.#abandon(new Error("Prometheus closed the connection"));
  }

  respond(status: number, headers: readonly HeaderPair[]): void {
    if (this.#responded) throw new Error("Cannot respond twice");
    this.#responded = true;
    this.#status = status;
    this.#headers = headers;
    for (let i = 0; i < headers.length; i++) {
      const [name, value] = headers[i]!;
      if (
        name.length === 10 && name.toLowerCase() === "connection" && /\bclose\b/i.test(value)
      ) {
        this.#close = true;
      }
    }
  }

  /**
   * Writes body bytes. A chunk marked as owned (lib/owned_chunks.ts) is
   * taken: its buffer goes back to the edge's read buffers once written.
   */
  write(chunk: Uint8Array): Promise<void> {
    const give = this.#pool !== null && takeOwned(chunk);
    if (this.#destroyed || this.#ended) return Promise.resolve();
    return this.#writeBody(chunk, give ? chunk.buffer : null);
  }

  /**
   * Writes a chunk framed by the caller (see Exchange): each Poll message
   * but the first (which goes with the head), written without a copy.
   */
  writeChunk(framed: Uint8Array): Promise<void> | null {
    if (this.#destroyed || this.#ended) return Promise.resolve();
    if (!this.#headSent || !this.#chunked || this.#noBody || this.#crlfOwed) return null;
    return this.#enqueue(framed);
  }

  #writeBody(chunk: Uint8Array, give: ArrayBufferLike | null): Promise<void> {
    // Most writes: the head is out and the body is framed by its length.
    if (this.#headSent && !this.#chunked) {
      return this.#noBody || chunk.byteLength === 0 ? this.#queue : this.#enqueue(chunk, give);
    }
    // Chunked, head out (each Poll message): one buffer, no list of parts.
    if (this.#headSent && chunk.byteLength <= 0xffffffff) {
      if (this.#noBody || chunk.byteLength === 0) return this.#queue;
      const owed = this.#crlfOwed ? CRLF : undefined;
      // A relayed piece whose buffer is ours: framed where it lies (an
      // unsized scrape's every piece; issue #11), not copied into a new one.
      const framed = give === null ? null : chunkFrameInPlace(chunk, owed);
      this.#crlfOwed = framed !== null;
      return this.#enqueue(framed ?? chunkFrame(chunk, owed), give);
    }
    // The head goes out with the first body bytes, in one write.
    const parts: Uint8Array[] = [];
    if (!this.#headSent) {
      const head = this.#headBytes();
      if (give !== null && !this.#noBody && this.#chunked && chunk.byteLength > 0) {
        // The same for a chunked answer: head and size line in front.
        const framed = chunkFrameInPlace(chunk, head);
        if (framed !== null) {
          this.#crlfOwed = true;
          return this.#enqueue(framed, give);
        }
      }
      if (
        give !== null && !this.#noBody && !this.#chunked && chunk.byteLength > 0 &&
        chunk.byteOffset >= head.byteLength
      ) {
        // The chunk's buffer is ours (an owned chunk): the head goes in
        // front of it, into bytes already read, and the body is not copied.
        const out = new Uint8Array(
          chunk.buffer,
          chunk.byteOffset - head.byteLength,
          head.byteLength + chunk.byteLength,
        );
        out.set(head);
        return this.#enqueue(out, give);
      }
      parts.push(head);
    }
    if (!this.#noBody && chunk.byteLength > 0) {
      if (this.#crlfOwed) parts.push(CRLF);
      this.#crlfOwed = false;
      if (this.#chunked) parts.push(encoder.encode(chunk.byteLength.toString(16) + "\r\n"));
      parts.push(chunk);
      if (this.#chunked) parts.push(CRLF);
    }
    return parts.length === 0 ? this.#queue : this.#enqueue(joinBytes(parts), give);
  }

  /**
   * Ends the response, with `body` if given. Bytes handed here are not
   * written to afterwards: the same bytes again (by identity) may be sent
   * as kept (see ResponseHeads.lastWhole).
   */
  end(body?: string | Uint8Array): void {
    if (this.#destroyed || this.#ended) return;
    this.#ended = true;
    const bytes = typeof body === "string" ? encoder.encode(body) : body;
    // As node:http frames it: a head already set keeps its framing (chunked
    // without a Content-Length), whatever `end` brings. One write for all.
    const head = this.#headSent ? null : this.#headBytes();
    // A whole answer (head and body) the same as the last one, by identity
    // (a Push's answer each scrape of a size): its bytes again. The head
    // decides the framing, so the same head frames the same body alike.
    const heads = this.#heads;
    const whole = head !== null && heads !== null && bytes !== undefined &&
      bytes.byteLength > 0;
    if (whole) {
      const last = heads.lastWhole;
      if (last != null && last.head === head && last.body === bytes) {
        this.#enqueue(last.bytes);
        this.#over = true;
        return;
      }
    }
    const parts: Uint8Array[] = [];
    if (head !== null) parts.push(head);
    if (this.#crlfOwed) parts.push(CRLF);
    this.#crlfOwed = false;
    if (bytes !== undefined && bytes.byteLength > 0 && !this.#noBody) {
      if (this.#chunked) parts.push(encoder.encode(bytes.byteLength.toString(16) + "\r\n"));
      parts.push(bytes);
      if (this.#chunked) parts.push(CRLF);
    }
    if (this.#chunked) parts.push(LAST_CHUNK);
    if (parts.length > 0) {
      const out = joinBytes(parts);
      // (Small ones only: a connection keeps the last.)
      if (whole) {
        heads.lastWhole = out.byteLength <= WHOLE_KEPT_BYTES && out !== bytes
          ? { head, body: bytes, bytes: out }
          : null;
      }
      this.#enqueue(out);
    }
    this.#over = true;
  }

  abort(): void {
    if (this.#destroyed) return;
    this.#destroyed = true;
    this.#abandon(new Error("The exchange was aborted"));
    try {
      this.#conn.close();
    } catch {
      // Already closed.
    }
  }

  /**
   * Settles when the exchange is over: true when the response was written
   * completely (the connection may carry another request unless
   * {@linkcode closing}), false when it was aborted or a write failed.
   */
  async finished(): Promise<boolean> {
    if (!this.#over) return false;
    await this.#queue;
    return !this.#destroyed;
  }

  /**
   * True once the response was ended (its last bytes queued): it is
   * finished when {@linkcode drained} settles, completely unless
   * {@linkcode destroyed} then. As {@linkcode finished}, for a caller that
   * waits itself (no promise of its own per request).
   */
  get endQueued(): boolean {
    return this.#over;
  }

  /** Settles (never rejects) when every write queued so far is done. */
  get drained(): Promise<void> {
    return this.#queue;
  }

  /** Aborts the signal (made or not yet) once, with the first reason. */
  #abandon(reason: Error): void {
    if (this.#goneReason !== null) return;
    this.#goneReason = reason;
    this.#gone?.abort(reason);
    const listeners = this.#goneListeners;
    if (listeners === null) return;
    this.#goneListeners = null;
    if (typeof listeners === "function") return listeners(reason);
    for (const listener of listeners) listener(reason);
  }

  /** Writes after what is queued; `give` goes to the pool once all is written. */
  #enqueue(bytes: Uint8Array, give: ArrayBufferLike | null = null): Promise<void> {
    const conn = this.#conn;
    // Nothing queued (a Poll stream's every message): written at once, with
    // no callback and promise to wait behind a settled queue.
    // (Counted from here: a write queued but not started yet keeps the
    // next one behind it.)
    this.#queue = this.#writing++ === 0
      ? this.#put(conn, bytes, give)
      : this.#queue.then(() => this.#put(conn, bytes, give));
    return this.#queue;
  }

  /**
   * Writes `bytes`, then gives `give` back. Not an async function: most
   * writes take all at once, and a scrape's every write (three) went
   * through an async frame and its await (issue #11).
   */
  #put(conn: Deno.Conn, bytes: Uint8Array, give: ArrayBufferLike | null): Promise<void> {
    if (this.#destroyed) {
      this.#writing--;
      return Promise.resolve();
    }
    if (bytes.byteLength === 0) {
      this.#putDone(give);
      return Promise.resolve();
    }
    let written: Promise<number>;
    try {
      written = conn.write(bytes);
    } catch {
      this.#putFailed();
      return Promise.resolve();
    }
    return written.then(
      (n) => n === bytes.byteLength ? this.#putDone(give) : this.#putRest(conn, bytes, n, give),
      () => this.#putFailed(),
    );
  }

  /** The rest of a write the connection took only part of. */
  async #putRest(
    conn: Deno.Conn,
    bytes: Uint8Array,
    at: number,
    give: ArrayBufferLike | null,
  ): Promise<void> {
    try {
      while (at < bytes.byteLength) at += await conn.write(bytes.subarray(at));
    } catch {
      return this.#putFailed();
    }
    this.#putDone(give);
  }

  #putDone(give: ArrayBufferLike | null): void {
    this.#writing--;
    if (give !== null && !this.#pool!.give(give)) this.#giveBack?.(give);
  }

  #putFailed(): void {
    try {
      this.peerGone();
    } finally {
      this.#writing--;
    }
  }

  /** The response head. */
  #headBytes(): Uint8Array {
    if (!this.#responded) this.respond(200, []);
    this.#headSent = true;
    const status = this.#status;
    this.#noBody = this.method === "HEAD" || status === 204 || status === 304 ||
      (status >= 100 && status < 200);
    const date = httpDate();
    // A head built from the same fields, with the same status, Date and
    // Connection, is the same bytes (a Push's answer each time, a scrape's
    // nearly).
    const heads = this.#heads;
    const last = heads === null ? null : heads.lastHead;
    if (
      last !== null && last.status === status && last.date === date &&
      last.close === this.#close && last.keepAliveSeconds === this.#keepAliveSeconds &&
      last.noBody === this.#noBody && sameFields(last.extra, this.#extraHeaders) &&
      sameFields(last.headers, this.#headers)
    ) {
      this.#chunked = last.chunked;
      return last.bytes;
    }
    // Fields in node:http's order: the handler's, Date, Connection (unless
    // the handler's closes), framing.
    let text = `HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? "unknown"}\r\n`;
    let hasLength = false;
    /** The handler's own `Connection: close`, sent where it stands (as node:http does). */
    let ownClose = false;
    /** The handler's own Date (a target's, relayed): sent instead of ours (as node:http does). */
    let ownDate = false;
    for (let list = 0; list < 2; list++) {
      const headers = list === 0 ? this.#extraHeaders : this.#headers;
      for (let i = 0; i < headers.length; i++) {
        const pair = headers[i]!;
        const name = pair[0];
        // Only names of these lengths can be the fields the head sets itself.
        const length = name.length;
        if (length === 4) {
          if (name.toLowerCase() === "date") ownDate = true;
        } else if (length === 10 || length === 14 || length === 17) {
          const lower = name.toLowerCase();
          if (lower === "connection" && list === 1 && !ownClose && /\bclose\b/i.test(pair[1])) {
            ownClose = true;
          } else if (lower === "connection" || lower === "transfer-encoding") continue;
          if (lower === "content-length") hasLength = true;
        }
        text += name + ": " + pair[1] + "\r\n";
      }
    }
    if (!ownDate) text += `Date: ${date}\r\n`;
    text += ownClose
      ? ""
      : this.#close
      ? "Connection: close\r\n"
      : `Connection: keep-alive\r\nKeep-Alive: timeout=${this.#keepAliveSeconds}\r\n`;
    if (!hasLength && status !== 204 && status !== 304 && status >= 200) {
      if (!this.#noBody) {
        this.#chunked = true;
        text += "Transfer-Encoding: chunked\r\n";
      }
    }
    const bytes = encoder.encode(text + "\r\n");
    if (heads !== null) {
      heads.lastHead = {
        headers: fieldsKept(this.#headers),
        extra: fieldsKept(this.#extraHeaders),
        status,
        date,
        close: this.#close,
        keepAliveSeconds: this.#keepAliveSeconds,
        noBody: this.#noBody,
        chunked: this.#chunked,
        bytes,
      };
    }
    return bytes;
  }
}

/** A whole response written at once (see ResponseHeads.lastWhole); never written to. */
export interface WholeResponse {
  head: Uint8Array;
  body: Uint8Array;
  bytes: Uint8Array;
}

/** A response head, and what it was built from (frozen fields). */
export interface BuiltHead {
  headers: readonly HeaderPair[];
  extra: readonly HeaderPair[];
  status: number;
  date: string;
  close: boolean;
  keepAliveSeconds: number;
  noBody: boolean;
  chunked: boolean;
  /** Never written to: every write path copies or only reads it. */
  bytes: Uint8Array;
}

/** True when both lists hold the same fields in the same order. */
function sameFields(a: readonly HeaderPair[], b: readonly HeaderPair[]): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    const y = b[i]!;
    if (x[0] !== y[0] || x[1] !== y[1]) return false;
  }
  return true;
}

/** The fields as kept with a built head: frozen lists as they are, others copied (they may change). */
function fieldsKept(fields: readonly HeaderPair[]): readonly HeaderPair[] {
  if (Object.isFrozen(fields) && fields.every((pair) => Object.isFrozen(pair))) return fields;
  return Object.freeze(fields.map((pair) => Object.freeze([pair[0], pair[1]] as HeaderPair)));
}

/** A copy of a string that does not share (and so keep) a longer one's memory. */
function flat(text: string): string {
  return text.length < 13 ? text : JSON.parse(JSON.stringify(text));
}
