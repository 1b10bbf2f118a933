/**
 * The proxy's one port: Prometheus' absolute-form scrapes, the Connect
 * services, `/clients` and `/metrics`. Requests are told apart the way
 * upstream PushProx does it: an absolute-form request target is a scrape.
 *
 * @module
 */

import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo, Socket } from "node:net";
import type { TLSSocket } from "node:tls";
import {
  Code,
  ConnectError,
  createContextKey,
  createContextValues,
  type HandlerContext,
  type Interceptor,
} from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { ClientService, RegistryService } from "../../gen/pushprox/v1/pushprox_pb.ts";
import { peerAddress } from "../../lib/address.ts";
import { authorityProblem } from "../../lib/authority.ts";
import { formatDuration } from "../../lib/duration.ts";
import {
  type BudgetConnection,
  type ConnectionBudget,
  keepAccepting,
} from "../../lib/connection_budget.ts";
import type { Logger } from "../../lib/logger.ts";
import { peerIdentity, type TlsListener } from "../../lib/tls_server.ts";
import {
  type Authenticator,
  type AuthResult,
  createAuthenticator,
  defaultAuthConfig,
  publicReason,
  registrationProblem,
  type Role,
} from "../auth/auth.ts";
import { createClientService, PEER_ADDRESS } from "../connect/client_service.ts";
import {
  CONTENT_TYPE as FAST_CONTENT_TYPE,
  createFastClientHandler,
  isFastClientCall,
  POLL_PATH,
  PUSH_PATH,
} from "../connect/fast_client_service.ts";
import { type Coordinator, createCoordinator } from "../core/coordinator.ts";
import { createLegacyHandler } from "../legacy/handler.ts";
import { createOperationsHandler } from "./operations.ts";
import { createProxyMetrics, type ProxyMetrics } from "../core/metrics.ts";
import { sourceKey } from "../core/rate_limit.ts";
import { createRegistryService } from "../connect/registry_service.ts";
import { createScrapeHandler } from "./scrape_handler.ts";
import { type Exchange, nodeExchange } from "../../lib/http_exchange.ts";
import { type FrontDoor, listenFrontDoor } from "./front_door.ts";
import { nativeEdge, type NativeHandler } from "./native_edge.ts";
import type { NativeExchange } from "./native_exchange.ts";
import type { RequestHead } from "./request_head.ts";
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

/** Most request body bytes read and dropped after the answer, before the connection is closed. */
export const DRAIN_MAX_BYTES = 64 * 1024;
/** Longest wait for the rest of a request body after the answer, before the connection is closed. */
export const DRAIN_MAX_MS = 5_000;

/** The authentication outcome of a Connect request, set by the proxy's router. */
export const AUTH_RESULT: ReturnType<typeof createContextKey<AuthResult | null>> = createContextKey<
  AuthResult | null
>(null, { description: "pushprox auth result" });

/** The source key of a Connect request's peer (see sourceKey), set by the proxy's router. */
const SOURCE: ReturnType<typeof createContextKey<string>> = createContextKey<string>("", {
  description: "pushprox source",
});

/** Authenticates a Connect request again, with the credentials it came with. */
const AUTH_RECHECK: ReturnType<typeof createContextKey<(() => Promise<AuthResult>) | null>> =
  createContextKey<(() => Promise<AuthResult>) | null>(null, { description: "pushprox re-auth" });

/**
 * Called by a Push once its head matched a scrape: from then on the
 * scrape's deadline bounds its body instead of the body idle timeout.
 */
export const BODY_BOUND: ReturnType<typeof createContextKey<(() => void) | null>> =
  createContextKey<(() => void) | null>(null, { description: "pushprox body bound" });

/**
 * The Connect code for a failed authentication. Readers get Unauthenticated
 * for every refused credential (one answer: no user enumeration).
 */
function authCode(role: Role, result: AuthResult & { ok: false }): Code {
  return result.kind === "busy"
    ? Code.Unavailable
    : result.kind === "throttled"
    ? Code.ResourceExhausted
    : result.kind === "forbidden" && role === "client"
    ? Code.PermissionDenied
    : Code.Unauthenticated;
}

/** The error a Connect call fails with for its authentication result, or null. */
function authError(
  auth: Authenticator,
  role: Role,
  result: AuthResult | null,
): ConnectError | null {
  if (result === null) {
    return new ConnectError("Cannot authenticate the request", Code.Unauthenticated);
  }
  return result.ok
    ? null
    : new ConnectError(publicReason(role, auth.config[role], result), authCode(role, result));
}

/**
 * Makes a request message that cannot be decoded fail with InvalidArgument
 * (HTTP 400, grpc-status 3) naming the message type, as JSON already does,
 * instead of connect-es' Internal "parse binary: …" (HTTP 500, grpc-status
 * 13), which told clients the proxy was at fault.
 *
 * connect-es (2.2) parses a unary request before any interceptor runs, so
 * no interceptor sees the error. Every protocol handler aborts the call's
 * context with the error before it serializes it, and this request gate (run
 * for every call, before its body is read) is handed that context: the
 * abort listener rewrites the error in place. An upgrade that changes this
 * order fails tests/adversarial/bad_message_test.ts, which covers each protocol.
 */
function reportParseErrorsAsInvalid(context: HandlerContext): void {
  context.signal.addEventListener("abort", () => {
    const error: unknown = context.signal.reason;
    if (
      !(error instanceof ConnectError) || error.code !== Code.Internal ||
      !error.rawMessage.startsWith("parse binary: ")
    ) {
      return;
    }
    const rawMessage = `cannot decode message ${context.method.input.typeName} from binary: ${
      error.rawMessage.slice("parse binary: ".length)
    }`;
    const mutable = error as {
      -readonly [K in "code" | "rawMessage" | "message"]: ConnectError[K];
    };
    mutable.code = Code.InvalidArgument;
    mutable.rawMessage = rawMessage;
    mutable.message = `[invalid_argument] ${rawMessage}`;
  }, { once: true });
}

/** The role a request acts in, from its target; null for endpoints open to all. */
function roleOf(target: string, path: string): Role | null {
  if (!target.startsWith("/")) return "scraper";
  if (path.startsWith("/pushprox.v1.ClientService/") || path === "/poll" || path === "/push") {
    return "client";
  }
  // The status page on "/" shows what ListClients does: same role, so that a
  // browser asks for the reader's credentials once and its fetches reuse them.
  if (
    path.startsWith("/pushprox.v1.") || path === "/clients" || path === "/metrics" || path === "/"
  ) {
    return "reader";
  }
  return null;
}

/**
 * Whether the native front door serves a request itself, and as what: a
 * plain scrape (GET or HEAD of an absolute http URL, without a body or
 * anything else that node:http would have to decide), or a fast-path Poll or
 * Push (what isFastClientCall serves, with one Host and a plain body framing).
 * The rest is node's.
 */
function nativeRole(head: RequestHead, fastPath: boolean): Role | null {
  const h = head.headers;
  if (h.has("expect") || h.has("upgrade")) return null;
  const te = h.get("transfer-encoding");
  const length = h.get("content-length");
  if (head.method === "GET" || head.method === "HEAD") {
    if (!/^http:\/\//i.test(head.target) || te !== undefined) return null;
    if (length !== undefined && length.some((value) => value !== "0")) return null;
    return roleOf(head.target, head.target) === "scraper" ? "scraper" : null;
  }
  if (!fastPath || head.method !== "POST") return null;
  if (head.target !== PUSH_PATH && head.target !== POLL_PATH) return null;
  const one = (name: string) => {
    const values = h.get(name);
    return values?.length === 1 ? values[0]! : values === undefined ? undefined : null;
  };
  if (one("host") == null || one("content-type") !== FAST_CONTENT_TYPE) return null;
  const encoding = one("connect-content-encoding");
  if (encoding !== undefined && encoding !== "identity") return null;
  if (te !== undefined) {
    return length === undefined && te.length === 1 && te[0]!.toLowerCase() === "chunked"
      ? "client"
      : null;
  }
  return length?.length === 1 && /^[0-9]{1,15}$/.test(length[0]!) ? "client" : null;
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
  /** Authentication results of Connect requests, read by the router's context. */
  const authResults = new WeakMap<object, AuthResult>();
  const authRechecks = new WeakMap<object, () => Promise<AuthResult>>();
  /** Requests whose body the scrape's deadline bounds (see BODY_BOUND). */
  const bodyBound = new WeakSet<object>();
  const bodyIdleTimeoutMs = options.bodyIdleTimeoutMs ?? 30_000;
  const nativeEdgeOn = options.nativeEdge ?? true;
  /** Authenticates a request of either edge (a node request or an exchange). */
  function authenticate(role: Role, req: IncomingMessage | Exchange): Promise<AuthResult> {
    const exchange = "respond" in req ? req : null;
    const header = (name: string) => {
      if (exchange !== null) return exchange.header(name);
      const value = (req as IncomingMessage).headers[name];
      return Array.isArray(value) ? value[0] : value;
    };
    return auth.authenticate(role, {
      authorization: header("authorization"),
      proxyAuthorization: header("proxy-authorization"),
      peer: exchange !== null ? exchange.peer : peerIdentity((req as IncomingMessage).socket),
      source: sourceKey(
        exchange !== null ? exchange.remoteAddress : (req as IncomingMessage).socket?.remoteAddress,
      ),
    });
  }
  function refused(
    role: Role,
    req: IncomingMessage | Exchange,
    result: AuthResult & { ok: false },
  ): void {
    if (result.kind === "throttled") metrics.limitHits.inc({ limit: "auth_failures_per_source" });
    else metrics.authFailures.inc({ role, reason: result.kind });
    logger.warn("Request refused", {
      role,
      remote: "respond" in req ? req.remoteAddress : req.socket.remoteAddress,
      target: ("respond" in req ? req.target : req.url)?.slice(0, 200),
      reason: result.kind,
      err: result.reason,
    });
  }
  /** Fails Connect calls whose authentication failed (see AUTH_RESULT). */
  const authInterceptor: Interceptor = (next) => (request) => {
    const role = request.service.typeName === ClientService.typeName ? "client" : "reader";
    const error = authError(auth, role, request.contextValues.get(AUTH_RESULT));
    if (error !== null) throw error;
    return next(request);
  };
  /** The authenticated principal of a Connect call, or null. */
  function principalOf(context: Pick<HandlerContext, "values">) {
    const result = context.values.get(AUTH_RESULT);
    return result?.ok ? result.principal : null;
  }
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
    maxBodyBytes: options.maxScrapeBodyBytes ?? 0,
  });
  const legacy = (options.legacyProtocol ?? true)
    ? createLegacyHandler({
      coordinator,
      logger,
      metrics,
      now,
      ...(options.legacyPollHoldMs === undefined ? {} : { pollHoldMs: options.legacyPollHoldMs }),
      bodyBound: (req) => bodyBound.add(req),
      async authorize(req, fqdn) {
        const result = await authenticate("client", req);
        if (!result.ok) {
          refused("client", req, result);
          if (result.kind === "throttled" || result.kind === "busy") {
            return {
              status: result.kind === "busy" ? 503 : 429,
              message: result.reason,
              ...(result.retryAfterMs === undefined ? {} : { retryAfterMs: result.retryAfterMs }),
            };
          }
          return false;
        }
        const problem = registrationProblem(result.principal, fqdn);
        if (problem !== null) {
          refused("client", req, { ok: false, kind: "forbidden", reason: problem });
          return false;
        }
        return { credential: result.principal.credential };
      },
    })
    : null;
  const maxMessageBytes = options.maxMessageBytes ?? 1 << 20;
  // `/`, `/-/healthy`, `/-/ready`.
  const serveOperations = createOperationsHandler({
    draining: () => coordinator.draining,
    observe: (path, code) => metrics.httpRequests.inc({ code: String(code), path }),
  });
  const clientService = createClientService({
    coordinator,
    logger,
    metrics,
    heartbeatIntervalMs: options.heartbeatIntervalMs ?? 15_000,
    authorizeRegistration(context, fqdn) {
      const principal = principalOf(context);
      if (principal === null) {
        throw new ConnectError("Cannot register: not authenticated", Code.Unauthenticated);
      }
      const problem = registrationProblem(principal, fqdn);
      if (problem !== null) {
        metrics.authFailures.inc({ role: "client", reason: "forbidden" });
        logger.warn("Registration refused", {
          fqdn,
          credential: principal.name,
          err: problem,
        });
        throw new ConnectError(`Cannot register: ${problem}`, Code.PermissionDenied);
      }
      return { credential: principal.credential, name: principal.name };
    },
    sourceOf(context) {
      return context.values.get(SOURCE);
    },
    bodyBound(context) {
      context.values.get(BODY_BOUND)?.();
    },
    pushCredential(context) {
      return principalOf(context)?.credential ?? null;
    },
    async revalidate(context, fqdn) {
      // A revoked, expired or re-scoped credential ends its stream.
      const recheck = context.values.get(AUTH_RECHECK);
      const before = principalOf(context);
      if (recheck === null || before === null) return null;
      const result = await recheck();
      if (!result.ok) return result.reason;
      if (result.principal.credential !== before.credential) return "the credential changed";
      return registrationProblem(result.principal, fqdn);
    },
  });
  const handleFast = (options.connectFastPath ?? true)
    ? createFastClientHandler({ service: clientService, maxMessageBytes, logger })
    : null;
  const handleConnect = connectNodeAdapter({
    routes(router) {
      router.service(ClientService, clientService);
      router.service(RegistryService, createRegistryService(coordinator));
    },
    readMaxBytes: maxMessageBytes,
    interceptors: [authInterceptor],
    requestGate: reportParseErrorsAsInvalid,
    contextValues(req) {
      return createContextValues()
        .set(AUTH_RESULT, authResults.get(req) ?? null)
        .set(AUTH_RECHECK, authRechecks.get(req) ?? null)
        .set(SOURCE, sourceKey(req.socket?.remoteAddress))
        .set(PEER_ADDRESS, peerAddress(req.socket))
        .set(BODY_BOUND, () => bodyBound.add(req));
    },
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
    auth,
    close() {
      legacy?.close();
    },
    nativeRoute(head) {
      if (!nativeEdgeOn) return null;
      return nativeRole(head, handleFast !== null) === null ? null : serveNative;
    },
    handle(req, res) {
      // The edge: every request of every listener passes here once. Nothing
      // a request does may end the process: errors become a 500 (or a
      // closed connection) for that request, counted and logged.
      try {
        guardBody(req, res);
        const target = req.url ?? "";
        const problem = requestAuthorityProblem(req, target);
        if (problem !== null) {
          metrics.badRequests.inc({ reason: "authority" });
          logger.debug("Bad request refused", {
            remote: req.socket?.remoteAddress,
            target: target.slice(0, 200),
            err: problem,
          });
          answerAndClose(req, res, 400, `Bad Request: ${problem}\n`);
          return;
        }
        dispatch(req, res, target).catch((error) => failed(req, res, error));
      } catch (error) {
        failed(req, res, error);
      }
    },
  };

  /** Authenticates (unless open) and routes one request. */
  async function dispatch(req: IncomingMessage, res: ServerResponse, target: string) {
    const path = target.split("?", 1)[0]!;
    const role = roleOf(target, path);
    if (role === "scraper") return await scrape(nodeExchange(req, res));
    if (role === null || (legacy !== null && (path === "/poll" || path === "/push"))) {
      // Open endpoints; the legacy handler authorizes per fqdn itself.
      return await route(req, res, path);
    }
    if (handleFast !== null && isFastClientCall(req, path)) {
      return await fastCall(handleFast, nodeExchange(req, res), () => bodyBound.add(req));
    }
    const result = await authenticate(role, req);
    if (path.startsWith("/pushprox.v1.")) {
      // Connect answers failures in its own protocol (see authInterceptor).
      authResults.set(req, result);
      authRechecks.set(req, () => authenticate(role, req));
      if (!result.ok) refused(role, req, result);
      return await route(req, res, path);
    }
    if (!result.ok) {
      refused(role, req, result);
      const answer = refusal(role, path, result);
      res.writeHead(answer.status, Object.fromEntries(answer.headers));
      res.end(answer.text);
      metrics.httpRequests.inc({ code: String(answer.status), path });
      return;
    }
    return await route(req, res, path);
  }

  /**
   * One answer for every refused scraper (407) or reader (401) credential,
   * whatever was wrong with it: no user enumeration.
   */
  function refusal(
    role: Role,
    path: string,
    result: AuthResult & { ok: false },
  ): { status: number; headers: [string, string][]; text: string } {
    const status = result.kind === "busy"
      ? 503
      : result.kind === "throttled"
      ? 429
      : role === "scraper"
      ? 407
      : 401;
    const headers: [string, string][] = [["content-type", "text/plain; charset=utf-8"]];
    if (status === 407) headers.push(["proxy-authenticate", 'Basic realm="pushprox"']);
    if (status === 401) headers.push(["www-authenticate", 'Basic realm="pushprox"']);
    if (status === 429) {
      headers.push([
        "retry-after",
        String(Math.max(1, Math.ceil((result.retryAfterMs ?? 0) / 1000))),
      ]);
    }
    const text = `Cannot serve ${role === "scraper" ? "scrape" : path}: ${
      publicReason(role, auth.config[role], result)
    }\n`;
    return { status, headers, text };
  }

  /** A fast-path Poll or Push, on either edge: authenticated once, then served. */
  async function fastCall(
    handler: NonNullable<typeof handleFast>,
    exchange: Exchange,
    bound: () => void,
  ): Promise<void> {
    const result = await authenticate("client", exchange);
    if (!result.ok) refused("client", exchange, result);
    return await handler(
      exchange,
      createContextValues()
        .set(SOURCE, sourceKey(exchange.remoteAddress))
        .set(AUTH_RESULT, result)
        .set(AUTH_RECHECK, () => authenticate("client", exchange))
        .set(PEER_ADDRESS, peerAddress(exchange))
        .set(BODY_BOUND, bound),
      authError(auth, "client", result),
    );
  }

  /** A scrape (absolute-form request), on either edge: authenticated once, then relayed. */
  async function scrape(exchange: Exchange): Promise<void> {
    const result = await authenticate("scraper", exchange);
    if (!result.ok) {
      refused("scraper", exchange, result);
      const answer = refusal("scraper", "", result);
      exchange.respond(answer.status, answer.headers);
      exchange.end(answer.text);
      metrics.proxiedRequests.inc({ code: String(answer.status) });
      return;
    }
    await handleScrape(exchange);
  }

  /**
   * A request the native front door read (see nativeRole): checked as
   * `handle` checks every node:http request (authority, body idle timeout),
   * then served as `dispatch` serves it.
   */
  async function serveNative(exchange: NativeExchange): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    let bound = false;
    if (bodyIdleTimeoutMs > 0 && !exchange.bodyEnded) {
      timer = setTimeout(() => {
        if (bound || exchange.bodyEnded || exchange.destroyed) return;
        metrics.limitHits.inc({ limit: "body_idle_timeout" });
        logger.warn("Request body too slow: closing the connection", {
          remote: exchange.remoteAddress,
          target: exchange.target.slice(0, 200),
          timeout: formatDuration(bodyIdleTimeoutMs),
        });
        if (exchange.headersSent) return exchange.abort();
        exchange.respond(408, [
          ["content-type", "text/plain; charset=utf-8"],
          ["connection", "close"],
        ]);
        exchange.end(
          `Request Timeout: the request body did not arrive within --web.body-idle-timeout=${
            formatDuration(bodyIdleTimeoutMs)
          }\n`,
        );
        // Closed once the answer is out; the handler's body read then ends.
        void exchange.finished().then(() => exchange.abort());
      }, bodyIdleTimeoutMs);
    }
    try {
      const problem = exchange.target.startsWith("/")
        ? authorityProblem(exchange.header("host"))
        : requestAuthorityProblem(null, exchange.target);
      if (problem !== null) {
        metrics.badRequests.inc({ reason: "authority" });
        logger.debug("Bad request refused", {
          remote: exchange.remoteAddress,
          target: exchange.target.slice(0, 200),
          err: problem,
        });
        exchange.respond(400, [
          ["content-type", "text/plain; charset=utf-8"],
          ["connection", "close"],
        ]);
        exchange.end(`Bad Request: ${problem}\n`);
        return;
      }
      if (exchange.target.startsWith("/")) {
        return await fastCall(handleFast!, exchange, () => bound = true);
      }
      await scrape(exchange);
    } catch (error) {
      metrics.handlerErrors.inc();
      logger.error("Request handler failed", {
        remote: exchange.remoteAddress,
        target: exchange.target.slice(0, 200),
        err: error,
      });
      if (exchange.headersSent || exchange.destroyed) return exchange.abort();
      exchange.respond(500, [
        ["content-type", "text/plain; charset=utf-8"],
        ["connection", "close"],
      ]);
      exchange.end("Internal error: the request failed; see the proxy's log\n");
    } finally {
      clearTimeout(timer);
    }
  }

  /** The last word on a request whose handler failed: 500 if still possible, else a cut. */
  function failed(req: IncomingMessage, res: ServerResponse, error: unknown): void {
    metrics.handlerErrors.inc();
    logger.error("Request handler failed", {
      remote: req.socket?.remoteAddress,
      target: req.url?.slice(0, 200),
      err: error,
    });
    try {
      answerAndClose(req, res, 500, "Internal error: the request failed; see the proxy's log\n");
    } catch {
      cut(req);
    }
  }

  /**
   * Bounds the lifetime of a request body: one that is still arriving after
   * the body idle timeout (a Push bound to a scrape excepted) gets 408 and
   * its connection closed; one still arriving when the answer has been sent
   * is read and dropped up to {@linkcode DRAIN_MAX_BYTES} and
   * {@linkcode DRAIN_MAX_MS}, then its connection is closed.
   */
  function guardBody(req: IncomingMessage, res: ServerResponse): void {
    // Errors of a request or response end that request, never the process.
    req.on("error", (error) => logger.debug("Request stream error", { err: error.message }));
    res.on("error", (error) => logger.debug("Response stream error", { err: error.message }));
    // HTTP/1 requests without Content-Length or Transfer-Encoding (scrapes) have no body.
    const length = req.headers["content-length"];
    if (
      req.httpVersionMajor !== 2 && req.headers["transfer-encoding"] === undefined &&
      (length === undefined || length === "0")
    ) {
      return;
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    /** Set when the body idle timeout answers and closes the request itself. */
    let timedOut = false;
    if (bodyIdleTimeoutMs > 0) {
      timer = setTimeout(() => {
        if (req.complete || res.writableFinished || res.destroyed || bodyBound.has(req)) return;
        metrics.limitHits.inc({ limit: "body_idle_timeout" });
        logger.warn("Request body too slow: closing the connection", {
          remote: req.socket?.remoteAddress,
          target: req.url?.slice(0, 200),
          timeout: formatDuration(bodyIdleTimeoutMs),
        });
        timedOut = true;
        if (res.headersSent) return cut(req);
        answerAndClose(
          req,
          res,
          408,
          `Request Timeout: the request body did not arrive within --web.body-idle-timeout=${
            formatDuration(bodyIdleTimeoutMs)
          }\n`,
          true,
        );
      }, bodyIdleTimeoutMs);
    }
    res.once("close", () => clearTimeout(timer));
    res.once("finish", () => {
      clearTimeout(timer);
      if (timedOut || req.complete || req.destroyed) return;
      // Answered before the body ended: drain a little, then close.
      let bytes = 0;
      const stop = () => {
        clearTimeout(deadline);
        req.off("data", count);
      };
      const over = () => {
        stop();
        metrics.limitHits.inc({ limit: "body_drain" });
        logger.debug("Unread request body after the answer: closing the connection", {
          remote: req.socket?.remoteAddress,
          target: req.url?.slice(0, 200),
        });
        cut(req);
      };
      const count = (chunk: Uint8Array) => {
        bytes += chunk.byteLength;
        if (bytes > DRAIN_MAX_BYTES) over();
      };
      const deadline = setTimeout(over, DRAIN_MAX_MS);
      req.on("data", count);
      req.once("end", stop);
      req.once("close", stop);
      // A connection closed under the request (server shutdown) ends the drain too.
      req.socket?.once("close", stop);
      req.resume();
    });
  }

  async function route(
    req: IncomingMessage,
    res: ServerResponse,
    path: string,
  ): Promise<void> {
    const started = performance.now();
    if (path.startsWith("/pushprox.v1.")) return handleConnect(req, res);
    if (legacy !== null && (path === "/poll" || path === "/push")) {
      return await (path === "/poll" ? legacy.poll(req, res) : legacy.push(req, res));
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
        const host = req.headers.host;
        const body = JSON.stringify(
          targetGroups(coordinator.listClients(), host ? { proxy: host.slice(0, 255) } : {}),
        ) + "\n";
        return api(path, res, 200, "application/json", body, started);
      }
      let body: string;
      try {
        body = await metrics.registry.metrics();
      } catch (error) {
        logger.error("Cannot collect metrics", { err: error });
        return api(
          path,
          res,
          500,
          "text/plain; charset=utf-8",
          "Cannot collect metrics\n",
          started,
        );
      }
      return api(path, res, 200, metrics.registry.contentType, body, started);
    }
    if (serveOperations(req, res, path)) return;
    res.writeHead(404, { "content-type": "text/plain; charset=utf-8" });
    res.end(
      `No such endpoint: ${path}. Scrape targets through this proxy with proxy_url; see /clients and /metrics\n`,
    );
  }
}

/**
 * Why a request has no usable authority, or null: the authority of an
 * absolute-form http target, else the Host header (HTTP/1) or `:authority`
 * (HTTP/2), of which there must be exactly one.
 */
function requestAuthorityProblem(req: IncomingMessage | null, target: string): string | null {
  if (!target.startsWith("/") || req === null) {
    const absolute = /^http:\/\/([^/?#]*)/i.exec(target);
    // Other schemes and forms get their answer from the scrape handler.
    if (absolute === null) return null;
    const authority = absolute[1]!;
    // URLs with user info are refused by the scrape handler, with the reason.
    if (authority.includes("@")) return null;
    const problem = authorityProblem(authority);
    return problem === null
      ? null
      : `Malformed request target ${JSON.stringify(target.slice(0, 200))}: ${
        problem.replace("the Host", "its authority")
      }`;
  }
  if (req.httpVersionMajor === 2) {
    return authorityProblem((req as unknown as { authority?: string }).authority);
  }
  let hosts = 0;
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    if (req.rawHeaders[i]!.toLowerCase() === "host") hosts++;
  }
  if (hosts > 1) return "the request has more than one Host header";
  return authorityProblem(req.headers.host);
}

/**
 * Ends a response with a plain-text error and closes its connection (HTTP/1)
 * or stream (HTTP/2). With `now`, closes right after the answer is written.
 */
function answerAndClose(
  req: IncomingMessage,
  res: ServerResponse,
  status: number,
  text: string,
  now = false,
): void {
  if (res.headersSent || res.destroyed || res.writableEnded) return cut(req);
  const headers: Record<string, string> = { "content-type": "text/plain; charset=utf-8" };
  // HTTP/2 forbids connection headers; its stream ends with the response.
  if (req.httpVersionMajor !== 2) headers["connection"] = "close";
  res.writeHead(status, headers);
  res.end(text, now ? () => cut(req) : undefined);
}

/** Closes a request's connection (HTTP/1) or cancels its stream (HTTP/2). */
function cut(req: IncomingMessage): void {
  if (req.httpVersionMajor === 2) {
    const stream = (req as unknown as { stream?: { close(code?: number): void } }).stream;
    stream?.close(0x8); // NGHTTP2_CANCEL
    return;
  }
  req.socket?.destroy();
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
  proxy: Proxy,
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
  // Restarts a node listener if its accept loop stops (EMFILE), before
  // counting. The plain-HTTP front door retries failed accepts itself.
  const stopAccepting = new AbortController();
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
    const [status, text, limit] = error.code === "HPE_HEADER_OVERFLOW"
      ? [431, "Request Header Fields Too Large", "header_bytes"]
      : error.code === "ERR_HTTP_REQUEST_TIMEOUT" || error.code === "ERR_HTTP_HEADERS_TIMEOUT"
      ? [408, "Request Timeout", "header_timeout"]
      : [400, "Bad Request", null];
    if (limit !== null) proxy.metrics.limitHits.inc({ limit });
    log?.debug("Bad request refused", { remote: socket.remoteAddress, status, err: error.message });
    if (socket.writable) {
      const body = `${text}: ${error.code ?? error.message}\n`;
      socket.end(
        `HTTP/1.1 ${status} ${text}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`,
      );
    } else {
      socket.destroy();
    }
  });
  // node:http hands CONNECT (what Prometheus sends for scheme: https through
  // a proxy) to this event instead of the request handler.
  server.on("connect", (_req, socket: Socket) => {
    // The peer may reset or close without reading the answer (issue #10 item 2).
    socket.on("error", onSocketError);
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
    door?.close();
    server.close();
    server.closeAllConnections();
    for (const socket of sockets) socket.destroy();
  };
  if (options.signal?.aborted) close();
  options.signal?.addEventListener("abort", close, { once: true });
  return { address, server, finished };
}
