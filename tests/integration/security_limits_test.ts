/**
 * Attacks on the proxy's limits, each refused: too many clients and
 * scrapes, oversized headers and bodies, slow-loris requests on every
 * listener, idle keep-alive connections.
 */

import assert from "node:assert/strict";
import { connect as netConnect } from "node:net";
import { Code } from "@connectrpc/connect";
import { startAgent } from "../../client/agent/agent.ts";
import { connectClient, counter, fakeClient, send, startSecureProxy } from "../secure_stack.ts";
import { waitUntil } from "../support.ts";
import { testLogger } from "../stack.ts";
import { codeOf, recordingTarget } from "./security_support.ts";
import { closing, stopping } from "../fixture.ts";

Deno.test("limits: clients, scrapes per client and in all, body and header size, each with a metric", async () => {
  const big = "x".repeat(64 * 1024);
  await using proxy = closing(
    await startSecureProxy({
      proxy: {
        maxClients: 2,
        maxScrapesPerClient: 1,
        maxScrapes: 2,
        maxScrapeBodyBytes: 16 * 1024,
        registrationTimeoutMs: 1,
      },
      maxHeaderBytes: 4096,
    }),
  );
  const client = connectClient(proxy.url);
  const a = fakeClient(client, "big", big);
  await a.registered;
  const b = fakeClient(client, "b");
  await b.registered;
  assert.equal(await codeOf(fakeClient(client, "c").registered), Code.ResourceExhausted);
  assert.equal(
    await counter(proxy.proxy, "pushprox_proxy_limit_hits_total", { limit: "clients" }),
    1,
  );

  // The body limit aborts the relay.
  const oversized = await send(proxy, "http://big:9100/metrics").then(
    (r) => `status ${r.status} ${r.body.length}`,
    (e) => `error ${e.message}`,
  );
  assert.doesNotMatch(oversized, new RegExp(`status 200 ${big.length}`), oversized);
  await waitUntil(
    async () =>
      await counter(proxy.proxy, "pushprox_proxy_limit_hits_total", {
          limit: "scrape_body_bytes",
        }) === 1 ||
      undefined,
    3_000,
    "body limit metric",
  );

  // A client that never answers holds its scrapes; b makes room for it.
  b.stop();
  await waitUntil(
    () => proxy.proxy.coordinator.listClients().length === 1 || undefined,
    3_000,
    "b gone",
  );
  const silent = connectClient(proxy.url);
  const controller = new AbortController();
  (async () => {
    for await (
      const _ of silent.poll({ fqdn: "slow" }, { signal: controller.signal })
    ) { /* hold */ }
  })().catch(() => {});
  await waitUntil(
    () => proxy.proxy.coordinator.listClients().some((c) => c.fqdn === "slow") || undefined,
    3_000,
    "slow registered",
  );
  const held = send(proxy, "http://slow:9100/metrics", {
    headers: { "x-prometheus-scrape-timeout-seconds": "2" },
  });
  await waitUntil(
    () => proxy.proxy.coordinator.scrapesInFlight === 1 || undefined,
    2_000,
    "held",
  );
  const perClient = await send(proxy, "http://slow:9100/metrics");
  assert.equal(perClient.status, 429);
  assert.match(perClient.body, /already has 1 scrapes in flight/);
  assert.equal(
    await counter(proxy.proxy, "pushprox_proxy_limit_hits_total", {
      limit: "scrapes_per_client",
    }),
    1,
  );
  controller.abort();
  assert.equal((await held).status >= 500, true);

  // Oversized request headers: 431 from the listener itself.
  const answer = await rawExchange(
    proxy.port,
    `GET /clients HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(8000)}\r\n\r\n`,
  );
  assert.match(answer, /^HTTP\/1\.1 431/);
  assert.equal(
    await counter(proxy.proxy, "pushprox_proxy_limit_hits_total", { limit: "header_bytes" }),
    1,
  );
  a.stop();
});

function rawExchange(port: number, request: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = netConnect(port, "127.0.0.1");
    let answer = "";
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => answer += chunk);
    socket.on("close", () => resolve(answer));
    socket.on("error", reject);
    socket.write(request);
    setTimeout(() => socket.destroy(), 3_000);
  });
}

/**
 * Sends request headers one byte every `intervalMs` and reports how long the
 * server kept the connection open.
 */
function slowLoris(
  connectSocket: () => import("node:net").Socket,
  intervalMs: number,
  giveUpMs: number,
): Promise<{ closedAfterMs: number; answer: string }> {
  return new Promise((resolve) => {
    const started = Date.now();
    const socket = connectSocket();
    const text = "GET /metrics HTTP/1.1\r\nHost: x\r\n" + "X-Slow: " + "a".repeat(1000);
    let i = 0;
    let answer = "";
    const timer = setInterval(() => {
      if (!socket.destroyed && socket.writable) socket.write(text[i++ % text.length]!);
    }, intervalMs);
    const giveUp = setTimeout(() => socket.destroy(), giveUpMs);
    socket.on("data", (chunk) => answer += String(chunk));
    socket.on("error", () => {});
    socket.on("close", () => {
      clearInterval(timer);
      clearTimeout(giveUp);
      resolve({ closedAfterMs: Date.now() - started, answer });
    });
  });
}

Deno.test("slow-loris: headers sent byte by byte are cut off on the proxy (http) and the client's metrics port", async () => {
  await using proxy = closing(await startSecureProxy({ headersTimeoutMs: 1_000 }));
  await using _target = closing(await recordingTarget());
  await using agent = stopping(
    await startAgent({
      proxyUrl: proxy.url,
      fqdn: "localhost",
      logger: testLogger(),
      metricsAddress: { hostname: "127.0.0.1", port: 0 },
      defaultMetrics: false,
    }),
  );
  const onProxy = await slowLoris(() => netConnect(proxy.port, "127.0.0.1"), 50, 8_000);
  assert.ok(onProxy.closedAfterMs < 3_000, `proxy kept a slow client ${onProxy.closedAfterMs}ms`);
  assert.match(onProxy.answer, /^HTTP\/1\.1 408/);
  assert.ok(
    await counter(proxy.proxy, "pushprox_proxy_limit_hits_total", { limit: "header_timeout" }) >=
      1,
  );
  // The client's metrics listener allows 10s for headers.
  const port = agent.metricsAddress!.port;
  const onClient = await slowLoris(() => netConnect(port, "127.0.0.1"), 100, 20_000);
  assert.ok(
    onClient.closedAfterMs < 13_000,
    `client kept a slow client ${onClient.closedAfterMs}ms`,
  );
  // Both still serve.
  assert.equal((await send(proxy, "/clients")).status, 200);
});

Deno.test("idle keep-alive connections are closed after the idle timeout", async () => {
  const { createProxy, serveProxy } = await import("../../proxy/http/server.ts");
  const proxy = createProxy({ logger: testLogger(), defaultMetrics: false });
  const stop = new AbortController();
  const serving = await serveProxy(proxy, {
    hostname: "127.0.0.1",
    port: 0,
    signal: stop.signal,
    idleTimeoutMs: 500,
  });
  try {
    const started = Date.now();
    const answer = await rawExchange(
      serving.address.port,
      "GET /clients HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n",
    );
    assert.match(answer, /^HTTP\/1\.1 200/);
    const idle = Date.now() - started;
    assert.ok(idle >= 400 && idle < 2_900, `idle connection closed after ${idle}ms`);
  } finally {
    stop.abort();
    await serving.finished;
  }
});
