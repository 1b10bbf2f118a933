/**
 * The native front door of a plain-HTTP port (the proxy's, and the client's
 * exporter listener's, client/modules/exporter_native.ts): a `Deno.listen`
 * accept loop that owns the port. Each connection is counted against the
 * connection budget, and its requests are either served natively (see
 * {@linkcode NativeRoute}) or the connection is handed, for the rest of its
 * life, to the node:http server with the bytes already read pushed back
 * first (`server.emit("connection", socket)`; see lib/conn_socket.ts).
 * node:http (and the socket over the connection, node:stream) may be loaded
 * on the first handover: a port that only ever serves natively never loads
 * them. A connection waits for that import, one for all; if it fails, it
 * gets a 503 and the next handover tries again.
 *
 * Accept errors (EMFILE and the like) are logged and the loop retries after
 * a short delay: unlike node:net under Deno, it never stops accepting.
 *
 * @module
 */

import type { Server } from "node:http";
import type { BudgetConnection, ConnectionBudget } from "./connection_budget.ts";
import type { Logger } from "./logger.ts";
import type { ConnSocket } from "./conn_socket.ts";
import { errorMessage } from "./error_message.ts";
import { peerAddress } from "./address.ts";

/** Go's and node's 503 for a connection above the caps, best effort. */
const REFUSED = new TextEncoder().encode(
  "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 22\r\nConnection: close\r\n\r\nToo many connections.\n",
);

const UNAVAILABLE_BODY = "Service Unavailable: cannot load node:http; see the proxy's log\n";
/** The answer to a connection node:http should serve but that could not be loaded. */
const UNAVAILABLE = new TextEncoder().encode(
  `HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${UNAVAILABLE_BODY.length}\r\nConnection: close\r\n\r\n${UNAVAILABLE_BODY}`,
);

/**
 * One accepted connection, as the connection budget sees it, whether the
 * front door serves it or node:http does.
 */
export class EdgeConnection implements BudgetConnection {
  /** The accepted connection. */
  readonly conn: Deno.Conn;
  /** The peer's address. */
  readonly remoteAddress: string;
  /** The peer's port. */
  readonly remotePort: number;
  #destroyed = false;
  /** Called once closed: one listener as is (the usual: the budget's), more in an array. */
  #onClose: (() => void) | (() => void)[] | null = null;
  /** The open connections it leaves once closed (a set, not a closure per connection). */
  readonly #open: Set<EdgeConnection> | null;
  /** The node socket, once handed over. */
  #socket: ConnSocket | null = null;
  /** Made when first read (see peerAddress). */
  #peerAddress: string | null = null;

  /**
   * Records an accepted connection.
   *
   * @param conn The accepted connection.
   * @param open The set of open connections it is in until closed.
   */
  constructor(conn: Deno.Conn, open?: Set<EdgeConnection>) {
    this.conn = conn;
    this.#open = open ?? null;
    const remote = conn.remoteAddr as Deno.NetAddr;
    this.remoteAddress = remote.hostname;
    this.remotePort = remote.port;
  }

  /**
   * The peer's "host:port" for listings (lib/address.ts peerAddress), made
   * once per connection rather than once per request on it.
   */
  get peerAddress(): string {
    return this.#peerAddress ??= peerAddress(this);
  }

  /** True once closed. */
  get destroyed(): boolean {
    return this.#destroyed;
  }

  /** The node socket the connection was handed over as, or null. */
  get socket(): ConnSocket | null {
    return this.#socket;
  }

  /** Closes the connection (or its node socket). Idempotent. */
  destroy(): void {
    if (this.#destroyed) return;
    if (this.#socket !== null) {
      this.#socket.destroy();
      return;
    }
    try {
      this.conn.close();
    } catch {
      // Already closed.
    }
    this.closed();
  }

  /** Calls `listener` once the connection has closed. */
  once(_event: "close", listener: () => void): this {
    const listeners = this.#onClose;
    if (this.#destroyed) queueMicrotask(listener);
    else if (listeners === null) this.#onClose = listener;
    else if (typeof listeners === "function") this.#onClose = [listeners, listener];
    else listeners.push(listener);
    return this;
  }

  /** Marks the connection closed and tells the listeners. */
  closed(): void {
    if (this.#destroyed) return;
    this.#destroyed = true;
    this.#open?.delete(this);
    const listeners = this.#onClose;
    this.#onClose = null;
    if (typeof listeners === "function") listeners();
    else if (listeners !== null) { for (const listener of listeners) listener(); }
  }

  /**
   * Turns the connection into a node socket, which owns it from now on.
   *
   * @param Socket The socket class (lib/conn_socket.ts, loaded on demand).
   * @param initial Bytes already read, read first by the socket's user.
   * @returns The socket.
   */
  handOver(Socket: typeof ConnSocket, initial?: Uint8Array): ConnSocket {
    const socket = new Socket(this.conn, { initial, onClose: () => this.closed() });
    this.#socket = socket;
    return socket;
  }
}

/**
 * Serves requests natively on a connection, or declines: resolves true when
 * it is done with the connection (closed it or it closed) or keeps it by
 * other means (callbacks that close it when done), false to hand the
 * connection to node:http (it must then have consumed nothing, or pass what
 * it read to `handOver` itself and resolve true).
 */
export type NativeRoute = (connection: EdgeConnection, door: FrontDoor) => Promise<boolean>;

/** Options for {@linkcode listenFrontDoor}. */
export interface FrontDoorOptions {
  /** Where to listen; "" for all IPv4 addresses. */
  hostname: string;
  /** Port; 0 picks one. */
  port: number;
  /** Stops listening and closes every connection when aborted. */
  signal: AbortSignal;
  /**
   * The node:http server that serves what the front door does not, or a
   * function that makes it (importing node:http), called on the first
   * handover; a failure is called again on the next.
   */
  server: Server | (() => Promise<Server>);
  /** Caps open connections. @default {no cap} */
  budget?: ConnectionBudget | undefined;
  /** Serves connections natively before handing them over. @default {hand every one over} */
  native?: NativeRoute | undefined;
  /** Wait after a failed accept before the next. @default {100} */
  acceptRetryMs?: number;
  /** Test-only: accepts a connection (to inject failures). @default {listener.accept()} */
  accept?: (listener: Deno.Listener) => Promise<Deno.Conn>;
  /** Logs accept errors and handover failures. @default {none} */
  logger?: Logger | undefined;
}

/** A listening front door. */
export interface FrontDoor {
  /** Where it listens. */
  readonly address: { hostname: string; port: number };
  /** Resolves when it has stopped and closed its connections. */
  readonly finished: Promise<void>;
  /** Connections open now. */
  readonly open: number;
  /** True until closed. */
  readonly listening: boolean;
  /** The front door's record of a handed-over socket. */
  connectionOf(socket: unknown): EdgeConnection | undefined;
  /**
   * Hands a connection to node:http, with bytes already read pushed back
   * (once node:http is loaded; see the module doc).
   */
  handOver(connection: EdgeConnection, initial?: Uint8Array): void;
}

/**
 * Listens on a port and serves its connections (see the module doc).
 *
 * @param options Address, server, budget, native route.
 * @returns The front door.
 * @throws {Deno.errors.AddrInUse} And the like, when the address cannot be listened on.
 */
export function listenFrontDoor(options: FrontDoorOptions): FrontDoor {
  const listener = Deno.listen({
    hostname: options.hostname === "" ? "0.0.0.0" : options.hostname,
    port: options.port,
  });
  const addr = listener.addr as Deno.NetAddr;
  const { server, budget, logger } = options;
  const retryMs = options.acceptRetryMs ?? 100;
  const accept = options.accept ?? ((l: Deno.Listener) => l.accept());
  const open = new Set<EdgeConnection>();
  const bySocket = new WeakMap<object, EdgeConnection>();
  let closed = false;
  let retryTimer: ReturnType<typeof setTimeout> | undefined;
  let wakeRetry: (() => void) | null = null;

  const refuse = (connection: EdgeConnection, answer = REFUSED) => {
    // Closed at once: a refused connection must not hold its descriptor, so
    // the 503 is best effort (many peers see only the close or a reset).
    connection.conn.write(answer).catch(() => {}).finally(() => connection.destroy());
  };

  const door: FrontDoor = {
    address: { hostname: addr.hostname, port: addr.port },
    // The loop's first wait starts before `door` is used (by serve).
    finished: loop(),
    get open() {
      return open.size;
    },
    get listening() {
      return !closed;
    },
    connectionOf: (socket) => bySocket.get(socket as object),
    handOver(connection, initial) {
      // A copy: the bytes read are a view of a 64 KiB read buffer, which a
      // long-lived request (a Poll stream) would otherwise keep alive (and
      // which is read into again while node:http loads).
      const bytes = initial?.slice();
      loadNode().then(({ server, Socket }) => {
        // Closed meanwhile (the door closed, or the peer went away).
        if (connection.destroyed || connection.socket !== null) return;
        try {
          const socket = connection.handOver(Socket, bytes);
          bySocket.set(socket, connection);
          // A peer's reset or broken pipe ends its connection, never the process.
          socket.on(
            "error",
            (error: Error & { code?: string }) =>
              logger?.debug("Connection error", { err: error.code ?? error.message }),
          );
          server.emit("connection", socket);
        } catch (error) {
          failed(connection, error);
        }
      }, (error) => {
        logger?.error("Cannot load node:http to serve a connection: answering 503", {
          err: errorMessage(error),
        });
        if (!connection.destroyed) refuse(connection, UNAVAILABLE);
      });
    },
  };

  /** node:http's server and the socket class, loaded once (again after a failure). */
  let node: Promise<{ server: Server; Socket: typeof ConnSocket }> | null = null;
  function loadNode(): Promise<{ server: Server; Socket: typeof ConnSocket }> {
    node ??= Promise.all([
      typeof server === "function" ? server() : server,
      import("./conn_socket.ts"),
    ]).then(([server, module]) => ({ server, Socket: module.ConnSocket }), (error) => {
      node = null;
      throw error;
    });
    return node;
  }

  /** Stops listening and closes every connection. */
  const close = () => {
    if (closed) return;
    closed = true;
    clearTimeout(retryTimer);
    wakeRetry?.();
    try {
      listener.close();
    } catch {
      // Already closed.
    }
    for (const connection of open) connection.destroy();
  };
  if (options.signal.aborted) close();
  else options.signal.addEventListener("abort", close, { once: true });

  /**
   * Serves one connection. Callbacks, not an async function: a suspended
   * one per connection was heap per idle Poll stream (issue #11).
   */
  function serve(connection: EdgeConnection): void {
    if (options.native === undefined) return handOver(connection);
    let served: Promise<boolean>;
    try {
      served = options.native(connection, door);
    } catch (error) {
      return failed(connection, error);
    }
    served.then((done) => {
      if (!done) handOver(connection);
    }, (error) => failed(connection, error));
  }

  /** Node's from here on, unless closed. */
  function handOver(connection: EdgeConnection): void {
    try {
      if (!connection.destroyed && connection.socket === null) door.handOver(connection);
    } catch (error) {
      failed(connection, error);
    }
  }

  function failed(connection: EdgeConnection, error: unknown): void {
    logger?.debug("Connection failed", { err: errorMessage(error) });
    connection.destroy();
  }

  async function loop(): Promise<void> {
    while (!closed) {
      let conn: Deno.Conn;
      try {
        conn = await accept(listener);
      } catch (error) {
        if (closed) break;
        if (error instanceof Deno.errors.BadResource) break;
        logger?.error("Cannot accept a connection (file descriptors ran out?): retrying", {
          address: `${addr.hostname}:${addr.port}`,
          err: errorMessage(error),
        });
        await new Promise<void>((resolve) => {
          wakeRetry = resolve;
          retryTimer = setTimeout(resolve, retryMs);
        });
        wakeRetry = null;
        continue;
      }
      if (closed) {
        conn.close();
        break;
      }
      // As node:http does: no Nagle delay on small writes (a response head
      // written before its body would otherwise wait for the peer's ACK).
      try {
        (conn as Deno.TcpConn).setNoDelay(true);
      } catch {
        // Closed already.
      }
      const connection = new EdgeConnection(conn, open);
      if (budget !== undefined && !budget.admit(connection, refuse)) continue;
      // Left when closed (see EdgeConnection.closed).
      if (!connection.destroyed) open.add(connection);
      serve(connection);
    }
  }
  return door;
}
