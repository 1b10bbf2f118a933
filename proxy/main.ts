/**
 * `deno task proxy`: the PushProx proxy's command line.
 *
 * @module
 */

import { formatAddress } from "../lib/address.ts";
import { formatDuration } from "../lib/duration.ts";
import { createConnectionBudget, softFdLimit } from "../lib/connection_budget.ts";
import { FlagError, formatHelp, parseFlags } from "../lib/flags.ts";
import { installLastResort, raiseForTest } from "../lib/last_resort.ts";
import { createLogger } from "../lib/logger.ts";
import { defaultProcReader } from "../lib/process_metrics.ts";
import { VERSION, versionText } from "../lib/version.ts";
import { ConfigError } from "../lib/web_config.ts";
import { createShutdownSignals } from "../lib/signals.ts";
import { loadSecurity, type Security } from "./auth/security_config.ts";
import { drainProxy } from "./http/drain.ts";
import type { ServingGrpc } from "./connect/grpc_server.ts";
import { createProxy, serveProxy } from "./http/server.ts";
import {
  connectionLimits,
  PROXY_FLAGS,
  type ProxyFlagValues,
  type ProxySettings,
  toProxyOptions,
} from "./settings.ts";
import { errorMessage } from "../lib/error_message.ts";

/**
 * Runs the proxy until SIGINT or SIGTERM.
 *
 * @param args The command line.
 * @returns The exit code.
 */
export async function main(args: readonly string[]): Promise<number> {
  let flags: ProxyFlagValues;
  let settings: ProxySettings;
  try {
    flags = parseFlags(PROXY_FLAGS, args);
    settings = toProxyOptions(flags);
  } catch (error) {
    if (!(error instanceof FlagError || error instanceof SyntaxError)) {
      throw error;
    }
    console.error(`pushprox-proxy: ${error.message}; see --help`);
    return 2;
  }
  if (flags.help) {
    console.log(
      formatHelp(
        "usage: pushprox-proxy [<flags>]\n\nThe PushProx proxy.",
        PROXY_FLAGS,
      ),
    );
    return 0;
  }
  if (flags.version) {
    console.log(versionText("pushprox-proxy"));
    return 0;
  }
  const logger = createLogger(settings.log);
  let security: Security;
  try {
    security = await loadSecurity({ ...settings.security, logger });
  } catch (error) {
    if (!(error instanceof ConfigError)) {
      logger.error("Cannot load the TLS configuration", { err: errorMessage(error) });
      return 1;
    }
    console.error(`pushprox-proxy: ${error.message}`);
    return 2;
  }
  const proxy = createProxy({ ...settings.proxy, auth: security.auth, logger });
  installLastResort({ logger, count: () => proxy.metrics.uncaughtErrors.inc() });
  const stop = new AbortController();
  // The first signal drains (scrapes in flight finish, clients go away), a
  // second one stops at once. Repeats within 2 s are the same signal (one
  // Ctrl-C under `deno task` or npx arrives two or three times).
  const hurry = new AbortController();
  const drainTimeoutMs = settings.drainTimeoutMs;
  const shutdownSignals = createShutdownSignals();
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    Deno.addSignalListener(signal, () => {
      const step = shutdownSignals.next();
      if (step === "repeat") {
        logger.debug("Repeated signal within 2s; still draining", { signal });
        return;
      }
      if (step === "again") {
        logger.info("Second signal: stopping now", { signal });
        hurry.abort();
        return;
      }
      logger.info("Shutting down", { signal, drain_timeout: formatDuration(drainTimeoutMs) });
      drainProxy(proxy, { timeoutMs: drainTimeoutMs, logger, signal: hurry.signal })
        .finally(() => stop.abort());
    });
  }
  // Under the task's permissions /proc/self is closed to Deno's file APIs
  // (it needs --allow-all); the process-metrics reader goes through `cat`.
  const fdLimit = softFdLimit() ?? (await defaultProcReader()?.())?.maxFds ?? null;
  const { maxConnections, maxPerSource } = connectionLimits(settings.connections, fdLimit);
  const connections = createConnectionBudget({
    maxConnections,
    maxPerSource,
    onRefused(limit, remote) {
      proxy.metrics.limitHits.inc({ limit });
      logger.debug("Connection refused", { remote, limit });
    },
    onEvicted(remote) {
      logger.debug("Idle connection closed to make room", { remote });
    },
  });
  const acceptCheckIntervalMs = settings.connections.acceptCheckIntervalMs;
  let serving;
  try {
    serving = await serveProxy(proxy, {
      connections,
      acceptCheckIntervalMs,
      ...settings.listenAddress,
      signal: stop.signal,
      ...settings.serve,
      headers: security.web.headers,
      logger,
      ...(security.tls ? { tls: security.tls } : {}),
    });
  } catch (error) {
    logger.error("Cannot listen", {
      address: settings.listenAddressText,
      err: error,
    });
    return 1;
  }
  logger.info("Starting pushprox-proxy", {
    version: VERSION,
    scrape_default_timeout: formatDuration(settings.proxy.defaultScrapeTimeoutMs),
    scrape_max_timeout: formatDuration(settings.proxy.maxScrapeTimeoutMs),
  });
  for (const warning of security.warnings()) logger.warn(warning);
  security.watch(stop.signal);
  logger.info("Listening on", {
    address: formatAddress(serving.address),
    tls: security.tls !== null,
    auth: security.auth.config.source,
    max_connections: maxConnections,
    max_connections_per_source: maxPerSource,
    fd_limit: fdLimit ?? "unknown",
  });
  let grpc: ServingGrpc | null = null;
  if (settings.grpcListenAddress !== null) {
    try {
      // node:http2 is loaded only for this listener.
      const { serveGrpc } = await import("./connect/grpc_server.ts");
      grpc = await serveGrpc(proxy, {
        ...settings.grpcListenAddress,
        connections,
        acceptCheckIntervalMs,
        signal: stop.signal,
        logger,
        ...settings.grpc,
        onLimit: (limit) => proxy.metrics.limitHits.inc({ limit }),
        ...(security.tls ? { tls: security.tls } : {}),
      });
    } catch (error) {
      logger.error("Cannot listen", {
        address: settings.grpcListenAddressText,
        listener: "grpc",
        err: error,
      });
      stop.abort();
      await serving.finished;
      return 1;
    }
    logger.info("Listening on", {
      address: formatAddress(grpc.address),
      listener: "grpc",
      tls: security.tls !== null,
    });
  }
  raiseForTest();
  await Promise.all([serving.finished, grpc?.finished]);
  return 0;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
