/**
 * In-process integration tests of the scrape path: Prometheus-style
 * absolute-form requests through the proxy to a client and its target.
 */

import assert from "node:assert/strict";
import { gzipSync } from "node:zlib";
import { proxiedGet, waitUntil, withoutMeta } from "../support.ts";
import { startStack } from "../stack.ts";

const TEXT = "# TYPE up gauge\nup 1\n";

Deno.test("a scrape passes headers both ways and keeps gzip bodies compressed", async () => {
  const seen: Record<string, string | string[] | undefined>[] = [];
  const gz = gzipSync(TEXT.repeat(100));
  await using stack = await startStack((req, res) => {
    seen.push(req.headers);
    res.writeHead(200, {
      "content-type": "text/plain; version=0.0.4",
      "content-encoding": "gzip",
      "x-target": "yes",
      "connection": "keep-alive, x-hop",
      "x-hop": "must not pass",
    });
    res.end(gz);
  });
  await stack.startClient();
  const response = await proxiedGet(
    stack.proxyPort,
    stack.targetUrl("/metrics?a=1&b=2"),
    {
      "accept": "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
      "accept-encoding": "gzip",
      "x-prometheus-scrape-timeout-seconds": "5",
      "user-agent": "Prometheus/2.42.0",
      "proxy-authorization": "Basic c2VjcmV0",
      "authorization": "Bearer target-token",
    },
  );
  assert.equal(response.status, 200);
  assert.equal(response.headers["content-encoding"], "gzip");
  assert.equal(response.headers["content-type"], "text/plain; version=0.0.4");
  assert.equal(response.headers["x-target"], "yes");
  assert.equal(response.headers["x-hop"], undefined);
  assert.deepEqual(
    response.body,
    new Uint8Array(gz),
    "gzip bytes pass through untouched",
  );

  const headers = seen[0]!;
  assert.match(String(headers["accept"]), /openmetrics-text/);
  assert.equal(headers["accept-encoding"], "gzip");
  assert.equal(headers["user-agent"], "Prometheus/2.42.0");
  assert.equal(headers["authorization"], "Bearer target-token");
  assert.equal(
    headers["proxy-authorization"],
    undefined,
    "Proxy-Authorization is never forwarded",
  );
  assert.equal(headers["x-prometheus-scrape-timeout-seconds"], "5");
});

Deno.test("bodies are binary-safe and large bodies stream through intact", async () => {
  const big = new Uint8Array(8 * 1024 * 1024);
  for (let i = 0; i < big.length; i += 65536) {
    crypto.getRandomValues(big.subarray(i, i + 65536));
  }
  await using stack = await startStack((_req, res) => {
    res.writeHead(200, {
      "content-type":
        "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited",
    });
    // Written in pieces, as a real exporter streams.
    let offset = 0;
    const writeMore = () => {
      while (offset < big.length) {
        const piece = big.subarray(offset, offset + 100_000);
        offset += piece.length;
        if (!res.write(piece)) return res.once("drain", writeMore);
      }
      res.end();
    };
    writeMore();
  });
  await stack.startClient();
  const response = await proxiedGet(stack.proxyPort, stack.targetUrl());
  assert.equal(response.status, 200);
  assert.match(String(response.headers["content-type"]), /protobuf/);
  assert.equal(response.body.length, big.length);
  const [a, b] = await Promise.all([
    crypto.subtle.digest("SHA-256", response.body),
    crypto.subtle.digest("SHA-256", big),
  ]);
  assert.deepEqual(new Uint8Array(a), new Uint8Array(b));
  const bytes = await stack.proxy.metrics.relayedBytes.get();
  assert.equal(bytes.values[0]!.value, big.length);
});

Deno.test("the target's status and error bodies are relayed as they are", async () => {
  await using stack = await startStack((_req, res) => {
    res.writeHead(503, { "content-type": "text/plain" });
    res.end("exporter busy\n");
  });
  await stack.startClient();
  const response = await proxiedGet(stack.proxyPort, stack.targetUrl());
  assert.equal(response.status, 503);
  assert.equal(new TextDecoder().decode(response.body), "exporter busy\n");
});

Deno.test("a scrape for an unknown client fails at once and leaves nothing behind", async () => {
  await using stack = await startStack((_req, res) => res.end(TEXT));
  const started = performance.now();
  const response = await proxiedGet(
    stack.proxyPort,
    "http://nobody.example:9100/metrics",
    {
      "x-prometheus-scrape-timeout-seconds": "10",
    },
  );
  assert.ok(performance.now() - started < 1000, "no waiting for the timeout");
  assert.equal(response.status, 404);
  assert.match(
    new TextDecoder().decode(response.body),
    /No client is registered as "nobody.example"/,
  );
  assert.equal(stack.proxy.coordinator.scrapesInFlight, 0);
  assert.equal(stack.proxy.coordinator.clientCount, 0);
});

Deno.test("the timeout header bounds a scrape; a slow target gets 504 from the client", async () => {
  const pending: (() => void)[] = [];
  const stack = await startStack((_req, res) => {
    pending.push(() => res.destroyed || res.end(TEXT));
  });
  try {
    await stack.startClient();
    const started = performance.now();
    const response = await proxiedGet(stack.proxyPort, stack.targetUrl(), {
      "x-prometheus-scrape-timeout-seconds": "0.5",
    });
    const took = performance.now() - started;
    assert.equal(response.status, 504);
    assert.ok(took >= 450 && took < 3000, `took ${took}ms`);
    assert.match(
      new TextDecoder().decode(response.body),
      /deadline|did not answer/,
    );
  } finally {
    pending.forEach((f) => f());
    await stack.close();
  }
});

Deno.test("without a timeout header the default applies, clamped by the maximum", async () => {
  const pending: (() => void)[] = [];
  const stack = await startStack((_req, res) => {
    pending.push(() => res.destroyed || res.end(TEXT));
  }, { defaultScrapeTimeoutMs: 400, maxScrapeTimeoutMs: 10_000 });
  try {
    await stack.startClient();
    let started = performance.now();
    let response = await proxiedGet(stack.proxyPort, stack.targetUrl());
    let took = performance.now() - started;
    assert.equal(response.status, 504);
    assert.ok(took >= 350 && took < 3000, `default: took ${took}ms`);
    await stack.close();

    const clamped = await startStack((_req, res) => {
      pending.push(() => res.destroyed || res.end(TEXT));
    }, { defaultScrapeTimeoutMs: 15_000, maxScrapeTimeoutMs: 300 });
    try {
      await clamped.startClient();
      started = performance.now();
      response = await proxiedGet(clamped.proxyPort, clamped.targetUrl(), {
        "x-prometheus-scrape-timeout-seconds": "60",
      });
      took = performance.now() - started;
      assert.equal(response.status, 504);
      assert.ok(took >= 250 && took < 3000, `clamped: took ${took}ms`);
    } finally {
      pending.forEach((f) => f());
      await clamped.close();
    }
  } finally {
    pending.forEach((f) => f());
    await stack.close();
  }
});

Deno.test("several scrapes to one client run concurrently", async () => {
  let concurrent = 0;
  let peak = 0;
  await using stack = await startStack((_req, res) => {
    concurrent++;
    peak = Math.max(peak, concurrent);
    setTimeout(() => {
      concurrent--;
      res.end(TEXT);
    }, 300);
  });
  await stack.startClient();
  const started = performance.now();
  const responses = await Promise.all(
    Array.from(
      { length: 6 },
      (_, i) => proxiedGet(stack.proxyPort, stack.targetUrl(`/metrics?n=${i}`)),
    ),
  );
  assert.deepEqual(responses.map((r) => r.status), [
    200,
    200,
    200,
    200,
    200,
    200,
  ]);
  assert.equal(peak, 6, "all six reached the target at once");
  assert.ok(performance.now() - started < 1500);
});

Deno.test("_scheme=https selects https and is removed from the query", async () => {
  const seen: string[] = [];
  await using stack = await startStack((req, res) => {
    seen.push(req.url ?? "");
    res.end(TEXT);
  });
  // The client's transport is replaced to observe the URL it would request.
  const urls: string[] = [];
  await stack.startClient({
    scrapeTransport: (url) => {
      urls.push(url.toString());
      return Promise.resolve({
        status: 200,
        headers: [["content-type", "text/plain"]],
        body: (async function* () {
          yield new TextEncoder().encode(TEXT);
        })(),
      });
    },
  });
  let response = await proxiedGet(
    stack.proxyPort,
    "http://localhost:10250/metrics?_scheme=https&x=1",
  );
  assert.equal(response.status, 200);
  response = await proxiedGet(
    stack.proxyPort,
    "http://localhost:9100/metrics?x=2&_scheme=http",
  );
  assert.equal(response.status, 200);
  response = await proxiedGet(
    stack.proxyPort,
    "http://localhost:9100/metrics?_scheme=gopher",
  );
  assert.equal(response.status, 403);
  assert.deepEqual(urls, [
    "https://localhost:10250/metrics?x=1",
    "http://localhost:9100/metrics?x=2",
  ]);
});

Deno.test("a stopped client frees everything and leaves after the registration timeout", async () => {
  await using stack = await startStack((_req, res) => res.end(TEXT), {
    registrationTimeoutMs: 500,
  });
  const agent = await stack.startClient();
  assert.equal(
    (await proxiedGet(stack.proxyPort, stack.targetUrl())).status,
    200,
  );
  await agent.stop();
  await waitUntil(
    () =>
      stack.proxy.coordinator.listClients()[0]?.connected === false ||
      undefined,
    3000,
    "the proxy to notice the closed stream",
  );
  const response = await proxiedGet(stack.proxyPort, stack.targetUrl());
  assert.equal(response.status, 503);
  assert.match(new TextDecoder().decode(response.body), /not connected/);
  assert.equal(stack.proxy.coordinator.scrapesInFlight, 0);
  await waitUntil(
    () => stack.proxy.coordinator.clientCount === 0 || undefined,
    3000,
    "expiry",
  );
  const sd = await (await fetch(`${stack.proxyUrl}/clients`)).json();
  assert.deepEqual(sd, []);
});

Deno.test("a restarted client with the same fqdn replaces the old stream", async () => {
  await using stack = await startStack((_req, res) => res.end(TEXT));
  const first = await stack.startClient({ labels: { generation: "1" } });
  const second = await stack.startClient({ labels: { generation: "2" } });
  await waitUntil(
    () =>
      stack.proxy.coordinator.listClients()[0]?.labels["generation"] ===
        "2" || undefined,
    3000,
    "the new registration",
  );
  await first.stop();
  // The first stream's end does not unregister the second.
  await new Promise((resolve) => setTimeout(resolve, 200));
  const clients = stack.proxy.coordinator.listClients();
  assert.equal(clients.length, 1);
  assert.equal(clients[0]!.connected, true);
  assert.equal(
    (await proxiedGet(stack.proxyPort, stack.targetUrl())).status,
    200,
  );
  await second.stop();
});

Deno.test("/clients lists clients with their labels for http_sd", async () => {
  await using stack = await startStack((_req, res) => res.end(TEXT));
  await stack.startClient({ fqdn: "b.example", labels: { zone: "eu" } });
  await stack.startClient({ fqdn: "a.example" });
  const response = await fetch(`${stack.proxyUrl}/clients`);
  assert.equal(response.headers.get("content-type"), "application/json");
  assert.deepEqual(withoutMeta(await response.json()), [
    { targets: ["a.example"], labels: {} },
    { targets: ["b.example"], labels: { zone: "eu" } },
  ]);
});

Deno.test("/metrics exposes upstream metric names", async () => {
  await using stack = await startStack((_req, res) => res.end(TEXT));
  await stack.startClient();
  await proxiedGet(stack.proxyPort, stack.targetUrl());
  await proxiedGet(stack.proxyPort, "http://nobody:1/metrics");
  const text = await (await fetch(`${stack.proxyUrl}/metrics`)).text();
  assert.match(text, /^pushprox_proxy_clients 1$/m);
  assert.match(text, /^pushproxy_proxied_requests_total\{code="200"\} 1$/m);
  assert.match(text, /^pushproxy_proxied_requests_total\{code="404"\} 1$/m);
  assert.match(
    text,
    /^pushprox_http_requests_total\{code="200",path="\/metrics"\} \d+$/m,
  );
  assert.match(
    text,
    /^pushprox_build_info\{version="[^"]+",runtime="deno [^"]+"\} 1$/m,
  );
});
