/**
 * What the exporter server tests share: a request helper, an engine over a
 * module configuration in a temporary folder, a running server, and a
 * server over modules given as YAML.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import http from "node:http";
import https from "node:https";
import { Registry } from "../../lib/prom_client.ts";
import { createNullLogger } from "../../lib/logger.ts";
import { exposition } from "../../lib/metrics.ts";
import {
  type ExporterServer,
  type ExporterServerOptions,
  startExporterServer,
} from "./exporter_server.ts";
import { parseConfig } from "./config.ts";
import { createModuleEngine, type ModuleEngine, prepareConfig } from "./engine.ts";
import { createModuleMetrics } from "./metrics.ts";

export interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
}

export function get(
  port: number,
  path: string,
  options: { headers?: Record<string, string>; method?: string; tls?: https.RequestOptions } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const request = (options.tls ? https : http).request({
      host: "127.0.0.1",
      port,
      path,
      method: options.method ?? "GET",
      headers: options.headers ?? {},
      agent: false,
      ...(options.tls ?? {}),
    }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("error", reject);
      res.on("end", () =>
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          text: Buffer.concat(chunks).toString(),
        }));
    });
    request.on("error", reject);
    request.end();
  });
}

export interface Fixture {
  dir: string;
  engine: ModuleEngine;
  registry: Registry;
}

export async function fixture(): Promise<Fixture> {
  const dir = await Deno.makeTempDir({ prefix: "expexp-server-" });
  await Deno.writeTextFile(`${dir}/up.prom`, "# TYPE up gauge\nup 1\n");
  const config = parseConfig(
    `
modules:
  cron:
    method: file
    file:
      path: ${dir}/up.prom
  node:
    method: http
    http:
      port: 9100
      headers:
        x-api-key: header-secret
      basic_auth_username: admin
      basic_auth_password: password-secret
      path: /metrics?token=query-secret
  script:
    method: exec
    exec:
      command: /bin/echo
      args: ["--password=arg-secret"]
      env:
        API_TOKEN: env-secret
`,
    "expexp.yaml",
  );
  const registry = new Registry();
  const engine = createModuleEngine({
    config: await prepareConfig(config),
    metrics: createModuleMetrics(registry),
    logger: createNullLogger(),
  });
  return { dir, engine, registry };
}

export async function withServer(
  options: Partial<ExporterServerOptions>,
  fn: (server: ExporterServer, fixture: Fixture) => Promise<void>,
): Promise<void> {
  const f = await fixture();
  const server = await startExporterServer({
    engine: f.engine,
    metrics: async () => ({
      contentType: f.registry.contentType,
      body: await exposition(f.registry),
    }),
    logger: createNullLogger(),
    address: { hostname: "127.0.0.1", port: 0 },
    ...options,
  });
  try {
    await fn(server, f);
  } finally {
    await server.close();
    await Deno.remove(f.dir, { recursive: true });
  }
}

/** A running server over an engine of its own (see {@linkcode serveModules}). */
export interface ModulesServer {
  engine: ModuleEngine;
  server: ExporterServer;
  /** The listener's port. */
  port: number;
  /** Stops the server and the engine. */
  close(): Promise<void>;
}

/**
 * Starts a server on 127.0.0.1 over the modules of an expexp.yaml text, its
 * own metrics empty.
 *
 * @param yaml The configuration, e.g. `modules:\n  big:\n    method: http…`.
 * @param options More server options (a signal, say).
 * @returns The running server.
 */
export async function serveModules(
  yaml: string,
  options: Partial<ExporterServerOptions> = {},
): Promise<ModulesServer> {
  const engine = createModuleEngine({
    config: await prepareConfig(parseConfig(yaml, "expexp.yaml")),
    metrics: createModuleMetrics(new Registry()),
    logger: createNullLogger(),
  });
  const server = await startExporterServer({
    engine,
    metrics: () => Promise.resolve({ contentType: "text/plain", body: "" }),
    logger: createNullLogger(),
    address: { hostname: "127.0.0.1", port: 0 },
    ...options,
  });
  return {
    engine,
    server,
    port: server.address!.port,
    async close() {
      await server.close();
      engine.close();
    },
  };
}
