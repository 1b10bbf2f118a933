/**
 * What the engine tests share: a backend exporter on loopback, an engine
 * over a module configuration, and one request served through it.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { Registry } from "../../lib/prom_client.ts";
import { createNullLogger } from "../../lib/logger.ts";
import { parseConfig } from "./config.ts";
import { createModuleEngine, type ModuleEngine, prepareConfig } from "./engine.ts";
import { createModuleMetrics, type ModuleMetrics } from "./metrics.ts";

export const VALID = "# HELP up Whether up.\n# TYPE up gauge\nup 1\n";

export interface Backend {
  port: number;
  requests: IncomingMessage[];
  close(): Promise<void>;
}

export async function startBackend(
  handler: (req: IncomingMessage, res: ServerResponse) => void,
): Promise<Backend> {
  const requests: IncomingMessage[] = [];
  const server: Server = createServer((req, res) => {
    requests.push(req);
    handler(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as AddressInfo).port,
    requests,
    async close() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

export interface Harness {
  engine: ModuleEngine;
  metrics: ModuleMetrics;
  registry: Registry;
}

export async function engineFor(
  yaml: string,
  options: { windowBytes?: number } = {},
): Promise<Harness> {
  const registry = new Registry();
  const metrics = createModuleMetrics(registry);
  const engine = createModuleEngine({
    config: await prepareConfig(parseConfig(yaml, "expexp.yaml")),
    metrics,
    logger: createNullLogger(),
    execMaxOutputBytes: 1024 * 1024,
    ...options,
  });
  return { engine, metrics, registry };
}

export interface Served {
  status: number;
  headers: Map<string, string>;
  error: string;
  bytes: Uint8Array;
  text: string;
  /** Set when the body failed after the status. */
  thrown?: Error;
}

export async function serve(
  engine: ModuleEngine,
  query: string,
  headers: Record<string, string> = {},
  signal: AbortSignal = AbortSignal.timeout(10_000),
): Promise<Served> {
  const response = await engine.serve({
    query: new URLSearchParams(query),
    headers: Object.entries(headers).map(([name, value]) => ({ name, value })),
  }, signal);
  const chunks: Uint8Array[] = [];
  let thrown: Error | undefined;
  if (response.body) {
    try {
      for await (const chunk of response.body) chunks.push(chunk);
    } catch (error) {
      thrown = error as Error;
    }
  }
  const bytes = new Uint8Array(Buffer.concat(chunks));
  return {
    status: response.status,
    headers: new Map(response.headers.map((h) => [h.name, h.value])),
    error: response.error,
    bytes,
    text: new TextDecoder().decode(bytes),
    ...(thrown ? { thrown } : {}),
  };
}

export async function count(
  metric: { get(): Promise<{ values: { labels: object; value: number }[] }> },
  module: string,
): Promise<number> {
  const { values } = await metric.get();
  return values.find((v) => (v.labels as { module?: string }).module === module)?.value ?? 0;
}
