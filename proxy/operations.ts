/**
 * The proxy's endpoints for operators: `/-/healthy` and `/-/ready` in
 * Prometheus' convention (load balancers and Kubernetes probes), and the
 * status page on `/`.
 *
 * @module
 */

import type { IncomingMessage, ServerResponse } from "node:http";
import { VERSION } from "../lib/version.ts";
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
  return function serveOperations(req, res, path) {
    if (!OPERATIONS_PATHS.includes(path)) return false;
    const answer = (code: number, headers: Record<string, string>, body: string) => {
      res.writeHead(code, headers);
      res.end(req.method === "HEAD" ? undefined : body);
      options.observe?.(path, code);
    };
    const text = { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store" };
    if (req.method !== "GET" && req.method !== "HEAD") {
      answer(
        405,
        { ...text, allow: "GET, HEAD" },
        `Method ${req.method} is not allowed on ${path}\n`,
      );
      return true;
    }
    if (path === "/-/healthy") {
      answer(200, text, "PushProx Proxy is Healthy.\n");
    } else if (path === "/-/ready") {
      if (options.draining()) {
        answer(503, text, "PushProx Proxy is shutting down.\n");
      } else {
        answer(200, text, "PushProx Proxy is Ready.\n");
      }
    } else {
      answer(200, { ...STATUS_PAGE_HEADERS }, page);
    }
    return true;
  };
}
