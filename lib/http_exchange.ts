/**
 * One HTTP request and its response, whichever edge serves it: node:http
 * ({@linkcode nodeExchange}) or the native front door
 * (proxy/http/native_exchange.ts). Handlers written on it (the scrape
 * handler) run unchanged on both.
 *
 * @module
 */

import type { LazyTimer } from "./lazy_timer.ts";
import type { KeptTexts } from "./protobuf_wire.ts";
import type { IncomingMessage, ServerResponse } from "node:http";
import { type PeerIdentity, peerIdentity } from "./tls_server.ts";

/** A response header field. */
export type HeaderPair = readonly [name: string, value: string];

/** One request and its response; see the module doc. */
export interface Exchange {
  /** The request method. */
  readonly method: string;
  /** The request target as received (absolute-form for scrapes). */
  readonly target: string;
  /** 1 or 2. */
  readonly httpVersionMajor: number;
  /** Header fields as received, flat: name, value, name, value… (node's `rawHeaders`). */
  readonly rawHeaders: readonly string[];
  /** The first value of a header field. @param name Lower-case. */
  header(name: string): string | undefined;
  /** The peer's address. */
  readonly remoteAddress: string | undefined;
  /** The peer's port. */
  readonly remotePort: number | undefined;
  /** The peer's verified TLS client certificate, if any. */
  readonly peer: PeerIdentity | null;
  /**
   * The request body, piece by piece as it arrives (read only when asked);
   * its iterator may also be a `PiecesAtHand` (lib/owned_chunks.ts).
   */
  body(): AsyncIterable<Uint8Array>;
  /** True once the request body was read to its end (or there was none). */
  readonly bodyEnded: boolean;
  /** The rest of the request body is to be read and dropped (the connection stays usable). */
  discardBody(): void;
  /** True once the response head was sent. */
  readonly headersSent: boolean;
  /** True once the exchange was aborted or its connection closed. */
  readonly destroyed: boolean;
  /** Aborted when the peer goes away before the response is complete. */
  readonly signal: AbortSignal;
  /**
   * Calls `listener` once, with the reason, when {@linkcode signal} aborts
   * (at once if it has), without making the signal: cheaper per request
   * where the edge offers it (the native front door); absent elsewhere.
   *
   * @returns A function that stops the call.
   */
  onGone?(listener: (reason: unknown) => void): () => void;
  /**
   * A timer of the connection that the handler may use for a deadline when
   * it is not {@linkcode LazyTimer.waiting} (one wait at a time); absent
   * or null where the edge has none (node:http).
   */
  readonly timer?: LazyTimer | null;
  /**
   * Slots where the connection keeps texts decoded from its requests (a
   * Push head's, see proxy/connect/wire_codec.ts PushHeadTexts) for its
   * next request; absent or null where the edge keeps none.
   */
  readonly connectionTexts?: KeptTexts | null;
  /**
   * Sets the response head, sent with the first bytes; a `content-length`
   * among `headers` frames the body, else it is chunked (or, for `end`
   * with the whole body, given a length).
   */
  respond(status: number, headers: readonly HeaderPair[]): void;
  /** Writes body bytes; resolves when more may be written (or the exchange ended). */
  write(chunk: Uint8Array): Promise<void>;
  /**
   * Writes bytes already framed as one whole chunk of chunked transfer
   * coding (lib/http1_body.ts writeChunkSizeLine) as they are, when the
   * response is chunked, its head out and nothing else owed; null when it
   * cannot (the caller then writes the chunk's data). Absent where the
   * edge frames its own chunks.
   */
  writeChunk?(framed: Uint8Array): Promise<void> | null;
  /** Ends the response, with the last bytes of the body. */
  end(body?: string | Uint8Array): void;
  /** Ends the exchange at once, closing its connection (a cut response). */
  abort(): void;
}

/**
 * The exchange of a node:http request.
 *
 * @param req The request.
 * @param res Its response.
 * @returns The exchange.
 */
export function nodeExchange(req: IncomingMessage, res: ServerResponse): Exchange {
  let gone: AbortController | null = null;
  return {
    method: req.method ?? "",
    target: req.url ?? "",
    httpVersionMajor: req.httpVersionMajor,
    rawHeaders: req.rawHeaders,
    header(name) {
      const value = req.headers[name];
      return Array.isArray(value) ? value[0] : value;
    },
    get remoteAddress() {
      return req.socket?.remoteAddress;
    },
    get remotePort() {
      return req.socket?.remotePort;
    },
    body() {
      return req;
    },
    get bodyEnded() {
      return req.readableEnded;
    },
    discardBody() {
      req.resume();
    },
    get peer() {
      return peerIdentity(req.socket);
    },
    get headersSent() {
      return res.headersSent;
    },
    get destroyed() {
      return res.destroyed;
    },
    get signal() {
      if (gone === null) {
        const controller = gone = new AbortController();
        res.on("close", () => {
          if (!res.writableFinished) {
            controller.abort(new Error("Prometheus closed the connection"));
          }
        });
      }
      return gone.signal;
    },
    respond(status, headers) {
      const grouped = new Map<string, string[]>();
      for (const [name, value] of headers) {
        const list = grouped.get(name);
        if (list) list.push(value);
        else grouped.set(name, [value]);
      }
      for (const [name, values] of grouped) {
        res.setHeader(name, values.length === 1 ? values[0]! : values);
      }
      res.writeHead(status);
    },
    write(chunk) {
      if (res.destroyed || res.writableEnded || res.write(chunk)) return Promise.resolve();
      return new Promise<void>((resolve) => {
        const done = () => {
          res.off("drain", done);
          res.off("close", done);
          resolve();
        };
        res.on("drain", done);
        res.on("close", done);
      });
    },
    end(body) {
      if (res.writableEnded) return;
      if (body === undefined) res.end();
      else res.end(body);
    },
    abort() {
      res.destroy();
    },
  };
}
