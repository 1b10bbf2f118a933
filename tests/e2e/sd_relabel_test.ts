/**
 * Service discovery that filters: a real Prometheus reads `/clients` with
 * http_sd and keeps only clients that take raw scrapes, by a relabel `keep`
 * on `__meta_pushprox_client_raw_scrapes` (as the README shows); a
 * modules-only client is dropped instead of being scraped raw and shown
 * down (403). The `__meta_*` labels do not reach the series.
 */

import assert from "node:assert/strict";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { startClientProcess, startProxyProcess, type TestProcess, waitUntil } from "../support.ts";
import {
  PROMETHEUS,
  queryPrometheus as query,
  skipReason,
  startPrometheus,
} from "../prometheus.ts";

const skip = skipReason("sd relabel", [PROMETHEUS]);

Deno.test({
  name:
    "http_sd with relabel keep on __meta_pushprox_client_raw_scrapes keeps only raw-scrape clients",
  ignore: skip !== "",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const processes: TestProcess[] = [];
    const dir = await Deno.makeTempDir({ prefix: "pushprox-sd-" });
    const target = createServer((_req, res) => res.end("# TYPE demo gauge\ndemo 1\n"));
    try {
      await new Promise<void>((resolve) => target.listen(0, "127.0.0.1", resolve));
      const targetPort = (target.address() as AddressInfo).port;
      const proxy = await startProxyProcess();
      processes.push(proxy.process);

      const raw = startClientProcess([`--proxy-url=${proxy.url}/`, "--fqdn=localhost"]);
      processes.push(raw);
      await Deno.writeTextFile(
        `${dir}/modules.yaml`,
        `modules:\n  demo:\n    method: http\n    http:\n      port: ${targetPort}\n`,
      );
      const modulesOnly = startClientProcess([
        `--proxy-url=${proxy.url}/`,
        "--fqdn=127.0.0.1",
        `--config.file=${dir}/modules.yaml`,
      ]);
      processes.push(modulesOnly);
      await raw.waitFor(/Registered with the proxy/);
      await modulesOnly.waitFor(/Registered with the proxy/);

      const groups = await (await fetch(`${proxy.url}/clients`)).json();
      const byTarget = Object.fromEntries(
        groups.map((g: { targets: string[]; labels: Record<string, string> }) => [
          g.targets[0],
          g.labels,
        ]),
      );
      assert.equal(byTarget["localhost"]?.__meta_pushprox_client_raw_scrapes, "true");
      assert.equal(byTarget["127.0.0.1"]?.__meta_pushprox_client_raw_scrapes, "false");
      assert.equal(byTarget["127.0.0.1"]?.__meta_pushprox_client_modules, ",demo,");
      assert.equal(byTarget["localhost"]?.__meta_pushprox_client_connected, "true");

      const prometheus = await startPrometheus(
        dir,
        `
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: raw
    proxy_url: ${proxy.url}
    http_sd_configs:
      - url: ${proxy.url}/clients
        refresh_interval: 1s
    relabel_configs:
      - source_labels: [__meta_pushprox_client_raw_scrapes]
        regex: "true"
        action: keep
      - source_labels: [__address__]
        target_label: __address__
        replacement: "$1:${targetPort}"
`,
      );
      processes.push(prometheus.process);

      const up = await waitUntil(
        async () => {
          const result = await query(prometheus.port, `up{job="raw"}`);
          return result.length > 0 && result.every((r) => r.value[1] === "1") ? result : undefined;
        },
        30_000,
        `up{job="raw"} == 1`,
      );
      assert.deepEqual(up.map((s) => s.metric["instance"]), [`localhost:${targetPort}`]);
      assert.ok(
        Object.keys(up[0]!.metric).every((name) => !name.startsWith("__meta_")),
        JSON.stringify(up[0]!.metric),
      );
      const targets = await (await fetch(`http://127.0.0.1:${prometheus.port}/api/v1/targets`))
        .json();
      const dropped = targets.data.droppedTargets.map(
        (t: { discoveredLabels: Record<string, string> }) => t.discoveredLabels["__address__"],
      );
      assert.deepEqual(dropped, ["127.0.0.1"], "the modules-only client is dropped by the rule");
      assert.equal(targets.data.activeTargets.length, 1);
    } finally {
      await Promise.all(processes.map((p) => p.stop()));
      target.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
