/**
 * The proxy's node:http (or HTTPS) server: its settings, the connection
 * caps of the requests it serves, and the answers it gives before a request
 * reaches the proxy's router (malformed heads, CONNECT). proxy/http/listener.ts
 * imports this module (and with it node:http and node:https) the first
 * time the native front door hands a connection over, or at once for TLS.
 *
 * @module
 */

import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { Socket } from "node:net";
import type { TLSSocket } from "node:tls";
import {
  type BudgetConnection,
  type ConnectionBudget,
  keepAccepting,
} from "../../lib/connection_budget.ts";
import type { Logger } from "../../lib/logger.ts";
import type { TlsListener } from "../../lib/tls_server.ts";
import type { ProxyMetrics } from "../core/metrics.ts";
import type { NativeHandler } from "./native_edge.ts";
import type { RequestHead } from "../../lib/request_head.ts";

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

/** node:http's settings of the proxy's port. */
export interface NodeHttpSettings {
  maxHeaderSize: number;
  requestTimeout: number;
  headersTimeout: number;
  keepAliveTimeout: number;
  connectionsCheckingInterval: number;
}

/** Options for {@linkcode createNodeServer}. */
export interface NodeServerOptions {
  settings: NodeHttpSettings;
  /** Serve HTTPS with these settings; plain HTTP without. */
  tls?: TlsListener | undefined;
  /** Headers added to the proxy's own responses. */
  headers: readonly (readonly [string, string])[];
  logger?: Logger | undefined;
  budget?: ConnectionBudget | undefined;
  /** The budget's record of a request's connection. */
  connectionOf(socket: Socket): BudgetConnection;
  /** Stops the accept watchdog (TLS). */
  signal: AbortSignal;
  /** How often a quiet TLS listener checks that it still accepts. */
  acceptCheckIntervalMs: number;
}

/** The server and what the listener must close with it. */
export interface NodeServer {
  readonly server: Server;
  /** Raw TLS connections, so that closing ends those still in a handshake too. */
  readonly sockets: Set<Socket>;
}

/**
 * Creates the node:http (or HTTPS) server of the proxy's port, not yet
 * listening.
 *
 * @param proxy The proxy.
 * @param options Settings, TLS, headers, budget.
 * @returns The server.
 */
export function createNodeServer(proxy: ListenedProxy, options: NodeServerOptions): NodeServer {
  const { tls, budget, settings } = options;
  const log = options.logger;
  const extra = options.headers;
  const headersTimeout = settings.headersTimeout;
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
  const server: Server = tls
    ? createHttpsServer(
      { ...tls.serverOptions, ...settings, handshakeTimeout: headersTimeout },
      handle,
    )
    : createServer(settings, handle);
  /** A peer's reset or broken pipe ends its connection, never the process. */
  const onSocketError = (error: Error & { code?: string }) =>
    log?.debug("Connection error", { err: error.code ?? error.message });
  // Restarts a node listener if its accept loop stops (EMFILE), before
  // counting. The plain-HTTP front door retries failed accepts itself.
  const watchdog = tls
    ? keepAccepting(server, {
      signal: options.signal,
      intervalMs: options.acceptCheckIntervalMs,
      ...(log ? { logger: log } : {}),
    })
    : null;
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
      const connection = options.connectionOf(req.socket);
      budget.busy(connection);
      res.once("close", () => budget.done(connection));
    });
  }
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
  return { server, sockets };
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
