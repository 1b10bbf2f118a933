/**
 * The proxy's settings: its flag table and {@linkcode toProxyOptions}, which
 * turns parsed flags into the options of the proxy's parts. Pure: no files,
 * no sockets, so every message about a flag is tested without a process.
 *
 * @module
 */

import { type ListenAddress, parseListenAddress } from "../lib/address.ts";
import { defaultMaxConnections } from "../lib/connection_budget.ts";
import type { FlagSpec, FlagValues } from "../lib/flags.ts";
import { LOG_FLAGS, type LogFormat, type LogLevel } from "../lib/logger.ts";

/** Every flag of the proxy, with its default. */
export const PROXY_FLAGS = [
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
] as const satisfies readonly FlagSpec[];

/** The parsed command line of the proxy. */
export type ProxyFlagValues = FlagValues<typeof PROXY_FLAGS>;

/** What the proxy's flags ask for, grouped by the part that takes it. */
export interface ProxySettings {
  /** `--web.listen-address` as given, for messages. */
  readonly listenAddressText: string;
  /** `--web.listen-address`. */
  readonly listenAddress: ListenAddress;
  /** `--grpc.listen-address` as given, for messages. */
  readonly grpcListenAddressText: string;
  /** Null when `--grpc.listen-address` is empty. */
  readonly grpcListenAddress: ListenAddress | null;
  /** `--log.level` and `--log.format`, for `createLogger`. */
  readonly log: { readonly level: LogLevel; readonly format: LogFormat };
  /** For `loadSecurity` (proxy/auth/security_config.ts), less the logger. */
  readonly security: {
    readonly webConfigFile: string;
    readonly authConfigFile: string;
    readonly reloadIntervalMs: number;
    readonly maxFailuresPerSource: number;
    readonly failureWindowMs: number;
  };
  /** For `createProxy` (proxy/http/server.ts), less the logger and the authenticator. */
  readonly proxy: {
    readonly maxClients: number;
    readonly maxClientsPerSource: number;
    readonly maxRegistryBytes: number;
    readonly maxIdentityBytes: number;
    readonly registrationRatePerSource: number;
    readonly registrationBurstPerSource: number;
    readonly maxScrapes: number;
    readonly maxScrapesPerClient: number;
    readonly maxScrapeBodyBytes: number;
    readonly defaultScrapeTimeoutMs: number;
    readonly maxScrapeTimeoutMs: number;
    readonly registrationTimeoutMs: number;
    readonly heartbeatIntervalMs: number;
    readonly maxMessageBytes: number;
    readonly legacyProtocol: boolean;
    readonly bodyIdleTimeoutMs: number;
  };
  /** `--web.drain-timeout`. */
  readonly drainTimeoutMs: number;
  /** The connection budget; see {@linkcode connectionLimits} for the defaults. */
  readonly connections: {
    /** `--web.max-connections`; undefined: from the fd limit. */
    readonly maxConnections: number | undefined;
    /** `--web.max-connections-per-source`; undefined: half of maxConnections. */
    readonly maxPerSource: number | undefined;
    readonly acceptCheckIntervalMs: number;
  };
  /** For `serveProxy` (proxy/http/server.ts). */
  readonly serve: {
    readonly requestTimeoutMs: number;
    readonly headersTimeoutMs: number;
    readonly idleTimeoutMs: number;
    readonly maxHeaderBytes: number;
  };
  /** For `serveGrpc` (proxy/connect/grpc_server.ts). */
  readonly grpc: {
    readonly requestTimeoutMs: number;
    readonly headersTimeoutMs: number;
    readonly idleTimeoutMs: number;
  };
}

/**
 * Turns the proxy's parsed flags into its settings, checking them.
 *
 * @example Defaults
 * ```ts
 * import { parseFlags } from "../lib/flags.ts";
 * import { PROXY_FLAGS, toProxyOptions } from "./settings.ts";
 *
 * const settings = toProxyOptions(parseFlags(PROXY_FLAGS, ["--web.listen-address=:9999"]));
 * console.assert(settings.listenAddress.port === 9999);
 * console.assert(settings.proxy.maxScrapeTimeoutMs === 300_000);
 * ```
 *
 * @param flags The parsed command line.
 * @returns The settings.
 * @throws {SyntaxError} For a listen address without a valid port.
 */
export function toProxyOptions(flags: ProxyFlagValues): ProxySettings {
  const listenAddressText = flags["web.listen-address"];
  const listenAddress = parseListenAddress(listenAddressText);
  const grpcListenAddressText = flags["grpc.listen-address"];
  const grpcListenAddress = grpcListenAddressText === ""
    ? null
    : parseListenAddress(grpcListenAddressText);
  // A request may take as long as the longest scrape, and a little more.
  const requestTimeoutMs = flags["scrape.max-timeout"] + 30_000;
  return {
    listenAddressText,
    listenAddress,
    grpcListenAddressText,
    grpcListenAddress,
    log: { level: flags["log.level"], format: flags["log.format"] },
    security: {
      webConfigFile: flags["web.config.file"],
      authConfigFile: flags["auth.config.file"],
      reloadIntervalMs: flags["web.config.reload-interval"],
      maxFailuresPerSource: flags["auth.max-failures-per-source"],
      failureWindowMs: flags["auth.failure-window"],
    },
    proxy: {
      maxClients: flags["clients.max"],
      maxClientsPerSource: flags["clients.max-per-source"],
      maxRegistryBytes: flags["registry.max-bytes"],
      maxIdentityBytes: flags["registration.max-identity-bytes"],
      registrationRatePerSource: flags["registration.rate-per-source"],
      registrationBurstPerSource: flags["registration.burst-per-source"],
      maxScrapes: flags["scrape.max-concurrent"],
      maxScrapesPerClient: flags["scrape.max-concurrent-per-client"],
      maxScrapeBodyBytes: flags["scrape.max-body-bytes"],
      defaultScrapeTimeoutMs: flags["scrape.default-timeout"],
      maxScrapeTimeoutMs: flags["scrape.max-timeout"],
      registrationTimeoutMs: flags["registration.timeout"],
      heartbeatIntervalMs: flags["poll.heartbeat-interval"],
      maxMessageBytes: flags["web.max-message-bytes"],
      legacyProtocol: flags["legacy.enabled"],
      bodyIdleTimeoutMs: flags["web.body-idle-timeout"],
    },
    drainTimeoutMs: flags["web.drain-timeout"],
    connections: {
      maxConnections: flags["web.max-connections"],
      maxPerSource: flags["web.max-connections-per-source"],
      acceptCheckIntervalMs: flags["web.accept-check-interval"],
    },
    serve: {
      requestTimeoutMs,
      headersTimeoutMs: flags["web.read-header-timeout"],
      idleTimeoutMs: flags["web.idle-timeout"],
      maxHeaderBytes: flags["web.max-header-bytes"],
    },
    grpc: {
      requestTimeoutMs,
      headersTimeoutMs: flags["web.read-header-timeout"],
      idleTimeoutMs: flags["web.idle-timeout"],
    },
  };
}

/**
 * The connection caps: the flags', or the soft fd limit less a reserve, and
 * half of that per source.
 *
 * @param connections From {@linkcode ProxySettings}.
 * @param fdLimit The soft open-files limit; null when unknown.
 * @returns Both caps (0: no limit).
 */
export function connectionLimits(
  connections: ProxySettings["connections"],
  fdLimit: number | null,
): { maxConnections: number; maxPerSource: number } {
  const maxConnections = connections.maxConnections ?? defaultMaxConnections(fdLimit);
  const maxPerSource = connections.maxPerSource ?? Math.ceil(maxConnections / 2);
  return { maxConnections, maxPerSource };
}
