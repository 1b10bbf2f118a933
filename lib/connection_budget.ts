/**
 * A budget of open connections for a process's listeners: a cap on all
 * connections (kept below the file descriptor limit, with headroom) and one
 * per source address. Above a cap a new connection is refused at once,
 * after the oldest idle keep-alive connection, if any, was closed to make
 * room. And a watchdog that restarts a listener whose accept loop stopped:
 * under Deno, a node:net listener that hits EMFILE on accept stops accepting
 * for good, silently, even after descriptors free up.
 *
 * @module
 */

import { connect, type Server, type Socket } from "node:net";
import type { Logger } from "./logger.ts";

/** Why a connection was refused. */
export type ConnectionLimit = "connections" | "connections_per_source";

/**
 * The soft limit on open files (RLIMIT_NOFILE) from `/proc/self/limits`.
 *
 * @param text The file's text; read from /proc when omitted.
 * @returns The limit, or null when unknown or unlimited.
 */
export function softFdLimit(text?: string): number | null {
  let limits = text;
  if (limits === undefined) {
    try {
      limits = Deno.readTextFileSync("/proc/self/limits");
    } catch {
      return null;
    }
  }
  const match = /^Max open files\s+(\S+)/m.exec(limits);
  if (match === null) return null;
  const soft = Number(match[1]);
  return Number.isSafeInteger(soft) && soft > 0 ? soft : null;
}

/** File descriptors kept out of the connection budget: the process's own files, outbound sockets, refusals. */
export function fdReserve(limit: number): number {
  return Math.max(64, Math.ceil(limit / 10));
}

/**
 * The default connection cap: the soft fd limit less {@linkcode fdReserve}.
 *
 * @param limit The soft fd limit; null when unknown.
 * @returns The cap (at least 16; 10,000 when the limit is unknown).
 */
export function defaultMaxConnections(limit: number | null): number {
  if (limit === null) return 10_000;
  return Math.max(16, limit - fdReserve(limit));
}

/** Options for {@linkcode createConnectionBudget}. */
export interface ConnectionBudgetOptions {
  /** Most connections open at once; 0 for no limit. */
  maxConnections: number;
  /** Most connections open at once from one source address; 0 for no limit. */
  maxPerSource: number;
  /** Called for each refused connection (count it). */
  onRefused?: (limit: ConnectionLimit, remote: string) => void;
  /** Called for each idle connection closed to make room. */
  onEvicted?: (remote: string) => void;
}

/**
 * What a budget needs of a connection: a node:net `Socket` has it, and so
 * has the proxy's native front door's connection record.
 */
export interface BudgetConnection {
  /** The peer's address; the per-source cap counts by it. */
  readonly remoteAddress?: string | undefined;
  /** True once closed. */
  readonly destroyed: boolean;
  /** Closes the connection (an idle one evicted to make room). */
  destroy(): void;
  /** Calls `listener` once the connection has closed. */
  once(event: "close", listener: () => void): unknown;
}

/** Open connections, counted against their caps. */
export interface ConnectionBudget {
  /** Connections open now. */
  readonly open: number;
  /** Connections open now from one source address. */
  openFrom(remote: string): number;
  /**
   * Counts a new connection until it closes, or refuses it: `refuse` is
   * called and false returned. At the total cap, the oldest idle connection
   * is closed first to make room.
   */
  admit<T extends BudgetConnection>(socket: T, refuse: (socket: T) => void): boolean;
  /** A request started on the connection: it is not idle. */
  busy(socket: BudgetConnection): void;
  /** A request on the connection ended; with none left it is idle. */
  done(socket: BudgetConnection): void;
}

interface Entry {
  remote: string;
  requests: number;
}

/**
 * Creates a connection budget, shared by the listeners it is wired into.
 *
 * @param options The caps and what to call when they are hit.
 * @returns The budget.
 */
export function createConnectionBudget(options: ConnectionBudgetOptions): ConnectionBudget {
  const entries = new Map<BudgetConnection, Entry>();
  const perSource = new Map<string, number>();
  /** Idle keep-alive connections, oldest idle first (Set keeps insertion order). */
  const idle = new Set<BudgetConnection>();
  function release(socket: BudgetConnection): void {
    const entry = entries.get(socket);
    if (entry === undefined) return;
    entries.delete(socket);
    idle.delete(socket);
    const left = (perSource.get(entry.remote) ?? 1) - 1;
    if (left <= 0) perSource.delete(entry.remote);
    else perSource.set(entry.remote, left);
  }
  return {
    get open() {
      return entries.size;
    },
    openFrom(remote) {
      return perSource.get(remote) ?? 0;
    },
    admit(socket, refuse) {
      const remote = socket.remoteAddress ?? "";
      if (options.maxPerSource > 0 && (perSource.get(remote) ?? 0) >= options.maxPerSource) {
        options.onRefused?.("connections_per_source", remote);
        refuse(socket);
        return false;
      }
      if (options.maxConnections > 0 && entries.size >= options.maxConnections) {
        const oldest = idle.values().next();
        if (oldest.done) {
          options.onRefused?.("connections", remote);
          refuse(socket);
          return false;
        }
        const victim = oldest.value;
        options.onEvicted?.(entries.get(victim)?.remote ?? "");
        release(victim);
        victim.destroy();
      }
      entries.set(socket, { remote, requests: 0 });
      perSource.set(remote, (perSource.get(remote) ?? 0) + 1);
      socket.once("close", () => release(socket));
      return true;
    },
    busy(socket) {
      const entry = entries.get(socket);
      if (entry === undefined) return;
      entry.requests++;
      idle.delete(socket);
    },
    done(socket) {
      const entry = entries.get(socket);
      if (entry === undefined) return;
      entry.requests = Math.max(0, entry.requests - 1);
      if (entry.requests === 0 && !socket.destroyed) {
        idle.delete(socket);
        idle.add(socket);
      }
    },
  };
}

/** Options for {@linkcode keepAccepting}. */
export interface KeepAcceptingOptions {
  /** Stops the watchdog. */
  signal: AbortSignal;
  /** How often a quiet listener is probed. @default {5000} */
  intervalMs?: number;
  /** How long a probe connection may wait to be accepted. @default {min(5000, 2 * intervalMs)} */
  acceptTimeoutMs?: number;
  /** Logs restarts. */
  logger?: Logger;
  /** Called when the listener was restarted. */
  onRestart?: () => void;
}

/** A watchdog over a listener; see {@linkcode keepAccepting}. */
export interface AcceptWatchdog {
  /** True for the watchdog's own probe connections (ignore them). */
  isProbe(socket: Socket): boolean;
}

/**
 * Watches that a listening server still accepts connections, and restarts
 * its listening socket when it does not. When no connection arrived for
 * `intervalMs`, the watchdog connects to the server itself; a probe that the
 * kernel completes but the server never accepts means the accept loop
 * stopped (as Deno's node:net does after EMFILE), so the listening socket is
 * closed and opened again on the same address. Connections waiting in the
 * old listen queue are reset; new ones are served.
 *
 * Register it before any other `connection` listener that counts
 * connections, and skip sockets for which `isProbe` is true.
 *
 * @param server A listening server.
 * @param options Stop signal, timings and logger.
 * @returns The watchdog.
 */
export function keepAccepting(server: Server, options: KeepAcceptingOptions): AcceptWatchdog {
  const intervalMs = options.intervalMs ?? 5_000;
  const acceptTimeoutMs = options.acceptTimeoutMs ?? Math.min(5_000, 2 * intervalMs);
  let accepted = 0;
  let checked = 0;
  /** Loopback connections accepted while a probe is out, by remote port. */
  let window: Map<number, Socket> | null = null;
  /** The probe's local port once connected, 0 before. */
  let probePort = 0;
  let probeAccepted: (() => void) | null = null;
  const probes = new WeakSet<Socket>();
  function isProbeSocket(socket: Socket): boolean {
    if (probePort === 0 || socket.remotePort !== probePort) return false;
    probes.add(socket);
    socket.destroy();
    probeAccepted?.();
    return true;
  }
  server.on("connection", (socket: Socket) => {
    accepted++;
    if (window === null || !isLoopback(socket.remoteAddress)) return;
    if (!isProbeSocket(socket) && socket.remotePort !== undefined) {
      window.set(socket.remotePort, socket);
    }
  });
  function restart(): void {
    const address = server.address();
    const handle = (server as unknown as { _handle?: { close(): void } | null })._handle;
    if (address === null || typeof address === "string" || !handle || options.signal.aborted) {
      return;
    }
    options.logger?.error(
      "Listener stopped accepting connections (file descriptors ran out?): restarting it",
      { address: `${address.address}:${address.port}` },
    );
    handle.close();
    (server as unknown as { _handle: unknown })._handle = null;
    server.listen(address.port, address.address);
    options.onRestart?.();
  }
  function probe(): void {
    const address = server.address();
    if (address === null || typeof address === "string" || !server.listening) return;
    const host = address.address === "0.0.0.0"
      ? "127.0.0.1"
      : address.address === "::"
      ? "::1"
      : address.address;
    window = new Map();
    const socket = connect({ host, port: address.port });
    let timer: ReturnType<typeof setTimeout> | undefined;
    let stalled = true;
    const finish = () => {
      clearTimeout(timer);
      window = null;
      probePort = 0;
      probeAccepted = null;
      cancel = null;
      socket.destroy();
    };
    cancel = finish;
    // EMFILE here too: descriptors are still short; try again next time.
    socket.once("error", finish);
    socket.once("connect", () => {
      probePort = socket.localPort ?? 0;
      probeAccepted = () => {
        stalled = false;
        finish();
      };
      const early = window?.get(probePort);
      if (early !== undefined) {
        isProbeSocket(early);
        return;
      }
      timer = setTimeout(() => {
        finish();
        if (stalled) restart();
      }, acceptTimeoutMs);
    });
  }
  /** Ends the probe in flight, if any. */
  let cancel: (() => void) | null = null;
  const tick = setInterval(() => {
    if (window !== null || accepted !== checked) {
      checked = accepted;
      return;
    }
    probe();
  }, intervalMs);
  options.signal.addEventListener("abort", () => {
    clearInterval(tick);
    cancel?.();
  }, { once: true });
  return { isProbe: (socket) => probes.has(socket) };
}

function isLoopback(address: string | undefined): boolean {
  return address === "127.0.0.1" || address === "::1" || address === "::ffff:127.0.0.1";
}
