/**
 * `deno task proxy`: the PushProx proxy's command line.
 *
 * @module
 */

import { formatAddress, parseListenAddress } from "../lib/address.ts";
import { formatDuration } from "../lib/duration.ts";
import {
  createConnectionBudget,
  defaultMaxConnections,
  softFdLimit,
} from "../lib/connection_budget.ts";
import { FlagError, type FlagSpec, type FlagValues, formatHelp, parseFlags } from "../lib/flags.ts";
import { installLastResort, raiseForTest } from "../lib/last_resort.ts";
import { createLogger, LOG_FLAGS, type LogFormat, type LogLevel } from "../lib/logger.ts";
import { defaultProcReader } from "../lib/process_metrics.ts";
import { VERSION, versionText } from "../lib/version.ts";
import { ConfigError } from "../lib/web_config.ts";
import { createShutdownSignals } from "../lib/signals.ts";
import { loadSecurity, type Security } from "./security_config.ts";
import { drainProxy } from "./drain.ts";
import { serveGrpc, type ServingGrpc } from "./grpc_server.ts";
import { createProxy, serveProxy } from "./server.ts";

/** Every flag of the proxy, with its default. */
export const PROXY_FLAGS: readonly FlagSpec[] = [
  {
    name: "web.listen-address",
    type: "string",
    default: ":8080",
    help: "Address to listen on for proxy and client requests.",
  },
  {
    name: "scrape.max-timeout",
    type: "duration",
    default: "5m",
    help: "Any scrape with a timeout higher than this will have to be clamped to this.",
  },
  {
    name: "scrape.default-timeout",
    type: "duration",
    default: "15s",
    help: "If a scrape lacks a timeout, use this value.",
  },
  {
    name: "registration.timeout",
    type: "duration",
    default: "5m",
    help: "How long a client stays listed after its stream ends (connected clients never expire).",
  },
  {
    name: "poll.heartbeat-interval",
    type: "duration",
    default: "15s",
    help: "Heartbeat interval on idle client streams; keep it below load balancers' idle timeouts.",
  },
  {
    name: "web.max-message-bytes",
    type: "integer",
    default: "1048576",
    help: "Largest Connect message accepted from a client, in bytes.",
  },
  {
    name: "legacy.enabled",
    type: "boolean",
    default: "true",
    help: "Serve unmodified upstream pushprox-client binaries on /poll and /push.",
  },
  {
    name: "web.drain-timeout",
    type: "duration",
    default: "30s",
    help:
      "On SIGTERM, how long to finish scrapes in flight (new ones get 503, clients are told to go away).",
  },
  {
    name: "grpc.listen-address",
    type: "string",
    default: "",
    help:
      "Also serve the API over HTTP/2 for plain gRPC clients on this address (h2c, or TLS with tls_server_config); empty disables.",
  },
  {
    name: "web.config.file",
    type: "string",
    default: "",
    help: "exporter-toolkit web configuration: TLS (tls_server_config), headers, basic_auth_users.",
  },
  {
    name: "auth.config.file",
    type: "string",
    default: "",
    help:
      "Who may act as client, scraper and reader (see README Security); without it all roles are open.",
  },
  {
    name: "web.config.reload-interval",
    type: "duration",
    default: "5s",
    help: "How often the web and auth configuration and the TLS files are checked for changes.",
  },
  {
    name: "web.max-header-bytes",
    type: "integer",
    default: "16384",
    help: "Largest request header block; larger requests get 431.",
  },
  {
    name: "web.read-header-timeout",
    type: "duration",
    default: "10s",
    help: "Time a connection has to complete its TLS handshake and request headers.",
  },
  {
    name: "web.body-idle-timeout",
    type: "duration",
    default: "30s",
    help:
      "Longest a request body may take to arrive (a Push, once matched to a scrape, has the scrape's deadline instead); slower ones get 408 and are closed (0: no limit).",
  },
  {
    name: "web.idle-timeout",
    type: "duration",
    default: "65s",
    help: "How long an idle keep-alive connection is kept open.",
  },
  {
    name: "web.max-connections",
    type: "integer",
    help:
      "Most connections open at once on all listeners; more are refused at once, idle keep-alive ones closed first (default: the soft open-files limit less max(64, 10%); 0: no limit).",
  },
  {
    name: "web.max-connections-per-source",
    type: "integer",
    help:
      "Most connections open at once from one IP address (default: half of --web.max-connections; 0: no limit).",
  },
  {
    name: "web.accept-check-interval",
    type: "duration",
    default: "5s",
    help:
      "How often a quiet listener checks that it still accepts connections, and is restarted if it stopped (after running out of file descriptors).",
  },
  {
    name: "clients.max",
    type: "integer",
    default: "10000",
    help: "Most clients registered at once; more registrations are refused (0: no limit).",
  },
  {
    name: "clients.max-per-source",
    type: "integer",
    default: "5000",
    help:
      "Most clients connected from one source address (IPv6: one /64); raise it when more share a NAT or load balancer (0: no limit).",
  },
  {
    name: "registry.max-bytes",
    type: "integer",
    default: "67108864",
    help:
      "Most bytes the registry holds (estimated from each client's strings); disconnected clients are evicted first, then registrations are refused (0: no limit).",
  },
  {
    name: "registration.max-identity-bytes",
    type: "integer",
    default: "16384",
    help:
      "Largest registration (fqdn, version, labels, modules, proxies, estimated); larger ones get InvalidArgument (0: no limit).",
  },
  {
    name: "registration.rate-per-source",
    type: "integer",
    default: "100",
    help:
      "Registrations per second from one source address after its burst; more get ResourceExhausted (0: no limit).",
  },
  {
    name: "registration.burst-per-source",
    type: "integer",
    default: "2000",
    help:
      "Registrations one source address may make at once, e.g. a fleet behind one NAT restarting together.",
  },
  {
    name: "auth.max-failures-per-source",
    type: "integer",
    default: "10",
    help:
      "Failed password checks one source address may cause per --auth.failure-window; then it gets 429 without a check (0: no limit).",
  },
  {
    name: "auth.failure-window",
    type: "duration",
    default: "1m",
    help: "The window of --auth.max-failures-per-source (the budget refills evenly over it).",
  },
  {
    name: "scrape.max-concurrent",
    type: "integer",
    default: "1000",
    help: "Most scrapes in flight through the proxy; more get 503 (0: no limit).",
  },
  {
    name: "scrape.max-concurrent-per-client",
    type: "integer",
    default: "32",
    help: "Most scrapes in flight for one client; more get 429 (0: no limit).",
  },
  {
    name: "scrape.max-body-bytes",
    type: "integer",
    default: "268435456",
    help: "Largest scrape body relayed; larger ones are aborted (0: no limit).",
  },
  ...LOG_FLAGS,
];

/**
 * Runs the proxy until SIGINT or SIGTERM.
 *
 * @param args The command line.
 * @returns The exit code.
 */
export async function main(args: readonly string[]): Promise<number> {
  let flags: FlagValues;
  let listen;
  let grpcListen = null;
  try {
    flags = parseFlags(PROXY_FLAGS, args);
    listen = parseListenAddress(flags["web.listen-address"] as string);
    if (flags["grpc.listen-address"] !== "") {
      grpcListen = parseListenAddress(flags["grpc.listen-address"] as string);
    }
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
  const logger = createLogger({
    level: flags["log.level"] as LogLevel,
    format: flags["log.format"] as LogFormat,
  });
  let security: Security;
  try {
    security = await loadSecurity({
      webConfigFile: flags["web.config.file"] as string,
      authConfigFile: flags["auth.config.file"] as string,
      logger,
      reloadIntervalMs: flags["web.config.reload-interval"] as number,
      maxFailuresPerSource: flags["auth.max-failures-per-source"] as number,
      failureWindowMs: flags["auth.failure-window"] as number,
    });
  } catch (error) {
    if (!(error instanceof ConfigError)) {
      logger.error("Cannot load the TLS configuration", { err: (error as Error).message });
      return 1;
    }
    console.error(`pushprox-proxy: ${error.message}`);
    return 2;
  }
  const proxy = createProxy({
    auth: security.auth,
    maxClients: flags["clients.max"] as number,
    maxClientsPerSource: flags["clients.max-per-source"] as number,
    maxRegistryBytes: flags["registry.max-bytes"] as number,
    maxIdentityBytes: flags["registration.max-identity-bytes"] as number,
    registrationRatePerSource: flags["registration.rate-per-source"] as number,
    registrationBurstPerSource: flags["registration.burst-per-source"] as number,
    maxScrapes: flags["scrape.max-concurrent"] as number,
    maxScrapesPerClient: flags["scrape.max-concurrent-per-client"] as number,
    maxScrapeBodyBytes: flags["scrape.max-body-bytes"] as number,
    logger,
    defaultScrapeTimeoutMs: flags["scrape.default-timeout"] as number,
    maxScrapeTimeoutMs: flags["scrape.max-timeout"] as number,
    registrationTimeoutMs: flags["registration.timeout"] as number,
    heartbeatIntervalMs: flags["poll.heartbeat-interval"] as number,
    maxMessageBytes: flags["web.max-message-bytes"] as number,
    legacyProtocol: flags["legacy.enabled"] as boolean,
    bodyIdleTimeoutMs: flags["web.body-idle-timeout"] as number,
  });
  installLastResort({ logger, count: () => proxy.metrics.uncaughtErrors.inc() });
  const stop = new AbortController();
  // The first signal drains (scrapes in flight finish, clients go away), a
  // second one stops at once. Repeats within 2 s are the same signal (one
  // Ctrl-C under `deno task` or npx arrives two or three times).
  const hurry = new AbortController();
  const drainTimeoutMs = flags["web.drain-timeout"] as number;
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
  const maxConnections = (flags["web.max-connections"] as number | undefined) ??
    defaultMaxConnections(fdLimit);
  const maxPerSource = (flags["web.max-connections-per-source"] as number | undefined) ??
    Math.ceil(maxConnections / 2);
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
  const acceptCheckIntervalMs = flags["web.accept-check-interval"] as number;
  let serving;
  try {
    serving = await serveProxy(proxy, {
      connections,
      acceptCheckIntervalMs,
      ...listen,
      signal: stop.signal,
      requestTimeoutMs: (flags["scrape.max-timeout"] as number) + 30_000,
      headersTimeoutMs: flags["web.read-header-timeout"] as number,
      idleTimeoutMs: flags["web.idle-timeout"] as number,
      maxHeaderBytes: flags["web.max-header-bytes"] as number,
      headers: security.web.headers,
      logger,
      ...(security.tls ? { tls: security.tls } : {}),
    });
  } catch (error) {
    logger.error("Cannot listen", {
      address: flags["web.listen-address"],
      err: error,
    });
    return 1;
  }
  logger.info("Starting pushprox-proxy", {
    version: VERSION,
    scrape_default_timeout: formatDuration(
      flags["scrape.default-timeout"] as number,
    ),
    scrape_max_timeout: formatDuration(flags["scrape.max-timeout"] as number),
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
  if (grpcListen !== null) {
    try {
      grpc = await serveGrpc(proxy, {
        ...grpcListen,
        connections,
        acceptCheckIntervalMs,
        signal: stop.signal,
        logger,
        headersTimeoutMs: flags["web.read-header-timeout"] as number,
        idleTimeoutMs: flags["web.idle-timeout"] as number,
        requestTimeoutMs: (flags["scrape.max-timeout"] as number) + 30_000,
        onLimit: (limit) => proxy.metrics.limitHits.inc({ limit }),
        ...(security.tls ? { tls: security.tls } : {}),
      });
    } catch (error) {
      logger.error("Cannot listen", {
        address: flags["grpc.listen-address"],
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
