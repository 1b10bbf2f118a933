import assert from "node:assert/strict";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { createClientMetrics, createMetricsHandler } from "./metrics.ts";
import { closing } from "../../tests/fixture.ts";

/** Sends one raw HTTP/1.1 request and reads the whole answer. */
async function exchange(port: number, method: string, path: string): Promise<string> {
  await using conn = closing(await Deno.connect({ hostname: "127.0.0.1", port }));
  await conn.write(
    new TextEncoder().encode(
      `${method} ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`,
    ),
  );
  const chunks: Uint8Array[] = [];
  const buffer = new Uint8Array(16384);
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    const n = await conn.read(buffer);
    if (n === null) break;
    chunks.push(buffer.slice(0, n));
  }
  return new TextDecoder().decode(
    chunks.reduce((a, b) => new Uint8Array([...a, ...b]), new Uint8Array()),
  );
}

function statusOf(answer: string): number {
  return Number(/^HTTP\/1\.1 (\d{3}) /.exec(answer)?.[1]);
}

function bodyOf(answer: string): string {
  const split = answer.indexOf("\r\n\r\n");
  let rest = answer.slice(split + 4);
  if (!/^transfer-encoding: chunked\r?$/im.test(answer.slice(0, split))) return rest;
  let body = "";
  for (;;) {
    const line = rest.indexOf("\r\n");
    const size = parseInt(rest.slice(0, line), 16);
    if (!(size > 0)) return body;
    body += rest.slice(line + 2, line + 2 + size);
    rest = rest.slice(line + 2 + size + 2);
  }
}

Deno.test("the --metrics-addr listener answers /metrics, /-/healthy, /-/ready and 404 elsewhere", async () => {
  const metrics = createClientMetrics({ defaultMetrics: false });
  metrics.connected.set(1);
  let registered = false;
  const server = createServer(createMetricsHandler({
    registry: metrics.registry,
    ready: () =>
      registered
        ? { ready: true, message: "Ready: registered with 1 of 1 proxies\n" }
        : { ready: false, message: "Not ready: not registered with any proxy\n" },
  }));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  try {
    const scrape = await exchange(port, "GET", "/metrics?x=1");
    assert.equal(statusOf(scrape), 200);
    assert.match(bodyOf(scrape), /^pushprox_client_connected 1$/m);

    for (const path of ["/", "/metric", "/metrics/", "/-/metrics", "/favicon.ico"]) {
      const answer = await exchange(port, "GET", path);
      assert.equal(statusOf(answer), 404, path);
      assert.equal(
        bodyOf(answer),
        `Not found: ${path} (try /metrics, /-/healthy, /-/ready)\n`,
        path,
      );
    }

    const healthy = await exchange(port, "GET", "/-/healthy");
    assert.deepEqual([statusOf(healthy), bodyOf(healthy)], [200, "Healthy\n"]);
    const notReady = await exchange(port, "GET", "/-/ready");
    assert.deepEqual(
      [statusOf(notReady), bodyOf(notReady)],
      [503, "Not ready: not registered with any proxy\n"],
    );
    registered = true;
    const ready = await exchange(port, "GET", "/-/ready");
    assert.deepEqual(
      [statusOf(ready), bodyOf(ready)],
      [200, "Ready: registered with 1 of 1 proxies\n"],
    );

    const head = await exchange(port, "HEAD", "/metrics");
    assert.equal(statusOf(head), 200);
    assert.equal(bodyOf(head), "");
    const post = await exchange(port, "POST", "/metrics");
    assert.equal(statusOf(post), 405);
    assert.match(post, /^allow: GET, HEAD\r$/im);
  } finally {
    await new Promise((resolve) => server.close(resolve));
  }
});
