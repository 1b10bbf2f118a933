import assert from "node:assert/strict";
import { createNullLogger } from "../../lib/logger.ts";
import { createProxy, serveProxy } from "./server.ts";

Deno.test("/-/healthy, /-/ready and / answer as Prometheus does; /-/ready is 503 while draining", async () => {
  const proxy = createProxy({ logger: createNullLogger(), defaultMetrics: false });
  const stop = new AbortController();
  const serving = await serveProxy(proxy, { hostname: "127.0.0.1", port: 0, signal: stop.signal });
  const base = `http://127.0.0.1:${serving.address.port}`;
  try {
    const get = async (path: string, init?: RequestInit) => {
      const response = await fetch(base + path, init);
      return { status: response.status, headers: response.headers, text: await response.text() };
    };
    assert.deepEqual(
      [await get("/-/healthy"), await get("/-/ready")].map((r) => [r.status, r.text]),
      [[200, "PushProx Proxy is Healthy.\n"], [200, "PushProx Proxy is Ready.\n"]],
    );
    const head = await get("/-/ready", { method: "HEAD" });
    assert.deepEqual([head.status, head.text], [200, ""]);
    const post = await get("/-/healthy", { method: "POST", body: "x" });
    assert.equal(post.status, 405);
    assert.equal(post.headers.get("allow"), "GET, HEAD");

    const page = await get("/");
    assert.equal(page.status, 200);
    assert.match(page.headers.get("content-type")!, /^text\/html/);
    assert.match(page.headers.get("content-security-policy")!, /script-src 'sha256-/);
    assert.match(page.text, /<title>PushProx proxy<\/title>/);
    assert.doesNotMatch(page.text, /<(script|link|img)[^>]+(src|href)=/, "no external assets");
    assert.equal((await get("/other")).status, 404);

    proxy.coordinator.drain();
    const draining = await get("/-/ready");
    assert.deepEqual([draining.status, draining.text], [503, "PushProx Proxy is shutting down.\n"]);
    assert.equal((await get("/-/healthy")).status, 200);
  } finally {
    stop.abort();
    await serving.finished;
  }
});
