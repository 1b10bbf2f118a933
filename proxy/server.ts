/**
 * The proxy's one port: Prometheus' absolute-form scrapes, the Connect
 * services, `/clients` and `/metrics`. Requests are told apart the way
 * upstream PushProx does it: an absolute-form request target is a scrape.
 *
 * @module
 */

import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { ClientService, RegistryService } from "../gen/pushprox/v1/pushprox_pb.ts";
import type { Logger } from "../lib/logger.ts";
import { createClientService } from "./client_service.ts";
import { type Coordinator, createCoordinator } from "./coordinator.ts";
import { createLegacyHandler } from "./legacy.ts";
import { createOperationsHandler } from "./operations.ts";
import { createProxyMetrics, type ProxyMetrics } from "./metrics.ts";
import { createRegistryService } from "./registry_service.ts";
import { createScrapeHandler } from "./scrape_handler.ts";
import { targetGroups } from "./service_discovery.ts";

/** Options for {@linkcode createProxy}. */
export interface ProxyOptions {
  logger: Logger;
  /** Timeout of scrapes without a timeout header. @default {15000} */
  defaultScrapeTimeoutMs?: number;
  /** Longer scrape timeouts are clamped to this. @default {300000} */
  maxScrapeTimeoutMs?: number;
  /** How long a client stays listed after its stream ends. @default {300000} */
  registrationTimeoutMs?: number;
  /** Heartbeat interval on idle Poll streams. @default {15000} */
  heartbeatIntervalMs?: number;
  /** Largest Connect message accepted, in bytes. @default {1048576} */
  maxMessageBytes?: number;
  /** Export process_* metrics. @default {true} */
  defaultMetrics?: boolean;
  /** Serve upstream PushProx clients on `/poll` and `/push`. @default {true} */
  legacyProtocol?: boolean;
  /** @default {Date.now} */
  now?: () => number;
}

/** The proxy, not yet listening. */
export interface Proxy {
  readonly coordinator: Coordinator;
  readonly metrics: ProxyMetrics;
  /** Serves one request on the proxy's port. */
  handle(req: IncomingMessage, res: ServerResponse): void;
  /** Ends state that outlives requests (legacy sessions and their timers). */
  close(): void;
}

/**
 * Wires coordinator, services and handlers together.
 *
 * @param options Logger, timeouts and limits.
 * @returns The proxy.
 */
export function createProxy(options: ProxyOptions): Proxy {
  const logger = options.logger;
  const now = options.now ?? Date.now;
  const coordinator = createCoordinator({
    registrationTimeoutMs: options.registrationTimeoutMs ?? 300_000,
    now,
  });
  const metrics = createProxyMetrics({
    clientCount: () => coordinator.clientCount,
    scrapesInFlight: () => coordinator.scrapesInFlight,
    defaultMetrics: options.defaultMetrics ?? true,
  });
  const handleScrape = createScrapeHandler({
    coordinator,
    logger,
    metrics,
    defaultTimeoutMs: options.defaultScrapeTimeoutMs ?? 15_000,
    maxTimeoutMs: options.maxScrapeTimeoutMs ?? 300_000,
    now,
  });
  const legacy = (options.legacyProtocol ?? true)
    ? createLegacyHandler({ coordinator, logger, metrics, now })
    : null;
  const maxMessageBytes = options.maxMessageBytes ?? 1 << 20;
  // `/`, `/-/healthy`, `/-/ready`.
  const serveOperations = createOperationsHandler({
    draining: () => coordinator.draining,
    observe: (path, code) => metrics.httpRequests.inc({ code: String(code), path }),
  });
  const handleConnect = connectNodeAdapter({
    routes(router) {
      router.service(
        ClientService,
        createClientService({
          coordinator,
          logger,
          metrics,
          heartbeatIntervalMs: options.heartbeatIntervalMs ?? 15_000,
        }),
      );
      router.service(RegistryService, createRegistryService(coordinator));
    },
    readMaxBytes: maxMessageBytes,
  });

  function api(
    path: string,
    res: ServerResponse,
    status: number,
    contentType: string,
    body: string,
    started: number,
  ): void {
    res.writeHead(status, { "content-type": contentType });
    res.end(body);
    metrics.httpRequests.inc({ code: String(status), path });
    metrics.httpDuration.observe(
      { path },
      (performance.now() - started) / 1000,
    );
  }

  return {
    coordinator,
    metrics,
    close() {
      legacy?.close();
    },
    handle(req, res) {
      const target = req.url ?? "";
      if (!target.startsWith("/")) {
        handleScrape(req, res).catch((error) => {
          logger.error("Scrape handler failed", { err: error });
          res.destroy();
        });
        return;
      }
      const started = performance.now();
      const path = target.split("?", 1)[0]!;
      if (path.startsWith("/pushprox.v1.")) {
        handleConnect(req, res);
        return;
      }
      if (legacy !== null && (path === "/poll" || path === "/push")) {
        (path === "/poll" ? legacy.poll(req, res) : legacy.push(req, res)).catch((error) => {
          logger.error("Legacy handler failed", { path, err: error });
          res.destroy();
        });
        return;
      }
      if (path === "/clients" || path === "/metrics") {
        if (req.method !== "GET" && req.method !== "HEAD") {
          res.setHeader("allow", "GET, HEAD");
          return api(
            path,
            res,
            405,
            "text/plain; charset=utf-8",
            `Method ${req.method} is not allowed on ${path}\n`,
            started,
          );
        }
        if (path === "/clients") {
          const body = JSON.stringify(targetGroups(coordinator.listClients())) +
            "\n";
          return api(path, res, 200, "application/json", body, started);
        }
        metrics.registry.metrics().then(
          (body) => api(path, res, 200, metrics.registry.contentType, body, started),
          (error) => {
            logger.error("Cannot collect metrics", { err: error });
            api(
              path,
              res,
              500,
              "text/plain; charset=utf-8",
              "Cannot collect metrics\n",
              started,
            );
          },
        );
        return;
      }
      if (serveOperations(req, res, path)) return;
      res.writeHead(404, { "content-type": "text/plain; charset=utf-8" });
      res.end(
        `No such endpoint: ${path}. Scrape targets through this proxy with proxy_url; see /clients and /metrics\n`,
      );
    },
  };
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
  proxy: Proxy,
  options: ServeOptions,
): Promise<ServingProxy> {
  const server = createServer({
    maxHeaderSize: options.maxHeaderBytes ?? 16384,
    requestTimeout: options.requestTimeoutMs ?? 330_000,
    headersTimeout: options.headersTimeoutMs ?? 10_000,
    keepAliveTimeout: 65_000,
  }, proxy.handle);
  // node:http hands CONNECT (what Prometheus sends for scheme: https through
  // a proxy) to this event instead of the request handler.
  server.on("connect", (_req, socket) => {
    const body =
      "CONNECT is not supported: scrape with scheme http through the proxy and add params _scheme=[https] for https targets\n";
    socket.end(
      `HTTP/1.1 501 Not Implemented\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${
        new TextEncoder().encode(body).length
      }\r\nConnection: close\r\n\r\n${body}`,
    );
    proxy.metrics.proxiedRequests.inc({ code: "501" });
  });
  const expire = setInterval(
    () => proxy.coordinator.expire(),
    options.expireIntervalMs ?? 60_000,
  );
  const finished = new Promise<void>((resolve) => server.once("close", resolve))
    .finally(() => {
      clearInterval(expire);
    });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.hostname || undefined, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const close = () => {
    proxy.close();
    server.close();
    server.closeAllConnections();
  };
  if (options.signal?.aborted) close();
  options.signal?.addEventListener("abort", close, { once: true });
  const info = server.address() as AddressInfo;
  return {
    address: { hostname: info.address, port: info.port },
    server,
    finished,
  };
}
