/**
 * The proxy's endpoints for operators: `/-/healthy` and `/-/ready` in
 * Prometheus' convention (load balancers and Kubernetes probes; lib/health.ts),
 * and the status page on `/`.
 *
 * @module
 */

import {
  type HealthAnswer,
  healthAnswer,
  type HealthOptions,
  methodNotAllowed,
} from "../../lib/health.ts";
import type { Exchange } from "../../lib/http_exchange.ts";
import { VERSION } from "../../lib/version.ts";
import { STATUS_PAGE_HEADERS, statusPage } from "./status_page.ts";

/** Options for {@linkcode createOperationsHandler}. */
export interface OperationsOptions {
  /** True while the proxy shuts down: `/-/ready` answers 503 then. */
  draining: () => boolean;
  /** Counts each answer by path and status. */
  observe?: (path: string, code: number) => void;
}

/**
 * Serves one request, on either edge, if its path is an operations endpoint.
 *
 * @returns True when it answered the request.
 */
export type OperationsHandler = (exchange: Exchange, path: string) => boolean;

/** The paths {@linkcode OperationsHandler} serves. */
export const OPERATIONS_PATHS: readonly string[] = ["/", "/-/healthy", "/-/ready"];

/**
 * Creates the handler for `/`, `/-/healthy` and `/-/ready`.
 *
 * @param options The draining state and a counter.
 * @returns The handler.
 */
export function createOperationsHandler(options: OperationsOptions): OperationsHandler {
  const page = statusPage(VERSION);
  const health: HealthOptions = {
    healthy: "PushProx Proxy is Healthy.\n",
    ready: () =>
      options.draining()
        ? { ready: false, message: "PushProx Proxy is shutting down.\n" }
        : { ready: true, message: "PushProx Proxy is Ready.\n" },
  };
  const pageAnswer: HealthAnswer = { status: 200, headers: STATUS_PAGE_HEADERS, body: page };
  return function serveOperations(exchange, path) {
    if (!OPERATIONS_PATHS.includes(path)) return false;
    const method = exchange.method;
    const answer = healthAnswer(health, method, path) ??
      (method === "GET" || method === "HEAD" ? pageAnswer : methodNotAllowed(method, path));
    exchange.respond(answer.status, Object.entries(answer.headers));
    exchange.end(method === "HEAD" ? undefined : answer.body);
    options.observe?.(path, answer.status);
    return true;
  };
}
