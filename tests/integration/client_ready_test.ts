import assert from "node:assert/strict";
import { createNullLogger } from "../../lib/logger.ts";
import { createProxy, serveProxy } from "../../proxy/http/server.ts";
import { freePort, waitUntil } from "../support.ts";
import { startAgent } from "../../client/agent/agent.ts";

Deno.test("the client's /-/ready is 503 until it is registered with a proxy", async () => {
  const port = await freePort();
  const agent = await startAgent({
    proxyUrl: `http://127.0.0.1:${port}/`,
    fqdn: "localhost",
    logger: createNullLogger(),
    metricsAddress: { hostname: "127.0.0.1", port: 0 },
    defaultMetrics: false,
    retryInitialMs: 50,
    retryMaxMs: 100,
    env: {},
  });
  const stop = new AbortController();
  let serving;
  try {
    const ready = async () => {
      const response = await fetch(`http://127.0.0.1:${agent.metricsAddress!.port}/-/ready`);
      return { status: response.status, text: await response.text() };
    };
    assert.deepEqual(await ready(), {
      status: 503,
      text: "Not ready: not registered with any proxy\n",
    });
    const healthy = await fetch(`http://127.0.0.1:${agent.metricsAddress!.port}/-/healthy`);
    assert.equal(healthy.status, 200);
    await healthy.body?.cancel();

    const proxy = createProxy({ logger: createNullLogger(), defaultMetrics: false });
    serving = await serveProxy(proxy, { hostname: "127.0.0.1", port, signal: stop.signal });
    const answer = await waitUntil(
      async () => {
        const r = await ready();
        return r.status === 200 ? r : undefined;
      },
      5_000,
      "the client to be ready",
    );
    assert.equal(answer.text, "Ready: registered with 1 of 1 proxies\n");
    const metrics = await (await fetch(`http://127.0.0.1:${agent.metricsAddress!.port}/metrics`))
      .text();
    assert.match(metrics, /^pushprox_client_connected 1$/m);
  } finally {
    await agent.stop();
    stop.abort();
    await serving?.finished;
  }
});
