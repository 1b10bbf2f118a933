/**
 * End to end with real parts: Debian's Prometheus scrapes Debian's
 * node_exporter through the proxy (proxy_url), both with a static target and
 * with targets discovered from /clients (http_sd_configs), and directly for
 * comparison. The proxy and client run as separate processes, as in
 * production, and a client speaking upstream PushProx's HTTP protocol (a test
 * double written from its wire format) is scraped through the same proxy.
 */

import assert from "node:assert/strict";
import {
  DENO,
  denoEnv,
  spawn,
  startClientProcess,
  startProxyProcess,
  type TestProcess,
  waitUntil,
  withoutMeta,
} from "../support.ts";
import {
  NODE_EXPORTER,
  PROMETHEUS,
  queryPrometheus as query,
  skipReason,
  startNodeExporter,
  startPrometheus,
} from "../prometheus.ts";

const skip = skipReason("e2e", [PROMETHEUS, NODE_EXPORTER]);

Deno.test({
  name: "real Prometheus scrapes real node_exporter through the proxy (static and http_sd)",
  ignore: skip !== "",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const processes: TestProcess[] = [];
    const dir = await Deno.makeTempDir({ prefix: "pushprox-e2e-" });
    try {
      const nodeExporter = await startNodeExporter([
        "cpu",
        "meminfo",
        "loadavg",
        "filesystem",
        "netdev",
      ]);
      processes.push(nodeExporter.process);
      const nodePort = nodeExporter.port;

      const proxy = await startProxyProcess(["--log.level=debug"]);
      processes.push(proxy.process);
      const client = startClientProcess([
        `--proxy-url=${proxy.url}/`,
        "--fqdn=localhost",
        "--label=site=e2e",
      ]);
      processes.push(client);
      await client.waitFor(/Registered with the proxy/);
      // An upstream-protocol client, registered as 127.0.0.1 next to it.
      const legacy = spawn(DENO, [
        "run",
        "--allow-all",
        "tests/legacy_client_double.ts",
        "--fqdn=127.0.0.1",
        `--proxy-url=${proxy.url}/`,
      ], { env: denoEnv() });
      processes.push(legacy);
      const sd = await waitUntil(
        async () => {
          const groups = await (await fetch(`${proxy.url}/clients`)).json();
          return groups.length === 2 ? groups : undefined;
        },
        10_000,
        "both clients in /clients",
      );
      assert.deepEqual(withoutMeta(sd), [
        { targets: ["127.0.0.1"], labels: {} },
        { targets: ["localhost"], labels: { site: "e2e" } },
      ]);

      const prometheus = await startPrometheus(
        dir,
        `
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: direct
    static_configs:
      - targets: ["127.0.0.1:${nodePort}"]
  - job_name: pushprox
    proxy_url: ${proxy.url}
    static_configs:
      - targets: ["localhost:${nodePort}"]
  - job_name: legacy
    proxy_url: ${proxy.url}
    static_configs:
      - targets: ["127.0.0.1:${nodePort}"]
  - job_name: pushprox_sd
    proxy_url: ${proxy.url}
    http_sd_configs:
      - url: ${proxy.url}/clients
        refresh_interval: 1s
    relabel_configs:
      - source_labels: [__address__]
        target_label: __address__
        replacement: "$1:${nodePort}"
`,
      );
      processes.push(prometheus.process);
      const promPort = prometheus.port;

      const targets: Record<string, number> = { direct: 1, pushprox: 1, legacy: 1, pushprox_sd: 2 };
      for (const [job, count] of Object.entries(targets)) {
        await waitUntil(
          async () => {
            const result = await query(promPort, `up{job="${job}"}`);
            return result.length === count && result.every((r) => r.value[1] === "1")
              ? true
              : undefined;
          },
          30_000,
          `up{job="${job}"} == 1 for ${count} target(s)`,
        );
      }
      // The SD job carries the client's label.
      const sdUp = await query(promPort, `up{job="pushprox_sd",instance="localhost:${nodePort}"}`);
      assert.equal(sdUp[0]!.metric["site"], "e2e");

      // The same series arrive through the proxy as directly.
      const names = async (job: string) =>
        (await query(promPort, `count by (__name__) ({job="${job}"})`))
          .map((s) => s.metric["__name__"]!).sort();
      const direct = await names("direct");
      assert.ok(direct.includes("node_load1"), "node_exporter metrics were scraped");
      assert.deepEqual(await names("pushprox"), direct);
      assert.deepEqual(await names("legacy"), direct);
      assert.deepEqual(await names("pushprox_sd"), direct);

      const metrics = await (await fetch(`${proxy.url}/metrics`)).text();
      const count = Number(
        /^pushproxy_proxied_requests_total\{code="200"\} (\d+)/m.exec(metrics)?.[1],
      );
      assert.ok(count >= 2, `proxy counted ${count} successful scrapes`);
    } finally {
      await Promise.all(processes.reverse().map((p) => p.stop()));
      await Deno.remove(dir, { recursive: true });
    }
  },
});
