/**
 * The module engine: one entry point, `serve(query, headers, signal)`, behind
 * both ways of reaching a module (through the proxy and on the direct
 * listener). It resolves the module, applies the deadline, runs the
 * method's executor, maps every failure to a status and a message, and
 * counts it.
 *
 * @module
 */

import type { HeaderField } from "../../lib/headers.ts";
import type { Logger } from "../../lib/logger.ts";
import { formatDuration } from "../../lib/duration.ts";
import { VerificationError } from "../verify/mod.ts";
import type { LoadedConfig, ModuleConfig } from "./config.ts";
import { serveExecModule } from "./exec_module.ts";
import { serveFileModule } from "./file_module.ts";
import {
  type BackendAgents,
  BackendClosedError,
  type BackendTlsMaterial,
  createBackendAgents,
  loadBackendTls,
  serveHttpModule,
  unreachable,
} from "./http_module.ts";
import type { ModuleMetrics } from "./metrics.ts";
import { effectiveTimeoutMs, resolveModuleRequest } from "./request.ts";
import { parseScrapeTimeout, SCRAPE_TIMEOUT_HEADER } from "../../lib/scrape_timeout.ts";
import { errorResponse, type ModuleResponse, observeBody } from "./response.ts";
import { errorMessage } from "../../lib/error_message.ts";
import { Deadlines } from "../../lib/deadlines.ts";

/** A loaded configuration plus what was read for it (backend TLS files). */
export interface PreparedConfig {
  /** The configuration. */
  readonly config: LoadedConfig;
  /** TLS material of https modules, by module name. */
  readonly tls: ReadonlyMap<string, BackendTlsMaterial>;
}

/**
 * Reads the files a configuration refers to (backend TLS), so that a
 * missing file fails the (re)load instead of every scrape.
 *
 * @param config The loaded configuration.
 * @param readTextFile File access.
 * @returns The prepared configuration.
 * @throws {Error} Naming the module, key and file that cannot be read.
 */
export async function prepareConfig(
  config: LoadedConfig,
  readTextFile?: (path: string) => Promise<string>,
): Promise<PreparedConfig> {
  const tls = new Map<string, BackendTlsMaterial>();
  for (const module of config.modules.values()) {
    if (module.method !== "http") continue;
    const material = await loadBackendTls(module, readTextFile);
    if (material !== undefined) tls.set(module.name, material);
  }
  return { config, tls };
}

/** A module request, as either front end received it. */
export interface ModuleRequest {
  /** The query of `/proxy?module=…`. */
  readonly query: URLSearchParams;
  /** The incoming header fields. */
  readonly headers: readonly HeaderField[];
  /**
   * The scraper's address, when it is known (the direct listener): http
   * modules add it to `X-Forwarded-For`, as exporter_exporter does.
   */
  readonly peer?: string | undefined;
}

/** Options for {@linkcode createModuleEngine}. */
export interface ModuleEngineOptions {
  /** The configuration to serve. */
  config: PreparedConfig;
  /** Counters and durations. */
  metrics: ModuleMetrics;
  /** Logs failures. */
  logger: Logger;
  /** `--verify.max-bytes`: most decoded bytes verified per body. @default {268435456} */
  verifyMaxBytes?: number;
  /** `--exec.max-output-bytes`: most stdout bytes of a command. @default {16777216} */
  execMaxOutputBytes?: number;
  /**
   * How much of a verified body is read before the status is sent; an
   * invalid body that fails within it gets a 502 instead of an aborted 200.
   * @default {1048576}
   */
  windowBytes?: number;
  /** Largest backend response header block. @default {16384} */
  maxHeaderBytes?: number;
  /**
   * What a successful exec command writes to stderr is logged (exporter_exporter
   * passes it to its own stderr), at most once per module per this interval;
   * lines in between are counted in the next one. @default {10000}
   */
  stderrLogIntervalMs?: number;
  /** Clock for the stderr rate limit. @default {performance.now} */
  now?: () => number;
  /**
   * Keep connections to http backends open between requests (idle ones
   * close after 5 s); call `close` to end them. @default {true}
   */
  backendKeepAlive?: boolean;
}

/** Serves module requests. */
export interface ModuleEngine {
  /** The configuration being served. */
  readonly config: LoadedConfig;
  /**
   * Serves new requests from another configuration; requests in flight
   * finish with the old one.
   */
  replace(config: PreparedConfig): void;
  /**
   * Serves one request. Never throws: failures are responses with a status
   * (400 bad request, 404 unknown module, 502 backend failure or invalid
   * content, 504 deadline) and a message naming the module.
   */
  serve(request: ModuleRequest, signal: AbortSignal): Promise<ModuleResponse>;
  /** Closes kept-alive backend connections; later requests open new ones. */
  close(): void;
}

/**
 * Creates the engine.
 *
 * @param options Configuration, metrics, logger and limits.
 * @returns The engine.
 */
export function createModuleEngine(options: ModuleEngineOptions): ModuleEngine {
  const { metrics, logger } = options;
  const verifyMaxBytes = options.verifyMaxBytes ?? 256 * 1024 * 1024;
  const execMaxOutputBytes = options.execMaxOutputBytes ?? 16 * 1024 * 1024;
  const windowBytes = options.windowBytes ?? 1024 * 1024;
  const maxHeaderBytes = options.maxHeaderBytes ?? 16384;
  let current = options.config;
  let agents: BackendAgents | undefined;
  const keepAlive = options.backendKeepAlive ?? true;
  const stderrIntervalMs = options.stderrLogIntervalMs ?? 10_000;
  const now = options.now ?? (() => performance.now());
  /** Per module: when its stderr was last logged, and how many were skipped since. */
  const stderrLog = new Map<string, { at: number; skipped: number }>();
  const deadlines = new Deadlines();

  function logStderr(module: ModuleConfig, stderr: string): void {
    const at = now();
    const last = stderrLog.get(module.name);
    if (last !== undefined && at - last.at < stderrIntervalMs) {
      last.skipped++;
      return;
    }
    logger.warn("Command wrote to stderr", {
      module: module.name,
      stderr,
      ...(last !== undefined && last.skipped > 0 ? { skipped: last.skipped } : {}),
    });
    stderrLog.set(module.name, { at, skipped: 0 });
  }

  function classify(
    module: ModuleConfig,
    error: unknown,
    deadline: { signal: AbortSignal; describe: () => string },
  ): ModuleResponse {
    const label = { module: module.name };
    if (deadline.signal.aborted) {
      metrics.timeouts.inc(label);
      return errorResponse(504, `module ${module.name}: ${deadline.describe()}`);
    }
    if (error instanceof VerificationError) {
      if (error.kind !== "too_large") metrics.malformed.inc(label);
      return errorResponse(
        502,
        `module ${module.name}: the backend's answer failed verification: ${error.message}`,
      );
    }
    if (error instanceof BackendClosedError) return errorResponse(502, error.message);
    if (module.method === "http") return unreachable(module, error);
    return errorResponse(
      502,
      `module ${module.name}: ${errorMessage(error)}`,
    );
  }

  return {
    get config() {
      return current.config;
    },
    replace(config) {
      current = config;
    },
    close() {
      agents?.close();
      agents = undefined;
      // Requests in flight keep their deadlines; the timer keeps no process alive anyway.
      if (deadlines.size === 0) deadlines.close();
    },
    async serve(request, signal) {
      const started = performance.now();
      const prepared = current;
      const resolved = resolveModuleRequest(
        request.query,
        prepared.config.modules,
        prepared.config.defaultModule,
      );
      if (!resolved.ok) {
        if (resolved.status === 404) metrics.errors.inc({ module: "unknown" });
        return errorResponse(resolved.status, resolved.message);
      }
      const { module } = resolved;
      let scrapeTimeoutMs: number | undefined;
      try {
        scrapeTimeoutMs = parseScrapeTimeout(
          request.headers.find((h) => h.name.toLowerCase() === SCRAPE_TIMEOUT_HEADER)?.value,
        );
      } catch (error) {
        return errorResponse(400, errorMessage(error));
      }
      const timeoutMs = effectiveTimeoutMs(module.timeoutMs, scrapeTimeoutMs);
      // One controller: the caller's signal and the deadline (on the shared
      // timer) abort it; both links are undone when the answer ends.
      const controller = new AbortController();
      const combined = controller.signal;
      let timedOut = false;
      const deadlineEntry = timeoutMs === undefined
        ? undefined
        : deadlines.add(started + Math.max(1, timeoutMs), () => {
          timedOut = true;
          controller.abort(new DOMException("The module timeout passed", "TimeoutError"));
        });
      const onAbort = () => controller.abort(signal.reason);
      if (signal.aborted) onAbort();
      else signal.addEventListener("abort", onAbort, { once: true });
      const done = () => {
        if (deadlineEntry !== undefined) deadlines.delete(deadlineEntry);
        signal.removeEventListener("abort", onAbort);
      };
      const deadline = {
        signal: combined,
        describe: () =>
          timedOut
            ? `no complete answer within ${
              formatDuration(timeoutMs!)
            } (the lower of the module timeout${
              module.timeoutMs === undefined ? "" : ` ${formatDuration(module.timeoutMs)}`
            } and the scrape timeout${
              scrapeTimeoutMs === undefined ? "" : ` ${formatDuration(scrapeTimeoutMs)}`
            })`
            : `the request was cancelled: ${errorMessage(signal.reason)}`,
      };
      const label = { module: module.name };
      const observe = () => metrics.duration.observe(label, (performance.now() - started) / 1000);

      let response: ModuleResponse;
      try {
        switch (module.method) {
          case "http":
            response = await serveHttpModule({
              module,
              tls: prepared.tls.get(module.name),
              backendQuery: resolved.backendQuery,
              headers: request.headers,
              timeoutMs,
              verifyMaxBytes,
              windowBytes,
              maxHeaderBytes,
              agents: keepAlive ? (agents ??= createBackendAgents()) : undefined,
              peer: request.peer,
            }, combined);
            break;
          case "exec":
            response = await serveExecModule({
              module,
              args: resolved.args,
              headers: request.headers,
              maxOutputBytes: execMaxOutputBytes,
              verifyMaxBytes,
              metrics,
              onStderr: (stderr) => logStderr(module, stderr),
            }, combined);
            break;
          case "file":
            response = await serveFileModule({
              module,
              headers: request.headers,
              verifyMaxBytes,
              windowBytes,
              metrics,
            }, combined);
            break;
        }
      } catch (error) {
        response = classify(module, error, deadline);
      }
      if (response.error !== "" || response.body === null) {
        done();
        observe();
        if (response.error !== "") {
          metrics.errors.inc(label);
          logger.with(label).warn("Module request failed", {
            status: response.status,
            err: response.error,
          });
        }
        return response;
      }
      const body = observeBody(response.body, (error) => {
        done();
        observe();
        if (error === undefined) return;
        metrics.errors.inc(label);
        const failed = classify(module, error, deadline);
        logger.with(label).warn(
          "Module body failed after the status was sent; aborting the response",
          {
            status: response.status,
            err: failed.error,
          },
        );
      });
      return { ...response, body };
    },
  };
}
