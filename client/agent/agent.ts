/**
 * Assembles a running client from its parts: the Connect clients of the
 * proxies, the scraper, one poll loop per proxy endpoint and the metrics
 * listener. With several `--proxy-url`s, or a URL whose host resolves to
 * several addresses, the client keeps a stream to each, so that every
 * replica can serve every scrape.
 *
 * @module
 */

import { lookup } from "node:dns/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { ListenAddress } from "../../lib/address.ts";
import type { Logger } from "../../lib/logger.ts";
import { VERSION } from "../../lib/version.ts";
import { sleep } from "../../lib/sleep.ts";
import { guardHandler, guardServer } from "../../lib/listener_guard.ts";
import { type ClientMetrics, createClientMetrics, createMetricsHandler } from "./metrics.ts";
import {
  desiredEndpoints,
  type Endpoint,
  isIpLiteral,
  reconcileEndpoints,
  redact,
  type Resolution,
} from "./endpoints.ts";
import { type ProxyEnv, proxyForUrl } from "../transport/env_proxy.ts";
import { runPoller } from "./poller.ts";
import { createNativePoll, type PollStream } from "../transport/native_poll.ts";
import {
  createNativePush,
  nativePushSupported,
  type PushSender,
} from "../transport/native_push.ts";
import type { ConnectPath } from "../transport/proxy_transport.ts";
import { parseProxyUrl, type ProxyTlsOptions } from "../transport/proxy_url.ts";
import type { ModuleScrapeHandler } from "../scrape/scrape_types.ts";
import { createScraper, type ScrapePolicy } from "../scrape/scraper.ts";
import {
  createScrapeTransport,
  type ScrapeTransport,
  type TargetTlsOptions,
} from "../scrape/scrape_transport.ts";
import { errorMessage } from "../../lib/error_message.ts";

/** Options for {@linkcode startAgent}. */
export interface AgentOptions {
  /** The proxy's URL (one `--proxy-url`). */
  proxyUrl?: string;
  /** More proxies (repeated `--proxy-url`); a stream is kept to each. */
  proxyUrls?: string[];
  /**
   * How often proxy host names are resolved again; a name with several
   * addresses gets one stream per address. 0 connects by name only.
   * @default {30000}
   */
  resolveIntervalMs?: number;
  /** Resolves a host name to its addresses (tests). @default {node:dns lookup, all} */
  resolve?: (hostname: string) => Promise<string[]>;
  /** Where HTTPS_PROXY, HTTP_PROXY and NO_PROXY are read. @default {Deno.env} */
  env?: ProxyEnv;
  fqdn: string;
  labels?: Record<string, string>;
  logger: Logger;
  /** TLS for the connection to the proxy. */
  proxyTls?: ProxyTlsOptions;
  /** Where to serve /metrics; null disables it. */
  metricsAddress?: ListenAddress | null;
  retryInitialMs?: number;
  retryMaxMs?: number;
  /** Replaces the node:http transport to targets (tests). */
  scrapeTransport?: ScrapeTransport;
  /** Export process_* metrics. @default {true} */
  defaultMetrics?: boolean;
  /** Metrics created by the caller (to share the registry); replaces `defaultMetrics`. */
  metrics?: ClientMetrics;
  /** Serves `/proxy?module=` scrapes (see client/modules/scrape_route.ts). */
  moduleHandler?: ModuleScrapeHandler;
  /** What raw scrapes may fetch (`--allow-port`, `--allow-path`, `--use-localhost`). */
  scrapePolicy?: Partial<ScrapePolicy>;
  /** Reads the token sent to targets (`--token-path`). */
  readTargetToken?: (() => Promise<string>) | null;
  /** TLS for https targets, apart from the proxy's (`--target.tls.*`). */
  targetTls?: TargetTlsOptions;
  /** The Authorization header for the proxy, per call (`--auth.token-file`). */
  proxyAuthorization?: (() => string) | null;
  /**
   * Module names announced when registering; read at each (re)registration,
   * so changing the array in place takes effect at the next one.
   */
  modules?: string[];
  /** Refuses raw scrapes (modules only): told to the proxy for service discovery. @default {false} */
  modulesOnly?: boolean;
  /** Called when a poller gives up because the proxy refuses this client for good. */
  onFatal?: (reason: string) => void;
  /**
   * Push on native I/O (client/transport/native_push.ts) where it covers the proxy
   * connection (binary Connect over HTTP/1.1, no HTTP proxy, no custom CA or
   * client certificate); false pushes through connect-es. @default {true}
   */
  nativePush?: boolean;
  /**
   * Poll on native I/O (client/transport/native_poll.ts) under the same rule as
   * `nativePush`; false polls through connect-es. @default {true}
   */
  nativePoll?: boolean;
  /** Scrape plain-http targets on native I/O (else node:http). @default {true} */
  nativeScrape?: boolean;
  /**
   * Stops the agent (as `stop()` does): polling ends, in-flight scrapes
   * finish, the listener closes; `finished` settles then.
   */
  signal?: AbortSignal;
}

/** A running client. */
export interface Agent {
  readonly metrics: ClientMetrics;
  /** The metrics listener's address, when enabled. */
  readonly metricsAddress: ListenAddress | null;
  /** Proxy streams registered now. */
  readonly connectedProxies: number;
  /** The endpoints streamed to now, as announced in PollRequest.proxies. */
  endpoints(): string[];
  /**
   * Stops polling, lets in-flight scrapes finish, closes the listener; the
   * same as aborting `options.signal`, then awaiting `finished`.
   */
  stop(): Promise<void>;
  /** Resolves when the agent has stopped. */
  readonly finished: Promise<void>;
}

/**
 * Starts a client.
 *
 * @param options Proxy URL, identity, TLS, metrics address and logger.
 * @returns The running agent.
 */
export async function startAgent(options: AgentOptions): Promise<Agent> {
  const { logger } = options;
  const metrics = options.metrics ?? createClientMetrics({
    defaultMetrics: options.defaultMetrics ?? true,
  });
  const urls = [
    ...(options.proxyUrl !== undefined ? [options.proxyUrl] : []),
    ...(options.proxyUrls ?? []),
  ];
  if (urls.length === 0) throw new TypeError("Cannot start: no proxy URL");
  const env = options.env ?? Deno.env.toObject();
  // Which URLs go through an HTTP proxy; decided once, the environment is fixed.
  const httpProxies = new Map<string, URL | null>();
  for (const url of urls) {
    const via = proxyForUrl(new URL(url), env);
    httpProxies.set(url, via);
    if (via !== null) {
      logger.info("Connecting through an HTTP proxy (CONNECT)", {
        proxy_url: redact(url),
        http_proxy: redact(via.toString()),
      });
    }
  }
  const resolveIntervalMs = options.resolveIntervalMs ?? 30_000;
  // One address family only: a dual-stack host (or pod) has an A and an AAAA
  // record for the same proxy, and two streams to one proxy displace each other.
  const resolve = options.resolve ?? (async (hostname: string) => {
    const found = await lookup(hostname, { all: true });
    const v4 = found.filter((a) => a.family === 4);
    return (v4.length > 0 ? v4 : found).map((a) => a.address);
  });
  let connectedCount = 0;
  const ownTransport = options.scrapeTransport ? null : createScrapeTransport({
    ...(options.targetTls ? { tls: options.targetTls } : {}),
    ...(options.nativeScrape === false ? { native: false } : {}),
  });
  const scraper = createScraper({
    fqdn: options.fqdn,
    transport: options.scrapeTransport ?? ownTransport!,
    ...(options.scrapePolicy ? { policy: options.scrapePolicy } : {}),
    ...(options.readTargetToken ? { readToken: options.readTargetToken } : {}),
    ...(options.moduleHandler ? { moduleHandler: options.moduleHandler } : {}),
  });

  let server: Server | null = null;
  let metricsAddress: ListenAddress | null = null;
  if (options.metricsAddress) {
    server = createServer(
      {
        headersTimeout: 10_000,
        requestTimeout: 30_000,
        keepAliveTimeout: 65_000,
        maxHeaderSize: 16384,
        // How often the timeouts are checked: bounds how long a slow client lingers.
        connectionsCheckingInterval: 1_000,
      },
      guardHandler(
        createMetricsHandler({
          registry: metrics.registry,
          // Ready once registered with at least one proxy.
          ready: () =>
            connectedCount > 0
              ? {
                ready: true,
                message: `Ready: registered with ${connectedCount} of ${pollers.size} proxies\n`,
              }
              : { ready: false, message: "Not ready: not registered with any proxy\n" },
        }),
        options.logger,
      ),
    );
    guardServer(server, { logger: options.logger });
    const { hostname, port } = options.metricsAddress;
    await new Promise<void>((resolve, reject) => {
      server!.once("error", (error: Error & { code?: string }) => {
        const why = error.code === "EADDRINUSE"
          ? "the address is in use (another process, or another client, listens there)"
          : error.message;
        reject(
          new Error(
            `Cannot listen on --metrics-addr=${hostname}:${port}: ${why}; choose another address or --metrics-addr= to turn it off`,
          ),
        );
      });
      server!.listen(port, hostname || undefined, () => resolve());
    });
    const info = server.address() as AddressInfo;
    metricsAddress = { hostname: info.address, port: info.port };
  }

  const stopController = new AbortController();
  const stopping = options.signal
    ? AbortSignal.any([stopController.signal, options.signal])
    : stopController.signal;
  const identity = {
    fqdn: options.fqdn,
    labels: options.labels ?? {},
    version: VERSION,
    modules: options.modules ?? [],
    modulesOnly: options.modulesOnly ?? false,
  };
  /** Running pollers by endpoint key. */
  const pollers = new Map<string, { stop: AbortController; done: Promise<void> }>();
  /** Pollers told to stop that may still finish scrapes. */
  const retiring = new Set<Promise<void>>();
  let announced: string[] = [];

  function startPoller(endpoint: Endpoint): void {
    const auth = { current: null as string | null };
    const { baseUrl, authorization: basic } = parseProxyUrl(endpoint.url);
    const httpProxy = httpProxies.get(endpoint.url) ?? null;
    const supported = nativePushSupported({
      baseUrl,
      httpProxy,
      ...(options.proxyTls ? { tls: options.proxyTls } : {}),
      address: endpoint.address,
    });
    // As on the connect-es path, the URL's userinfo wins over --auth.token-file;
    // the token read when the Poll stream opens goes with the pushes that follow.
    const tokenFile = options.proxyAuthorization ?? null;
    const native = supported && (options.nativePush ?? true)
      ? createNativePush({
        baseUrl,
        address: endpoint.address,
        authorization: basic !== undefined
          ? () => basic
          : tokenFile
          ? () => auth.current ?? tokenFile()
          : () => null,
      })
      : null;
    const nativePoll = supported && (options.nativePoll ?? true)
      ? createNativePoll({
        baseUrl,
        address: endpoint.address,
        authorization: basic !== undefined
          ? () => basic
          : tokenFile
          ? () => (auth.current = tokenFile())
          : () => null,
      })
      : null;
    // connect-es (and connect-node under it) only where the native path does
    // not serve: imported on first use, so a plain client never loads it.
    let fallback: Promise<ConnectPath> | null = null;
    const connectPath = () =>
      fallback ??= import("../transport/proxy_transport.ts").then((m) =>
        m.createConnectPath({
          proxyUrl: endpoint.url,
          ...(options.proxyTls ? { tls: options.proxyTls } : {}),
          address: endpoint.address,
          httpProxy,
          authorization: tokenFile,
          authState: auth,
        })
      );
    const poll: PollStream = nativePoll ?? async function* (request, signal) {
      yield* (await connectPath()).poll(request, signal);
    };
    const push: PushSender = native?.send ??
      (async (head, body, signal) => await (await connectPath()).push(head, body, signal));
    logger.debug(
      `Polling ${nativePoll ? "on native HTTP/1.1" : "through connect-es"}, pushing ${
        native ? "on native HTTP/1.1" : "through connect-es"
      }`,
      { proxy: endpoint.label },
    );
    const stop = new AbortController();
    let connected = false;
    const setConnected = (now: boolean) => {
      if (now === connected) return;
      connected = now;
      connectedCount += now ? 1 : -1;
      metrics.connected.set(connectedCount);
    };
    const done = runPoller({
      poll,
      push,
      identity,
      scraper,
      logger: logger.with({ proxy: endpoint.label }),
      metrics,
      onState: setConnected,
      proxies: () => announced,
      ...(options.onFatal ? { onFatal: options.onFatal } : {}),
      ...(options.retryInitialMs !== undefined ? { retryInitialMs: options.retryInitialMs } : {}),
      ...(options.retryMaxMs !== undefined ? { retryMaxMs: options.retryMaxMs } : {}),
      signal: AbortSignal.any([stop.signal, stopping]),
    }).finally(() => {
      setConnected(false);
      fallback?.then((path) => path.close(), () => {});
      native?.close();
    });
    pollers.set(endpoint.key, { stop, done });
  }

  /** Re-resolves the proxies' names; keeps the last answer when a lookup fails. */
  const resolutions = new Map<string, Resolution>();
  async function resolveAll(): Promise<void> {
    await Promise.all(urls.map(async (url) => {
      const host = new URL(url).hostname;
      const pin = resolveIntervalMs > 0 && !isIpLiteral(host) && httpProxies.get(url) === null;
      if (!pin) return void resolutions.set(url, { addresses: [], pin: false });
      try {
        resolutions.set(url, { addresses: await resolve(host), pin: true });
      } catch (error) {
        const known = resolutions.has(url);
        logger.warn(
          known
            ? "Cannot resolve the proxy's host name; keeping the last answer"
            : "Cannot resolve the proxy's host name; connecting by name until it resolves",
          { proxy_url: redact(url), err: errorMessage(error) },
        );
      }
    }));
  }

  function apply(): void {
    const desired = desiredEndpoints(urls, resolutions);
    const { start, stop } = reconcileEndpoints(pollers.keys(), desired);
    announced = desired.map((e) => e.label);
    for (const key of stop) {
      const poller = pollers.get(key)!;
      pollers.delete(key);
      poller.stop.abort();
      retiring.add(poller.done);
      poller.done.finally(() => retiring.delete(poller.done));
      logger.info("Proxy endpoint gone; stream stopped", {
        endpoint: key.replace(/\/\/[^@/]*@/, "//"),
      });
    }
    for (const endpoint of start) {
      if (pollers.size > 0 || stop.length > 0) {
        logger.info("Proxy endpoint added", { proxy: endpoint.label });
      }
      startPoller(endpoint);
    }
  }

  const needsResolving = resolveIntervalMs > 0 &&
    urls.some((url) => !isIpLiteral(new URL(url).hostname) && httpProxies.get(url) === null);
  const loop = (async () => {
    while (!stopping.aborted) {
      if (needsResolving) await resolveAll();
      if (stopping.aborted) break;
      apply();
      await sleep(idleWaitMs(needsResolving, resolveIntervalMs), { signal: stopping })
        .catch(() => {});
    }
  })();

  const finished = loop.then(async () => {
    await Promise.allSettled([...[...pollers.values()].map((p) => p.done), ...retiring]);
  }).finally(async () => {
    ownTransport?.close();
    if (server) {
      server.closeAllConnections();
      await new Promise((resolve) => server!.close(resolve));
    }
  });

  return {
    metrics,
    metricsAddress,
    get connectedProxies() {
      return connectedCount;
    },
    endpoints() {
      return [...announced];
    },
    async stop() {
      stopController.abort();
      await finished;
    },
    finished,
  };
}

/**
 * How long the agent's loop waits between rounds: the resolve interval when
 * proxy names are re-resolved, otherwise until the agent stops (the endpoints
 * never change, so there is nothing to re-apply).
 *
 * @param needsResolving Whether any proxy host name is re-resolved.
 * @param resolveIntervalMs The `resolveIntervalMs` option.
 * @returns Milliseconds to wait; `Infinity` waits for the stop signal.
 */
export function idleWaitMs(needsResolving: boolean, resolveIntervalMs: number): number {
  return needsResolving && resolveIntervalMs > 0 ? resolveIntervalMs : Infinity;
}
