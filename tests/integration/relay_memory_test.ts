/**
 * The proxy's memory while relaying large bodies stays bounded: chunks are
 * released as they are written, not held until the scrape's deadline.
 * Measured on the proxy process alone (VmHWM), with a reader that discards
 * what it receives.
 */

import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { startClientProcess, startProxyProcess, type TestProcess } from "../support.ts";

/** Scrapes through the proxy and counts the body without keeping it. */
function drain(proxyPort: number, url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const request = http.request({
      host: "127.0.0.1",
      port: proxyPort,
      path: url,
      headers: { host: new URL(url).host, "x-prometheus-scrape-timeout-seconds": "60" },
      agent: false,
    }, (response) => {
      let bytes = 0;
      response.on("data", (chunk: Uint8Array) => bytes += chunk.byteLength);
      response.on("end", () => resolve(bytes));
      response.on("error", reject);
    });
    request.on("error", reject);
    request.end();
  });
}

function peakRssMiB(pid: number): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  return Number(/VmHWM:\s+(\d+) kB/.exec(status)![1]) / 1024;
}

Deno.test({
  name: "the proxy relays 8 concurrent 20 MiB scrapes in bounded memory",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const processes: TestProcess[] = [];
    const chunk = new Uint8Array(64 * 1024).fill(0x61);
    const total = 20 * 1024 * 1024;
    const target = http.createServer((_req, res) => {
      res.writeHead(200, { "content-type": "text/plain" });
      let sent = 0;
      const more = () => {
        while (sent < total) {
          sent += chunk.length;
          if (!res.write(chunk)) return res.once("drain", more);
        }
        res.end();
      };
      more();
    });
    await new Promise<void>((resolve) => target.listen(0, "127.0.0.1", resolve));
    const targetPort = (target.address() as AddressInfo).port;
    try {
      const proxy = await startProxyProcess();
      processes.push(proxy.process);
      const client = startClientProcess([`--proxy-url=${proxy.url}`, "--fqdn=localhost"]);
      processes.push(client);
      await client.waitFor(/Registered with the proxy/);
      const idle = peakRssMiB(proxy.process.pid);
      const sizes = await Promise.all(
        Array.from(
          { length: 8 },
          () => drain(proxy.port, `http://localhost:${targetPort}/metrics`),
        ),
      );
      assert.deepEqual(sizes, Array(8).fill(total));
      const growth = peakRssMiB(proxy.process.pid) - idle;
      // 160 MiB pass through; holding them (or more) is the failure mode.
      assert.ok(
        growth < 128,
        `proxy peak RSS grew by ${growth.toFixed(0)} MiB over ${idle.toFixed(0)} MiB idle`,
      );
    } finally {
      await Promise.all(processes.map((p) => p.stop()));
      target.closeAllConnections();
      target.close();
    }
  },
});
