/**
 * End to end with real parts: Debian's Prometheus scrapes Debian's
 * node_exporter as the client's `node` module, through the proxy
 * (`proxy_url`, `metrics_path: /proxy`, `params: module: [node]`) and
 * directly on the client's exporter_exporter listener; plus the client's own
 * metrics through the proxy. The proxy and client run as separate processes.
 */

import assert from "node:assert/strict";
import { startClientProcess, startProxyProcess, type TestProcess, waitUntil } from "../support.ts";
import {
  NODE_EXPORTER,
  PROMETHEUS,
  queryPrometheus as query,
  skipReason,
  startNodeExporter,
  startPrometheus,
} from "../prometheus.ts";

const skip = skipReason("e2e modules", [PROMETHEUS, NODE_EXPORTER]);

Deno.test({
  name: "real Prometheus scrapes a node_exporter module through the proxy and directly",
  ignore: skip !== "",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const processes: TestProcess[] = [];
    const dir = await Deno.makeTempDir({ prefix: "pushprox-e2e-modules-" });
    try {
      const nodeExporter = await startNodeExporter(["cpu", "meminfo", "loadavg"]);
      processes.push(nodeExporter.process);
      const nodePort = nodeExporter.port;

      await Deno.writeTextFile(
        `${dir}/expexp.yaml`,
        `modules:\n  node:\n    method: http\n    http:\n      port: ${nodePort}\n      address: 127.0.0.1\n`,
      );
      const proxy = await startProxyProcess();
      processes.push(proxy.process);
      const client = startClientProcess([
        `--proxy-url=${proxy.url}/`,
        "--fqdn=localhost",
        `--config.file=${dir}/expexp.yaml`,
        "--web.listen-address=127.0.0.1:0",
      ]);
      processes.push(client);
      const match = await client.waitFor(
        /address=127\.0\.0\.1:(\d+) listener="modules http"/,
      );
      const directPort = Number(match[1]);
      await client.waitFor(/Registered with the proxy/);

      const prometheus = await startPrometheus(
        dir,
        `
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: node_via_proxy
    proxy_url: ${proxy.url}
    metrics_path: /proxy
    params:
      module: [node]
    static_configs:
      - targets: ["localhost:9999"]
  - job_name: node_direct
    metrics_path: /proxy
    params:
      module: [node]
    static_configs:
      - targets: ["127.0.0.1:${directPort}"]
  - job_name: client_via_proxy
    proxy_url: ${proxy.url}
    metrics_path: /-/metrics
    static_configs:
      - targets: ["localhost:9999"]
  - job_name: raw_refused
    proxy_url: ${proxy.url}
    static_configs:
      - targets: ["localhost:${nodePort}"]
`,
      );
      processes.push(prometheus.process);
      const promPort = prometheus.port;

      for (const job of ["node_via_proxy", "node_direct", "client_via_proxy"]) {
        await waitUntil(
          async () => {
            const result = await query(promPort, `up{job="${job}"}`);
            return result.length === 1 && result[0]!.value[1] === "1" ? true : undefined;
          },
          30_000,
          `up{job="${job}"} == 1`,
        );
      }
      const names = async (job: string) =>
        (await query(promPort, `count by (__name__) ({job="${job}"})`))
          .map((s) => s.metric["__name__"]!).sort();
      const viaProxy = await names("node_via_proxy");
      assert.ok(viaProxy.includes("node_load1"), "node_exporter series arrived through the proxy");
      assert.ok(viaProxy.includes("node_memory_MemTotal_bytes"));
      assert.deepEqual(await names("node_direct"), viaProxy);

      // The client's own metrics count the module scrapes.
      await waitUntil(
        async () => {
          const result = await query(
            promPort,
            `expexp_proxy_duration_seconds_count{job="client_via_proxy",module="node"}`,
          );
          return result.length === 1 && Number(result[0]!.value[1]) >= 2 ? true : undefined;
        },
        30_000,
        "expexp_proxy_duration_seconds_count for the node module",
      );

      // A raw port scrape is refused while modules are configured.
      const raw = await waitUntil(
        async () => (await query(promPort, `up{job="raw_refused"}`))[0],
        30_000,
        `up{job="raw_refused"}`,
      );
      assert.equal(raw.value[1], "0");
    } finally {
      await Promise.all(processes.reverse().map((p) => p.stop()));
      await Deno.remove(dir, { recursive: true });
    }
  },
});
