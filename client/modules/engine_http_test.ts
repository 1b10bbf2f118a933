/**
 * The engine's http modules against a real backend on loopback: what
 * reaches the backend, what comes back, verification and failures.
 */

import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { gunzipSync, gzipSync } from "node:zlib";
import { count, engineFor, serve, startBackend, VALID } from "./engine_testing.ts";
import { closing } from "../../tests/fixture.ts";

// ---- http -----------------------------------------------------------------------

Deno.test("http module: query, headers, host override and basic auth reach the backend", async () => {
  await using backend = closing(
    await startBackend((_req, res) => {
      res.writeHead(200, { "content-type": "text/plain; version=0.0.4" }).end(VALID);
    }),
  );
  const { engine } = await engineFor(`
modules:
  blackbox:
    method: http
    timeout: 30s
    http:
      address: 127.0.0.1
      port: ${backend.port}
      path: /probe?debug=false
      headers:
        foo: bar
        host: exporter.internal
      basic_auth_username: user
      basic_auth_password: secret
`);
  const served = await serve(
    engine,
    "module=blackbox&module=icmp&target=example.com&args=x",
    {
      Authorization: "Bearer front-door",
      Accept: "text/plain",
      "X-Prometheus-Scrape-Timeout-Seconds": "10",
      Foo: "incoming",
    },
  );
  assert.equal(served.status, 200, served.error);
  assert.equal(served.text, VALID);
  const req = backend.requests[0]!;
  assert.equal(req.url, "/probe?module=icmp&target=example.com&args=x&debug=false");
  assert.equal(req.headers.host, "exporter.internal");
  assert.equal(req.headers.foo, "bar");
  assert.equal(req.headers.accept, "text/plain");
  assert.equal(
    req.headers.authorization,
    `Basic ${Buffer.from("user:secret").toString("base64")}`,
  );
  assert.equal(req.headers["x-prometheus-scrape-timeout-seconds"], "10");
});

Deno.test("http module: the front door's Authorization is not passed to the backend", async () => {
  await using backend = closing(await startBackend((_req, res) => res.end(VALID)));
  const { engine } = await engineFor(
    `modules:\n  node:\n    method: http\n    http:\n      port: ${backend.port}\n      address: 127.0.0.1\n`,
  );
  await serve(engine, "module=node", { Authorization: "Bearer front-door" });
  assert.equal(backend.requests[0]!.headers.authorization, undefined);
});

Deno.test("http module: gzip bodies pass through byte for byte and are verified", async () => {
  const big = VALID + Array.from({ length: 20000 }, (_, i) => `m_total{i="${i}"} ${i}\n`).join("");
  const body = "# TYPE m_total counter\n" + big.replace(VALID, "");
  const zipped = gzipSync(VALID + body);
  await using backend = closing(
    await startBackend((_req, res) => {
      res.writeHead(200, { "content-encoding": "gzip", "content-type": "text/plain" }).end(zipped);
    }),
  );
  const { engine } = await engineFor(
    `modules:\n  node:\n    method: http\n    http:\n      port: ${backend.port}\n      address: 127.0.0.1\n`,
    { windowBytes: 1024 },
  );
  const served = await serve(engine, "module=node", { "Accept-Encoding": "gzip" });
  assert.equal(served.status, 200, served.error);
  assert.equal(served.thrown, undefined);
  assert.equal(served.headers.get("content-encoding"), "gzip");
  assert.deepEqual(served.bytes, new Uint8Array(zipped));
  assert.equal(gunzipSync(served.bytes).toString(), VALID + body);
});

Deno.test("http module: OpenMetrics with info and unknown types passes verification", async () => {
  const om = '# TYPE build info\nbuild_info{version="1"} 1\n# TYPE thing unknown\nthing 3\n# EOF\n';
  await using backend = closing(
    await startBackend((_req, res) => {
      res.writeHead(200, {
        "content-type": "application/openmetrics-text; version=1.0.0; charset=utf-8",
      }).end(om);
    }),
  );
  const { engine } = await engineFor(
    `modules:\n  app:\n    method: http\n    http:\n      port: ${backend.port}\n      address: 127.0.0.1\n`,
  );
  const served = await serve(engine, "module=app");
  assert.equal(served.status, 200, served.error);
  assert.equal(served.text, om);
});

Deno.test("http module: garbage gets 502 with the reason and counts as malformed", async () => {
  await using backend = closing(
    await startBackend((_req, res) => {
      res.writeHead(200, { "content-type": "text/html" }).end("<html><body>oops</body></html>\n");
    }),
  );
  const { engine, metrics } = await engineFor(
    `modules:\n  app:\n    method: http\n    http:\n      port: ${backend.port}\n      address: 127.0.0.1\n`,
  );
  const served = await serve(engine, "module=app");
  assert.equal(served.status, 502);
  assert.match(served.error, /module app: the backend's answer failed verification: line 1/);
  assert.equal(await count(metrics.malformed, "app"), 1);
  assert.equal(await count(metrics.errors, "app"), 1);
});

Deno.test("http module: verify: false and non-200 answers pass through unchecked", async () => {
  await using backend = closing(
    await startBackend((req, res) => {
      if (req.url?.startsWith("/missing")) res.writeHead(404).end("not here");
      else res.end("garbage{");
    }),
  );
  const { engine } = await engineFor(`
modules:
  raw:
    method: http
    http:
      port: ${backend.port}
      address: 127.0.0.1
      verify: false
  missing:
    method: http
    http:
      port: ${backend.port}
      address: 127.0.0.1
      path: /missing
`);
  let served = await serve(engine, "module=raw");
  assert.equal(served.status, 200);
  assert.equal(served.text, "garbage{");
  served = await serve(engine, "module=missing");
  assert.equal(served.status, 404);
  assert.equal(served.text, "not here");
});

Deno.test("http module: invalid content after the window aborts the body and counts", async () => {
  const lines = Array.from({ length: 50000 }, (_, i) => `m{i="${i}"} ${i}\n`).join("");
  await using backend = closing(
    await startBackend((_req, res) => {
      res.write(lines.slice(0, 100000));
      setTimeout(() => res.end(lines.slice(100000) + "not a metric line at all\n"), 50);
    }),
  );
  const { engine, metrics } = await engineFor(
    `modules:\n  app:\n    method: http\n    http:\n      port: ${backend.port}\n      address: 127.0.0.1\n`,
    { windowBytes: 1024 },
  );
  const served = await serve(engine, "module=app");
  assert.equal(served.status, 200);
  assert.ok(served.thrown, "the body failed");
  assert.match(served.thrown!.message, /line 50001/);
  assert.ok(served.bytes.byteLength < lines.length, "the invalid end was not passed on");
  assert.equal(await count(metrics.malformed, "app"), 1);
});

Deno.test("http module: a backend that closes mid-body gets 502, or an aborted body after the window", async () => {
  await using backend = closing(
    await startBackend((req, res) => {
      res.writeHead(200, { "content-length": "1000000" });
      res.write(req.url!.includes("big") ? "m 1\n".repeat(100000) : "m 1\n");
      setTimeout(() => res.socket?.destroy(), 20);
    }),
  );
  const { engine } = await engineFor(
    `
modules:
  small:
    method: http
    http: {address: 127.0.0.1, port: ${backend.port}}
  big:
    method: http
    http: {address: 127.0.0.1, port: ${backend.port}, path: /big}
`,
    { windowBytes: 1024 },
  );
  let served = await serve(engine, "module=small");
  assert.equal(served.status, 502);
  assert.match(served.error, /module small: the backend closed the connection mid-body/);
  served = await serve(engine, "module=big");
  assert.equal(served.status, 200);
  assert.match(served.thrown?.message ?? "", /closed the connection mid-body/);
});

Deno.test("http module: an unreachable backend gets 502 naming it", async () => {
  const backend = await startBackend(() => {});
  const port = backend.port;
  await backend.close();
  const { engine } = await engineFor(
    `modules:\n  node:\n    method: http\n    http:\n      port: ${port}\n      address: 127.0.0.1\n`,
  );
  const served = await serve(engine, "module=node");
  assert.equal(served.status, 502);
  assert.match(served.error, new RegExp(`backend http://127.0.0.1:${port}/metrics did not answer`));
});

Deno.test("http module: the lower of module timeout and scrape timeout gives 504", async () => {
  await using backend = closing(await startBackend(() => {/* never answers */}));
  const { engine, metrics } = await engineFor(
    `modules:\n  slow:\n    method: http\n    timeout: 10s\n    http:\n      port: ${backend.port}\n      address: 127.0.0.1\n`,
  );
  const started = Date.now();
  const served = await serve(engine, "module=slow", {
    "X-Prometheus-Scrape-Timeout-Seconds": "0.3",
  });
  const took = Date.now() - started;
  assert.equal(served.status, 504);
  assert.match(served.error, /no complete answer within 300ms/);
  assert.ok(took < 3000, `took ${took}ms`);
  assert.equal(await count(metrics.timeouts, "slow"), 1);
});
