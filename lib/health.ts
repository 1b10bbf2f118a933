/**
 * `/-/healthy` and `/-/ready` in Prometheus' convention, for load balancers
 * and Kubernetes probes: one implementation for every listener that has
 * them (the proxy's port, the client's `--metrics-addr`, the client's direct
 * module listeners). Each listener says what its answers read and what
 * "ready" means for it.
 *
 * @module
 */

import type { IncomingMessage, ServerResponse } from "node:http";

/** Whether a listener is ready, and the line saying why. */
export interface Readiness {
  /** True: `/-/ready` answers 200; false: 503. */
  readonly ready: boolean;
  /** The answer's body, one line ending in a newline. */
  readonly message: string;
}

/** Options for {@linkcode healthAnswer} and {@linkcode serveHealth}. */
export interface HealthOptions {
  /** The body of `/-/healthy` (200 while the process serves), e.g. "Healthy\n". */
  readonly healthy: string;
  /**
   * Answers `/-/ready`, asked on every request. Omitted: the listener has no
   * `/-/ready` and leaves the path to its other routes.
   */
  readonly ready?: () => Readiness;
}

/** An answer to a health request. */
export interface HealthAnswer {
  /** 200, 503 (not ready) or 405 (a method other than GET and HEAD). */
  readonly status: number;
  /** Plain text, never cached; `allow` on 405. */
  readonly headers: Readonly<Record<string, string>>;
  /** The body; sent for GET only. */
  readonly body: string;
}

/** The paths {@linkcode healthAnswer} answers (`/-/ready` only with `ready`). */
export const HEALTH_PATHS: readonly string[] = ["/-/healthy", "/-/ready"];

const TEXT: Readonly<Record<string, string>> = {
  "content-type": "text/plain; charset=utf-8",
  "cache-control": "no-store",
};

/**
 * The answer to a request for `path`, or null when `path` is not a health
 * endpoint of this listener.
 *
 * @example A listener that is ready once registered
 * ```ts
 * import { healthAnswer } from "./health.ts";
 *
 * let registered = 0;
 * const options = {
 *   healthy: "Healthy\n",
 *   ready: () =>
 *     registered > 0
 *       ? { ready: true, message: "Ready\n" }
 *       : { ready: false, message: "Not ready: not registered\n" },
 * };
 * console.assert(healthAnswer(options, "GET", "/-/ready")?.status === 503);
 * registered = 1;
 * console.assert(healthAnswer(options, "GET", "/-/ready")?.status === 200);
 * console.assert(healthAnswer(options, "POST", "/-/healthy")?.status === 405);
 * console.assert(healthAnswer(options, "GET", "/metrics") === null);
 * ```
 *
 * @param options The listener's answers.
 * @param method The request method.
 * @param path The request path, without the query.
 * @returns The answer, or null.
 */
export function healthAnswer(
  options: HealthOptions,
  method: string,
  path: string,
): HealthAnswer | null {
  const ready = options.ready;
  if (path !== "/-/healthy" && (path !== "/-/ready" || ready === undefined)) return null;
  if (method !== "GET" && method !== "HEAD") return methodNotAllowed(method, path);
  if (path === "/-/healthy") return { status: 200, headers: TEXT, body: options.healthy };
  const readiness = ready!();
  return { status: readiness.ready ? 200 : 503, headers: TEXT, body: readiness.message };
}

/**
 * The 405 answer of the operator endpoints, which take GET and HEAD only.
 *
 * @param method The request method.
 * @param path The request path.
 * @returns The answer.
 */
export function methodNotAllowed(method: string, path: string): HealthAnswer {
  return {
    status: 405,
    headers: { ...TEXT, allow: "GET, HEAD" },
    body: `Method ${method} is not allowed on ${path}\n`,
  };
}

/**
 * Answers a health request on a node:http listener.
 *
 * @param options The listener's answers.
 * @param req The request.
 * @param res The response.
 * @param path The request path, without the query.
 * @returns The status sent, or null when `path` is not a health endpoint
 *   (nothing was sent).
 */
export function serveHealth(
  options: HealthOptions,
  req: IncomingMessage,
  res: ServerResponse,
  path: string,
): number | null {
  const method = req.method ?? "GET";
  const answer = healthAnswer(options, method, path);
  if (answer === null) return null;
  res.writeHead(answer.status, answer.headers);
  res.end(method === "HEAD" ? undefined : answer.body);
  return answer.status;
}
