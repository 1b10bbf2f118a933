/**
 * Graceful shutdown with real processes: SIGTERM to a proxy in the middle of
 * a 20 MB scrape lets that scrape finish, refuses new ones with a clear 503,
 * and sends the client on its way within a second (it keeps its stream to
 * the other proxy). SIGTERM to a client lets its scrape in flight finish.
 */

import assert from "node:assert/strict";
import { createServer, request, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import {
  proxiedGet,
  startClientProcess,
  startProxyProcess,
  type TestProcess,
  waitUntil,
} from "../support.ts";

const MB = 1 << 20;
const BIG = 20 * MB;
const CHUNK = 256 * 1024;

/** A target with a big slow body on /big and a slow small one on /slow. */
async function startTarget(): Promise<{ server: Server; port: number }> {
  const chunk = new Uint8Array(CHUNK).fill(0x61); // "aaaa…"
  const server = createServer(async (req, res) => {
    if (req.url === "/big") {
      res.writeHead(200, { "content-type": "text/plain", "content-length": String(BIG) });
      for (let sent = 0; sent < BIG; sent += CHUNK) {
        if (!res.write(chunk)) await new Promise((resolve) => res.once("drain", resolve));
        await new Promise((resolve) => setTimeout(resolve, 25)); // ~2 s in all
      }
      res.end();
    } else if (req.url === "/slow") {
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      res.end("slow 1\n");
    } else {
      res.end("up 1\n");
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { server, port: (server.address() as AddressInfo).port };
}

async function clientsOf(url: string): Promise<string[]> {
  const groups = await (await fetch(`${url}/clients`)).json() as { targets: string[] }[];
  return groups.flatMap((g) => g.targets);
}

/** Starts a scrape and resolves its body size and status; `onFirstBytes` fires early. */
function streamScrape(
  proxyPort: number,
  url: string,
  onFirstBytes: () => void,
): Promise<{ status: number; bytes: number; lastByte: number }> {
  return new Promise((resolve, reject) => {
    const req = request({
      host: "127.0.0.1",
      port: proxyPort,
      path: url,
      headers: { host: new URL(url).host, "x-prometheus-scrape-timeout-seconds": "30" },
      agent: false,
    }, (res) => {
      let bytes = 0;
      let lastByte = -1;
      let first = true;
      res.on("data", (chunk: Uint8Array) => {
        bytes += chunk.byteLength;
        lastByte = chunk[chunk.byteLength - 1]!;
        if (first) {
          first = false;
          onFirstBytes();
        }
      });
      res.on("error", reject);
      res.on("aborted", () => reject(new Error(`aborted after ${bytes} bytes`)));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, bytes, lastByte }));
    });
    req.on("error", reject);
    req.end();
  });
}

Deno.test({
  name: "SIGTERM during a 20 MB scrape: it completes, new scrapes get 503, the client moves on",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const processes: TestProcess[] = [];
    const target = await startTarget();
    try {
      const a = await startProxyProcess(["--web.drain-timeout=20s"]);
      processes.push(a.process);
      const b = await startProxyProcess();
      processes.push(b.process);
      const client = startClientProcess([
        `--proxy-url=${a.url}/`,
        `--proxy-url=${b.url}/`,
        "--fqdn=127.0.0.1",
      ]);
      processes.push(client);
      for (const proxy of [a, b]) {
        await waitUntil(
          async () => (await clientsOf(proxy.url)).includes("127.0.0.1") || undefined,
          10_000,
          `the client to register with ${proxy.url}`,
        );
      }

      let terminatedAt = 0;
      const big = streamScrape(a.port, `http://127.0.0.1:${target.port}/big`, () => {
        terminatedAt = Date.now();
        a.process.kill("SIGTERM");
      });
      await waitUntil(() => terminatedAt || undefined, 10_000, "the first bytes of the scrape");

      // The client is told to go away and leaves within a second.
      const goAway = new RegExp(
        `msg="The proxy is going away; reconnecting at once" proxy=http://127\\.0\\.0\\.1:${a.port} `,
      );
      await client.waitFor(goAway, 1_000);
      const movedOnMs = Date.now() - terminatedAt;
      assert.ok(movedOnMs < 1_000, `client moved on after ${movedOnMs}ms`);

      // While A drains: new scrapes through it are refused with a clear status,
      // it says it is not ready, and B serves the client as before.
      const refused = await proxiedGet(a.port, `http://127.0.0.1:${target.port}/metrics`);
      assert.equal(refused.status, 503);
      assert.match(new TextDecoder().decode(refused.body), /shutting down/);
      const ready = await fetch(`${a.url}/-/ready`);
      assert.equal(ready.status, 503);
      assert.match(await ready.text(), /shutting down/);
      const viaB = await proxiedGet(b.port, `http://127.0.0.1:${target.port}/metrics`);
      assert.equal(viaB.status, 200);

      // The scrape in flight completes, whole.
      const result = await big;
      assert.equal(result.status, 200);
      assert.equal(result.bytes, BIG);
      assert.equal(result.lastByte, 0x61);

      // Then A exits by itself, drained.
      const status = await a.process.status;
      assert.equal(status.code, 0);
      assert.match(a.process.output(), /msg=Drained/);
      assert.equal((await proxiedGet(b.port, `http://127.0.0.1:${target.port}/`)).status, 200);
    } finally {
      await Promise.all(processes.reverse().map((p) => p.stop()));
      target.server.closeAllConnections();
      await new Promise((resolve) => target.server.close(resolve));
    }
  },
});

Deno.test({
  name: "SIGTERM to the client lets its scrape in flight finish before it exits",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const processes: TestProcess[] = [];
    const target = await startTarget();
    try {
      const proxy = await startProxyProcess();
      processes.push(proxy.process);
      const client = startClientProcess([`--proxy-url=${proxy.url}/`, "--fqdn=127.0.0.1"]);
      processes.push(client);
      await client.waitFor(/Registered with the proxy/);
      const scrape = proxiedGet(proxy.port, `http://127.0.0.1:${target.port}/slow`, {
        "x-prometheus-scrape-timeout-seconds": "10",
      });
      await waitUntil(
        async () => {
          const metrics = await (await fetch(`${proxy.url}/metrics`)).text();
          return /^pushprox_proxy_scrapes_in_flight 1$/m.test(metrics) || undefined;
        },
        5_000,
        "the scrape to be in flight",
      );
      await new Promise((resolve) => setTimeout(resolve, 200)); // the client has it
      client.kill("SIGTERM");
      const response = await scrape;
      assert.equal(response.status, 200);
      assert.equal(new TextDecoder().decode(response.body), "slow 1\n");
      const status = await client.status;
      assert.equal(status.code, 0, client.output());
    } finally {
      await Promise.all(processes.reverse().map((p) => p.stop()));
      target.server.closeAllConnections();
      await new Promise((resolve) => target.server.close(resolve));
    }
  },
});
