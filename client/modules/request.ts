/**
 * The pure part of a module request: which module a `/proxy?module=…` query
 * names, what goes on to the backend, and how long it may take.
 *
 * @module
 */

import type { ModuleConfig } from "./config.ts";
import { moduleNameProblem } from "./config.ts";
import { clampTimeoutMs } from "../../lib/scrape_timeout.ts";

/** A request that names a configured module. */
export interface ResolvedModuleRequest {
  /** Always true. */
  readonly ok: true;
  /** The module to serve. */
  readonly module: ModuleConfig;
  /**
   * The query for the backend: every incoming parameter in order, except
   * the first `module` value (exporter_exporter #23, #61), so that
   * `?module=blackbox&module=icmp&target=…` reaches blackbox_exporter as
   * `?module=icmp&target=…`.
   */
  readonly backendQuery: ReadonlyArray<readonly [string, string]>;
  /** The `args` values, in order: appended to an exec module's command line. */
  readonly args: readonly string[];
}

/** A request that cannot be served, with the status to answer. */
export interface RejectedModuleRequest {
  /** Always false. */
  readonly ok: false;
  /** 400 for a missing or malformed name, 404 for an unknown module. */
  readonly status: 400 | 404;
  /** What was wrong, naming the module. */
  readonly message: string;
}

/** The result of {@linkcode resolveModuleRequest}. */
export type ModuleRequestResolution =
  | ResolvedModuleRequest
  | RejectedModuleRequest;

const NONE: readonly never[] = Object.freeze([]);

/** Longest accepted module name. */
const MAX_NAME_LENGTH = 256;

function reject(status: 400 | 404, message: string): RejectedModuleRequest {
  return { ok: false, status, message };
}

/**
 * Finds the module a `/proxy` query names.
 *
 * The first `module` value names the module; every other parameter,
 * further `module` values included, is passed on to the backend. Without a
 * `module` parameter the `defaultModule` is used when configured (as
 * exporter_exporter does), otherwise the answer is 400.
 *
 * @param query The incoming query.
 * @param modules The configured modules.
 * @param defaultModule `defaultModule` from the configuration.
 * @returns The module and the backend query, or a status and message.
 *
 * @example Blackbox-style double `module`
 * ```ts
 * import { resolveModuleRequest } from "./request.ts";
 * import { parseConfig } from "./config.ts";
 *
 * const { modules } = parseConfig(
 *   "modules:\n  blackbox:\n    method: http\n    http:\n      port: 9115\n      path: /probe\n",
 *   "expexp.yaml",
 * );
 * const resolved = resolveModuleRequest(
 *   new URLSearchParams("module=blackbox&module=icmp&target=example.com"),
 *   modules,
 * );
 * console.assert(resolved.ok && resolved.backendQuery.length === 2);
 * ```
 */
export function resolveModuleRequest(
  query: URLSearchParams,
  modules: ReadonlyMap<string, ModuleConfig>,
  defaultModule?: string,
): ModuleRequestResolution {
  // Nearly every scrape names a module and nothing else: no list to build.
  const only = query.size === 1 ? query.get("module") : null;
  const pairs: [string, string][] = only === null ? [...query] : [["module", only]];
  const first = only === null ? pairs.findIndex(([key]) => key === "module") : 0;
  let name: string;
  if (first < 0) {
    if (defaultModule === undefined) {
      const known = [...modules.keys()];
      return reject(
        400,
        `missing module parameter: use /proxy?module=NAME${
          known.length > 0 ? ` (modules: ${known.join(", ")})` : ""
        }`,
      );
    }
    name = defaultModule;
  } else {
    name = pairs[first]![1];
    // An empty name names no module: 404, as exporter_exporter answers.
    if (name === "") return reject(404, 'unknown module ""');
    if (name.length > MAX_NAME_LENGTH) {
      return reject(400, `module name is longer than ${MAX_NAME_LENGTH} characters`);
    }
    const problem = moduleNameProblem(name);
    if (problem !== undefined) return reject(400, problem);
  }
  const module = modules.get(name);
  if (module === undefined) {
    return reject(404, `unknown module ${JSON.stringify(name)}`);
  }
  if (only !== null) return { ok: true, module, backendQuery: NONE, args: NONE };
  const backendQuery = pairs.filter((_, index) => index !== first);
  const args = backendQuery.filter(([key]) => key === "args").map(([, value]) => value);
  return { ok: true, module, backendQuery, args };
}

/**
 * The deadline a module request gets: the lower of the module `timeout` and
 * Prometheus' scrape timeout; undefined when neither is set.
 *
 * @param moduleTimeoutMs The module's `timeout`, if any.
 * @param scrapeTimeoutMs Prometheus' scrape timeout, if known.
 * @returns Milliseconds, or undefined.
 */
export function effectiveTimeoutMs(
  moduleTimeoutMs: number | undefined,
  scrapeTimeoutMs: number | undefined,
): number | undefined {
  return clampTimeoutMs(moduleTimeoutMs, scrapeTimeoutMs);
}
