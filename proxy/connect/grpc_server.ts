/**
 * The optional second listener (`--grpc.listen-address`): the same Connect
 * services as the main port, over HTTP/2 (h2c with prior knowledge, or TLS
 * with ALPN h2 when the web configuration has `tls_server_config`), so that
 * plain gRPC clients (grpc-go, grpcurl, `buf curl --protocol grpc`) can call
 * them. Connect and gRPC-Web over HTTP/2 work there too. Scrapes, `/clients`
 * and the rest stay on the main port.
 *
 * @module
 */

import {
  createSecureServer,
  createServer,
  type Http2Server,
  type Http2ServerRequest,
  type Http2ServerResponse,
  type ServerHttp2Session,
} from "node:http2";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import type { Server as TlsServer, TLSSocket } from "node:tls";
import { type ConnectionBudget, keepAccepting } from "../../lib/connection_budget.ts";
import type { Logger } from "../../lib/logger.ts";
import type { TlsListener } from "../../lib/tls_server.ts";

/** Options for {@linkcode serveGrpc}. */
export interface GrpcServeOptions {
  /** Address to bind; "" for all. */
  hostname: string;
  /** Port; 0 picks a free one. */
  port: number;
  /** Stops the listener when aborted. */
  signal?: AbortSignal;
  /** Close connections without open streams for this long. @default {65000} */
  idleTimeoutMs?: number;
  /** Longest time from connecting to the first stream's headers. @default {10000} */
  headersTimeoutMs?: number;
  /** Longest time a stream's request may take to arrive completely. @default {330000} */
  requestTimeoutMs?: number;
  /** Counts a connection or stream cut by a timeout (`header_timeout`, `request_timeout`). */
  onLimit?: (limit: string) => void;
  /** Largest request header block. @default {16384} */
  maxHeaderBytes?: number;
  /** Streams on one connection after which it is sent GOAWAY. @default {50} */
  maxStreamsPerSession?: number;
  /** Most concurrent streams per connection. @default {1000} */
  maxConcurrentStreams?: number;
  /** Serve TLS (the main port's `tls_server_config`). @default {h2c} */
  tls?: TlsListener;
  /** Logs refused TLS connections. */
  logger?: Logger;
  /** Caps open connections (shared with the main port). @default {no cap} */
  connections?: ConnectionBudget;
  /** How often a quiet listener checks that it still accepts (see keepAccepting). @default {5000} */
  acceptCheckIntervalMs?: number;
}

/** A listening gRPC port. */
export interface ServingGrpc {
  readonly address: { hostname: string; port: number };
  readonly server: Http2Server;
  /** Resolves when the listener has closed. */
  readonly finished: Promise<void>;
}

/**
 * Listens for HTTP/2 and hands `/pushprox.v1.*` calls to the proxy's handler
 * (which authenticates and routes them as on the main port).
 *
 * @param proxy The proxy's request handler.
 * @param options Address, limits and stop signal.
 * @returns The listening server.
 */
export async function serveGrpc(
  proxy: { handle(req: IncomingMessage, res: ServerResponse): void },
  options: GrpcServeOptions,
): Promise<ServingGrpc> {
  const settings = {
    maxHeaderListPairs: 128,
    settings: {
      maxConcurrentStreams: options.maxConcurrentStreams ?? 1000,
      maxHeaderListSize: options.maxHeaderBytes ?? 16384,
    },
  };
  const handle = (req: Http2ServerRequest, res: Http2ServerResponse) => {
    const path = (req.url ?? "").split("?", 1)[0]!;
    if (!path.startsWith("/pushprox.v1.")) {
      res.writeHead(404, { "content-type": "text/plain; charset=utf-8" });
      res.end(`No such endpoint on the gRPC port: ${path}. Only /pushprox.v1.* services\n`);
      return;
    }
    // A request (body included) that is still arriving after the request
    // timeout is cancelled, as on the main port.
    const timer = setTimeout(() => {
      if (req.complete || res.writableFinished) return;
      options.onLimit?.("request_timeout");
      req.stream.close(0x8); // NGHTTP2_CANCEL
    }, requestTimeoutMs);
    res.once("close", () => clearTimeout(timer));
    // The compatibility API of node:http2 has what the handler uses.
    proxy.handle(req as unknown as IncomingMessage, res as unknown as ServerResponse);
  };
  const headersTimeoutMs = options.headersTimeoutMs ?? 10_000;
  const idleTimeoutMs = options.idleTimeoutMs ?? 65_000;
  const requestTimeoutMs = options.requestTimeoutMs ?? 330_000;
  const tls = options.tls;
  const server: Http2Server = tls
    ? createSecureServer({
      ...tls.serverOptions,
      ...settings,
      ALPNProtocols: ["h2"],
      handshakeTimeout: options.headersTimeoutMs ?? 10_000,
    }, handle)
    : createServer(settings, handle);
  // Restarts the listener if its accept loop stops (EMFILE); above the
  // connection caps a connection is closed at once.
  const stopAccepting = new AbortController();
  const watchdog = keepAccepting(server as unknown as import("node:net").Server, {
    signal: stopAccepting.signal,
    intervalMs: options.acceptCheckIntervalMs ?? 5_000,
    ...(options.logger ? { logger: options.logger } : {}),
  });
  const budget = options.connections;
  server.on("connection", (socket: Socket) => {
    if (watchdog.isProbe(socket) || !budget) return;
    budget.admit(socket, (refused) => {
      refused.on("error", () => {});
      refused.destroy();
    });
  });
  if (tls) {
    server.on("secureConnection", (socket: TLSSocket) => {
      const reason = tls.admit(socket);
      if (reason !== null) {
        options.logger?.warn("TLS connection refused", {
          listener: "grpc",
          remote: socket.remoteAddress,
          err: reason,
        });
        socket.destroy();
      }
    });
  }
  const sessions = new Set<ServerHttp2Session>();
  const maxStreams = options.maxStreamsPerSession ?? 50;
  server.on("session", (session) => {
    sessions.add(session);
    // A session's error ends that session, never the process.
    session.on("error", (error) => options.logger?.debug("HTTP/2 session error", { err: error }));
    // Under Deno 2.9.6 a peer dropping a session that carried about 100
    // streams aborts the process in nghttp2 (find_stream_on_goaway_func:
    // Assertion 'stream->closed_next == NULL'); a session the server already
    // sent GOAWAY on does not. So a session gets GOAWAY after maxStreams
    // streams: streams in flight finish, clients open a new session.
    let streams = 0;
    session.on("stream", () => {
      if (++streams === maxStreams) session.close();
    });
    // Timeouts: the first stream must come within the header timeout, and a
    // session without open streams is closed after the idle timeout.
    let open = 0;
    let timer = setTimeout(() => {
      options.onLimit?.("header_timeout");
      session.destroy();
    }, headersTimeoutMs);
    session.on("stream", (stream) => {
      clearTimeout(timer);
      open++;
      stream.on("error", () => {});
      stream.once("close", () => {
        if (--open > 0 || session.destroyed) return;
        // GOAWAY: streams already opened finish, then the session ends.
        timer = setTimeout(() => session.close(), idleTimeoutMs);
      });
    });
    session.once("close", () => {
      clearTimeout(timer);
      sessions.delete(session);
    });
  });
  const finished = new Promise<void>((resolve) => server.once("close", () => resolve()));
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.hostname || undefined, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const stopWatching = new AbortController();
  tls?.watch(server as unknown as TlsServer, stopWatching.signal);
  const close = () => {
    stopWatching.abort();
    stopAccepting.abort();
    server.close();
    for (const session of sessions) session.destroy();
  };
  if (options.signal?.aborted) close();
  options.signal?.addEventListener("abort", close, { once: true });
  const info = server.address() as AddressInfo;
  return { address: { hostname: info.address, port: info.port }, server, finished };
}
