/**
 * The proxy's listener: node:http (or HTTPS) settings, the native front
 * door on plain HTTP, connection caps, and the answers given before a
 * request reaches the proxy's router (malformed heads, CONNECT).
 *
 * @module
 */

import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo, Socket } from "node:net";
import type { TLSSocket } from "node:tls";
import {
  type BudgetConnection,
  type ConnectionBudget,
  keepAccepting,
} from "../../lib/connection_budget.ts";
import type { Logger } from "../../lib/logger.ts";
import type { TlsListener } from "../../lib/tls_server.ts";
import { type FrontDoor, listenFrontDoor } from "./front_door.ts";
import { nativeEdge } from "./native_edge.ts";
import { DRAIN_MAX_BYTES, DRAIN_MAX_MS } from "./node_guard.ts";
import type { ProxyMetrics } from "../core/metrics.ts";
import type { NativeHandler } from "./native_edge.ts";
import type { RequestHead } from "./request_head.ts";

/** What the listener needs of the proxy (proxy/http/server.ts's `Proxy`). */
export interface ListenedProxy {
  readonly coordinator: { expire(): void };
  readonly metrics: ProxyMetrics;
  /** Serves one node:http request. */
  handle(req: IncomingMessage, res: ServerResponse): void;
  /** The native front door's handler of a request, or null for node:http. */
  nativeRoute(head: RequestHead): NativeHandler | null;
  /** Ends state that outlives requests. */
  close(): void;
}

/** Options for {@linkcode serveProxy}. */
export interface ServeOptions {
  /** Address to bind; "" or "0.0.0.0" for all IPv4, "::" for all. */
  hostname: string;
  /** Port; 0 picks a free one. */
  port: number;
  /** Stops the server when aborted. */
  signal?: AbortSignal;
  /** Longest time a request may take to arrive completely. @default {330000} */
  requestTimeoutMs?: number;
  /** Longest time to receive request headers. @default {10000} */
  headersTimeoutMs?: number;
  /** Largest request header block. @default {16384} */
  maxHeaderBytes?: number;
  /** How often forgotten clients are swept. @default {60000} */
  expireIntervalMs?: number;
  /** How long an idle keep-alive connection is kept. @default {65000} */
  idleTimeoutMs?: number;
  /** Serve HTTPS with these settings (from `--web.config.file`). @default {plain HTTP} */
  tls?: TlsListener;
  /** Headers added to the proxy's own responses (`http_server_config.headers`). */
  headers?: Record<string, string>;
  /** Logs refused connections. */
  logger?: Logger;
  /** Caps open connections (shared with the gRPC port). @default {no cap} */
  connections?: ConnectionBudget;
  /** How often a quiet listener checks that it still accepts (see keepAccepting). @default {5000} */
  acceptCheckIntervalMs?: number;
}

/** A listening proxy. */
export interface ServingProxy {
  /** Where it listens. */
  readonly address: { hostname: string; port: number };
  readonly server: Server;
  /** Resolves when the server has closed. */
  readonly finished: Promise<void>;
}

/**
 * Listens on a port and serves the proxy until `signal` aborts.
 *
 * @param proxy The proxy.
 * @param options Address, limits and stop signal.
 * @returns The listening server.
 */
export async function serveProxy(
  proxy: ListenedProxy,
  options: ServeOptions,
): Promise<ServingProxy> {
  const headersTimeout = options.headersTimeoutMs ?? 10_000;
  const httpOptions = {
    maxHeaderSize: options.maxHeaderBytes ?? 16384,
    requestTimeout: options.requestTimeoutMs ?? 330_000,
    headersTimeout,
    keepAliveTimeout: options.idleTimeoutMs ?? 65_000,
    // How often the timeouts above are checked: the bound on a slow client.
    connectionsCheckingInterval: Math.min(1_000, headersTimeout),
  };
  const extra = Object.entries(options.headers ?? {});
  const handle = extra.length === 0
    ? proxy.handle
    : (req: IncomingMessage, res: ServerResponse) => {
      // The proxy's own answers; relayed scrapes carry the target's headers.
      if ((req.url ?? "").startsWith("/")) {
        for (const [name, value] of extra) {
          res.setHeader(name, value);
        }
      }
      proxy.handle(req, res);
    };
  const tls = options.tls;
  const server: Server = tls
    ? createHttpsServer(
      { ...tls.serverOptions, ...httpOptions, handshakeTimeout: headersTimeout },
      handle,
    )
    : createServer(httpOptions, handle);
  const log = options.logger;
  /** A peer's reset or broken pipe ends its connection, never the process. */
  const onSocketError = (error: Error & { code?: string }) =>
    log?.debug("Connection error", { err: error.code ?? error.message });
  /** Aborted on close: stops the front door (plain HTTP) or the accept watchdog (TLS). */
  const stopAccepting = new AbortController();
  // Restarts a node listener if its accept loop stops (EMFILE), before
  // counting. The plain-HTTP front door retries failed accepts itself.
  const watchdog = tls
    ? keepAccepting(server, {
      signal: stopAccepting.signal,
      intervalMs: options.acceptCheckIntervalMs ?? 5_000,
      ...(log ? { logger: log } : {}),
    })
    : null;
  const budget = options.connections;
  /** Plain HTTP: the native front door owns the port (proxy/http/front_door.ts). */
  let door: FrontDoor | null = null;
  /** The budget's record of a request's connection. */
  const connectionOf = (socket: Socket): BudgetConnection => door?.connectionOf(socket) ?? socket;
  /** Above the connection caps: a short 503 on plain HTTP, else closed at once. */
  const refuse = (socket: Socket) => {
    socket.on("error", onSocketError);
    if (tls) return void socket.destroy();
    // Closed at once: a refused connection must not hold its descriptor, so
    // the 503 is best effort (many peers see only the close or a reset).
    socket.pause();
    socket.write(
      "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 22\r\nConnection: close\r\n\r\nToo many connections.\n",
    );
    socket.destroy();
  };
  if (budget) {
    // Idle keep-alive connections are the first closed when the cap is reached.
    server.on("request", (req: IncomingMessage, res: ServerResponse) => {
      const connection = connectionOf(req.socket);
      budget.busy(connection);
      res.once("close", () => budget.done(connection));
    });
  }
  /** Raw connections, so that closing ends those still in a TLS handshake too. */
  const sockets = new Set<Socket>();
  if (tls) {
    server.on("connection", (socket: Socket) => {
      socket.on("error", onSocketError);
      if (watchdog?.isProbe(socket) || (budget && !budget.admit(socket, refuse))) return;
      sockets.add(socket);
      socket.once("close", () => sockets.delete(socket));
      // A connection that sends nothing never reaches the HTTP timeouts.
      const timer = setTimeout(() => {
        if (socket.bytesRead === 0) {
          proxy.metrics.limitHits.inc({ limit: "header_timeout" });
          socket.destroy();
        }
      }, headersTimeout);
      socket.once("close", () => clearTimeout(timer));
    });
    server.on("secureConnection", (socket: TLSSocket) => {
      const reason = tls.admit(socket);
      if (reason !== null) {
        proxy.metrics.authFailures.inc({ role: "tls", reason: "forbidden" });
        log?.warn("TLS connection refused", { remote: socket.remoteAddress, err: reason });
        socket.destroy();
      }
    });
    server.on("tlsClientError", (error: Error, socket: Socket) => {
      if (watchdog?.isProbe(socket)) return;
      proxy.metrics.authFailures.inc({ role: "tls", reason: "invalid" });
      log?.debug("TLS handshake failed", { remote: socket.remoteAddress, err: error.message });
    });
  }
  server.on("clientError", (error: Error & { code?: string }, socket: Socket) => {
    socket.on("error", onSocketError);
    const answer = clientErrorAnswer(error);
    if (answer.limit !== null) proxy.metrics.limitHits.inc({ limit: answer.limit });
    log?.debug("Bad request refused", {
      remote: socket.remoteAddress,
      status: answer.status,
      err: error.message,
    });
    if (socket.writable) socket.end(answer.bytes);
    else socket.destroy();
  });
  // node:http hands CONNECT (what Prometheus sends for scheme: https through
  // a proxy) to this event instead of the request handler.
  server.on("connect", (_req, socket: Socket) => {
    // The peer may reset or close without reading the answer (issue #10 item 2).
    socket.on("error", onSocketError);
    socket.end(CONNECT_ANSWER);
    proxy.metrics.proxiedRequests.inc({ code: "501" });
  });
  const expire = setInterval(
    () => proxy.coordinator.expire(),
    options.expireIntervalMs ?? 60_000,
  );
  let finished: Promise<void>;
  let address: { hostname: string; port: number };
  if (tls) {
    finished = new Promise<void>((resolve) => server.once("close", resolve));
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(options.port, options.hostname || undefined, () => {
        server.off("error", reject);
        resolve();
      });
    });
    const info = server.address() as AddressInfo;
    address = { hostname: info.address, port: info.port };
  } else {
    try {
      door = listenFrontDoor({
        hostname: options.hostname,
        port: options.port,
        signal: stopAccepting.signal,
        server,
        budget,
        logger: log,
        native: nativeEdge({
          route: (head) => proxy.nativeRoute(head),
          headersTimeoutMs: headersTimeout,
          maxHeaderBytes: httpOptions.maxHeaderSize,
          idleTimeoutMs: httpOptions.keepAliveTimeout,
          budget,
          onLimit: (limit) => proxy.metrics.limitHits.inc({ limit }),
          drainMaxBytes: DRAIN_MAX_BYTES,
          drainMaxMs: DRAIN_MAX_MS,
          headers: extra,
          logger: log,
        }),
      });
    } catch (error) {
      clearInterval(expire);
      throw error;
    }
    // node:http checks its header, request and keep-alive timeouts for the
    // connections it is handed only once it has "listened", and keeps
    // connections alive only while it is listening.
    const open = door;
    Object.defineProperty(server, "listening", {
      configurable: true,
      get: () => open.listening,
    });
    server.emit("listening");
    finished = door.finished;
    address = door.address;
  }
  finished = finished.finally(() => clearInterval(expire));
  const stopWatching = new AbortController();
  tls?.watch(server as unknown as import("node:tls").Server, stopWatching.signal);
  const close = () => {
    stopWatching.abort();
    stopAccepting.abort();
    proxy.close();
    server.close();
    server.closeAllConnections();
    for (const socket of sockets) socket.destroy();
  };
  if (options.signal?.aborted) close();
  options.signal?.addEventListener("abort", close, { once: true });
  return { address, server, finished };
}

/** A complete HTTP/1.1 answer that closes its connection. */
function closingAnswer(status: number, reason: string, body: string): string {
  return `HTTP/1.1 ${status} ${reason}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${
    new TextEncoder().encode(body).length
  }\r\nConnection: close\r\n\r\n${body}`;
}

/** The answer to CONNECT (what Prometheus sends for scheme: https through a proxy). */
const CONNECT_ANSWER = closingAnswer(
  501,
  "Not Implemented",
  "CONNECT is not supported: scrape with scheme http through the proxy and add params _scheme=[https] for https targets\n",
);

/**
 * node:http's `clientError` (a head it cannot parse, too large, too slow):
 * the status, the limit hit it counts as, and the answer.
 */
function clientErrorAnswer(
  error: Error & { code?: string },
): { status: number; limit: string | null; bytes: string } {
  const [status, text, limit] = error.code === "HPE_HEADER_OVERFLOW"
    ? [431, "Request Header Fields Too Large", "header_bytes"]
    : error.code === "ERR_HTTP_REQUEST_TIMEOUT" || error.code === "ERR_HTTP_HEADERS_TIMEOUT"
    ? [408, "Request Timeout", "header_timeout"]
    : [400, "Bad Request", null];
  return {
    status,
    limit,
    bytes: closingAnswer(status, text, `${text}: ${error.code ?? error.message}\n`),
  };
}
