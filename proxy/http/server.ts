/**
 * The proxy: coordinator, services and handlers wired to the one route
 * table (proxy/http/router.ts) through the request pipeline
 * (proxy/http/pipeline.ts). The listener is proxy/http/listener.ts.
 *
 * @module
 */

import type { IncomingMessage, ServerResponse } from "node:http";
import type { Exchange } from "../../lib/http_exchange.ts";
import type { Logger } from "../../lib/logger.ts";
import { exposition } from "../../lib/metrics.ts";
import { type Authenticator, createAuthenticator, defaultAuthConfig } from "../auth/auth.ts";
import { createClientService, PEER_ADDRESS } from "../connect/client_service.ts";
import { CallValues, createFastClientHandler } from "../connect/fast_client_service.ts";
import { type Coordinator, createCoordinator } from "../core/coordinator.ts";
import { createLegacyHandler } from "../legacy/handler.ts";
import { createOperationsHandler } from "./operations.ts";
import { createProxyMetrics, type ProxyMetrics } from "../core/metrics.ts";
import { createScrapeHandler } from "./scrape_handler.ts";
import type { NativeHandler } from "./native_edge.ts";
import type { RequestHead } from "../../lib/request_head.ts";
import { targetGroups } from "./service_discovery.ts";
import { createPipeline, type RouteHandler } from "./pipeline.ts";
import { createClientAuthorizer, createRequestAuth, REQUEST } from "./request_context.ts";
import type { ConnectHandler, createConnectHandler } from "../connect/connect_node.ts";
import { errorMessage } from "../../lib/error_message.ts";
import { answerAndClose } from "./node_guard.ts";
import { createRouteTable, nativeRouteOf, type Route, type RouteName } from "./router.ts";

export { DRAIN_MAX_BYTES, DRAIN_MAX_MS } from "./node_guard.ts";
export { type ServeOptions, serveProxy, type ServingProxy } from "./listener.ts";

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
  /** Who may act as client, scraper and reader. @default {everyone: all roles open} */
  auth?: Authenticator;
  /** Most clients listed at once; 0 for no limit. @default {0} */
  maxClients?: number;
  /** Most scrapes in flight per client; 0 for no limit. @default {0} */
  maxScrapesPerClient?: number;
  /** Most scrapes in flight in all; 0 for no limit. @default {0} */
  maxScrapes?: number;
  /** Largest scrape body relayed, in bytes; 0 for no limit. @default {0} */
  maxScrapeBodyBytes?: number;
  /** Most bytes the registry holds (estimated); 0 for no limit. @default {0} */
  maxRegistryBytes?: number;
  /** Largest estimated size of one registration; 0 for no limit. @default {0} */
  maxIdentityBytes?: number;
  /** Most connected clients from one source address; 0 for no limit. @default {0} */
  maxClientsPerSource?: number;
  /** Registrations per second from one source address; 0 for no limit. @default {0} */
  registrationRatePerSource?: number;
  /** Registrations one source address may make at once. @default {registrationRatePerSource} */
  registrationBurstPerSource?: number;
  /**
   * A registration whose stream ends sooner than this and that was never
   * scraped is forgotten at once (it holds no `maxClients` place).
   * @default {heartbeatIntervalMs}
   */
  keepRegistrationsAfterMs?: number;
  /**
   * Serve Poll and Push in the binary Connect protocol on the fast path
   * (proxy/connect/fast_client_service.ts) instead of connect-es. @default {true}
   */
  connectFastPath?: boolean;
  /**
   * Serve plain scrapes on the plain-HTTP port's native front door
   * (proxy/http/native_edge.ts) instead of node:http. @default {true}
   */
  nativeEdge?: boolean;
  /**
   * Test-only: imports the connect-es handler (proxy/connect/connect_node.ts),
   * on the first Connect, gRPC-Web or gRPC request. @default {a dynamic import}
   */
  loadConnect?: () => Promise<typeof createConnectHandler>;
  /**
   * Test-only: how often a held legacy poll's connection is checked (see
   * proxy/legacy/handler.ts; polls are held until a scrape comes). @default {60000}
   */
  legacyPollHoldMs?: number;
  /**
   * Longest a request body may take to arrive, from its headers, unless it
   * is a Push whose head matched a scrape (the scrape's deadline bounds
   * those); slower bodies get 408 and their connection closed. 0 disables.
   * @default {30000}
   */
  bodyIdleTimeoutMs?: number;
}

/** The proxy, not yet listening. */
export interface Proxy {
  readonly coordinator: Coordinator;
  readonly metrics: ProxyMetrics;
  /** Who may act in which role; `update` it to reload. */
  readonly auth: Authenticator;
  /** Serves one request on the proxy's port. */
  handle(req: IncomingMessage, res: ServerResponse): void;
  /**
   * The native front door's route table: the handler of a request it serves
   * itself, or null to hand the connection to node:http (see `handle`).
   */
  nativeRoute(head: RequestHead): NativeHandler | null;
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
    maxClients: options.maxClients ?? 0,
    maxScrapesPerClient: options.maxScrapesPerClient ?? 0,
    maxScrapes: options.maxScrapes ?? 0,
    maxRegistryBytes: options.maxRegistryBytes ?? 0,
    maxIdentityBytes: options.maxIdentityBytes ?? 0,
    maxClientsPerSource: options.maxClientsPerSource ?? 0,
    registrationRatePerSource: options.registrationRatePerSource ?? 0,
    ...(options.registrationBurstPerSource === undefined
      ? {}
      : { registrationBurstPerSource: options.registrationBurstPerSource }),
    keepAfterMs: options.keepRegistrationsAfterMs ?? options.heartbeatIntervalMs ?? 15_000,
  });
  const auth = options.auth ??
    createAuthenticator(defaultAuthConfig(new Map()), { users: new Map() });
  const metrics = createProxyMetrics({
    clientCount: () => coordinator.clientCount,
    scrapesInFlight: () => coordinator.scrapesInFlight,
    defaultMetrics: options.defaultMetrics ?? true,
  });
  const requestAuth = createRequestAuth({ auth, metrics, logger });
  const clients = createClientAuthorizer(requestAuth, { metrics, logger });
  const table = createRouteTable({
    legacy: options.legacyProtocol ?? true,
    fastPath: options.connectFastPath ?? true,
  });

  const handleScrape = createScrapeHandler({
    coordinator,
    logger,
    metrics,
    defaultTimeoutMs: options.defaultScrapeTimeoutMs ?? 15_000,
    maxTimeoutMs: options.maxScrapeTimeoutMs ?? 300_000,
    now,
    maxBodyBytes: options.maxScrapeBodyBytes ?? 0,
  });
  const legacy = (options.legacyProtocol ?? true)
    ? createLegacyHandler({
      coordinator,
      logger,
      metrics,
      now,
      ...(options.legacyPollHoldMs === undefined ? {} : { pollHoldMs: options.legacyPollHoldMs }),
      bodyBound: (req) => pipeline.contextOf(req)?.bodyBound(),
      authorize(req, fqdn) {
        const context = pipeline.contextOf(req);
        if (context === null) return Promise.resolve(false);
        return clients.authorizeLegacy(context, fqdn);
      },
    })
    : null;
  const maxMessageBytes = options.maxMessageBytes ?? 1 << 20;
  // `/`, `/-/healthy`, `/-/ready` (counted by the pipeline).
  const serveOperations = createOperationsHandler({ draining: () => coordinator.draining });
  const clientService = createClientService({
    coordinator,
    logger,
    metrics,
    heartbeatIntervalMs: options.heartbeatIntervalMs ?? 15_000,
    authorizeRegistration: (context, fqdn) =>
      clients.authorizeRegistration(context.values.get(REQUEST), fqdn),
    sourceOf: (context) => context.values.get(REQUEST)?.source ?? "",
    bodyBound: (context) => context.values.get(REQUEST)?.bodyBound(),
    pushCredential: (context) => clients.principal(context.values.get(REQUEST))?.credential ?? null,
    // A revoked, expired or re-scoped credential ends its stream.
    revalidate: (context, fqdn) => clients.revalidate(context.values.get(REQUEST), fqdn),
  });
  const handleFast = (options.connectFastPath ?? true)
    ? createFastClientHandler({ service: clientService, maxMessageBytes, logger })
    : null;
  /**
   * connect-es and the services it serves on node:http, imported the first
   * time a Connect, gRPC-Web or gRPC request comes (see
   * proxy/connect/connect_node.ts): one import for all requests meanwhile,
   * tried again after a failure.
   */
  let connectHandler: Promise<ConnectHandler> | null = null;
  const loadConnect = options.loadConnect ??
    (() => import("../connect/connect_node.ts").then((m) => m.createConnectHandler));
  const handleConnect = (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    connectHandler ??= loadConnect().then((create) =>
      create({
        coordinator,
        clientService,
        maxMessageBytes,
        interceptor: requestAuth.interceptor,
        contextOf: (request) => pipeline.contextOf(request),
      })
    );
    return connectHandler.then((handle) => handle(req, res), (error) => {
      connectHandler = null;
      logger.error("Cannot load the Connect services", { err: errorMessage(error) });
      answerAndClose(req, res, 503, "Service Unavailable: cannot load the Connect services\n");
    });
  };

  /** What a node-only route needs: its request and response. */
  const nodeOnly =
    (serve: (req: IncomingMessage, res: ServerResponse, path: string) => unknown) =>
    (call: Parameters<RouteHandler>[0]) => {
      if (call.node === null) {
        throw new Error(`route ${call.route.name} is served by node:http only`);
      }
      return serve(call.node.req, call.node.res, call.path) as Promise<void> | void;
    };
  const handlers: Record<RouteName, RouteHandler> = {
    scrape: (call) => handleScrape(call.exchange()),
    client_fast: (call) => {
      const context = call.context;
      return handleFast!(
        call.exchange(),
        new CallValues().set(REQUEST, context).set(PEER_ADDRESS, context.peerAddress),
        requestAuth.connectError("client", context.result),
      );
    },
    client_connect: nodeOnly((req, res) => handleConnect(req, res)),
    reader_connect: nodeOnly((req, res) => handleConnect(req, res)),
    legacy: nodeOnly((req, res, path) =>
      path === "/poll" ? legacy!.poll(req, res) : legacy!.push(req, res)
    ),
    // The routes below answer the same on both edges, from one handler each.
    legacy_off: (call) => notFound(call.exchange(), call.path),
    clients: (call) => {
      const exchange = call.exchange();
      if (!allowRead(exchange, call.path)) return;
      const host = exchange.header("host");
      const body = JSON.stringify(
        targetGroups(coordinator.listClients(), host ? { proxy: host.slice(0, 255) } : {}),
      ) + "\n";
      exchange.respond(200, [["content-type", "application/json"]]);
      exchange.end(exchange.method === "HEAD" ? undefined : body);
    },
    metrics: async (call) => {
      const exchange = call.exchange();
      if (!allowRead(exchange, call.path)) return;
      let body: string;
      try {
        body = await exposition(metrics.registry);
      } catch (error) {
        logger.error("Cannot collect metrics", { err: error });
        exchange.respond(500, [["content-type", "text/plain; charset=utf-8"]]);
        exchange.end(exchange.method === "HEAD" ? undefined : "Cannot collect metrics\n");
        return;
      }
      exchange.respond(200, [["content-type", metrics.registry.contentType]]);
      exchange.end(exchange.method === "HEAD" ? undefined : body);
    },
    status_page: (call) => void serveOperations(call.exchange(), call.path),
    health: (call) => void serveOperations(call.exchange(), call.path),
    not_found: (call) => notFound(call.exchange(), call.path),
  };
  const pipeline = createPipeline({
    table,
    handlers,
    requestAuth,
    metrics,
    logger,
    bodyIdleTimeoutMs: options.bodyIdleTimeoutMs ?? 30_000,
  });
  const nativeEdgeOn = options.nativeEdge ?? true;
  // One handler per native route: the route matched by the edge is served
  // without matching it again.
  const nativeHandlers = new Map<Route, NativeHandler>();
  for (const route of table) {
    if (route.native) {
      nativeHandlers.set(route, (exchange) => pipeline.serveNative(exchange, route));
    }
  }

  return {
    coordinator,
    metrics,
    auth,
    close() {
      legacy?.close();
    },
    nativeRoute(head) {
      if (!nativeEdgeOn) return null;
      const route = nativeRouteOf(table, head);
      return route === null ? null : nativeHandlers.get(route) ?? null;
    },
    handle: pipeline.handle,
  };
}

/** GET and HEAD only: else answers 405 and returns false. */
function allowRead(exchange: Exchange, path: string): boolean {
  const method = exchange.method;
  if (method === "GET" || method === "HEAD") return true;
  exchange.respond(405, [
    ["allow", "GET, HEAD"],
    ["content-type", "text/plain; charset=utf-8"],
  ]);
  exchange.end(`Method ${method} is not allowed on ${path}\n`);
  return false;
}

/** The answer to a path the proxy does not serve. */
function notFound(exchange: Exchange, path: string): void {
  exchange.respond(404, [["content-type", "text/plain; charset=utf-8"]]);
  exchange.end(
    exchange.method === "HEAD"
      ? undefined
      : `No such endpoint: ${path}. Scrape targets through this proxy with proxy_url; see /clients and /metrics\n`,
  );
}
