/**
 * What every client listener (the direct exporter_exporter listener and the
 * metrics listener) puts around node:http: one error boundary per request,
 * readable answers to requests node:http refuses itself, and a connection
 * cap at which idle keep-alive connections make room for a new scraper.
 *
 * @module
 */

import type { IncomingMessage, Server, ServerResponse } from "node:http";
import type { Socket } from "node:net";
import type { Logger } from "./logger.ts";
import { errorMessage } from "./error_message.ts";

/** A request handler that may throw or reject. */
export type GuardedHandler = (req: IncomingMessage, res: ServerResponse) => unknown;

/**
 * Wraps a handler in the one error boundary: whatever it throws or rejects
 * with is logged and answered 500 on a connection that is then closed (or,
 * once the status is sent, the connection is cut); the process and the
 * other connections go on.
 *
 * @param handler The handler.
 * @param logger Where failures are logged.
 * @returns A handler for node:http that never throws.
 */
export function guardHandler(
  handler: GuardedHandler,
  logger: Logger,
): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    const fail = (error: unknown) => {
      logger.error("Request failed", {
        path: req.url,
        err: errorMessage(error),
      });
      if (res.headersSent || res.destroyed) {
        res.destroy();
        return;
      }
      const body = "Internal error; see the client's log\n";
      res.writeHead(500, {
        "content-type": "text/plain; charset=utf-8",
        "content-length": String(body.length),
        connection: "close",
      });
      res.end(body, () => req.socket.destroy());
    };
    try {
      Promise.resolve(handler(req, res)).catch(fail);
    } catch (error) {
      fail(error);
    }
  };
}

/** Options for {@linkcode guardServer}. */
export interface GuardServerOptions {
  /** Logs refusals. */
  logger: Logger;
  /** Connections at once. @default {1024} */
  maxConnections?: number;
  /** The event that hands over a connection: "secureConnection" for TLS. @default {"connection"} */
  connectionEvent?: "connection" | "secureConnection";
  /** Clock for idle times. @default {performance.now} */
  now?: () => number;
}

interface ConnectionState {
  /** Requests in flight. */
  busy: number;
  /** Since when it has had none. */
  idleSince: number;
}

/**
 * Adds the connection cap and readable error answers to a server. At the
 * cap, a new connection closes the one idle the longest (keep-alive between
 * requests, or open without a request yet), so idle sockets never lock out a
 * new scraper; only when every connection has a request in flight is the new
 * one closed. (node:http's own `maxConnections` refuses new ones instead.)
 *
 * @param server The server (not `maxConnections`-limited).
 * @param options Logger, cap and connection event.
 */
export function guardServer(server: Server, options: GuardServerOptions): void {
  const { logger } = options;
  const max = options.maxConnections ?? 1024;
  const now = options.now ?? (() => performance.now());
  const connections = new Map<Socket, ConnectionState>();
  server.on(options.connectionEvent ?? "connection", (socket: Socket) => {
    if (connections.size >= max) {
      let oldest: [Socket, ConnectionState] | null = null;
      for (const entry of connections) {
        if (entry[1].busy > 0) continue;
        if (oldest === null || entry[1].idleSince < oldest[1].idleSince) oldest = entry;
      }
      if (oldest === null) {
        logger.warn("Connection refused: every connection has a request in flight", {
          peer: socket.remoteAddress,
          max_connections: max,
        });
        socket.destroy();
        return;
      }
      logger.debug("Closed the longest idle connection to admit a new one", {
        peer: oldest[0].remoteAddress,
        max_connections: max,
      });
      connections.delete(oldest[0]);
      oldest[0].destroy();
    }
    connections.set(socket, { busy: 0, idleSince: now() });
    socket.once("close", () => connections.delete(socket));
  });
  server.on("request", (req: IncomingMessage, res: ServerResponse) => {
    const socket = req.socket as Socket & { _parent?: Socket };
    const state = connections.get(socket) ??
      (socket._parent ? connections.get(socket._parent) : undefined);
    if (state === undefined) return;
    state.busy++;
    res.once("close", () => {
      state.busy--;
      state.idleSince = now();
    });
  });
  server.on("clientError", (error: Error & { code?: string }, socket: Socket) => {
    const [status, text] = error.code === "HPE_HEADER_OVERFLOW"
      ? [431, "Request Header Fields Too Large"]
      : error.code === "ERR_HTTP_REQUEST_TIMEOUT" || error.code === "ERR_HTTP_HEADERS_TIMEOUT"
      ? [408, "Request Timeout"]
      : [400, "Bad Request"];
    logger.debug("Bad request refused", { peer: socket.remoteAddress, status, err: error.message });
    if (!socket.writable) {
      socket.destroy();
      return;
    }
    const body = `${text}: ${error.code ?? error.message}\n`;
    socket.end(
      `HTTP/1.1 ${status} ${text}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`,
    );
  });
}
