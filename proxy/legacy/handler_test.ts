import assert from "node:assert/strict";
import { createServer } from "node:http";
import { connect } from "node:net";
import type { AddressInfo } from "node:net";
import { createNullLogger } from "../../lib/logger.ts";
import {
  type Coordinator,
  CoordinatorError,
  createCoordinator,
  type ScrapeReply,
} from "../core/coordinator.ts";
import { createLegacyHandler, type LegacyHandler, type LegacyHandlerOptions } from "./handler.ts";
import { createProxyMetrics, type ProxyMetrics } from "../core/metrics.ts";
import { closing } from "../../tests/fixture.ts";

interface Harness {
  coordinator: Coordinator;
  handler: LegacyHandler;
  metrics: ProxyMetrics;
  url: string;
  port: number;
  close(): Promise<void>;
}

/** The legacy handler alone on a loopback port; scrapes are requested directly. */
async function harness(options: Partial<LegacyHandlerOptions> = {}): Promise<Harness> {
  const coordinator = createCoordinator({ registrationTimeoutMs: 60_000 });
  const metrics = createProxyMetrics({
    clientCount: () => coordinator.clientCount,
    scrapesInFlight: () => coordinator.scrapesInFlight,
    defaultMetrics: false,
  });
  const handler = createLegacyHandler({
    coordinator,
    logger: createNullLogger(),
    metrics,
    ...options,
  });
  const server = createServer((req, res) => {
    const serve = req.url === "/poll" ? handler.poll : handler.push;
    serve(req, res).catch((error) => {
      console.error(error);
      res.destroy();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    coordinator,
    handler,
    metrics,
    port,
    url: `http://127.0.0.1:${port}`,
    async close() {
      handler.close();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

async function poll(h: Harness, fqdn: string): Promise<{ status: number; text: string }> {
  const response = await fetch(`${h.url}/poll`, {
    method: "POST",
    body: new TextEncoder().encode(fqdn),
  });
  return { status: response.status, text: await response.text() };
}

async function push(h: Harness, body: string): Promise<{ status: number; text: string }> {
  const response = await fetch(`${h.url}/push`, {
    method: "POST",
    body: new TextEncoder().encode(body),
  });
  return { status: response.status, text: await response.text() };
}

function scrape(h: Harness, host: string, timeoutMs = 5_000, method = "GET") {
  const reply = h.coordinator.requestScrape(
    {
      host,
      method,
      url: `http://${host}:9100/metrics`,
      headers: [{ name: "user-agent", value: "Prometheus/3.0.0" }],
      deadline: Date.now() + timeoutMs,
    },
    AbortSignal.timeout(timeoutMs),
  );
  reply.catch(() => {}); // a failed test must not end in an unhandled rejection
  return reply;
}

async function waitFor<T>(check: () => T | undefined, what: string, ms = 3_000): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    const value = check();
    if (value !== undefined) return value;
    if (Date.now() > until) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

function connected(h: Harness, fqdn: string): boolean {
  return h.coordinator.listClients().some((c) => c.fqdn === fqdn && c.connected);
}

function idOf(pollText: string): string {
  const match = /\r\nId: ([^\r]+)\r\n/.exec(pollText);
  assert.ok(match, `no Id in ${JSON.stringify(pollText)}`);
  return match[1]!;
}

async function readBody(reply: ScrapeReply): Promise<string> {
  let text = "";
  for await (const chunk of reply.body) text += new TextDecoder().decode(chunk);
  return text;
}

/** Pushes, reads the relayed body and settles, as the scrape handler would. */
async function relay(
  h: Harness,
  replyPromise: Promise<ScrapeReply>,
  pushText: string,
): Promise<{ reply: ScrapeReply; body: string; pushed: { status: number; text: string } }> {
  const pushing = push(h, pushText);
  const reply = await replyPromise;
  const body = reply.error === "" ? await readBody(reply) : "";
  reply.settle();
  return { reply, body, pushed: await pushing };
}

async function metricValue(metrics: ProxyMetrics, labels: string): Promise<number> {
  const text = await metrics.registry.getSingleMetricAsString("pushprox_http_requests_total");
  const line = text.split("\n").find((l) => l.includes(labels));
  return line === undefined ? 0 : Number(line.split(" ").at(-1));
}

Deno.test("a held poll carries a scrape, and the push is relayed without the wire headers", async () => {
  await using h = closing(await harness());
  const held = poll(h, "node-a.example\n");
  await waitFor(() => connected(h, "node-a.example") || undefined, "registration");
  const client = h.coordinator.listClients()[0]!;
  assert.equal(client.protocol, "legacy");

  const replyPromise = scrape(h, "node-a.example");
  const answer = await held;
  assert.equal(answer.status, 200);
  assert.match(answer.text, /^GET http:\/\/node-a\.example:9100\/metrics HTTP\/1\.1\r\n/);
  assert.match(answer.text, /\r\nUser-Agent: Prometheus\/3\.0\.0\r\n/);
  assert.match(answer.text, /\r\nX-Prometheus-Scrape-Timeout-Seconds: [45](\.\d+)?\r\n\r\n$/);
  const id = idOf(answer.text);

  const pushed = push(
    h,
    `HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\nId: ${id}\r\n` +
      "X-Prometheus-Scrape-Timeout: 4.900000\r\n\r\nup 1\n",
  );
  const reply = await replyPromise;
  assert.equal(reply.status, 200);
  assert.equal(reply.error, "");
  assert.deepEqual(reply.headers, [{ name: "content-type", value: "text/plain" }]);
  assert.equal(await readBody(reply), "up 1\n");
  reply.settle();
  assert.deepEqual(await pushed, { status: 200, text: "" });
  assert.equal(h.coordinator.scrapesInFlight, 0);
  assert.equal(await metricValue(h.metrics, 'code="200",path="/poll"'), 1);
  assert.equal(await metricValue(h.metrics, 'code="200",path="/push"'), 1);

  const again = await push(h, `HTTP/1.1 200 OK\r\nId: ${id}\r\nContent-Length: 0\r\n\r\n`);
  assert.equal(again.status, 500, "a second push for the same Id is refused");
});

Deno.test("a newer poll for the same fqdn displaces the held one with upstream's 408", async () => {
  await using h = closing(await harness());
  const first = poll(h, "node-a");
  await waitFor(() => connected(h, "node-a") || undefined, "registration");
  const since = h.coordinator.listClients()[0]!.connectedSince;
  const second = poll(h, "node-a");
  assert.deepEqual(await first, {
    status: 408,
    text: "Error WaitForScrapeInstruction: request is expired\n",
  });
  assert.equal(
    h.coordinator.listClients()[0]!.connectedSince,
    since,
    "the session is kept, not registered again",
  );
  const replyPromise = scrape(h, "node-a");
  const answer = await second;
  assert.equal(answer.status, 200);
  const { reply, pushed } = await relay(
    h,
    replyPromise,
    `HTTP/1.1 204 No Content\r\nId: ${idOf(answer.text)}\r\n\r\n`,
  );
  assert.equal(reply.status, 204);
  assert.equal(pushed.status, 200);
  assert.equal(await metricValue(h.metrics, 'code="408",path="/poll"'), 1);
});

Deno.test("a poll with nothing to do is held past many hold checks, unanswered, until a scrape comes", async () => {
  await using h = closing(await harness({ pollHoldMs: 50, sessionGraceMs: 2_000 }));
  let answered = false;
  const held = poll(h, "node-a").finally(() => answered = true);
  await waitFor(() => connected(h, "node-a") || undefined, "registration");
  // 20 checks: upstream holds a poll until a scrape comes, and any answer
  // now would be logged by the Go client as an error.
  await new Promise((resolve) => setTimeout(resolve, 1_000));
  assert.equal(answered, false, "an idle poll was answered");
  assert.equal(await metricValue(h.metrics, 'code="408",path="/poll"'), 0);

  const replyPromise = scrape(h, "node-a");
  const answer = await held;
  assert.equal(answer.status, 200);
  const { body } = await relay(
    h,
    replyPromise,
    `HTTP/1.1 200 OK\r\nId: ${idOf(answer.text)}\r\nContent-Length: 2\r\n\r\nok`,
  );
  assert.equal(body, "ok");
});

Deno.test("a dead poll is noticed, and the session closes after the grace period", async () => {
  await using h = closing(await harness({ sessionGraceMs: 150 }));
  const socket = connect(h.port, "127.0.0.1");
  socket.on("error", () => {});
  socket.write("POST /poll HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n\r\nnode-a");
  await waitFor(() => connected(h, "node-a") || undefined, "registration");
  socket.destroy();
  await waitFor(() => connected(h, "node-a") ? undefined : true, "disconnection");
  assert.equal(h.handler.sessionCount, 0);
  const error = await scrape(h, "node-a").catch((e) => e);
  assert.ok(error instanceof CoordinatorError);
  assert.equal(error.kind, "client_disconnected", "fails at once, not at the deadline");
  assert.equal(await metricValue(h.metrics, 'code="499",path="/poll"'), 1);
});

Deno.test("a scrape sent to a client that never pushes fails when its session closes", async () => {
  await using h = closing(await harness({ sessionGraceMs: 100 }));
  const held = poll(h, "node-a");
  await waitFor(() => connected(h, "node-a") || undefined, "registration");
  const replyPromise = scrape(h, "node-a", 10_000);
  assert.equal((await held).status, 200);
  const started = Date.now();
  const error = await replyPromise.catch((e) => e);
  assert.equal((error as CoordinatorError).kind, "client_disconnected");
  assert.ok(Date.now() - started < 2_000);
});

Deno.test("pushes are refused with upstream's 500 unless they answer a scrape sent to a legacy poll", async () => {
  await using h = closing(await harness());
  const unknown = await push(h, "HTTP/1.1 200 OK\r\nId: nope\r\nContent-Length: 0\r\n\r\n");
  assert.equal(unknown.status, 500);
  assert.match(unknown.text, /^Error pushing: no scrape "nope" is waiting/);
  const noId = await push(h, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
  assert.equal(noId.status, 500);
  const garbage = await push(h, "<html>oops</html>\n\n");
  assert.equal(garbage.status, 500);
  assert.match(garbage.text, /malformed status line/);

  // A scrape handed to a Connect stream cannot be answered on /push.
  const session = h.coordinator.register({
    fqdn: "node-c",
    labels: {},
    version: "",
    modules: [],
    protocol: "connect",
  });
  const replyPromise = scrape(h, "node-c", 2_000);
  const task = await session.next(new AbortController().signal);
  const foreign = await push(
    h,
    `HTTP/1.1 200 OK\r\nId: ${task!.id}\r\nContent-Length: 0\r\n\r\n`,
  );
  assert.equal(foreign.status, 500);
  session.close();
  await replyPromise.catch(() => {});

  const get = await fetch(`${h.url}/push`);
  assert.equal(get.status, 405);
  await get.body?.cancel();
  assert.equal(await metricValue(h.metrics, 'code="500",path="/push"'), 4);
});

Deno.test("upstream's HTTP/0.0 error push becomes the scrape's error", async () => {
  await using h = closing(await harness());
  const held = poll(h, "node-a");
  await waitFor(() => connected(h, "node-a") || undefined, "registration");
  const replyPromise = scrape(h, "node-a");
  const id = idOf((await held).text);
  const { reply, pushed } = await relay(
    h,
    replyPromise,
    `HTTP/0.0 500 Internal Server Error\r\nId: ${id}\r\nX-Prometheus-Scrape-Timeout: 4.1\r\n\r\n` +
      'Get "http://node-a:9100/metrics": dial tcp 10.0.0.1:9100: connect: connection refused',
  );
  assert.equal(reply.status, 500);
  assert.equal(
    reply.error,
    'Get "http://node-a:9100/metrics": dial tcp 10.0.0.1:9100: connect: connection refused',
  );
  assert.equal(pushed.status, 200);
});

Deno.test("a pushed answer to a HEAD scrape has no body whatever its Content-Length", async () => {
  await using h = closing(await harness());
  const held = poll(h, "node-a");
  await waitFor(() => connected(h, "node-a") || undefined, "registration");
  const replyPromise = scrape(h, "node-a", 5_000, "HEAD");
  const text = (await held).text;
  assert.match(text, /^HEAD /);
  const { body, pushed } = await relay(
    h,
    replyPromise,
    `HTTP/1.1 200 OK\r\nContent-Length: 1234\r\nId: ${idOf(text)}\r\n\r\n`,
  );
  assert.equal(body, "");
  assert.equal(pushed.status, 200);
});

Deno.test("a Connect client registering the same fqdn ends the legacy poll with 408", async () => {
  await using h = closing(await harness({ sessionGraceMs: 100 }));
  const held = poll(h, "node-a");
  await waitFor(() => connected(h, "node-a") || undefined, "registration");
  const session = h.coordinator.register({
    fqdn: "node-a",
    labels: {},
    version: "",
    modules: [],
    protocol: "connect",
  });
  const answer = await held;
  assert.equal(answer.status, 408);
  assert.equal(h.coordinator.listClients()[0]!.protocol, "connect");
  session.close();
  // The legacy client polls again and takes the name back.
  const again = poll(h, "node-a");
  await waitFor(
    () => h.coordinator.listClients().find((c) => c.connected && c.protocol === "legacy"),
    "legacy registration",
  );
  h.handler.close();
  assert.equal((await again).status, 503);
});

Deno.test("polls are checked: method, fqdn and the authorize hook", async () => {
  const seen: string[] = [];
  await using h = closing(
    await harness({
      authorize(req, fqdn) {
        seen.push(`${req.url} ${fqdn}`);
        return fqdn !== "evil";
      },
      pollHoldMs: 50,
    }),
  );
  const get = await fetch(`${h.url}/poll`);
  assert.equal(get.status, 405);
  await get.body?.cancel();
  assert.equal((await poll(h, "")).status, 400);
  assert.equal((await poll(h, "a/b")).status, 400);
  assert.equal((await poll(h, "x".repeat(2000))).status, 413);
  const refused = await poll(h, "evil");
  assert.equal(refused.status, 403);
  assert.equal(h.coordinator.clientCount, 0, "a refused poll registers nothing");

  const held = poll(h, "node-a");
  await waitFor(() => connected(h, "node-a") || undefined, "registration");
  const replyPromise = scrape(h, "node-a");
  const id = idOf((await held).text);
  const { pushed } = await relay(
    h,
    replyPromise,
    `HTTP/1.1 200 OK\r\nId: ${id}\r\nContent-Length: 0\r\n\r\n`,
  );
  assert.equal(pushed.status, 200);
  assert.deepEqual(seen, ["/poll evil", "/poll node-a", "/push node-a"]);
});

Deno.test("close() answers held polls and closes the sessions", async () => {
  await using h = closing(await harness());
  const held = poll(h, "node-a");
  await waitFor(() => connected(h, "node-a") || undefined, "registration");
  h.handler.close();
  assert.equal((await held).status, 503);
  assert.equal(connected(h, "node-a"), false);
  assert.equal((await poll(h, "node-a")).status, 503);
});

Deno.test("while the proxy drains, polls are answered 503 and sent scrapes can still be pushed", async () => {
  await using h = closing(await harness());
  const first = poll(h, "node-a");
  await waitFor(() => connected(h, "node-a") || undefined, "registration");
  const replyPromise = scrape(h, "node-a");
  const id = idOf((await first).text);
  const held = poll(h, "node-a");
  await new Promise((resolve) => setTimeout(resolve, 50)); // let the poll be held
  // As drainProxy does: drain the coordinator, then close the proxy's state.
  h.coordinator.drain();
  h.handler.close();
  assert.deepEqual(await held, { status: 503, text: "The proxy is shutting down\n" });
  assert.equal((await poll(h, "node-b")).status, 503, "no new registrations");
  const { body, pushed } = await relay(
    h,
    replyPromise,
    `HTTP/1.1 200 OK\r\nId: ${id}\r\nContent-Length: 3\r\n\r\nup\n`,
  );
  assert.equal(body, "up\n");
  assert.equal(pushed.status, 200);
});

Deno.test("a killed legacy client counts as disconnected from its last poll, not from the grace period's end", async () => {
  await using h = closing(await harness({ sessionGraceMs: 1_000 }));
  const socket = connect(h.port, "127.0.0.1");
  socket.on("error", () => {});
  socket.write("POST /poll HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n\r\nnode-a");
  await waitFor(() => connected(h, "node-a") || undefined, "registration");
  assert.match(h.coordinator.listClients()[0]!.peerAddress ?? "", /^127\.0\.0\.1:\d+$/);
  const killed = Date.now();
  socket.destroy();
  await waitFor(() => connected(h, "node-a") ? undefined : true, "disconnection");
  const closed = Date.now();
  assert.ok(closed - killed >= 900, "the session lasts through the grace period");
  const [client] = h.coordinator.listClients();
  assert.ok(
    client!.disconnectedAt! - killed < 500,
    `disconnected ${client!.disconnectedAt! - killed} ms after the kill`,
  );
});

Deno.test("a poll refused for a source's failed-check budget gets 429 with Retry-After", async () => {
  await using h = closing(
    await harness({
      authorize: () => ({
        status: 429,
        message: "too many failed password checks",
        retryAfterMs: 2500,
      }),
    }),
  );
  const response = await fetch(`${h.url}/poll`, {
    method: "POST",
    body: new TextEncoder().encode("node-a"),
  });
  assert.equal(response.status, 429);
  assert.equal(response.headers.get("retry-after"), "3");
  assert.match(await response.text(), /too many failed password checks/);
  assert.equal(h.coordinator.clientCount, 0);
});
