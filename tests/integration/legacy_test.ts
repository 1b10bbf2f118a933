/**
 * Unmodified upstream PushProx clients against this proxy: a double of the
 * Go client (tests/legacy_client_double.ts) polls and pushes in upstream's
 * wire format, next to Connect clients, while Prometheus-style requests
 * scrape through the proxy.
 */

import assert from "node:assert/strict";
import { type IncomingHttpHeaders } from "node:http";
import { type LegacyClient } from "../legacy_client_double.ts";
import { freePort, proxiedGet, withoutMeta } from "../support.ts";
import { startStack } from "../stack.ts";
import {
  doubleList,
  listClients,
  startDouble,
  startTarget,
  stopAll,
  TEXT,
  text,
} from "./legacy_support.ts";

Deno.test("an upstream client is scraped through the proxy and listed with protocol legacy", async () => {
  const seen: IncomingHttpHeaders[] = [];
  await using stack = await startStack((req, res) => {
    seen.push(req.headers);
    res.writeHead(200, { "content-type": "text/plain; version=0.0.4" });
    res.end(TEXT);
  });
  await using doubles = doubleList();
  const client = await startDouble(stack, doubles, { fqdn: "node-a.test" });
  const response = await proxiedGet(
    stack.proxyPort,
    stack.targetUrl("/metrics?x=1", "node-a.test"),
    {
      "x-prometheus-scrape-timeout-seconds": "5",
      "user-agent": "Prometheus/3.0.0",
      "accept": "text/plain;version=0.0.4",
    },
  );
  assert.equal(response.status, 200);
  assert.equal(text(response.body), TEXT);
  assert.equal(response.headers["content-type"], "text/plain; version=0.0.4");
  assert.equal(response.headers["id"], undefined, "Id does not reach Prometheus");
  assert.equal(
    response.headers["x-prometheus-scrape-timeout"],
    undefined,
    "the Go client's misspelt header does not reach Prometheus",
  );

  // What the target saw: the request as the Go client replays it.
  const headers = seen[0]!;
  assert.equal(headers["user-agent"], "Prometheus/3.0.0");
  assert.equal(headers["accept"], "text/plain;version=0.0.4");
  assert.equal(headers["host"], `node-a.test:${stack.targetPort}`);
  assert.match(String(headers["id"]), /^[0-9a-f-]{36}$/);
  const timeout = Number(headers["x-prometheus-scrape-timeout-seconds"]);
  assert.ok(timeout > 3 && timeout <= 5, `the time left is sent, got ${timeout}`);

  const push = await client.waitFor((e) => e.type === "push");
  assert.equal(push.type === "push" && push.status, 200);

  // Without a timeout header the proxy's default is sent, so the Go client
  // does not fail as it does upstream (#174).
  const plain = await proxiedGet(stack.proxyPort, stack.targetUrl("/metrics", "node-a.test"));
  assert.equal(plain.status, 200);
  assert.ok(Number(seen[1]!["x-prometheus-scrape-timeout-seconds"]) > 10);

  const sd = await (await fetch(`${stack.proxyUrl}/clients`)).json();
  assert.deepEqual(withoutMeta(sd), [{ targets: ["node-a.test"], labels: {} }]);
  const { clients } = await listClients(stack);
  assert.equal(clients.length, 1);
  assert.equal(clients[0]!.protocol, "legacy");
  assert.equal(clients[0]!.connected, true);

  const metrics = await (await fetch(`${stack.proxyUrl}/metrics`)).text();
  assert.match(metrics, /pushprox_http_requests_total\{code="200",path="\/poll"\} [1-9]/);
  assert.match(metrics, /pushprox_http_requests_total\{code="200",path="\/push"\} 2/);
});

Deno.test("an idle upstream client's poll is held past the hold checks without an error-shaped answer", async () => {
  await using stack = await startStack((_req, res) => {
    res.writeHead(200, { "content-type": "text/plain; version=0.0.4" });
    res.end(TEXT);
  }, { legacyPollHoldMs: 100 });
  await using doubles = doubleList();
  const client = await startDouble(stack, doubles, { fqdn: "idle.test" });
  // 20 hold checks with no scrape; upstream's proxy would hold the poll too.
  await new Promise((resolve) => setTimeout(resolve, 2_000));
  const errors = client.events.filter((e) => e.type === "poll_error");
  assert.deepEqual(errors, [], "the Go client would log these as level=error");
  assert.equal(client.counters.pollErrors, 0);
  assert.equal(client.events.filter((e) => e.type === "poll_sent").length, 1, "one poll, held");
  const response = await proxiedGet(
    stack.proxyPort,
    stack.targetUrl("/metrics", "idle.test"),
    { "x-prometheus-scrape-timeout-seconds": "5" },
  );
  assert.equal(response.status, 200);
  assert.equal(text(response.body), TEXT);
});

Deno.test("a legacy client and a Connect client are served side by side", async () => {
  await using stack = await startStack((_req, res) => res.end(TEXT));
  await using doubles = doubleList();
  await stack.startClient({ fqdn: "localhost" });
  await startDouble(stack, doubles, { fqdn: "node-b.test" });
  for (const host of ["localhost", "node-b.test", "localhost", "node-b.test"]) {
    const response = await proxiedGet(stack.proxyPort, stack.targetUrl("/metrics", host));
    assert.equal(response.status, 200, host);
    assert.equal(text(response.body), TEXT);
  }
  const { clients } = await listClients(stack);
  assert.deepEqual(
    clients.map((c) => [c.fqdn, c.protocol, c.connected]),
    [["localhost", "connect", true], ["node-b.test", "legacy", true]],
  );
});

Deno.test("two legacy clients with different fqdns are scraped at the same time", async () => {
  const stack = await startStack((req, res) => {
    setTimeout(() => res.end(`a ${req.url}\n`), 20);
  });
  const other = await startTarget((req, res) => res.end(`b ${req.url}\n`));
  const doubles: LegacyClient[] = [];
  try {
    await startDouble(stack, doubles, { fqdn: "node-a.test" });
    await startDouble(stack, doubles, { fqdn: "node-b.test" });
    const scrapes = [];
    for (let i = 0; i < 6; i++) {
      scrapes.push(
        proxiedGet(stack.proxyPort, stack.targetUrl(`/metrics?i=${i}`, "node-a.test")).then(
          (r) => [r.status, text(r.body)],
        ),
        proxiedGet(stack.proxyPort, `http://node-b.test:${other.port}/metrics?i=${i}`).then(
          (r) => [r.status, text(r.body)],
        ),
      );
    }
    const results = await Promise.all(scrapes);
    for (let i = 0; i < 6; i++) {
      assert.deepEqual(results[2 * i], [200, `a /metrics?i=${i}\n`]);
      assert.deepEqual(results[2 * i + 1], [200, `b /metrics?i=${i}\n`]);
    }
    assert.equal(stack.proxy.coordinator.scrapesInFlight, 0);
  } finally {
    await stopAll(stack, doubles);
    await other.close();
  }
});

Deno.test("a failed scrape is pushed as HTTP/0.0 500 and reaches Prometheus with the error text", async () => {
  await using stack = await startStack((_req, res) => res.end(TEXT));
  await using doubles = doubleList();
  const client = await startDouble(stack, doubles, { fqdn: "node-c.test" });
  const deadPort = await freePort();
  const response = await proxiedGet(
    stack.proxyPort,
    `http://node-c.test:${deadPort}/metrics`,
    { "x-prometheus-scrape-timeout-seconds": "5" },
  );
  assert.equal(response.status, 500);
  assert.match(
    text(response.body),
    /Cannot scrape http:\/\/node-c\.test:\d+\/metrics: .*refused/i,
  );
  const error = await client.waitFor((e) => e.type === "scrape_error");
  assert.match(error.type === "scrape_error" ? error.error : "", /refused/i);
  const push = await client.waitFor((e) => e.type === "push");
  assert.ok(push.type === "push" && push.error && push.status === 200);
  assert.equal(client.counters.scrapeErrors, 1);
});

Deno.test("a scrape that outlives its timeout ends in 504 and leaves nothing behind", async () => {
  const timers = new Set<ReturnType<typeof setTimeout>>();
  const stack = await startStack((req, res) => {
    const delay = req.url === "/slow" ? 2_000 : 0;
    const timer = setTimeout(() => res.end(TEXT), delay);
    timers.add(timer);
    res.on("close", () => clearTimeout(timer));
  });
  const doubles: LegacyClient[] = [];
  try {
    const client = await startDouble(stack, doubles, { fqdn: "node-d.test" });
    const started = Date.now();
    const response = await proxiedGet(
      stack.proxyPort,
      stack.targetUrl("/slow", "node-d.test"),
      { "x-prometheus-scrape-timeout-seconds": "0.5" },
    );
    assert.equal(response.status, 504);
    assert.ok(Date.now() - started < 1_500);
    // The client gives up at the deadline it was sent and reports it; that
    // late answer is refused (or never arrives) and nothing stays in flight.
    const error = await client.waitFor((e) => e.type === "scrape_error");
    assert.match(error.type === "scrape_error" ? error.error : "", /deadline/);
    await client.waitFor((e) => (e.type === "push" && e.status === 500) || e.type === "push_error");
    assert.equal(stack.proxy.coordinator.scrapesInFlight, 0);

    const next = await proxiedGet(stack.proxyPort, stack.targetUrl("/ok", "node-d.test"));
    assert.equal(next.status, 200, "the client keeps working");
  } finally {
    await stopAll(stack, doubles);
    for (const timer of timers) clearTimeout(timer);
  }
});
