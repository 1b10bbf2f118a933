/**
 * Modules end to end in one process: Prometheus-style requests through the
 * proxy (`/proxy?module=` on the client's fqdn) and on the direct listener
 * reach the same engine; the module list is announced; raw scrapes are
 * refused; reload changes what both ways serve.
 */

import assert from "node:assert/strict";
import http from "node:http";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { RegistryService } from "../../gen/pushprox/v1/pushprox_pb.ts";
import { createClientMetrics } from "../../client/agent/metrics.ts";
import { startExporterServer } from "../../client/modules/exporter_server.ts";
import { parseConfig } from "../../client/modules/config.ts";
import { createModuleEngine, prepareConfig } from "../../client/modules/engine.ts";
import { createModuleMetrics } from "../../client/modules/metrics.ts";
import { createConfigReloader } from "../../client/modules/reloader.ts";
import { createModuleScrapeHandler } from "../../client/modules/scrape_route.ts";
import { announcedModules } from "../../client/modules/cli.ts";
import { proxiedGet } from "../support.ts";
import { type Stack, startStack, testLogger } from "../stack.ts";

const NODE_TEXT = "# HELP node_load1 1m load average.\n# TYPE node_load1 gauge\nnode_load1 0.5\n";

function target(req: http.IncomingMessage, res: http.ServerResponse): void {
  const url = new URL(req.url!, "http://x");
  if (url.pathname === "/metrics") {
    res.writeHead(200, { "content-type": "text/plain; version=0.0.4" }).end(NODE_TEXT);
  } else if (url.pathname === "/probe") {
    res.writeHead(200, { "content-type": "text/plain; version=0.0.4" })
      .end(
        `probe_success{module="${url.searchParams.get("module")}",target="${
          url.searchParams.get("target")
        }"} 1\n`,
      );
  } else if (url.pathname === "/garbage") {
    res.writeHead(200, { "content-type": "text/plain" }).end("<html>Service Unavailable</html>\n");
  } else {
    res.writeHead(404).end("no\n");
  }
}

function configYaml(stack: Stack, dir: string): string {
  return `
modules:
  node:
    method: http
    http:
      address: 127.0.0.1
      port: ${stack.targetPort}
  blackbox:
    method: http
    http:
      address: 127.0.0.1
      port: ${stack.targetPort}
      path: /probe
  broken:
    method: http
    http:
      address: 127.0.0.1
      port: ${stack.targetPort}
      path: /garbage
  hang:
    method: exec
    timeout: 300ms
    exec:
      command: /bin/sh
      args: ["-c", "sleep 60"]
  cron:
    method: file
    file:
      path: ${dir}/cron.prom
`;
}

async function setup(stack: Stack, text: string, options: { allowRawScrapes?: boolean } = {}) {
  const logger = testLogger();
  const metrics = createClientMetrics({ defaultMetrics: false });
  const moduleMetrics = createModuleMetrics(metrics.registry);
  let current = text;
  const load = () => Promise.resolve(parseConfig(current, "expexp.yaml"));
  const initial = await prepareConfig(await load());
  const engine = createModuleEngine({ config: initial, metrics: moduleMetrics, logger });
  const announced = announcedModules(initial.config);
  const reloader = createConfigReloader({
    load,
    engine,
    metrics: moduleMetrics,
    logger,
    onReload: (config) => announced.splice(0, announced.length, ...announcedModules(config)),
  });
  const ownMetrics = async () => ({
    contentType: metrics.registry.contentType,
    body: await metrics.registry.metrics(),
  });
  const agent = await stack.startClient({
    metrics,
    modules: announced,
    moduleHandler: createModuleScrapeHandler({
      engine,
      ownMetrics,
      allowRawScrapes: options.allowRawScrapes ?? false,
    }),
  });
  const server = await startExporterServer({
    engine,
    metrics: ownMetrics,
    logger,
    address: { hostname: "127.0.0.1", port: 0 },
  });
  return {
    agent,
    server,
    reloader,
    setText: (t: string) => current = t,
    async close() {
      await server.close();
    },
  };
}

function direct(port: number, path: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    http.get({ host: "127.0.0.1", port, path, agent: false }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (c) => text += c);
      res.on("end", () => resolve({ status: res.statusCode!, text }));
    }).on("error", reject);
  });
}

async function viaProxy(stack: Stack, path: string, headers: Record<string, string> = {}) {
  const response = await proxiedGet(stack.proxyPort, `http://localhost:9999${path}`, headers);
  return { ...response, text: new TextDecoder().decode(response.body) };
}

Deno.test("modules through the proxy and directly: same engine, same answers", async () => {
  const stack = await startStack(target);
  const dir = await Deno.makeTempDir();
  await Deno.writeTextFile(`${dir}/cron.prom`, "backup_ok 1\n");
  const modules = await setup(stack, configYaml(stack, dir));
  try {
    const port = modules.server.address!.port;
    for (const get of [(p: string) => viaProxy(stack, p), (p: string) => direct(port, p)]) {
      let reply = await get("/proxy?module=node");
      assert.equal(reply.status, 200);
      assert.equal(reply.text, NODE_TEXT);

      reply = await get("/proxy?module=blackbox&module=icmp&target=example.com");
      assert.equal(reply.status, 200);
      assert.equal(reply.text, 'probe_success{module="icmp",target="example.com"} 1\n');

      reply = await get("/proxy?module=cron");
      assert.equal(reply.status, 200);
      assert.match(reply.text, /^backup_ok 1\n# HELP expexp_file_mtime_timestamp/);

      reply = await get("/proxy?module=mysql");
      assert.equal(reply.status, 404);
      assert.match(reply.text, /unknown module "mysql"/);

      reply = await get("/proxy?target=x");
      assert.equal(reply.status, 400);
      assert.match(reply.text, /missing module parameter/);

      reply = await get("/proxy?module=..%2F..%2Fetc%2Fpasswd");
      assert.equal(reply.status, 400);
      assert.match(reply.text, /path separator/);

      reply = await get("/proxy?module=broken");
      assert.equal(reply.status, 502);
      assert.match(reply.text, /module broken: the backend's answer failed verification: line 1/);
    }

    // Through the proxy the answer says which scrape failed.
    const hang = await viaProxy(stack, "/proxy?module=hang", {
      "x-prometheus-scrape-timeout-seconds": "5",
    });
    assert.equal(hang.status, 504);
    assert.match(hang.text, /module hang: no complete answer within 300ms/);

    // Raw scrapes are refused by default, naming the opt-in flag.
    const raw = await proxiedGet(stack.proxyPort, stack.targetUrl("/metrics"));
    assert.equal(raw.status, 403);
    assert.match(new TextDecoder().decode(raw.body), /--allow\.raw-scrapes/);

    // The client's own metrics through the proxy, with the module metrics in them.
    const own = await viaProxy(stack, "/-/metrics");
    assert.equal(own.status, 200);
    assert.match(own.text, /expexp_proxy_duration_seconds_count\{module="node"\} 2/);
    assert.match(own.text, /expexp_malformed_content_errors_total\{module="broken"\} 2/);
    assert.match(own.text, /expexp_proxy_timeout_errors_total\{module="hang"\} 1/);
    assert.match(own.text, /pushprox_client_scrapes_total/);

    // The client is still serving after all that.
    assert.equal((await viaProxy(stack, "/proxy?module=node")).status, 200);
  } finally {
    await modules.close();
    await stack.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the module list is announced and shown by ListClients", async () => {
  const stack = await startStack(target);
  const dir = await Deno.makeTempDir();
  const modules = await setup(stack, configYaml(stack, dir));
  try {
    const registry = createClient(
      RegistryService,
      createConnectTransport({ baseUrl: stack.proxyUrl, httpVersion: "1.1" }),
    );
    const { clients } = await registry.listClients({});
    assert.deepEqual(clients[0]!.modules, ["node", "blackbox", "broken", "hang", "cron"]);
  } finally {
    await modules.close();
    await stack.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("--allow.raw-scrapes lets port scrapes through next to modules", async () => {
  const stack = await startStack(target);
  const dir = await Deno.makeTempDir();
  const modules = await setup(stack, configYaml(stack, dir), { allowRawScrapes: true });
  try {
    const raw = await proxiedGet(stack.proxyPort, stack.targetUrl("/metrics"));
    assert.equal(raw.status, 200);
    assert.equal(new TextDecoder().decode(raw.body), NODE_TEXT);
    assert.equal((await viaProxy(stack, "/proxy?module=node")).status, 200);
  } finally {
    await modules.close();
    await stack.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("reload changes the modules served through the proxy and directly; a bad file keeps the old", async () => {
  const stack = await startStack(target);
  const dir = await Deno.makeTempDir();
  const modules = await setup(stack, configYaml(stack, dir));
  try {
    const port = modules.server.address!.port;
    modules.setText(
      `modules:\n  renamed:\n    method: http\n    http: {address: 127.0.0.1, port: ${stack.targetPort}}\n`,
    );
    assert.deepEqual(await modules.reloader.reload(), { ok: true, modules: ["renamed"] });
    assert.equal((await viaProxy(stack, "/proxy?module=renamed")).status, 200);
    assert.equal((await viaProxy(stack, "/proxy?module=node")).status, 404);
    assert.equal((await direct(port, "/proxy?module=renamed")).status, 200);

    modules.setText("modules:\n  x:\n    method: carrier-pigeon\n");
    const failed = await modules.reloader.reload();
    assert.equal(failed.ok, false);
    assert.match(!failed.ok ? failed.error : "", /^expexp\.yaml:3: modules\.x\.method/);
    assert.equal((await viaProxy(stack, "/proxy?module=renamed")).status, 200);
    const own = await viaProxy(stack, "/-/metrics");
    assert.match(own.text, /pushprox_client_config_last_reload_successful 0/);
  } finally {
    await modules.close();
    await stack.close();
    await Deno.remove(dir, { recursive: true });
  }
});
