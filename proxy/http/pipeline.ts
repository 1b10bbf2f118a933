/**
 * The proxy's one request pipeline, on both edges: route (the table in
 * proxy/http/router.ts), authenticate once into the request's context
 * (proxy/http/request_context.ts), refuse or serve, count once per route.
 * node:http requests come in through `handle`, requests the native front
 * door reads itself through `serveNative`; each edge first checks what only
 * it can (authority, body lifetime).
 *
 * @module
 */

import type { IncomingMessage, ServerResponse } from "node:http";
import { peerAddress } from "../../lib/address.ts";
import { authorityProblem } from "../../lib/authority.ts";
import { formatDuration } from "../../lib/duration.ts";
import { type Exchange, nodeExchange } from "../../lib/http_exchange.ts";
import type { Logger } from "../../lib/logger.ts";
import { peerIdentity } from "../../lib/tls_server.ts";
import type { ProxyMetrics } from "../core/metrics.ts";
import { NativeExchange } from "./native_exchange.ts";
import { answerAndClose, createBodyGuard, cut, requestAuthorityProblem } from "./node_guard.ts";
import type { Credentials, RequestAuth, RequestContext } from "./request_context.ts";
import { matchRoute, type Route, type RouteName, type RouteRequest, targetPath } from "./router.ts";

/** One request on its route, as its handler sees it. */
export interface Call {
  readonly route: Route;
  /** The target's path, without the query. */
  readonly path: string;
  /** The request's authentication, done once by the pipeline. */
  readonly context: RequestContext;
  /** The request as an exchange (either edge). */
  exchange(): Exchange;
  /** The node:http request and response; null on the native front door. */
  readonly node: { req: IncomingMessage; res: ServerResponse } | null;
}

/** Serves one request on its route. */
export type RouteHandler = (call: Call) => Promise<void> | void;

/** Where the pipeline gets a request's exchange and, once served, its status. */
interface ExchangeSource {
  exchange(): Exchange;
  status(): number;
}

/** A {@linkcode Call}: a class, not a literal with a closure per request (issue #11). */
class RouteCall implements Call {
  readonly route: Route;
  readonly path: string;
  readonly context: RequestContext;
  readonly node: Call["node"];
  readonly #source: ExchangeSource;

  constructor(
    route: Route,
    path: string,
    context: RequestContext,
    source: ExchangeSource,
    node: Call["node"],
  ) {
    this.route = route;
    this.path = path;
    this.context = context;
    this.#source = source;
    this.node = node;
  }

  exchange(): Exchange {
    return this.#source.exchange();
  }
}

/**
 * A request the native front door read, as the route table reads it and as
 * the source of its exchange: one object per request, no closures (issue #11).
 */
class NativeRequest implements RouteRequest, ExchangeSource {
  readonly method: string;
  readonly target: string;
  readonly path: string;
  readonly httpVersionMajor: number;
  readonly #exchange: NativeExchange;

  constructor(exchange: NativeExchange) {
    const target = exchange.target;
    this.method = exchange.method;
    this.target = target;
    this.path = target.startsWith("/") ? targetPath(target) : target;
    this.httpVersionMajor = exchange.httpVersionMajor;
    this.#exchange = exchange;
  }

  header(name: string): string | undefined {
    return this.#exchange.header(name);
  }

  exchange(): Exchange {
    return this.#exchange;
  }

  status(): number {
    return this.#exchange.statusCode;
  }
}

/** Options for {@linkcode createPipeline}. */
export interface PipelineOptions {
  table: readonly Route[];
  /** The handler of every route; native routes must serve from `call.exchange()`. */
  handlers: Record<RouteName, RouteHandler>;
  requestAuth: RequestAuth;
  metrics: ProxyMetrics;
  logger: Logger;
  /** 0 disables the body idle timeout. */
  bodyIdleTimeoutMs: number;
}

/** The pipeline's entries; see {@linkcode createPipeline}. */
export interface Pipeline {
  /** Serves one node:http request (of any listener). */
  handle(req: IncomingMessage, res: ServerResponse): void;
  /**
   * Serves one request the native front door read (a route the table marks
   * native), on `route` when the edge already matched it (the route table
   * is then not asked again), else on the route it matches.
   */
  serveNative(exchange: NativeExchange, route?: Route): Promise<void>;
  /** The node:http request a Connect or legacy handler is serving has this context. */
  contextOf(req: object): RequestContext | null;
}

/**
 * Creates the request pipeline.
 *
 * @param options Route table, handlers, authentication, metrics.
 * @returns The pipeline.
 */
export function createPipeline(options: PipelineOptions): Pipeline {
  const { table, handlers, requestAuth, metrics, logger, bodyIdleTimeoutMs } = options;
  /** Contexts of node:http requests, for handlers whose API takes only the request. */
  const contexts = new WeakMap<object, RequestContext>();
  /** Requests whose body the scrape's deadline bounds (see RequestContext.bodyBound). */
  const bound = new WeakSet<IncomingMessage>();
  /**
   * The same for the native edge's exchanges (each its request's
   * credentials), marked on the exchange (a WeakSet's add per Push was
   * ~0.4 % of the proxy's CPU per scrape; issue #11). One function for all
   * native requests, not a closure kept by each context.
   */
  const bindNative = (credentials: Credentials) => {
    if (credentials instanceof NativeExchange) credentials.bodyBound = true;
  };
  /**
   * The last request target and Host header of the native edge found
   * usable (null: none yet). Both checks are pure, and a kept-alive
   * connection sends the same target or Host every request (its head
   * reused, lib/request_head.ts RequestHeadCache): the same string again
   * is not checked again (the checks were ~1 % of the proxy's CPU per
   * scrape; issue #11).
   */
  let usableTarget: string | null = null;
  let usableHost: string | null = null;
  /** Why a native request has no usable authority, or null (see requestAuthorityProblem). */
  function nativeAuthorityProblem(exchange: NativeExchange): string | null {
    const target = exchange.target;
    if (target.startsWith("/")) {
      const host = exchange.header("host");
      if (host === usableHost) return null;
      const problem = authorityProblem(host);
      if (problem === null) usableHost = host!;
      return problem;
    }
    if (target === usableTarget) return null;
    const problem = requestAuthorityProblem(null, target);
    if (problem === null) usableTarget = target;
    return problem;
  }
  const guardBody = createBodyGuard({
    bodyIdleTimeoutMs,
    isBound: (req) => bound.has(req),
    metrics,
    logger,
  });

  /**
   * Counts a request of a route counted here (`label` not null), started
   * at `started`. (Not a closure per request: issue #11.)
   */
  function count(label: string | null, started: number, status: number): void {
    if (label === null) return;
    metrics.httpRequests.inc({ code: String(status), path: label });
    metrics.httpDuration.observe({ path: label }, (performance.now() - started) / 1000);
  }

  /** Routes, authenticates and serves one request of either edge. */
  async function serve(
    request: RouteRequest,
    route: Route,
    context: RequestContext,
    source: ExchangeSource,
    node: Call["node"],
  ): Promise<void> {
    const label = route.meter(request);
    // The clock is read only for a route counted here (not a scrape, Poll
    // or Push on the native edge: a read per request was ~0.3 % of the
    // proxy's CPU per scrape; issue #11).
    const started = label === null ? 0 : performance.now();
    if (route.role !== null && route.refusal !== "handler") {
      const result = await context.authenticate();
      if (!result.ok && route.refusal === "edge") {
        const answer = requestAuth.refusal(route.role, request.path, result);
        if (route.name === "scrape" || node === null) {
          const out = source.exchange();
          out.respond(answer.status, answer.headers);
          out.end(answer.text);
        } else {
          node.res.writeHead(answer.status, Object.fromEntries(answer.headers));
          node.res.end(answer.text);
        }
        if (route.name === "scrape") metrics.proxiedRequests.inc({ code: String(answer.status) });
        count(label, started, answer.status);
        return;
      }
    }
    const call = new RouteCall(route, request.path, context, source, node);
    // Routes counted elsewhere (scrapes, Poll and Push) on the native edge:
    // returned, not awaited, so that this function's frame does not wait as
    // long as an open Poll stream.
    if (node === null && label === null) return handlers[route.name](call);
    await handlers[route.name](call);
    count(label, started, source.status());
  }

  function nodeRequest(req: IncomingMessage, target: string): RouteRequest {
    return {
      method: req.method ?? "",
      target,
      path: target.startsWith("/") ? targetPath(target) : target,
      httpVersionMajor: req.httpVersionMajor,
      header(name) {
        const value = req.headers[name];
        return Array.isArray(value) ? value[0] : value;
      },
    };
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

  function handle(req: IncomingMessage, res: ServerResponse): void {
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
      const request = nodeRequest(req, target);
      const route = matchRoute(table, request);
      const credentials: Credentials = {
        header: request.header,
        get peer() {
          return peerIdentity(req.socket);
        },
        remoteAddress: req.socket?.remoteAddress,
        target,
      };
      const context = requestAuth.context(
        route.role,
        credentials,
        peerAddress(req.socket ?? {}),
        () => bound.add(req),
      );
      contexts.set(req, context);
      let exchange: Exchange | undefined;
      serve(
        request,
        route,
        context,
        { exchange: () => exchange ??= nodeExchange(req, res), status: () => res.statusCode },
        { req, res },
      )
        .catch((error) => failed(req, res, error));
    } catch (error) {
      failed(req, res, error);
    }
  }

  /**
   * A request the native front door read: checked as `handle` checks every
   * node:http request (authority, body idle timeout), then served as
   * `handle` serves it.
   */
  function serveNative(exchange: NativeExchange, matched?: Route): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    let expire: (() => void) | undefined;
    if (bodyIdleTimeoutMs > 0 && !exchange.bodyEnded) {
      expire = () => {
        if (exchange.bodyBound || exchange.bodyEnded || exchange.destroyed) return;
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
      };
      // The connection's timer (one per connection, not one per request).
      if (exchange.timer !== null) exchange.timer.set(bodyIdleTimeoutMs, expire);
      else timer = setTimeout(expire, bodyIdleTimeoutMs);
    }
    const settle = () => {
      clearTimeout(timer);
      if (expire !== undefined) exchange.timer?.clear(expire);
    };
    // Callbacks, not an async function: a suspended one per request was
    // heap per idle Poll stream (issue #11).
    let served: Promise<void>;
    try {
      const problem = nativeAuthorityProblem(exchange);
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
        settle();
        return Promise.resolve();
      }
      const request = new NativeRequest(exchange);
      const route = matched ?? matchRoute(table, request);
      const context = requestAuth.context(
        route.role,
        exchange,
        exchange.peerAddress,
        bindNative,
      );
      served = serve(request, route, context, request, null);
    } catch (error) {
      nativeFailed(exchange, error);
      settle();
      return Promise.resolve();
    }
    return served.then(settle, (error) => {
      nativeFailed(exchange, error);
      settle();
    });
  }

  /** The last word on a native request whose handler failed: 500 if still possible, else a cut. */
  function nativeFailed(exchange: NativeExchange, error: unknown): void {
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
  }

  return { handle, serveNative, contextOf: (req) => contexts.get(req) ?? null };
}
