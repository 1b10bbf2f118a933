/**
 * Upstream's wire format at the edges: polls cut by a load balancer and
 * restarted clients, pushes framed every way Go frames them and relayed
 * while still arriving, unknown push ids, and the endpoints turned off.
 */

import assert from "node:assert/strict";
import { request } from "node:http";
import { connect, createServer as createTcpServer, type Socket } from "node:net";
import type { AddressInfo } from "node:net";
import { gzipSync } from "node:zlib";
import { type LegacyClient, parsePollRequest } from "../legacy_client_double.ts";
import { proxiedGet, startProxyProcess, waitUntil } from "../support.ts";
import { type Stack, startStack } from "../stack.ts";
import {
  decoder,
  doubleList,
  encoder,
  startDouble,
  stopAll,
  TEXT,
} from "../integration/legacy_support.ts";
import { closing } from "../fixture.ts";

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
  await using stack = await startStack((_req, res) => {
    res.writeHead(200, { "content-encoding": "gzip", "content-type": "text/plain" });
    res.end(gz);
  });
  await using doubles = doubleList();
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
});

Deno.test("a push is relayed to Prometheus while it is still arriving", async () => {
  await using stack = closing(await startStack((_req, res) => res.end()));
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
});

Deno.test("an unknown push Id gets upstream's 500", async () => {
  await using stack = closing(await startStack((_req, res) => res.end()));
  const response = await fetch(`${stack.proxyUrl}/push`, {
    method: "POST",
    body: encoder.encode("HTTP/1.1 200 OK\r\nId: 5d0c\r\nContent-Length: 0\r\n\r\n"),
  });
  assert.equal(response.status, 500);
  assert.match(await response.text(), /^Error pushing: /);
});

Deno.test("with legacyProtocol off, /poll and /push are not served", async () => {
  await using stack = closing(
    await startStack((_req, res) => res.end(), { legacyProtocol: false }),
  );
  for (const path of ["/poll", "/push"]) {
    const response = await fetch(`${stack.proxyUrl}${path}`, {
      method: "POST",
      body: encoder.encode("node-a"),
    });
    assert.equal(response.status, 404, path);
    await response.body?.cancel();
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
