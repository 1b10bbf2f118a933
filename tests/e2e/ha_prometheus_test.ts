/**
 * High availability with real Prometheus servers: two proxies, two clients
 * connected to both, one Prometheus per proxy. All targets are up on both;
 * when one proxy dies, scrapes through the other go on without a gap, and
 * the clients reconnect to the dead one when it is back on its port.
 */

import assert from "node:assert/strict";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import {
  freePort,
  spawn,
  startClientProcess,
  startProxyProcess,
  type TestProcess,
  waitUntil,
} from "../support.ts";
import { PROMETHEUS, queryPrometheus as query, skipReason } from "../prometheus.ts";

const skip = skipReason("HA test", [PROMETHEUS]);

/** Resolves when every target of `job` is up on that Prometheus. */
function allUp(promPort: number, targets: number, what: string): Promise<true> {
  return waitUntil(
    async () => {
      const up = await query(promPort, `up{job="pushprox"}`);
      return up.length === targets && up.every((s) => s.value[1] === "1") || undefined;
    },
    30_000,
    what,
  );
}

Deno.test({
  name: "two proxies, two Prometheus: one proxy dies, the other scrapes on without a gap",
  ignore: skip !== "",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const processes: TestProcess[] = [];
    const dir = await Deno.makeTempDir({ prefix: "pushprox-ha-" });
    const target = createServer((_req, res) => res.end("ha_test 1\n"));
    await new Promise<void>((resolve) => target.listen(0, "127.0.0.1", resolve));
    const targetPort = (target.address() as AddressInfo).port;
    try {
      let a = await startProxyProcess();
      processes.push(a.process);
      const b = await startProxyProcess();
      processes.push(b.process);
      for (const fqdn of ["127.0.0.1", "localhost"]) {
        processes.push(startClientProcess([
          `--proxy-url=${a.url}/`,
          `--proxy-url=${b.url}/`,
          `--fqdn=${fqdn}`,
          "--proxy.retry.max-wait=1s",
        ]));
      }

      const prometheus: number[] = [];
      for (const [name, proxy] of [["a", a], ["b", b]] as const) {
        const port = await freePort();
        await Deno.writeTextFile(
          `${dir}/${name}.yml`,
          `
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: pushprox
    proxy_url: ${proxy.url}
    static_configs:
      - targets: ["127.0.0.1:${targetPort}", "localhost:${targetPort}"]
`,
        );
        const server = spawn(PROMETHEUS, [
          `--config.file=${dir}/${name}.yml`,
          `--storage.tsdb.path=${dir}/${name}-data`,
          `--web.listen-address=127.0.0.1:${port}`,
        ]);
        processes.push(server);
        await server.waitFor(/Server is ready to receive web requests/, 30_000);
        prometheus.push(port);
      }
      const [promA, promB] = prometheus as [number, number];
      await allUp(promA, 2, "both targets up through proxy A");
      await allUp(promB, 2, "both targets up through proxy B");

      // Proxy A dies without warning.
      const killedAt = Date.now();
      a.process.kill("SIGKILL");
      await a.process.status;
      await waitUntil(
        async () => {
          const up = await query(promA, `up{job="pushprox"}`);
          return up.length === 2 && up.every((s) => s.value[1] === "0") || undefined;
        },
        15_000,
        "Prometheus A to see its proxy gone",
      );
      await new Promise((resolve) => setTimeout(resolve, 3_000));

      // Back on the same port: the clients reconnect to it.
      a = await startProxyProcess([`--web.listen-address=127.0.0.1:${a.port}`]);
      processes.push(a.process);
      await allUp(promA, 2, "both targets up again through the restarted proxy A");

      // Through B, every scrape since the kill succeeded: no gap.
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      const windowS = Math.ceil((Date.now() - killedAt) / 1000);
      const min = await query(promB, `min_over_time(up{job="pushprox"}[${windowS}s])`);
      assert.equal(min.length, 2);
      for (const sample of min) assert.equal(sample.value[1], "1", JSON.stringify(sample.metric));
      const count = await query(promB, `count_over_time(up{job="pushprox"}[${windowS}s])`);
      for (const sample of count) {
        assert.ok(
          Number(sample.value[1]) >= windowS - 2,
          `${sample.value[1]} scrapes in ${windowS}s`,
        );
      }
      const clients = await (await fetch(`${a.url}/clients`)).json() as { targets: string[] }[];
      assert.deepEqual(clients.flatMap((g) => g.targets).sort(), ["127.0.0.1", "localhost"]);
    } finally {
      await Promise.all(processes.reverse().map((p) => p.stop()));
      target.closeAllConnections();
      await new Promise((resolve) => target.close(resolve));
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
});
