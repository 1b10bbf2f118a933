/**
 * The proxy's endpoints for operators: `/-/healthy` and `/-/ready` in
 * Prometheus' convention (load balancers and Kubernetes probes; lib/health.ts),
 * and the status page on `/`.
 *
 * @module
 */

import type { IncomingMessage, ServerResponse } from "node:http";
import { type HealthOptions, methodNotAllowed, serveHealth } from "../../lib/health.ts";
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
 * Serves one request if its path is an operations endpoint.
 *
 * @returns True when it answered the request.
 */
export type OperationsHandler = (
  req: IncomingMessage,
  res: ServerResponse,
  path: string,
) => boolean;

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
  return function serveOperations(req, res, path) {
    if (!OPERATIONS_PATHS.includes(path)) return false;
    const code = serveHealth(health, req, res, path) ?? servePage(req, res, path, page);
    options.observe?.(path, code);
    return true;
  };
}

/** The status page on `/`. */
function servePage(req: IncomingMessage, res: ServerResponse, path: string, page: string): number {
  if (req.method !== "GET" && req.method !== "HEAD") {
    const answer = methodNotAllowed(req.method ?? "", path);
    res.writeHead(answer.status, answer.headers).end(answer.body);
    return answer.status;
  }
  res.writeHead(200, { ...STATUS_PAGE_HEADERS });
  res.end(req.method === "HEAD" ? undefined : page);
  return 200;
}
