/**
 * The client as a drop-in exporter_exporter: a listener of its own serving
 * `/` (module list), `/proxy?module=…` (the same module engine as scrapes
 * through the proxy), `/metrics`, `/-/healthy` and, with
 * `--web.enable-lifecycle`, `POST /-/reload`.
 *
 * Two listeners, as exporter_exporter has: `--web.listen-address` (plain
 * HTTP, or TLS from an exporter-toolkit `--web.config.file`) and
 * `--web.tls.listen-address` (TLS from `--web.tls.cert`/`--web.tls.key`,
 * client certificates with `--web.tls.ca` + `--web.tls.verify`, optionally
 * matched by `--web.tls.certmatch`). Both share one handler chain:
 * `--allow.net` → bearer token / basic auth → routes.
 *
 * @module
 */

import {
  createServer as createHttpServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import type { TLSSocket } from "node:tls";
import { type ListenAddress } from "../../lib/address.ts";
import type { AllowList } from "../../lib/cidr.ts";
import { forwardableHeaders, rawHeaderPairs } from "../../lib/headers.ts";
import { type HealthOptions, serveHealth } from "../../lib/health.ts";
import type { Logger } from "../../lib/logger.ts";
import { pageHeaders } from "../../lib/page_style.ts";
import {
  createTlsListener,
  listenTlsFront,
  type TlsFront,
  type TlsListener,
} from "../../lib/tls_server.ts";
import type { TlsServerConfig, WebConfig } from "../../lib/web_config.ts";
import type { ModuleEngine } from "./engine.ts";
import { expexpModulesJson, modulesHtml, prefersJson } from "./listing.ts";
import { guardHandler, guardServer } from "../../lib/listener_guard.ts";
import type { ReloadResult } from "./reloader.ts";
import { MODULE_PATH } from "./scrape_route.ts";
import { createAuthorizer, type Listener } from "./exporter_auth.ts";
import { createConnectionBudget } from "../../lib/connection_budget.ts";
import { type FrontDoor, listenFrontDoor } from "../../lib/front_door.ts";
import type { RequestHead } from "../../lib/request_head.ts";
import { errorMessage } from "../../lib/error_message.ts";
import { LazyTimer } from "../../lib/lazy_timer.ts";
import type { ReadBufferPool } from "../../lib/read_buffers.ts";
import { type NativeModuleAnswer, nativeModuleRoute } from "./exporter_native.ts";

/** `/-/healthy`, as exporter_exporter answers it; there is no `/-/ready`. */
const HEALTH: HealthOptions = { healthy: "Healthy\n" };

/** exporter_exporter's `--web.tls.*` flags for the TLS listener. */
export interface ExporterTlsFlags {
  /** `--web.tls.cert`. */
  certFile: string;
  /** `--web.tls.key`. */
  keyFile: string;
  /** `--web.tls.ca`: CA that client certificates must chain to (with `verify`). */
  caFile: string;
  /** `--web.tls.verify`: require and verify client certificates. */
  verify: boolean;
  /** `--web.tls.certmatch`: the client certificate's CN, DNS or email SAN must match. */
  certMatch: RegExp | null;
}

/** Options for {@linkcode startExporterServer}. */
export interface ExporterServerOptions {
  /** The module engine. */
  engine: ModuleEngine;
  /** The client's own metrics in the text format. */
  metrics: () => Promise<{ contentType: string; body: string }>;
  /** Logs listeners, refusals and failures. */
  logger: Logger;
  /** `--web.listen-address`; TLS when `webConfig` has a `tls_server_config`. */
  address?: ListenAddress | null;
  /** `--web.config.file`, applied to `address`. */
  webConfig?: WebConfig | null;
  /** `--web.tls.listen-address`. */
  tlsAddress?: ListenAddress | null;
  /** TLS for `tlsAddress`; required with it. */
  tls?: ExporterTlsFlags | null;
  /** `--web.bearer.token` / `--web.bearer.token-file`: required token. */
  bearerToken?: string | null;
  /** `--allow.net`: peers allowed; null allows all. */
  allowList?: AllowList | null;
  /** `--web.enable-lifecycle`: `POST /-/reload` calls this. */
  reload?: (() => Promise<ReloadResult>) | null;
  /** Time to receive request headers. @default {10000} */
  headersTimeoutMs?: number;
  /** Time to receive a whole request. @default {30000} */
  requestTimeoutMs?: number;
  /** Largest request header block. @default {16384} */
  maxHeaderBytes?: number;
  /**
   * Connections at once per listener. At the cap a new connection closes the
   * one idle the longest (a keep-alive connection between requests), so idle
   * scrapers never lock out a new one; only when every connection has a
   * request in flight is the new one refused. @default {1024}
   */
  maxConnections?: number;
  /**
   * How long an idle keep-alive connection is kept, and how long a response
   * write may wait for a scraper that reads nothing before its connection
   * is closed. @default {30000}
   */
  idleTimeoutMs?: number;
  /** `--web.proxy-path`: the module endpoint. @default {"/proxy"} */
  proxyPath?: string;
  /** `--web.telemetry-path`: the client's own metrics. @default {"/metrics"} */
  telemetryPath?: string;
  /**
   * Serve module `GET`/`HEAD` requests on the plain-HTTP listener natively
   * (client/modules/exporter_native.ts); false leaves every request to
   * node:http. @default {true}
   */
  nativeModules?: boolean;
  /** Stops the listeners. */
  signal?: AbortSignal;
}

/** The running listeners. */
export interface ExporterServer {
  /** Where `--web.listen-address` listens, when set. */
  readonly address: ListenAddress | null;
  /** Where `--web.tls.listen-address` listens, when set. */
  readonly tlsAddress: ListenAddress | null;
  /** Re-reads TLS certificates and keys that changed. */
  reloadTls(): Promise<void>;
  /** Settles once the listeners are closed (after `signal` aborts or `close()`). */
  readonly finished: Promise<void>;
  /** Stops listening and closes connections: aborts, then awaits `finished`. */
  close(): Promise<void>;
}

/** The parts of a request target the listener reads. */
export interface RequestTarget {
  /** The path, normalized as URL normalizes it. */
  readonly pathname: string;
  /** The query's parameters. */
  readonly searchParams: URLSearchParams;
}

/** `Connection` values the native path answers as node:http does. */
const PLAIN_CONNECTION = /^\s*(?:keep-alive|close)\s*$/i;

/** An origin-form target URL would leave as it is: a plain path, printable ASCII after it. */
const PLAIN_TARGET = /^\/(?!\/)[A-Za-z0-9_\-/]*(?:\?[\x21-\x22\x24-\x7e]*)?$/;

/**
 * Reads a request target as `new URL(target, "http://localhost")` does,
 * without parsing a URL for the common `/proxy?module=NAME`: a path of
 * letters, digits, `_`, `-` and `/` (no `.` segment, nothing to
 * percent-encode) and a query of printable ASCII without `#` mean the same
 * either way (URL's query encoding is undone by URLSearchParams).
 *
 * @param target The request target.
 * @returns Its path and parameters, or null when it is malformed.
 */
export function requestTarget(target: string): RequestTarget | null {
  if (PLAIN_TARGET.test(target)) {
    const query = target.indexOf("?");
    return query < 0 ? { pathname: target, searchParams: new URLSearchParams() } : {
      pathname: target.slice(0, query),
      searchParams: new URLSearchParams(target.slice(query + 1)),
    };
  }
  try {
    return new URL(target, "http://localhost");
  } catch {
    return null;
  }
}

/**
 * The one route decision of the native module path: a plain module
 * `GET`/`HEAD` (no body, no `Expect`, no `Upgrade`, no connection options
 * but `keep-alive` or `close`) is served natively; everything else is
 * node:http's.
 *
 * @param head The request head (HTTP/1.1, as lib/request_head.ts passes it).
 * @param proxyPath `--web.proxy-path`.
 * @returns The query's parameters when served natively, else null.
 */
export function nativeModuleQuery(head: RequestHead, proxyPath: string): URLSearchParams | null {
  if (head.method !== "GET" && head.method !== "HEAD") return null;
  const { headers } = head;
  if (headers.has("transfer-encoding") || headers.has("expect") || headers.has("upgrade")) {
    return null;
  }
  const length = headers.get("content-length");
  if (length !== undefined && (length.length !== 1 || length[0] !== "0")) return null;
  const connection = headers.get("connection");
  if (connection !== undefined && !connection.every((v) => PLAIN_CONNECTION.test(v))) {
    return null;
  }
  const url = requestTarget(head.target);
  if (url === null || url.pathname !== proxyPath) return null;
  return url.searchParams;
}

/** The flags' TLS settings in the web configuration's terms. */
export function tlsServerConfigOf(flags: ExporterTlsFlags): TlsServerConfig {
  return {
    certFile: flags.certFile,
    keyFile: flags.keyFile,
    clientAuthType: flags.verify ? "RequireAndVerifyClientCert" : "NoClientCert",
    clientCaFile: flags.verify ? flags.caFile : null,
    clientAllowedSans: [],
    minVersion: "TLSv1.2",
    maxVersion: "TLSv1.3",
  };
}

/**
 * Starts the listeners that are configured.
 *
 * @param options Engine, metrics, listeners, TLS, auth and limits.
 * @returns The running server.
 * @throws {Error} When a listener cannot be set up (files, ports).
 */
export async function startExporterServer(
  options: ExporterServerOptions,
): Promise<ExporterServer> {
  const { engine, logger } = options;
  const proxyPath = options.proxyPath ?? MODULE_PATH;
  const telemetryPath = options.telemetryPath ?? "/metrics";
  const headersTimeout = options.headersTimeoutMs ?? 10_000;
  const idleTimeoutMs = options.idleTimeoutMs ?? 30_000;
  const maxConnections = options.maxConnections ?? 1024;
  const authorize = createAuthorizer(options);
  const servers: Server[] = [];
  const tlsListeners: [TlsListener, Server][] = [];
  const stop = new AbortController();
  options.signal?.addEventListener("abort", () => stop.abort(), { once: true });

  function plain(
    res: ServerResponse,
    status: number,
    message: string,
    headers: Record<string, string> = {},
  ) {
    if (res.headersSent) {
      res.destroy();
      return;
    }
    res.writeHead(status, { "content-type": "text/plain; charset=utf-8", ...headers });
    res.end(message.endsWith("\n") ? message : message + "\n");
  }

  async function handle(
    req: IncomingMessage,
    res: ServerResponse,
    listener: Listener,
  ): Promise<void> {
    for (const [name, value] of Object.entries(listener.web?.headers ?? {})) {
      res.setHeader(name, value);
    }
    const refused = await authorize(req, listener);
    if (refused !== null) {
      logger.debug("Refused a request", {
        path: req.url,
        peer: req.socket.remoteAddress,
        status: refused.status,
      });
      return plain(res, refused.status, refused.message, refused.headers);
    }
    const url = requestTarget(req.url ?? "/");
    if (url === null) {
      return plain(res, 400, `Malformed request target ${JSON.stringify(req.url)}`);
    }
    const method = req.method ?? "GET";
    const path = url.pathname;
    if (path === "/-/reload") {
      if (!options.reload) {
        return plain(res, 403, "Lifecycle API is not enabled (--web.enable-lifecycle)");
      }
      if (method !== "POST" && method !== "PUT") {
        return plain(res, 405, "Use POST /-/reload", { allow: "POST, PUT" });
      }
      const result = await options.reload();
      return result.ok
        ? plain(res, 200, `Reloaded: ${result.modules.length} modules\n`)
        : plain(res, 500, `Cannot reload; the old configuration stays: ${result.error}`);
    }
    if (method !== "GET" && method !== "HEAD") {
      return plain(res, 405, `${path} answers GET and HEAD only, not ${method}`, {
        allow: "GET, HEAD",
      });
    }
    if (serveHealth(HEALTH, req, res, path) !== null) return;
    if (path === telemetryPath) {
      const { contentType, body } = await options.metrics();
      res.writeHead(200, { "content-type": contentType });
      res.end(method === "HEAD" ? undefined : body);
      return;
    }
    if (path === "/") {
      if (prefersJson(req.headers.accept)) {
        res.writeHead(200, { "content-type": "application/json" });
        res.end(method === "HEAD" ? undefined : expexpModulesJson(engine.config));
      } else {
        res.writeHead(200, pageHeaders());
        res.end(method === "HEAD" ? undefined : modulesHtml(engine.config, proxyPath));
      }
      return;
    }
    if (path !== proxyPath) {
      return plain(
        res,
        404,
        `Not found: ${path} (try /, ${proxyPath}?module=NAME or ${telemetryPath})`,
      );
    }
    await serveModule(req, res, url, method);
  }

  /** The requests in flight, aborted when the listeners stop. */
  const inFlight = new Set<AbortController>();
  stop.signal.addEventListener("abort", () => {
    for (const request of inFlight) request.abort(stop.signal.reason);
  }, { once: true });

  async function serveModule(
    req: IncomingMessage,
    res: ServerResponse,
    url: RequestTarget,
    method: string,
  ) {
    const gone = new AbortController();
    if (stop.signal.aborted) gone.abort(stop.signal.reason);
    inFlight.add(gone);
    res.once("close", () => {
      inFlight.delete(gone);
      // After a complete answer there is nothing left to abort.
      if (!res.writableFinished) gone.abort(new Error("the scraper closed the connection"));
    });
    const response = await engine.serve(
      {
        query: url.searchParams,
        headers: forwardableHeaders(rawHeaderPairs(req.rawHeaders)),
        peer: req.socket.remoteAddress,
      },
      gone.signal,
    );
    if (response.error !== "" || response.body === null) {
      return plain(res, response.status, response.error);
    }
    for (const { name, value } of response.headers) res.appendHeader(name, value);
    // The backend's bytes pass unchanged, so its length holds (and spares
    // the chunked framing); a body that fails part-way is cut short.
    if (response.contentLength !== undefined) {
      res.setHeader("content-length", response.contentLength);
    }
    res.writeHead(response.status);
    if (method === "HEAD") {
      res.end();
      return;
    }
    // Buffers nobody else holds are freed as soon as they are written: left
    // to the GC, 8 scrapes of 20 MiB held 60+ MiB of written buffers.
    const free = response.ownedChunks === true ? freeAfterWrite(response.readBuffers) : undefined;
    // A read's worth (64 KiB) fills node:http's buffer: nearly every write
    // of a large body waits for "drain". One pair of listeners serves the
    // whole body, added at the first wait (not two added and removed per
    // piece; issue #11).
    let wake: (() => void) | null = null;
    let listening = false;
    const onDrain = () => {
      const resolve = wake;
      wake = null;
      resolve?.();
    };
    // A scraper that reads nothing for the idle timeout is gone (as on the
    // native path): its connection is closed, which frees the backend.
    let stallTimer: LazyTimer | null = null;
    const stalled = () => {
      logger.debug("Scraper stopped reading; connection closed", {
        peer: req.socket.remoteAddress,
        path: url.pathname,
        idle_timeout_ms: idleTimeoutMs,
      });
      gone.abort(new Error(`the scraper read nothing for ${idleTimeoutMs} ms`));
      res.destroy();
    };
    try {
      for await (const chunk of response.body) {
        if (res.destroyed) break;
        if (!res.write(chunk, free?.(chunk))) {
          // (Closed already: "close" may have been emitted before.)
          if (res.destroyed) break;
          if (!listening) {
            listening = true;
            res.on("drain", onDrain);
            res.on("close", onDrain);
            stallTimer = new LazyTimer();
          }
          stallTimer!.set(idleTimeoutMs, stalled);
          await new Promise<void>((resolve) => {
            wake = resolve;
          });
          stallTimer!.clear();
        }
      }
      res.end();
    } catch {
      // The engine logged why; the scraper sees a truncated response.
      res.destroy();
    } finally {
      stallTimer?.close();
      if (listening) {
        res.off("drain", onDrain);
        res.off("close", onDrain);
      }
    }
  }

  /**
   * Write callbacks that give each chunk's buffer back to `buffers` (its
   * read buffers), or free it.
   */
  function freeAfterWrite(buffers: ReadBufferPool | undefined): (chunk: Uint8Array) => () => void {
    return (chunk) => () => {
      if (buffers?.give(chunk.buffer)) return;
      try {
        (chunk.buffer as ArrayBuffer).transfer(0);
      } catch { /* already detached or not detachable */ }
    };
  }

  /** node:http's limits; the check interval bounds how late a timeout fires. */
  const httpOptions = {
    maxHeaderSize: options.maxHeaderBytes ?? 16384,
    headersTimeout,
    requestTimeout: options.requestTimeoutMs ?? 30_000,
    keepAliveTimeout: idleTimeoutMs,
    // node:http checks the two timeouts above only this often (30 s by
    // default, which made the 10 s header timeout fire at about 30 s).
    connectionsCheckingInterval: Math.min(1_000, headersTimeout),
  };

  function configure(server: Server, connectionEvent: "connection" | "secureConnection"): void {
    guardServer(server, { logger, maxConnections, connectionEvent });
  }

  /** Front doors of the TLS listeners (plain HTTP gets a readable 400). */
  const fronts: TlsFront[] = [];

  async function listen(
    server: Server,
    address: ListenAddress,
    tls: boolean,
  ): Promise<ListenAddress> {
    servers.push(server);
    if (tls) {
      const front = await listenTlsFront(server as never, {
        ...address,
        firstByteTimeoutMs: headersTimeout,
        logger,
      });
      fronts.push(front);
      return front.address;
    }
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(address.port, address.hostname || undefined, () => {
        server.off("error", reject);
        resolve();
      });
    });
    const info = server.address() as AddressInfo;
    return { hostname: info.address, port: info.port };
  }

  function requestHandler(listener: Listener) {
    return guardHandler((req, res) => handle(req, res, listener), logger);
  }

  async function tlsServer(config: TlsServerConfig, listener: Listener): Promise<Server> {
    const tls = await createTlsListener(config, { logger });
    const server = createHttpsServer(
      { ...tls.serverOptions, ...httpOptions, handshakeTimeout: headersTimeout },
      requestHandler(listener),
    );
    server.on("secureConnection", (socket: TLSSocket) => {
      const refusal = tls.admit(socket);
      if (refusal !== null) {
        logger.debug("Refused a TLS connection", { peer: socket.remoteAddress, reason: refusal });
        socket.destroy();
      }
    });
    tls.watch(server, stop.signal);
    tlsListeners.push([tls, server]);
    return server as unknown as Server;
  }

  /** The front doors' ends (plain HTTP served natively). */
  const doors: Promise<void>[] = [];

  /**
   * Plain HTTP: a native front door owns the port, serves module requests
   * itself and hands every other connection to node:http.
   */
  function listenNative(at: ListenAddress, listener: Listener): ListenAddress {
    const server = createHttpServer(httpOptions, requestHandler(listener));
    // The cap is the front door's budget (over native and node connections);
    // guardServer adds the readable answers to what node:http refuses.
    guardServer(server, { logger, maxConnections: Infinity, connectionEvent: "connection" });
    servers.push(server);
    const budget = createConnectionBudget({
      maxConnections,
      maxPerSource: 0,
      onRefused: (_limit, peer) =>
        logger.warn("Connection refused: every connection has a request in flight", {
          peer,
          max_connections: maxConnections,
        }),
      onEvicted: (peer) =>
        logger.debug("Closed the longest idle connection to admit a new one", {
          peer,
          max_connections: maxConnections,
        }),
    });
    const web = listener.web;
    const ownHeaders: [string, string][] = Object.entries(web?.headers ?? {});
    const route = nativeModuleRoute({
      claim: (head) => nativeModuleQuery(head, proxyPath),
      headers: ownHeaders,
      async serve(request, signal): Promise<NativeModuleAnswer> {
        const refused = await authorize({
          socket: { remoteAddress: request.peer },
          headers: { authorization: request.head.headers.get("authorization")?.[0] },
        }, listener);
        if (refused !== null) {
          logger.debug("Refused a request", {
            path: request.head.target,
            peer: request.peer,
            status: refused.status,
          });
          return {
            response: { status: refused.status, headers: [], error: refused.message, body: null },
            refusalHeaders: Object.entries(refused.headers ?? {}),
          };
        }
        const response = await engine.serve({
          query: request.searchParams,
          headers: forwardableHeaders(rawHeaderPairs(request.head.rawHeaders)),
          peer: request.peer,
        }, signal);
        return { response };
      },
      headersTimeoutMs: headersTimeout,
      maxHeaderBytes: httpOptions.maxHeaderSize,
      idleTimeoutMs: httpOptions.keepAliveTimeout,
      budget,
      signal: stop.signal,
      logger,
    });
    const open = (hostname: string) =>
      listenFrontDoor({
        hostname,
        port: at.port,
        signal: stop.signal,
        server,
        budget,
        logger,
        native: (connection, door) => {
          // Open without a request yet: idle, so the cap may close it first.
          budget.done(connection);
          return route(connection, door);
        },
      });
    let door: FrontDoor;
    try {
      if (at.hostname !== "") door = open(at.hostname);
      else {
        // No host: every address, IPv6 and IPv4, as node:http listens ("::"),
        // or IPv4 only where there is no IPv6.
        try {
          door = open("::");
        } catch (error) {
          if (error instanceof Deno.errors.AddrInUse) throw error;
          door = open("0.0.0.0");
        }
      }
    } catch (error) {
      throw new Error(`Cannot listen on ${at.hostname}:${at.port}: ${errorMessage(error)}`, {
        cause: error,
      });
    }
    doors.push(door.finished);
    // node:http checks its timeouts for the connections it is handed, and
    // keeps them alive, only while it is "listening".
    Object.defineProperty(server, "listening", {
      configurable: true,
      get: () => door.listening,
    });
    server.emit("listening");
    server.on("request", (req: IncomingMessage, res: ServerResponse) => {
      const connection = door.connectionOf(req.socket);
      if (connection === undefined) return;
      budget.busy(connection);
      res.once("close", () => budget.done(connection));
    });
    return door.address;
  }

  let address: ListenAddress | null = null;
  let tlsAddress: ListenAddress | null = null;
  try {
    if (options.address) {
      const web = options.webConfig ?? null;
      const listener: Listener = { kind: web?.tls ? "https" : "http", web, certMatch: null };
      if (!web?.tls && options.nativeModules !== false) {
        address = listenNative(options.address, listener);
      } else {
        const server = web?.tls
          ? await tlsServer(web.tls, listener)
          : createHttpServer(httpOptions, requestHandler(listener));
        configure(server, web?.tls ? "secureConnection" : "connection");
        address = await listen(server, options.address, Boolean(web?.tls));
      }
    }
    if (options.tlsAddress) {
      if (!options.tls) {
        throw new Error("--web.tls.listen-address needs --web.tls.cert and --web.tls.key");
      }
      const listener: Listener = { kind: "https", web: null, certMatch: options.tls.certMatch };
      const server = await tlsServer(tlsServerConfigOf(options.tls), listener);
      configure(server, "secureConnection");
      tlsAddress = await listen(server, options.tlsAddress, true);
    }
  } catch (error) {
    stop.abort();
    await Promise.all(servers.map((s) => closeServer(s)));
    throw error;
  }

  async function closeServer(server: Server): Promise<void> {
    for (const front of fronts) front.close();
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }

  const closed = Promise.withResolvers<void>();
  const finished = closed.promise;
  const closeAll = () => {
    Promise.all([...servers.map((s) => closeServer(s)), ...doors]).then(
      () => closed.resolve(),
      closed.reject,
    );
  };
  if (stop.signal.aborted) closeAll();
  else stop.signal.addEventListener("abort", closeAll, { once: true });

  return {
    address,
    tlsAddress,
    async reloadTls() {
      await Promise.all(tlsListeners.map(([tls, server]) => tls.reload(server as never)));
    },
    finished,
    async close() {
      stop.abort();
      await finished;
    },
  };
}
