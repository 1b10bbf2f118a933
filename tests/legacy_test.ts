/**
 * Unmodified upstream PushProx clients against this proxy: a double of the
 * Go client (tests/legacy_client_double.ts) polls and pushes in upstream's
 * wire format, next to Connect clients, while Prometheus-style requests
 * scrape through the proxy.
 */

import assert from "node:assert/strict";
import { createServer, type IncomingHttpHeaders, request, type Server } from "node:http";
import { connect, createServer as createTcpServer, type Socket } from "node:net";
import type { AddressInfo } from "node:net";
import { gzipSync } from "node:zlib";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { RegistryService } from "../gen/pushprox/v1/pushprox_pb.ts";
import {
  type LegacyClient,
  type LegacyClientOptions,
  parsePollRequest,
  startLegacyClient,
} from "./legacy_client_double.ts";
import { freePort, proxiedGet, startProxyProcess, waitUntil, withoutMeta } from "./support.ts";
import { type Stack, startStack } from "./stack.ts";

const TEXT = "# TYPE up gauge\nup 1\n";
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Starts the double against the stack's proxy and waits until it is listed. */
async function startDouble(
  stack: Stack,
  doubles: LegacyClient[],
  options: Partial<LegacyClientOptions> & { fqdn: string },
): Promise<LegacyClient> {
  const client = startLegacyClient({
    proxyUrl: stack.proxyUrl,
    useLocalhost: true,
    retryInitialWaitMs: 50,
    retryMaxWaitMs: 200,
    ...options,
  });
  doubles.push(client);
  await waitUntil(
    () =>
      stack.proxy.coordinator.listClients().some((c) =>
        c.fqdn === options.fqdn && c.connected && c.protocol === "legacy"
      ) || undefined,
    5_000,
    `legacy client ${options.fqdn} to register`,
  );
  return client;
}

async function stopAll(stack: Stack, doubles: LegacyClient[]): Promise<void> {
  await Promise.all(doubles.map((d) => d.stop()));
  await stack.close();
}

async function startTarget(handler: Parameters<typeof createServer>[1]): Promise<{
  server: Server;
  port: number;
  close(): Promise<void>;
}> {
  const server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    server,
    port: (server.address() as AddressInfo).port,
    async close() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

function text(body: Uint8Array): string {
  return decoder.decode(body);
}

function listClients(stack: Stack) {
  return createClient(
    RegistryService,
    createConnectTransport({ baseUrl: stack.proxyUrl, httpVersion: "1.1" }),
  ).listClients({});
}

Deno.test("an upstream client is scraped through the proxy and listed with protocol legacy", async () => {
  const seen: IncomingHttpHeaders[] = [];
  const stack = await startStack((req, res) => {
    seen.push(req.headers);
    res.writeHead(200, { "content-type": "text/plain; version=0.0.4" });
    res.end(TEXT);
  });
  const doubles: LegacyClient[] = [];
  try {
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
  } finally {
    await stopAll(stack, doubles);
  }
});

Deno.test("an idle upstream client's poll is held past the hold checks without an error-shaped answer", async () => {
  const stack = await startStack((_req, res) => {
    res.writeHead(200, { "content-type": "text/plain; version=0.0.4" });
    res.end(TEXT);
  }, { legacyPollHoldMs: 100 });
  const doubles: LegacyClient[] = [];
  try {
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
  } finally {
    await stopAll(stack, doubles);
  }
});

Deno.test("a legacy client and a Connect client are served side by side", async () => {
  const stack = await startStack((_req, res) => res.end(TEXT));
  const doubles: LegacyClient[] = [];
  try {
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
  } finally {
    await stopAll(stack, doubles);
  }
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
  const stack = await startStack((_req, res) => res.end(TEXT));
  const doubles: LegacyClient[] = [];
  try {
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
  } finally {
    await stopAll(stack, doubles);
  }
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

/**
 * A TCP relay that behaves like a load balancer with an idle timeout: a
 * request without an answer for `idleMs` gets an HTML 504, like nginx's.
 *
 * A cut first half-closes the connection to the proxy and reads on until the
 * proxy closes it: an answer the proxy had already written (a scrape racing
 * the timeout) is relayed, not dropped; only a poll the proxy saw end
 * unanswered gets the 504. Dropping bytes the proxy had sent would lose that
 * scrape on a loaded machine, where the timer often fires before the relay
 * reads them.
 */
async function startIdleCutter(targetPort: number, idleMs: number): Promise<{
  port: number;
  cuts: number;
  /** Poll requests relayed to the proxy. */
  polls: number;
  /** Connections not closed on both sides yet. */
  open: number;
  close(): Promise<void>;
}> {
  const sockets = new Set<Socket>();
  const state = { cuts: 0, polls: 0, open: 0 };
  const server = createTcpServer((inbound) => {
    const outbound = connect(targetPort, "127.0.0.1");
    sockets.add(inbound).add(outbound);
    state.open++;
    let closed = 0;
    let waiting = false;
    let cutting = false;
    let timer = setTimeout(cut, idleMs);
    function touch(): void {
      clearTimeout(timer);
      if (!cutting) timer = setTimeout(cut, idleMs);
    }
    function cut(): void {
      clearTimeout(timer);
      if (waiting && !inbound.destroyed) {
        cutting = true;
        outbound.end();
        // Bounded: a proxy that ignored the half-close is cut off anyway.
        timer = setTimeout(() => outbound.destroy(), 5_000);
      } else {
        inbound.destroy();
        outbound.destroy();
      }
    }
    inbound.on("data", (chunk: Uint8Array) => {
      if (cutting) return;
      waiting = true;
      touch();
      state.polls += decoder.decode(chunk).split("POST /poll ").length - 1;
      outbound.write(chunk);
    });
    outbound.on("data", (chunk) => {
      waiting = false;
      touch();
      inbound.write(chunk);
    });
    for (const socket of [inbound, outbound]) {
      socket.on("error", () => {});
      socket.on("close", () => {
        clearTimeout(timer);
        sockets.delete(socket);
        if (++closed === 2) state.open--;
        if (socket === outbound && !inbound.destroyed) {
          if (cutting && waiting) {
            state.cuts++;
            const page = "<html><body><h1>504 Gateway Time-out</h1></body></html>\r\n";
            inbound.end(
              `HTTP/1.1 504 Gateway Time-out\r\nContent-Type: text/html\r\nContent-Length: ${page.length}\r\nConnection: close\r\n\r\n${page}`,
            );
          } else {
            inbound.end();
          }
        }
        if (socket === inbound) outbound.destroy();
      });
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as AddressInfo).port,
    get cuts() {
      return state.cuts;
    },
    get polls() {
      return state.polls;
    },
    get open() {
      return state.open;
    },
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/** Polls the proxy has answered or seen end, whatever the outcome. */
async function finishedPolls(stack: Stack): Promise<number> {
  const metric = await stack.proxy.metrics.httpRequests.get();
  return metric.values
    .filter((v) => v.labels.path === "/poll")
    .reduce((sum, v) => sum + v.value, 0);
}

Deno.test("reconnects: polls cut by a load balancer and a restarted client keep the registration", async () => {
  const stack = await startStack((_req, res) => res.end(TEXT));
  const cutter = await startIdleCutter(stack.proxyPort, 150);
  const doubles: LegacyClient[] = [];
  try {
    const client = await startDouble(stack, doubles, {
      fqdn: "node-e.test",
      proxyUrl: `http://127.0.0.1:${cutter.port}`,
    });
    const since = stack.proxy.coordinator.listClients()[0]!.connectedSince;
    const cut = await client.waitFor((e) => e.type === "poll_error" && e.status === 504, 5_000);
    assert.match(
      cut.type === "poll_error" ? cut.error : "",
      /^invalid method "<html>/,
      "the Go client reads the load balancer's page as a bad request",
    );
    for (let i = 0; i < 6; i++) {
      const response = await proxiedGet(
        stack.proxyPort,
        stack.targetUrl("/metrics", "node-e.test"),
      );
      assert.equal(response.status, 200);
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    assert.ok(cutter.cuts >= 3, `polls were cut (${cutter.cuts})`);
    const listed = stack.proxy.coordinator.listClients();
    assert.equal(listed.length, 1);
    assert.equal(listed[0]!.connectedSince, since, "one registration across cut polls");

    // The client process restarts: the new one takes over the session. A
    // scrape sent before the proxy sees the old poll end would be lost with
    // the old process (as upstream), so wait for that first: every poll the
    // old client sent (all through the relay) has ended at the proxy.
    await client.stop();
    await waitUntil(
      async () => cutter.open === 0 && await finishedPolls(stack) === cutter.polls || undefined,
      5_000,
      "the proxy to end every poll of the old client",
    );
    await startDouble(stack, doubles, { fqdn: "node-e.test" });
    const response = await proxiedGet(stack.proxyPort, stack.targetUrl("/metrics", "node-e.test"));
    assert.equal(response.status, 200);
    assert.equal(stack.proxy.coordinator.listClients().length, 1);
  } finally {
    await stopAll(stack, doubles);
    await cutter.close();
  }
});

Deno.test("pushes framed with Content-Length, chunked or up to the end carry the same bytes", async () => {
  const gz = gzipSync(TEXT.repeat(50_000));
  const stack = await startStack((_req, res) => {
    res.writeHead(200, { "content-encoding": "gzip", "content-type": "text/plain" });
    res.end(gz);
  });
  const doubles: LegacyClient[] = [];
  try {
    for (const framing of ["content-length", "chunked", "close"] as const) {
      const fqdn = `node-${framing}.test`;
      await startDouble(stack, doubles, { fqdn, pushFraming: framing });
      const response = await proxiedGet(stack.proxyPort, stack.targetUrl("/metrics", fqdn), {
        "accept-encoding": "gzip",
      });
      assert.equal(response.status, 200, framing);
      assert.equal(response.headers["content-encoding"], "gzip");
      assert.deepEqual(response.body, new Uint8Array(gz), `${framing}: gzip bytes untouched`);
    }
  } finally {
    await stopAll(stack, doubles);
  }
});

Deno.test("a push is relayed to Prometheus while it is still arriving", async () => {
  const stack = await startStack((_req, res) => res.end());
  try {
    const polled = fetch(`${stack.proxyUrl}/poll`, {
      method: "POST",
      body: encoder.encode("node-s.test"),
    });
    await waitUntil(
      () => stack.proxy.coordinator.listClients().some((c) => c.connected) || undefined,
      5_000,
      "registration",
    );
    let firstBytes!: () => void;
    const gotFirstBytes = new Promise<void>((resolve) => firstBytes = resolve);
    const scraped = new Promise<{ status: number; body: string }>((resolve, reject) => {
      const outgoing = request({
        host: "127.0.0.1",
        port: stack.proxyPort,
        path: "http://node-s.test:9100/metrics",
        headers: { host: "node-s.test:9100", "x-prometheus-scrape-timeout-seconds": "10" },
        agent: false,
      }, (incoming) => {
        let body = "";
        incoming.on("data", (chunk: Uint8Array) => {
          body += decoder.decode(chunk);
          firstBytes();
        });
        incoming.on("end", () => resolve({ status: incoming.statusCode ?? 0, body }));
        incoming.on("error", reject);
      });
      outgoing.on("error", reject);
      outgoing.end();
    });
    const scrape = parsePollRequest(new Uint8Array(await (await polled).arrayBuffer()));
    const id = scrape.headers.find(([name]) => name === "Id")![1];

    let feed!: ReadableStreamDefaultController<Uint8Array>;
    const pushed = fetch(`${stack.proxyUrl}/push`, {
      method: "POST",
      body: new ReadableStream<Uint8Array>({ start: (c) => void (feed = c) }),
    });
    feed.enqueue(
      encoder.encode(`HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nId: ${id}\r\n\r\n`),
    );
    feed.enqueue(encoder.encode("b\r\nfirst part\n\r\n"));
    await gotFirstBytes; // Prometheus has bytes before the push is complete
    feed.enqueue(encoder.encode("c\r\nsecond part\n\r\n0\r\n\r\n"));
    feed.close();
    const pushResponse = await pushed;
    assert.equal(pushResponse.status, 200);
    await pushResponse.body?.cancel();
    assert.deepEqual(await scraped, { status: 200, body: "first part\nsecond part\n" });
  } finally {
    await stack.close();
  }
});

Deno.test("an unknown push Id gets upstream's 500", async () => {
  const stack = await startStack((_req, res) => res.end());
  try {
    const response = await fetch(`${stack.proxyUrl}/push`, {
      method: "POST",
      body: encoder.encode("HTTP/1.1 200 OK\r\nId: 5d0c\r\nContent-Length: 0\r\n\r\n"),
    });
    assert.equal(response.status, 500);
    assert.match(await response.text(), /^Error pushing: /);
  } finally {
    await stack.close();
  }
});

Deno.test("with legacyProtocol off, /poll and /push are not served", async () => {
  const stack = await startStack((_req, res) => res.end(), { legacyProtocol: false });
  try {
    for (const path of ["/poll", "/push"]) {
      const response = await fetch(`${stack.proxyUrl}${path}`, {
        method: "POST",
        body: encoder.encode("node-a"),
      });
      assert.equal(response.status, 404, path);
      await response.body?.cancel();
    }
  } finally {
    await stack.close();
  }
});

Deno.test({
  name: "--no-legacy.enabled turns the endpoints off in the proxy program",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const { process, url } = await startProxyProcess(["--no-legacy.enabled"]);
    try {
      const response = await fetch(`${url}/poll`, {
        method: "POST",
        body: encoder.encode("node-a"),
      });
      assert.equal(response.status, 404);
      await response.body?.cancel();
    } finally {
      await process.stop();
    }
  },
});
