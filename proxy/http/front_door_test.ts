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
import {
  createProxy,
  type Proxy,
  type ProxyOptions,
  type ServeOptions,
  serveProxy,
  type ServingProxy,
} from "./server.ts";
import { type Authenticator, createAuthenticator } from "../auth/auth.ts";
import { parseAuthConfig } from "../auth/auth_config.ts";
import { sha256Hex } from "../../lib/basic_auth.ts";
import { listenFrontDoor } from "../../lib/front_door.ts";
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
  run: (
    port: number,
    proxy: Proxy,
    served: { native: number; node: number },
    serving: ServingProxy,
  ) => Promise<void>,
  proxyOptions: Partial<ProxyOptions> = {},
): Promise<void> {
  const proxy = createProxy({
    logger: createLogger({ write: () => {} }),
    defaultMetrics: false,
    ...proxyOptions,
  });
  // Which edge served each request.
  const served = { native: 0, node: 0 };
  // (node:http reads the handler when it is loaded, on the first handover.)
  const handle = proxy.handle;
  proxy.handle = (req, res) => {
    served.node++;
    handle(req, res);
  };
  const stop = new AbortController();
  const serving = await serveProxy(proxy, {
    hostname: "127.0.0.1",
    port: 0,
    signal: stop.signal,
    ...options,
  });
  const route = proxy.nativeRoute.bind(proxy);
  proxy.nativeRoute = (head) => {
    const handler = route(head);
    if (handler !== null) served.native++;
    return handler;
  };
  try {
    await run(serving.address.port, proxy, served, serving);
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

Deno.test("front door: a head sent again is routed once; one differing byte routes anew", async () => {
  await withProxy({}, async (port, _proxy, served) => {
    await using raw = closing(await Raw.open(port));
    const scrape = (host: string) =>
      `GET http://${host}.example:1/m HTTP/1.1\r\nHost: ${host}.example:1\r\nAccept: text/plain\r\n\r\n`;
    for (const host of ["aa", "aa", "aa", "ab", "ab", "aa"]) {
      await raw.send(scrape(host));
      const answer = await raw.response();
      assert.equal(answer.head.status, 404);
      assert.match(answer.body, new RegExp(`${host}\\.example`));
    }
    // The same head bytes with a body behind them, then pipelined heads.
    await raw.send(
      "POST /-/healthy HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc" +
        "POST /-/healthy HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nxyz" +
        "GET /-/healthy HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert.equal((await raw.response()).head.status, 405);
    assert.equal((await raw.response()).head.status, 405);
    assert.equal((await raw.response()).head.status, 200);
    assert.equal(await raw.rest(), "");
    // Routed: aa, ab, aa, the POST, the GET.
    assert.deepEqual(served, { native: 5, node: 0 });
  });
});

Deno.test("front door: bodies and heads alternate on one connection, big and small", async () => {
  await withProxy({}, async (port, _proxy, served) => {
    await using raw = closing(await Raw.open(port));
    const big = "b".repeat(10_000);
    const posts = [
      `Content-Length: ${big.length}\r\n\r\n${big}`,
      "Content-Length: 3\r\n\r\nabc",
      `Transfer-Encoding: chunked\r\n\r\n${big.length.toString(16)}\r\n${big}\r\n0\r\n\r\n`,
      `Content-Length: ${big.length}\r\n\r\n${big}`,
    ];
    for (const post of posts) {
      await raw.send(`POST /-/healthy HTTP/1.1\r\nHost: x\r\n${post}`);
      assert.equal((await raw.response()).head.status, 405);
      await raw.send("GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n");
      const healthy = await raw.response();
      assert.deepEqual([healthy.head.status, healthy.body], [200, "PushProx Proxy is Healthy.\n"]);
    }
    // A body and the next head in one write.
    await raw.send(
      `POST /-/healthy HTTP/1.1\r\nHost: x\r\nContent-Length: ${big.length}\r\n\r\n${big}` +
        "GET /-/ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert.equal((await raw.response()).head.status, 405);
    assert.equal((await raw.response()).head.status, 200);
    assert.equal(await raw.rest(), "");
    assert.equal(served.node, 0);
  });
});

Deno.test("front door: an authority found usable before is; a bad one still gets 400", async () => {
  await withProxy({}, async (port) => {
    for (
      const [good, bad] of [
        [
          "GET /-/healthy HTTP/1.1\r\nHost: x:1\r\n\r\n",
          "GET /-/healthy HTTP/1.1\r\nHost: x:1:2\r\n\r\n",
        ],
        [
          "GET http://n.example:1/m HTTP/1.1\r\nHost: n.example:1\r\n\r\n",
          "GET http://n.example:1:2/m HTTP/1.1\r\nHost: n.example:1\r\n\r\n",
        ],
      ] as const
    ) {
      await using raw = closing(await Raw.open(port));
      for (let i = 0; i < 3; i++) {
        await raw.send(good);
        assert.notEqual((await raw.response()).head.status, 400);
      }
      await raw.send(bad);
      const refused = await raw.response();
      assert.equal(refused.head.status, 400);
      assert.match(refused.body, /^Bad Request: /);
      assert.equal(await raw.rest(), "");
    }
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

/** A proxy whose readers need the bearer token "reader-token" (the other roles are open). */
function readerAuth(): Authenticator {
  const config = parseAuthConfig(
    `clients: {open: true}\nscrapers: {open: true}\nreaders:\n  tokens: [{sha256: ${
      sha256Hex("reader-token")
    }}]\n`,
    "auth.yml",
    new Map(),
  );
  return createAuthenticator(config, { users: new Map() });
}

const READER = "Authorization: Bearer reader-token\r\n";

Deno.test("front door: health, /clients, /metrics and 404 are native; node:http is never loaded", async () => {
  await withProxy({}, async (port, proxy, served, serving) => {
    await using raw = closing(await Raw.open(port));
    const ask = async (method: string, target: string, fields = "", body = "") => {
      await raw.send(`${method} ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\n${fields}\r\n${body}`);
      const { head, body: text } = await raw.response(method);
      const headers = Object.fromEntries(head.headers);
      return { status: head.status, headers, text };
    };
    const healthy = await ask("GET", "/-/healthy");
    assert.deepEqual([healthy.status, healthy.text], [200, "PushProx Proxy is Healthy.\n"]);
    assert.equal(healthy.headers["cache-control"], "no-store");
    assert.equal(healthy.headers["content-type"], "text/plain; charset=utf-8");
    const ready = await ask("HEAD", "/-/ready");
    assert.deepEqual([ready.status, ready.text], [200, ""]);
    // A POST with a body: 405, the body read and dropped, the connection kept.
    const post = await ask("POST", "/-/healthy", "Content-Length: 3\r\n", "abc");
    assert.deepEqual([post.status, post.headers["allow"]], [405, "GET, HEAD"]);
    assert.equal(post.text, "Method POST is not allowed on /-/healthy\n");
    const clients = await ask("GET", "/clients", READER);
    assert.deepEqual([clients.status, clients.text], [200, "[]\n"]);
    assert.equal(clients.headers["content-type"], "application/json");
    const bad = await ask("GET", "/clients", "Authorization: Basic Zm9vOmJhcg==\r\n");
    assert.equal(bad.status, 401);
    assert.equal(bad.headers["www-authenticate"], 'Basic realm="pushprox"');
    assert.match(bad.text, /^Cannot serve \/clients: /);
    const missing = await ask("HEAD", "/metrics");
    assert.deepEqual([missing.status, missing.text], [401, ""]);
    assert.equal(missing.headers["www-authenticate"], 'Basic realm="pushprox"');
    const wrong = await ask("DELETE", "/metrics", READER);
    assert.deepEqual([wrong.status, wrong.text], [
      405,
      "Method DELETE is not allowed on /metrics\n",
    ]);
    const head = await ask("HEAD", "/metrics", READER);
    assert.deepEqual([head.status, head.text], [200, ""]);
    const none = await ask("GET", "/nowhere?x=1");
    assert.equal(none.status, 404);
    assert.match(none.text, /^No such endpoint: \/nowhere\. /);
    const metrics = await ask("GET", "/metrics", READER + "Connection: close\r\n");
    assert.equal(metrics.status, 200);
    assert.equal(metrics.headers["content-type"], "text/plain; version=0.0.4; charset=utf-8");
    assert.equal(metrics.headers["connection"], "close");
    for (
      const line of [
        'pushprox_http_requests_total{code="200",path="/-/healthy"} 1',
        'pushprox_http_requests_total{code="200",path="/-/ready"} 1',
        'pushprox_http_requests_total{code="405",path="/-/healthy"} 1',
        'pushprox_http_requests_total{code="200",path="/clients"} 1',
        'pushprox_http_requests_total{code="401",path="/clients"} 1',
        'pushprox_http_requests_total{code="401",path="/metrics"} 1',
        'pushprox_http_requests_total{code="405",path="/metrics"} 1',
        'pushprox_http_requests_total{code="200",path="/metrics"} 1',
        'pushprox_proxy_auth_failures_total{role="reader",reason="missing"} 1',
      ]
    ) {
      assert.ok(metrics.text.includes(line + "\n"), line);
    }
    assert.equal(await raw.rest(), "");
    assert.deepEqual(served, { native: 10, node: 0 });
    assert.equal(serving.server, null, "node:http was never made");
    const counted = (await proxy.metrics.httpRequests.get()).values
      .find((v) => v.labels.path === "/metrics" && v.labels.code === "200");
    assert.equal(counted?.value, 2, "the HEAD and the GET");
  }, { auth: readerAuth() });
});

Deno.test("front door: connections arriving while node:http loads share one import and keep their bytes", async () => {
  let imports = 0;
  let release!: () => void;
  const released = new Promise<void>((resolve) => release = resolve);
  const loadNodeServer = async () => {
    imports++;
    await released;
    return await import("./node_server.ts");
  };
  await withProxy({ loadNodeServer }, async (port, _proxy, served, serving) => {
    const raws = await Promise.all([Raw.open(port), Raw.open(port), Raw.open(port)]);
    try {
      // The status page, and a Connect call with a body (connect-es is loaded too).
      await raws[0]!.send("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
      await raws[1]!.send("GET /?refresh=9 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
      await raws[2]!.send(
        "POST /pushprox.v1.RegistryService/ListClients HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
      );
      for (let i = 0; i < 200 && imports === 0; i++) await new Promise((r) => setTimeout(r, 10));
      assert.equal(serving.server, null);
      release();
      for (const raw of raws.slice(0, 2)) {
        const page = await raw.response();
        assert.equal(page.head.status, 200);
        assert.match(page.body, /<title>PushProx proxy<\/title>/);
      }
      const list = await raws[2]!.response();
      assert.equal(list.head.status, 200);
      assert.match(list.body, /^\{"stats":/);
      // Handed over for good: the next request on the connection is node's too.
      await raws[0]!.send("GET /-/healthy HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
      assert.equal((await raws[0]!.response()).head.status, 200);
    } finally {
      for (const raw of raws) raw.close();
    }
    assert.equal(imports, 1);
    assert.notEqual(serving.server, null);
    assert.deepEqual(served, { native: 0, node: 4 });
  });
});

Deno.test("front door: a failed node:http import gets 503; the port serves on and tries again", async () => {
  let imports = 0;
  const loadNodeServer = () =>
    ++imports === 1
      ? Promise.reject(new Error("cannot import node_server.ts"))
      : import("./node_server.ts");
  await withProxy({ loadNodeServer }, async (port, _proxy, served, serving) => {
    {
      await using raw = closing(await Raw.open(port));
      await raw.send("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
      const refused = await raw.response();
      assert.equal(refused.head.status, 503);
      assert.match(refused.body, /^Service Unavailable: cannot load node:http/);
      assert.equal(await raw.rest(), "");
    }
    {
      await using raw = closing(await Raw.open(port));
      await raw.send("GET /-/healthy HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
      assert.equal((await raw.response()).head.status, 200);
    }
    assert.equal(serving.server, null);
    {
      await using raw = closing(await Raw.open(port));
      await raw.send("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
      assert.equal((await raw.response()).head.status, 200);
    }
    assert.equal(imports, 2);
    assert.deepEqual(served, { native: 1, node: 1 });
  });
});

Deno.test("front door: a failed connect-es import gets 503; the next Connect call tries again", async () => {
  let imports = 0;
  const loadConnect = () =>
    ++imports === 1
      ? Promise.reject(new Error("cannot import connect_node.ts"))
      : import("../connect/connect_node.ts").then((m) => m.createConnectHandler);
  await withProxy({}, async (port) => {
    const call =
      "POST /pushprox.v1.RegistryService/ListClients HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}";
    {
      await using raw = closing(await Raw.open(port));
      await raw.send(call);
      const refused = await raw.response();
      assert.equal(refused.head.status, 503);
      assert.match(refused.body, /^Service Unavailable: cannot load the Connect services/);
    }
    await using raw = closing(await Raw.open(port));
    await raw.send(call);
    const list = await raw.response();
    assert.equal(list.head.status, 200);
    assert.match(list.body, /^\{"stats":/);
    assert.equal(imports, 2);
  }, { loadConnect });
});
