/**
 * Assembles a running client from its parts: the Connect client of the proxy,
 * the scraper, the poll loop and the metrics listener.
 *
 * @module
 */

import { createClient } from "@connectrpc/connect";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { ClientService } from "../gen/pushprox/v1/pushprox_pb.ts";
import type { ListenAddress } from "../lib/address.ts";
import type { Logger } from "../lib/logger.ts";
import { VERSION } from "../lib/version.ts";
import { type ClientMetrics, createClientMetrics } from "./metrics.ts";
import { runPoller } from "./poller.ts";
import { createProxyTransport, type ProxyTlsOptions } from "./proxy_transport.ts";
import type { ModuleScrapeHandler } from "./modules/scrape_route.ts";
import { createScraper, type ScrapePolicy } from "./scraper.ts";
import {
  createScrapeTransport,
  type ScrapeTransport,
  type TargetTlsOptions,
} from "./scrape_transport.ts";
import { withAuthorization } from "./security_flags.ts";

/** Options for {@linkcode startAgent}. */
export interface AgentOptions {
  proxyUrl: string;
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
}

/** A running client. */
export interface Agent {
  readonly metrics: ClientMetrics;
  /** The metrics listener's address, when enabled. */
  readonly metricsAddress: ListenAddress | null;
  /** Stops polling, lets in-flight scrapes finish, closes the listener. */
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
  const transport = createProxyTransport({
    proxyUrl: options.proxyUrl,
    ...(options.proxyTls ? { tls: options.proxyTls } : {}),
  });
  const scraper = createScraper({
    fqdn: options.fqdn,
    transport: options.scrapeTransport ??
      createScrapeTransport(options.targetTls ? { tls: options.targetTls } : {}),
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
      (req, res) => {
        const path = (req.url ?? "/").split("?", 1)[0];
        if (path === "/-/healthy") {
          res.writeHead(200, { "content-type": "text/plain" }).end("Healthy\n");
          return;
        }
        metrics.registry.metrics().then((body) => {
          res.writeHead(200, { "content-type": metrics.registry.contentType })
            .end(body);
        }, () => res.writeHead(500).end("Cannot collect metrics\n"));
      },
    );
    const { hostname, port } = options.metricsAddress;
    await new Promise<void>((resolve, reject) => {
      server!.once("error", reject);
      server!.listen(port, hostname || undefined, () => resolve());
    });
    const info = server.address() as AddressInfo;
    metricsAddress = { hostname: info.address, port: info.port };
  }

  const stopController = new AbortController();
  const finished = runPoller({
    client: createClient(
      ClientService,
      options.proxyAuthorization
        ? withAuthorization(transport, options.proxyAuthorization)
        : transport,
    ),
    identity: {
      fqdn: options.fqdn,
      labels: options.labels ?? {},
      version: VERSION,
      modules: options.modules ?? [],
    },
    scraper,
    logger,
    metrics,
    ...(options.retryInitialMs !== undefined ? { retryInitialMs: options.retryInitialMs } : {}),
    ...(options.retryMaxMs !== undefined ? { retryMaxMs: options.retryMaxMs } : {}),
  }, stopController.signal).finally(async () => {
    if (server) {
      server.closeAllConnections();
      await new Promise((resolve) => server!.close(resolve));
    }
  });

  return {
    metrics,
    metricsAddress,
    async stop() {
      stopController.abort();
      await finished;
    },
    finished,
  };
}
