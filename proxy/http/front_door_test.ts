import assert from "node:assert/strict";
import { createServer } from "node:http";
import {
  bodyFraming,
  ByteReader,
  readResponseHead,
  readWholeBody,
  type ResponseHead,
} from "../../lib/http1.ts";
import { createConnectionBudget } from "../../lib/connection_budget.ts";
import { createLogger } from "../../lib/logger.ts";
import { createProxy, type Proxy, type ServeOptions, serveProxy } from "./server.ts";
import { listenFrontDoor } from "./front_door.ts";
import { closing } from "../../tests/fixture.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** One raw connection to a port, reading responses as they come. */
class Raw {
  readonly conn: Deno.Conn;
  readonly reader: ByteReader;
  constructor(conn: Deno.Conn) {
    this.conn = conn;
    this.reader = new ByteReader((buffer) => conn.read(buffer));
  }
  static async open(port: number): Promise<Raw> {
    return new Raw(await Deno.connect({ hostname: "127.0.0.1", port }));
  }
  async send(text: string): Promise<void> {
    const bytes = encoder.encode(text);
    for (let at = 0; at < bytes.byteLength;) at += await this.conn.write(bytes.subarray(at));
  }
  async response(method = "GET"): Promise<{ head: ResponseHead; body: string }> {
    const head = await readResponseHead(this.reader, 65536);
    const body = await readWholeBody(this.reader, bodyFraming(head, method), 1 << 20);
    return { head, body: decoder.decode(body) };
  }
  /** Everything until the proxy closes the connection (or `limitMs`). */
  async rest(limitMs = 10_000): Promise<string> {
    const timer = setTimeout(() => this.close(), limitMs);
    let text = decoder.decode(this.reader.peek());
    try {
      while (await this.reader.fill()) text = decoder.decode(this.reader.peek());
    } catch {
      // Closed by the timer.
    } finally {
      clearTimeout(timer);
    }
    return text;
  }
  close(): void {
    try {
      this.conn.close();
    } catch {
      // Already closed.
    }
  }
}

async function withProxy(
  options: Partial<ServeOptions>,
  run: (port: number, proxy: Proxy, served: { native: number; node: number }) => Promise<void>,
): Promise<void> {
  const proxy = createProxy({
    logger: createLogger({ write: () => {} }),
    defaultMetrics: false,
  });
  const stop = new AbortController();
  const serving = await serveProxy(proxy, {
    hostname: "127.0.0.1",
    port: 0,
    signal: stop.signal,
    ...options,
  });
  // Which edge served each request.
  const served = { native: 0, node: 0 };
  const route = proxy.nativeRoute.bind(proxy);
  proxy.nativeRoute = (head) => {
    const handler = route(head);
    if (handler !== null) served.native++;
    return handler;
  };
  serving.server.on("request", () => served.node++);
  try {
    await run(serving.address.port, proxy, served);
  } finally {
    stop.abort();
    await serving.finished;
  }
}

async function limitHits(proxy: Proxy, limit: string): Promise<number> {
  const hits = await proxy.metrics.limitHits.get();
  return hits.values.find((v) => v.labels.limit === limit)?.value ?? 0;
}

Deno.test("front door: a scrape then an API request on one keep-alive connection", async () => {
  await withProxy({}, async (port) => {
    await using raw = closing(await Raw.open(port));
    await raw.send(
      "GET http://nobody.example:9100/metrics HTTP/1.1\r\nHost: nobody.example:9100\r\n\r\n",
    );
    const scrape = await raw.response();
    assert.equal(scrape.head.status, 404);
    assert.match(scrape.body, /nobody\.example/);
    await raw.send("GET /clients HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    const clients = await raw.response();
    assert.equal(clients.head.status, 200);
    assert.equal(clients.body, "[]\n");
    // And a scrape again, after the API request.
    await raw.send(
      "GET http://nobody.example:9100/metrics HTTP/1.1\r\nHost: nobody.example:9100\r\nConnection: close\r\n\r\n",
    );
    assert.equal((await raw.response()).head.status, 404);
    assert.equal(await raw.rest(), "");
  });
});

Deno.test("front door: pipelined requests in one write, answered in order", async () => {
  await withProxy({}, async (port) => {
    await using raw = closing(await Raw.open(port));
    await raw.send(
      "GET http://a.example:1/m HTTP/1.1\r\nHost: a.example:1\r\n\r\n" +
        "GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n" +
        "GET http://b.example:1/m HTTP/1.1\r\nHost: b.example:1\r\nConnection: close\r\n\r\n",
    );
    const first = await raw.response();
    assert.equal(first.head.status, 404);
    assert.match(first.body, /a\.example/);
    assert.equal((await raw.response()).head.status, 200);
    const third = await raw.response();
    assert.equal(third.head.status, 404);
    assert.match(third.body, /b\.example/);
  });
});

Deno.test("front door: a head arriving in pieces is served", async () => {
  await withProxy({}, async (port) => {
    await using raw = closing(await Raw.open(port));
    const text =
      "GET http://c.example:1/m HTTP/1.1\r\nHost: c.example:1\r\nConnection: close\r\n\r\n";
    for (let at = 0; at < text.length; at += 7) {
      await raw.send(text.slice(at, at + 7));
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    const answer = await raw.response();
    assert.equal(answer.head.status, 404);
    assert.match(answer.body, /c\.example/);
  });
});

Deno.test("front door: an oversized head gets node's 431, counted", async () => {
  await withProxy({ maxHeaderBytes: 4096 }, async (port, proxy) => {
    for (const target of ["http://d.example:1/m", "/clients"]) {
      await using raw = closing(await Raw.open(port));
      await raw.send(`GET ${target} HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(8000)}\r\n\r\n`);
      assert.match(await raw.rest(), /^HTTP\/1\.1 431 Request Header Fields Too Large/);
    }
    assert.equal(await limitHits(proxy, "header_bytes"), 2);
  });
});

Deno.test("front door: a head that does not arrive in time gets 408, counted", async () => {
  await withProxy({ headersTimeoutMs: 500 }, async (port, proxy) => {
    const raw = await Raw.open(port);
    try {
      await raw.send("GET http://e.example:1/m HTTP/1.1\r\nHost: e.ex");
      const started = performance.now();
      const answer = await raw.rest(10_000);
      assert.match(answer, /^HTTP\/1\.1 408 /);
      assert.ok(performance.now() - started < 8_000);
    } finally {
      raw.close();
    }
    assert.ok(await limitHits(proxy, "header_timeout") >= 1);
  });
});

Deno.test("front door: an idle keep-alive connection is closed after the idle timeout", async () => {
  await withProxy({ idleTimeoutMs: 300 }, async (port) => {
    await using raw = closing(await Raw.open(port));
    await raw.send("GET http://f.example:1/m HTTP/1.1\r\nHost: f.example:1\r\n\r\n");
    assert.equal((await raw.response()).head.status, 404);
    const started = performance.now();
    assert.equal(await raw.rest(15_000), "");
    assert.ok(performance.now() - started < 12_000);
  });
});

Deno.test("front door: connections above the budget get 503; an idle one is evicted first", async () => {
  const refused: string[] = [];
  const budget = createConnectionBudget({
    maxConnections: 1,
    maxPerSource: 0,
    onRefused: (limit) => refused.push(limit),
  });
  await withProxy({ connections: budget }, async (port) => {
    // A connection in a request (headers not complete) is not idle.
    const busy = await Raw.open(port);
    await busy.send("GET /clients HTTP/1.1\r\nHost: x\r\n\r\n");
    assert.equal((await busy.response()).head.status, 200);
    // Now idle: a new connection evicts it.
    const next = await Raw.open(port);
    await next.send("GET /clients HTTP/1.1\r\nHost: x\r\n\r\n");
    assert.equal((await next.response()).head.status, 200);
    assert.equal(await busy.rest(), "");
    busy.close();
    // `next` is idle too, but one in a scrape is busy: hold one open.
    await next.send("GET http://g.example:1/m HTTP/1.1\r\nHost: g.example:1\r\n\r\n");
    assert.equal((await next.response()).head.status, 404);
    next.close();
    assert.deepEqual(refused, []);
  });
  const perSource = createConnectionBudget({
    maxConnections: 0,
    maxPerSource: 1,
    onRefused: (limit) => refused.push(limit),
  });
  await withProxy({ connections: perSource }, async (port) => {
    const first = await Raw.open(port);
    await first.send("GET /clients HTTP/1.1\r\nHost: x\r\n\r\n");
    assert.equal((await first.response()).head.status, 200);
    const second = await Raw.open(port);
    const answer = await second.rest();
    second.close();
    assert.ok(answer === "" || /^HTTP\/1\.1 503 /.test(answer), answer);
    first.close();
    assert.deepEqual(refused, ["connections_per_source"]);
  });
});

Deno.test("front door: a failed accept (EMFILE) is retried; the port keeps serving", async () => {
  const server = createServer((_req, res) => res.end("ok\n"));
  let failures = 2;
  const stop = new AbortController();
  const door = listenFrontDoor({
    hostname: "127.0.0.1",
    port: 0,
    signal: stop.signal,
    server,
    acceptRetryMs: 10,
    accept(listener) {
      if (failures-- > 0) {
        return Promise.reject(new Error("Too many open files (os error 24)"));
      }
      return listener.accept();
    },
  });
  Object.defineProperty(server, "listening", { configurable: true, get: () => door.listening });
  try {
    const raw = await Raw.open(door.address.port);
    try {
      await raw.send("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
      const answer = await raw.response();
      assert.equal(answer.head.status, 200);
      assert.equal(answer.body, "ok\n");
    } finally {
      raw.close();
    }
    assert.ok(failures < 0);
  } finally {
    stop.abort();
    server.close();
    await door.finished;
  }
});

Deno.test("front door: plain scrapes are served natively, the rest by node:http", async () => {
  await withProxy({}, async (port, _proxy, served) => {
    const raw = await Raw.open(port);
    try {
      for (const method of ["GET", "HEAD", "GET"]) {
        await raw.send(`${method} http://h.example:1/m HTTP/1.1\r\nHost: h.example:1\r\n\r\n`);
        const answer = await raw.response(method);
        assert.equal(answer.head.status, 404);
        assert.equal(answer.body === "", method === "HEAD");
      }
      assert.deepEqual(served, { native: 3, node: 0 });
      // A malformed authority: the same 400 as node:http's edge gives, natively.
      await raw.send("GET http://h.example:99999/m HTTP/1.1\r\nHost: x\r\n\r\n");
      const bad = await raw.response();
      assert.equal(bad.head.status, 400);
      assert.match(bad.body, /^Bad Request: Malformed request target/);
      assert.equal(await raw.rest(), "");
      assert.deepEqual(served, { native: 4, node: 0 });
    } finally {
      raw.close();
    }
    // A scrape with a body, an HTTP/1.0 scrape and a POST are node's.
    for (
      const head of [
        "GET http://h.example:1/m HTTP/1.1\r\nHost: h.example:1\r\nContent-Length: 2\r\nConnection: close\r\n\r\nab",
        "GET http://h.example:1/m HTTP/1.0\r\nHost: h.example:1\r\n\r\n",
        "POST http://h.example:1/m HTTP/1.1\r\nHost: h.example:1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
      ]
    ) {
      await using other = closing(await Raw.open(port));
      await other.send(head);
      assert.match(await other.rest(), /^HTTP\/1\.[01] 40[45] /);
    }
    assert.deepEqual(served, { native: 4, node: 3 });
  });
});

Deno.test("front door: a scrape waiting for its client ends when Prometheus goes away", async () => {
  await withProxy({}, async (port, proxy, served) => {
    // A registered client that never answers: the scrape waits.
    await using _session = closing(proxy.coordinator.register({
      fqdn: "quiet.example",
      labels: {},
      version: "test",
      modules: [],
      protocol: "connect",
    }));
    const raw = await Raw.open(port);
    await raw.send(
      "GET http://quiet.example:1/m HTTP/1.1\r\nHost: quiet.example:1\r\nX-Prometheus-Scrape-Timeout-Seconds: 30\r\n\r\n",
    );
    const waiting = async (count: number) => {
      for (let i = 0; i < 200 && proxy.coordinator.scrapesInFlight !== count; i++) {
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
      assert.equal(proxy.coordinator.scrapesInFlight, count);
    };
    await waiting(1);
    raw.close();
    await waiting(0);
    assert.deepEqual(served, { native: 1, node: 0 });
    const codes = await proxy.metrics.proxiedRequests.get();
    assert.equal(codes.values.find((v) => v.labels.code === "499")?.value, 1);
  });
});

Deno.test("front door: a closed connection leaves the open count and its budget", async () => {
  const server = createServer((_req, res) => res.end("ok\n"));
  const budget = createConnectionBudget({ maxConnections: 0, maxPerSource: 0 });
  const stop = new AbortController();
  let close: (() => void) | null = null;
  const door = listenFrontDoor({
    hostname: "127.0.0.1",
    port: 0,
    signal: stop.signal,
    server,
    budget,
    // Keeps each connection until told, then closes it.
    native: (connection) =>
      new Promise<boolean>((resolve) => {
        close = () => {
          connection.destroy();
          resolve(true);
        };
      }),
  });
  try {
    const raw = await Raw.open(door.address.port);
    try {
      for (let i = 0; i < 100 && close === null; i++) await new Promise((r) => setTimeout(r, 10));
      assert.equal(door.open, 1);
      assert.equal(budget.open, 1);
      close!();
      assert.equal(door.open, 0);
      assert.equal(budget.open, 0);
    } finally {
      raw.close();
    }
  } finally {
    stop.abort();
    server.close();
    await door.finished;
  }
});
