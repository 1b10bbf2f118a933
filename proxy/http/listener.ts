/**
 * The proxy's listener: the native front door on plain HTTP, node:http (or
 * HTTPS) behind it or alone, connection caps. node:http and its server
 * (proxy/http/node_server.ts) are imported the first time the front door
 * hands a connection over (at once for HTTPS): a port that only ever serves
 * native routes never loads them.
 *
 * @module
 */

import type { Server } from "node:http";
import type { Socket } from "node:net";
import type { BudgetConnection, ConnectionBudget } from "../../lib/connection_budget.ts";
import type { Logger } from "../../lib/logger.ts";
import type { TlsListener } from "../../lib/tls_server.ts";
import { type FrontDoor, listenFrontDoor } from "../../lib/front_door.ts";
import { nativeEdge } from "./native_edge.ts";
import { DRAIN_MAX_BYTES, DRAIN_MAX_MS } from "./node_guard.ts";
import type { ListenedProxy, NodeServer, NodeServerOptions } from "./node_server.ts";

export type { ListenedProxy } from "./node_server.ts";

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
  /**
   * Test-only: imports proxy/http/node_server.ts (node:http).
   * @default {a dynamic import}
   */
  loadNodeServer?: () => Promise<typeof import("./node_server.ts")>;
}

/** A listening proxy. */
export interface ServingProxy {
  /** Where it listens. */
  readonly address: { hostname: string; port: number };
  /** The node:http server: null on plain HTTP until the front door first hands a connection over. */
  readonly server: Server | null;
  /** The node:http server, loaded now if it is not yet. */
  nodeServer(): Promise<Server>;
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
  const tls = options.tls;
  const log = options.logger;
  /** Aborted on close: stops the front door (plain HTTP) or the accept watchdog (TLS). */
  const stopAccepting = new AbortController();
  const budget = options.connections;
  /** Plain HTTP: the native front door owns the port (lib/front_door.ts). */
  let door: FrontDoor | null = null;
  const nodeOptions: NodeServerOptions = {
    settings: httpOptions,
    tls,
    headers: extra,
    logger: log,
    budget,
    connectionOf: (socket: Socket): BudgetConnection => door?.connectionOf(socket) ?? socket,
    signal: stopAccepting.signal,
    acceptCheckIntervalMs: options.acceptCheckIntervalMs ?? 5_000,
  };
  const importNodeServer = options.loadNodeServer ?? (() => import("./node_server.ts"));
  /** The node:http server, once made. */
  let node: NodeServer | null = null;
  let loading: Promise<Server> | null = null;
  let closed = false;
  /** Makes the node:http server: once, or again after a failed import. */
  const loadServer = (): Promise<Server> => {
    loading ??= importNodeServer().then((module) => {
      const made = module.createNodeServer(proxy, nodeOptions);
      node = made;
      const server = made.server;
      if (door !== null) {
        // node:http checks its header, request and keep-alive timeouts for
        // the connections it is handed only once it has "listened", and
        // keeps connections alive only while it is listening.
        const open = door;
        Object.defineProperty(server, "listening", {
          configurable: true,
          get: () => open.listening,
        });
        server.emit("listening");
      }
      if (closed) closeNode(made);
      return server;
    }, (error) => {
      loading = null;
      throw error;
    });
    return loading;
  };
  const expire = setInterval(
    () => proxy.coordinator.expire(),
    options.expireIntervalMs ?? 60_000,
  );
  let finished: Promise<void>;
  let address: { hostname: string; port: number };
  /** The HTTPS server (made at once). */
  let tlsServer: Server | null = null;
  if (tls) {
    let server: Server;
    try {
      server = tlsServer = await loadServer();
    } catch (error) {
      clearInterval(expire);
      throw error;
    }
    finished = new Promise<void>((resolve) => server.once("close", resolve));
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(options.port, options.hostname || undefined, () => {
        server.off("error", reject);
        resolve();
      });
    });
    const info = server.address() as { address: string; port: number };
    address = { hostname: info.address, port: info.port };
  } else {
    try {
      door = listenFrontDoor({
        hostname: options.hostname,
        port: options.port,
        signal: stopAccepting.signal,
        server: loadServer,
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
    finished = door.finished;
    address = door.address;
  }
  finished = finished.finally(() => clearInterval(expire));
  const stopWatching = new AbortController();
  if (tls && tlsServer !== null) {
    tls.watch(tlsServer as unknown as import("node:tls").Server, stopWatching.signal);
  }
  const close = () => {
    closed = true;
    stopWatching.abort();
    stopAccepting.abort();
    proxy.close();
    const made = node as NodeServer | null;
    if (made !== null) closeNode(made);
  };
  if (options.signal?.aborted) close();
  options.signal?.addEventListener("abort", close, { once: true });
  return {
    address,
    get server() {
      return (node as NodeServer | null)?.server ?? null;
    },
    nodeServer: loadServer,
    finished,
  };
}

/** Stops a node:http server and closes its connections. */
function closeNode(node: NodeServer): void {
  node.server.close();
  node.server.closeAllConnections();
  for (const socket of node.sockets) socket.destroy();
}
