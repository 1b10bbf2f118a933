/**
 * A node:net-like socket over a `Deno.Conn`, for handing a connection the
 * native front door (lib/front_door.ts) accepted to node:http with
 * `server.emit("connection", socket)`. Bytes the front door already read are
 * read first. It has what node:http and the proxy use of a socket: the peer's
 * address and port, `setTimeout` (an idle timer, as net.Socket's),
 * `setNoDelay`, `setKeepAlive`, `destroySoon`, `bytesRead`/`bytesWritten`.
 *
 * @module
 */

import { Duplex } from "node:stream";
import { concatBytes } from "./bytes.ts";

/**
 * Sizes of reads from the connection: an idle connection (a Poll stream)
 * waits with a small buffer; reads that fill theirs grow the next one.
 */
const MIN_READ_BYTES = 2 * 1024;
const MAX_READ_BYTES = 64 * 1024;

/** Options for {@linkcode ConnSocket}. */
export interface ConnSocketOptions {
  /** Bytes already read from the connection, read first. */
  initial?: Uint8Array | undefined;
  /** Called once the socket has closed (and the connection with it). */
  onClose?: () => void;
}

/** A node Duplex over a Deno TCP connection; see the module doc. */
export class ConnSocket extends Duplex {
  /** The peer's address ("::ffff:" mapped addresses as Deno reports them). */
  readonly remoteAddress: string;
  /** The peer's port. */
  readonly remotePort: number;
  /** The peer address's family. */
  readonly remoteFamily: "IPv4" | "IPv6";
  /** The local address the connection arrived on. */
  readonly localAddress: string;
  /** The local port the connection arrived on. */
  readonly localPort: number;
  /** Bytes received from the peer (those the front door read included). */
  bytesRead = 0;
  /** Bytes written to the peer. */
  bytesWritten = 0;
  readonly #conn: Deno.Conn;
  #initial: Uint8Array | undefined;
  #reading = false;
  #readBytes = MIN_READ_BYTES;
  #timeoutMs = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #connClosed = false;

  /**
   * Wraps an accepted connection.
   *
   * @param conn The connection; the socket owns it from now on.
   * @param options Bytes already read, close callback.
   */
  constructor(conn: Deno.Conn, options: ConnSocketOptions = {}) {
    super({ allowHalfOpen: false, decodeStrings: true });
    this.#conn = conn;
    const remote = conn.remoteAddr as Deno.NetAddr;
    const local = conn.localAddr as Deno.NetAddr;
    this.remoteAddress = remote.hostname;
    this.remotePort = remote.port;
    this.remoteFamily = remote.hostname.includes(":") ? "IPv6" : "IPv4";
    this.localAddress = local.hostname;
    this.localPort = local.port;
    this.#initial = options.initial !== undefined && options.initial.byteLength > 0
      ? options.initial
      : undefined;
    if (this.#initial !== undefined) this.bytesRead = this.#initial.byteLength;
    // Like net.Socket without half-open: once our side has ended and its
    // bytes are out, the connection is closed (node:http reads nothing after
    // ending a response, and a peer gone meanwhile would go unnoticed).
    this.once("finish", () => this.destroy());
    const onClose = options.onClose;
    this.once("close", () => {
      clearTimeout(this.#timer);
      this.#closeConn();
      onClose?.();
    });
  }

  /** True while the connection can be written to. */
  get connecting(): boolean {
    return false;
  }

  /** Reads the next piece (the bytes already read first). */
  override _read(): void {
    if (this.#initial !== undefined) {
      const initial = this.#initial;
      this.#initial = undefined;
      this.push(initial);
      return;
    }
    if (this.#reading) return;
    this.#reading = true;
    const buffer = new Uint8Array(this.#readBytes);
    this.#conn.read(buffer).then((n) => {
      this.#reading = false;
      if (this.destroyed) return;
      if (n === null) {
        this.push(null);
        return;
      }
      this.#readBytes = n === buffer.byteLength
        ? Math.min(MAX_READ_BYTES, buffer.byteLength * 4)
        : n < MIN_READ_BYTES
        ? MIN_READ_BYTES
        : this.#readBytes;
      this.bytesRead += n;
      this.#active();
      this.push(buffer.subarray(0, n));
    }, (error: unknown) => {
      this.#reading = false;
      if (!this.destroyed) this.destroy(asError(error));
    });
  }

  /** Writes one chunk, calling back once it is all written. */
  override _write(
    chunk: Uint8Array,
    _encoding: string,
    callback: (error?: Error | null) => void,
  ): void {
    this.#writeAll(chunk).then(() => callback(), (error) => callback(asError(error)));
  }

  /** Writes buffered chunks as one write. */
  override _writev(
    chunks: { chunk: Uint8Array }[],
    callback: (error?: Error | null) => void,
  ): void {
    const joined = concatBytes(chunks.map(({ chunk }) => chunk));
    this.#writeAll(joined).then(() => callback(), (error) => callback(asError(error)));
  }

  /** Ends the writing side (a FIN), errors ignored. */
  override _final(callback: (error?: Error | null) => void): void {
    try {
      this.#conn.closeWrite().then(() => callback(), () => callback());
    } catch {
      callback();
    }
  }

  /** Closes the connection and its timer. */
  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    clearTimeout(this.#timer);
    this.#closeConn();
    callback(error);
  }

  async #writeAll(bytes: Uint8Array): Promise<void> {
    let at = 0;
    while (at < bytes.byteLength) {
      const n = await this.#conn.write(bytes.subarray(at));
      at += n;
      this.bytesWritten += n;
      this.#active();
    }
  }

  #closeConn(): void {
    if (this.#connClosed) return;
    this.#connClosed = true;
    try {
      this.#conn.close();
    } catch {
      // Already closed.
    }
  }

  /** Restarts the idle timer after activity. */
  #active(): void {
    if (this.#timeoutMs > 0) this.#timer?.refresh();
  }

  /**
   * Emits `timeout` after `ms` without reads or writes, as net.Socket does; 0
   * turns it off.
   */
  setTimeout(ms: number, callback?: () => void): this {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#timeoutMs = ms;
    if (callback !== undefined) {
      if (ms === 0) this.off("timeout", callback);
      else this.once("timeout", callback);
    }
    if (ms > 0 && !this.destroyed) {
      this.#timer = setTimeout(() => this.emit("timeout"), ms);
    }
    return this;
  }

  /** Sets TCP_NODELAY. */
  setNoDelay(noDelay = true): this {
    try {
      (this.#conn as Deno.TcpConn).setNoDelay?.(noDelay);
    } catch {
      // Closed.
    }
    return this;
  }

  /** Sets SO_KEEPALIVE. */
  setKeepAlive(enable = false): this {
    try {
      (this.#conn as Deno.TcpConn).setKeepAlive?.(enable);
    } catch {
      // Closed.
    }
    return this;
  }

  /** Ends the writable side, then closes the connection once the bytes are out. */
  destroySoon(): void {
    if (this.writable) this.end();
    if (this.writableFinished) this.destroy();
  }

  /** Node's socket API: the local address. */
  address(): { address: string; port: number; family: string } {
    return {
      address: this.localAddress,
      port: this.localPort,
      family: this.localAddress.includes(":") ? "IPv6" : "IPv4",
    };
  }

  /** Node's socket API; no handle to keep the process alive by. */
  ref(): this {
    return this;
  }

  /** Node's socket API; no handle to keep the process alive by. */
  unref(): this {
    return this;
  }
}

function asError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}
