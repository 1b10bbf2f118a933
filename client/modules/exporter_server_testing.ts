/**
 * What the exporter server tests share: a request helper, an engine over a
 * module configuration in a temporary folder, and a running server.
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
