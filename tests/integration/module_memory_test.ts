/**
 * The client's memory while serving large module bodies on its own
 * listener (exporter_exporter's path, no proxy) stays bounded: the backend
 * is read only as fast as the scraper takes the body, and written buffers
 * are freed at once. Measured on the client process alone (VmHWM over its
 * idle RSS), with scrapers that discard what they receive.
 */

import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { prometheusText } from "../../bench/target.ts";
import { startClientProcess, type TestProcess } from "../support.ts";

/** Scrapes a module and counts the body without keeping it. */
function drain(port: number, module: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const request = http.request({
      host: "127.0.0.1",
      port,
      path: `/proxy?module=${module}`,
      headers: { "x-prometheus-scrape-timeout-seconds": "60" },
      agent: false,
    }, (response) => {
      let bytes = 0;
      response.on("data", (chunk: Uint8Array) => bytes += chunk.byteLength);
      response.on(
        "end",
        () => resolve(response.statusCode === 200 ? bytes : -response.statusCode!),
      );
      response.on("error", reject);
    });
    request.on("error", reject);
    request.end();
  });
}

function rssMiB(pid: number, field: "VmHWM" | "VmRSS"): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  return Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)![1]) / 1024;
}

Deno.test({
  name: "the direct listener serves 8 concurrent 20 MiB module bodies in bounded memory",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const total = 20 * 1024 * 1024;
    const body = prometheusText(total);
    const target = http.createServer((_req, res) => {
      res.writeHead(200, {
        "content-type": "text/plain; version=0.0.4",
        "content-length": String(total),
      });
      let sent = 0;
      const more = () => {
        while (sent < total) {
          const end = Math.min(total, sent + 64 * 1024);
          const ok = res.write(body.subarray(sent, end));
          sent = end;
          if (!ok) return res.once("drain", more);
        }
        res.end();
      };
      more();
    });
    await new Promise<void>((resolve) => target.listen(0, "127.0.0.1", resolve));
    const targetPort = (target.address() as AddressInfo).port;
    const dir = await Deno.makeTempDir({ prefix: "module-memory-" });
    let client: TestProcess | undefined;
    try {
      await Deno.writeTextFile(
        `${dir}/expexp.yaml`,
        ["plain", "verified"].map((name) =>
          `  ${name}:\n    method: http\n    timeout: 60s\n    http:\n      address: 127.0.0.1\n` +
          `      port: ${targetPort}\n      verify: ${name === "verified"}\n`
        ).join("").replace(/^/, "modules:\n"),
      );
      client = startClientProcess([
        `--config.file=${dir}/expexp.yaml`,
        "--web.listen-address=127.0.0.1:0",
      ]);
      const match = await client.waitFor(/address=127\.0\.0\.1:(\d+) listener="modules http"/);
      const port = Number(match[1]);
      const idle = rssMiB(client.pid, "VmRSS");
      for (const module of ["plain", "plain", "verified", "verified"]) {
        const sizes = await Promise.all(Array.from({ length: 8 }, () => drain(port, module)));
        assert.deepEqual(sizes, Array(8).fill(total), module);
        const growth = rssMiB(client.pid, "VmHWM") - idle;
        // 160 MiB pass through per round; holding them (or more) is the
        // failure mode (the code before measured +145 MiB plain). Measured
        // since: about +35–50 MiB plain; verified bodies add the verifiers'
        // heap (the families seen, per body), about +130 MiB.
        const bound = module === "plain" ? 96 : 256;
        assert.ok(
          growth < bound,
          `${module}: client peak RSS grew by ${growth.toFixed(0)} MiB over ${
            idle.toFixed(0)
          } MiB idle (bound ${bound})`,
        );
      }
    } finally {
      await client?.stop();
      target.closeAllConnections();
      target.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
