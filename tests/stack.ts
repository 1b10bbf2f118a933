/**
 * An in-process stack for integration tests: a target, the proxy and a
 * client, all on ephemeral loopback ports, torn down together.
 *
 * @module
 */

import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { type Agent, type AgentOptions, startAgent } from "../client/agent/agent.ts";
import { createLogger, createNullLogger, type Logger } from "../lib/logger.ts";
import { createProxy, type Proxy, type ProxyOptions, serveProxy } from "../proxy/http/server.ts";
import { waitUntil } from "./support.ts";

/** A target handler; the stack serves it on 127.0.0.1. */
export type TargetHandler = (req: IncomingMessage, res: ServerResponse) => void;

/** A running test stack; `await using` closes it. */
export interface Stack extends AsyncDisposable {
  proxy: Proxy;
  proxyPort: number;
  proxyUrl: string;
  target: Server;
  targetPort: number;
  /** Starts a client registered as `fqdn` (default "localhost"). */
  startClient(options?: Partial<AgentOptions>): Promise<Agent>;
  /** The URL Prometheus would scrape for `path` on the target. */
  targetUrl(path?: string, host?: string): string;
  close(): Promise<void>;
}

/** Logs to stderr when PUSHPROX_TEST_LOG is set, else nowhere. */
export function testLogger(): Logger {
  const level = Deno.env.get("PUSHPROX_TEST_LOG");
  return level ? createLogger({ level: level as "debug" }) : createNullLogger();
}

/**
 * Starts target and proxy; clients are started by the test.
 *
 * @param target The target's handler.
 * @param proxyOptions Overrides for the proxy.
 * @returns The stack.
 */
export async function startStack(
  target: TargetHandler,
  proxyOptions: Partial<ProxyOptions> = {},
): Promise<Stack> {
  const logger = testLogger();
  const targetServer = createServer(target);
  await new Promise<void>((resolve) => targetServer.listen(0, "127.0.0.1", resolve));
  const targetPort = (targetServer.address() as AddressInfo).port;

  const proxy = createProxy({ logger, defaultMetrics: false, ...proxyOptions });
  const stop = new AbortController();
  const serving = await serveProxy(proxy, {
    hostname: "127.0.0.1",
    port: 0,
    signal: stop.signal,
  });
  const proxyPort = serving.address.port;
  const proxyUrl = `http://127.0.0.1:${proxyPort}`;
  const agents: Agent[] = [];

  const stack: Stack = {
    proxy,
    proxyPort,
    proxyUrl,
    target: targetServer,
    targetPort,
    async startClient(options = {}) {
      const fqdn = options.fqdn ?? "localhost";
      const agent = await startAgent({
        proxyUrl,
        fqdn,
        logger,
        metricsAddress: null,
        defaultMetrics: false,
        retryInitialMs: 50,
        retryMaxMs: 200,
        ...options,
      });
      agents.push(agent);
      await waitUntil(
        () =>
          proxy.coordinator.listClients().some((c) => c.fqdn === fqdn && c.connected) || undefined,
        5_000,
        `client ${fqdn} to register`,
      );
      return agent;
    },
    targetUrl(path = "/metrics", host = "localhost") {
      return `http://${host}:${targetPort}${path}`;
    },
    async close() {
      await Promise.all(agents.map((a) => a.stop()));
      stop.abort();
      await serving.finished;
      targetServer.closeAllConnections();
      await new Promise((resolve) => targetServer.close(resolve));
    },
    async [Symbol.asyncDispose]() {
      await stack.close();
    },
  };
  return stack;
}
