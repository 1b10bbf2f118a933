/**
 * The exporter listener's native module path (exporter_native.ts) over raw
 * sockets: it answers as the node:http path does, keeps connections alive,
 * pipelines, hands other requests to node:http on the same port, and aborts
 * a module request whose scraper went away.
 */

import assert from "node:assert/strict";
import { concatBytes } from "../../lib/bytes.ts";
import { createNullLogger } from "../../lib/logger.ts";
import { createConnectionBudget } from "../../lib/connection_budget.ts";
import { listenFrontDoor } from "../../lib/front_door.ts";
import { nativeModuleRoute } from "./exporter_native.ts";
import type { ModuleEngine } from "./engine.ts";
import type { ModuleResponse } from "./response.ts";
import {
  type ExporterServerOptions,
  nativeModuleQuery,
  startExporterServer,
} from "./exporter_server.ts";
import { type RequestHead, scanRequestHead } from "../../lib/request_head.ts";
import { serveModules } from "./exporter_server_testing.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const TEXT = Array.from({ length: 3_000 }, (_, i) => `metric_${i}{a="b"} ${i}\n`).join("");

/** A backend: /length (Content-Length), /chunked (no length), /gzip, /bad (not the text format). */
async function startBackend(): Promise<{ port: number; close(): Promise<void> }> {
  const gzip = new Uint8Array(
    await new Response(new Blob([TEXT]).stream().pipeThrough(new CompressionStream("gzip")))
      .arrayBuffer(),
  );
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
    const path = new URL(req.url).pathname;
    const headers = { "content-type": "text/plain; version=0.0.4" };
    if (path === "/chunked") {
      const body = encoder.encode(TEXT);
      return new Response(
        new ReadableStream({
          start(controller) {
            for (let at = 0; at < body.byteLength; at += 7_777) {
              controller.enqueue(body.slice(at, at + 7_777));
            }
            controller.close();
          },
        }),
        { headers },
      );
    }
    if (path === "/gzip") {
      return new Response(gzip, { headers: { ...headers, "content-encoding": "gzip" } });
    }
    if (path === "/bad") return new Response("not { metrics\n", { headers });
    return new Response(TEXT, { headers });
  });
  return { port: server.addr.port, close: () => server.shutdown() };
}

function modulesYaml(port: number): string {
  return "modules:\n" +
    ["length", "chunked", "gzip", "bad"].flatMap((path) =>
      [true, false].map((verify) =>
        `  ${path}_${verify}:\n    method: http\n    http:\n      address: 127.0.0.1\n` +
        `      port: ${port}\n      path: /${path}\n      verify: ${verify}\n`
      )
    ).join("");
}

/** One response as received: head text and body bytes. */
interface RawResponse {
  head: string;
  body: Uint8Array;
}

/** A client over a raw TCP connection that reads responses one by one. */
class RawClient {
  #buffer = new Uint8Array(0);
  constructor(readonly conn: Deno.TcpConn) {}

  static async open(port: number): Promise<RawClient> {
    return new RawClient(await Deno.connect({ hostname: "127.0.0.1", port }));
  }

  async send(text: string): Promise<void> {
    const bytes = encoder.encode(text);
    for (let at = 0; at < bytes.byteLength;) at += await this.conn.write(bytes.subarray(at));
  }

  /** Reads more; false at the end (or a reset). */
  async #more(): Promise<boolean> {
    const buffer = new Uint8Array(64 * 1024);
    let n: number | null;
    try {
      n = await this.conn.read(buffer);
    } catch {
      n = null;
    }
    if (n === null) return false;
    const joined = new Uint8Array(this.#buffer.byteLength + n);
    joined.set(this.#buffer);
    joined.set(buffer.subarray(0, n), this.#buffer.byteLength);
    this.#buffer = joined;
    return true;
  }

  async #take(n: number): Promise<Uint8Array> {
    while (this.#buffer.byteLength < n) {
      if (!await this.#more()) throw new Error("closed mid-response");
    }
    const out = this.#buffer.slice(0, n);
    this.#buffer = this.#buffer.subarray(n);
    return out;
  }

  async #line(): Promise<string> {
    for (;;) {
      const end = this.#buffer.indexOf(0x0a);
      if (end >= 0) return decoder.decode(await this.#take(end + 1));
      if (!await this.#more()) throw new Error("closed mid-line");
    }
  }

  /** Reads one response to a GET (or, `head`, to a HEAD). */
  async response(head = false): Promise<RawResponse> {
    let text = "";
    for (;;) {
      const line = await this.#line();
      text += line;
      if (line === "\r\n") break;
    }
    const length = /\r\ncontent-length: (\d+)\r\n/i.exec(text);
    if (head) return { head: text, body: new Uint8Array(0) };
    if (length !== null) return { head: text, body: await this.#take(Number(length[1])) };
    if (/\r\ntransfer-encoding: chunked\r\n/i.test(text)) {
      const parts: Uint8Array[] = [];
      for (;;) {
        const size = parseInt(await this.#line(), 16);
        const data = await this.#take(size + 2);
        if (size === 0) break;
        parts.push(data.subarray(0, size));
      }
      return { head: text, body: concatBytes(parts) };
    }
    // Neither: the body ends with the connection.
    while (await this.#more()) { /* to the end */ }
    return { head: text, body: await this.#take(this.#buffer.byteLength) };
  }

  /** Resolves true once the server closed the connection. */
  async closed(): Promise<boolean> {
    while (await this.#more()) { /* drop */ }
    return true;
  }

  close(): void {
    try {
      this.conn.close();
    } catch {
      // Closed.
    }
  }
}

/** The head with the `Date` fields' values (and the status line) kept, dates blanked. */
function normalize(response: RawResponse): { head: string; body: string } {
  return {
    head: response.head.replace(/^(date): .*$/gim, "$1: <date>"),
    body: decoder.decode(response.body),
  };
}

/** The same requests, answered by the native path and by node:http alone. */
async function bothPaths(
  options: Partial<ExporterServerOptions>,
  fn: (ask: (request: string, head?: boolean) => Promise<[RawResponse, RawResponse]>) => Promise<
    void
  >,
): Promise<void> {
  const backend = await startBackend();
  const native = await serveModules(modulesYaml(backend.port), options);
  const node = await serveModules(modulesYaml(backend.port), { ...options, nativeModules: false });
  const clients = await Promise.all([RawClient.open(native.port), RawClient.open(node.port)]);
  try {
    await fn(async (request, head = false) => {
      const answers: RawResponse[] = [];
      for (const client of clients) {
        await client.send(request);
        answers.push(await client.response(head));
      }
      return answers as [RawResponse, RawResponse];
    });
  } finally {
    for (const client of clients) client.close();
    await native.close();
    await node.close();
    await backend.close();
  }
}

Deno.test("native module path: GET and HEAD answered as node:http answers them", async () => {
  await bothPaths({}, async (ask) => {
    const cases: [string, Record<string, string>][] = [];
    for (const path of ["length", "chunked", "gzip", "bad"]) {
      for (const verify of [true, false]) {
        cases.push([`/proxy?module=${path}_${verify}`, { "Accept-Encoding": "gzip" }]);
        cases.push([`/proxy?module=${path}_${verify}`, {}]);
      }
    }
    cases.push(["/proxy?module=nope", {}], ["/proxy", {}], ["/proxy?module=..%2Fetc", {}]);
    // Each on the same two keep-alive connections, one after the other.
    for (const [target, headers] of cases) {
      for (const method of ["GET", "HEAD"]) {
        const fields = Object.entries(headers).map(([name, value]) => `${name}: ${value}\r\n`);
        const [native, node] = await ask(
          `${method} ${target} HTTP/1.1\r\nHost: x\r\n${fields.join("")}\r\n`,
          method === "HEAD",
        );
        assert.deepEqual(normalize(native), normalize(node), `${method} ${target}`);
        assert.match(native.head, /^HTTP\/1\.1 \d{3} /);
      }
    }
    const [native, node] = await ask(
      "GET /proxy?module=length_false HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert.deepEqual(normalize(native), normalize(node));
    assert.match(native.head, /\r\nConnection: close\r\n/);
    assert.equal(decoder.decode(native.body), TEXT);
  });
});

Deno.test("native module path: web configuration headers and refusals as node:http", async () => {
  const webConfig = {
    tls: null,
    headers: { "X-Frame-Options": "deny" },
    // Never checked: only requests without credentials are sent.
    basicAuthUsers: new Map([[
      "admin",
      "$2y$10$invalidinvalidinvalidinvalidinvalidinvalidinvalidinva",
    ]]),
  };
  await bothPaths({ webConfig }, async (ask) => {
    for (const method of ["GET", "HEAD"]) {
      const [native, node] = await ask(
        `${method} /proxy?module=length_false HTTP/1.1\r\nHost: x\r\n\r\n`,
        method === "HEAD",
      );
      assert.deepEqual(normalize(native), normalize(node), method);
      assert.match(native.head, /^HTTP\/1\.1 401 /);
      assert.match(native.head, /\r\nX-Frame-Options: deny\r\n/);
      assert.match(native.head, /\r\nwww-authenticate: Basic/);
    }
  });
  await bothPaths(
    { bearerToken: "s3cret", webConfig: { ...webConfig, basicAuthUsers: new Map() } },
    async (ask) => {
      for (const token of ["wrong", "s3cret"]) {
        const [native, node] = await ask(
          `GET /proxy?module=length_false HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\n\r\n`,
        );
        assert.deepEqual(normalize(native), normalize(node), token);
        assert.match(native.head, token === "s3cret" ? /^HTTP\/1\.1 200 / : /^HTTP\/1\.1 401 /);
        assert.match(native.head, /\r\nX-Frame-Options: deny\r\n/);
      }
    },
  );
});

Deno.test("native module path: pipelined requests, then other paths on the same connection", async () => {
  const backend = await startBackend();
  const served = await serveModules(modulesYaml(backend.port));
  const client = await RawClient.open(served.port);
  try {
    const module = "GET /proxy?module=length_false HTTP/1.1\r\nHost: x\r\n\r\n";
    await client.send(
      module + "HEAD /proxy?module=chunked_true HTTP/1.1\r\nHost: x\r\n\r\n" + module +
        "GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n" + module +
        "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    const first = await client.response();
    assert.match(first.head, /^HTTP\/1\.1 200 OK\r\n/);
    assert.equal(decoder.decode(first.body), TEXT);
    const head = await client.response(true);
    assert.match(head.head, /^HTTP\/1\.1 200 OK\r\n/);
    assert.doesNotMatch(head.head, /transfer-encoding/i);
    assert.equal(decoder.decode((await client.response()).body), TEXT);
    const healthy = await client.response();
    assert.match(healthy.head, /^HTTP\/1\.1 200 /);
    assert.equal(decoder.decode(healthy.body), "Healthy\n");
    // node:http has the connection from here on, module requests included.
    assert.equal(decoder.decode((await client.response()).body), TEXT);
    const metrics = await client.response();
    assert.match(metrics.head, /^HTTP\/1\.1 200 OK\r\n/);
    assert.match(metrics.head, /\r\ncontent-type: text\/plain\r\n/);
    // Later requests on it reach node:http whole (no read of the native path's took them).
    await client.send("GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n");
    assert.equal(decoder.decode((await client.response()).body), "Healthy\n");
    // And a new connection starts on the native path again.
    const again = await RawClient.open(served.port);
    try {
      await again.send(module);
      assert.equal(decoder.decode((await again.response()).body), TEXT);
    } finally {
      again.close();
    }
  } finally {
    client.close();
    await served.close();
    await backend.close();
  }
});

Deno.test("native module path: a malformed head gets 400; the listener serves on", async () => {
  const backend = await startBackend();
  const served = await serveModules(modulesYaml(backend.port));
  try {
    for (
      const bad of [
        "GET /proxy?module=length_false HTTP/1.1\r\nHost x\r\n\r\n",
        "GET /proxy?module=length_false HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
      ]
    ) {
      const client = await RawClient.open(served.port);
      try {
        // A good request first: the bad one comes on a kept-alive connection.
        await client.send("GET /proxy?module=length_false HTTP/1.1\r\nHost: x\r\n\r\n");
        assert.equal(decoder.decode((await client.response()).body), TEXT);
        await client.send(bad);
        const answer = await client.response();
        assert.match(answer.head, /^HTTP\/1\.1 400 Bad Request\r\n/);
        assert.match(decoder.decode(answer.body), /^Bad Request: /);
        assert.ok(await client.closed());
      } finally {
        client.close();
      }
      const next = await RawClient.open(served.port);
      try {
        await next.send("GET /proxy?module=length_false HTTP/1.1\r\nHost: x\r\n\r\n");
        assert.equal(decoder.decode((await next.response()).body), TEXT);
      } finally {
        next.close();
      }
    }
  } finally {
    await served.close();
    await backend.close();
  }
});

Deno.test("native module path: an idle keep-alive connection is closed after the idle timeout", async () => {
  const backend = await startBackend();
  const served = await serveModules(modulesYaml(backend.port), { idleTimeoutMs: 200 });
  const client = await RawClient.open(served.port);
  try {
    await client.send("GET /proxy?module=length_false HTTP/1.1\r\nHost: x\r\n\r\n");
    const answer = await client.response();
    assert.match(answer.head, /\r\nKeep-Alive: timeout=1\r\n/);
    const started = performance.now();
    assert.ok(await client.closed());
    assert.ok(performance.now() - started < 10_000);
  } finally {
    client.close();
    await served.close();
    await backend.close();
  }
});

/**
 * A server over an engine whose one module sends `first` (when given) and
 * then waits until its request's signal aborts.
 */
async function hangingServer(first: Uint8Array | null) {
  const aborted = Promise.withResolvers<unknown>();
  const started = Promise.withResolvers<void>();
  const engine = {
    config: { modules: new Map() },
    replace() {},
    close() {},
    serve(_request: unknown, signal: AbortSignal): Promise<ModuleResponse> {
      started.resolve();
      const wait = new Promise<void>((_, reject) => {
        signal.addEventListener("abort", () => {
          aborted.resolve(signal.reason);
          reject(signal.reason);
        }, { once: true });
      });
      wait.catch(() => {});
      if (first === null) {
        return wait.then(() => ({ status: 500, headers: [], error: "", body: null }));
      }
      async function* body() {
        yield first!;
        await wait;
      }
      return Promise.resolve({
        status: 200,
        headers: [],
        error: "",
        body: body(),
        contentLength: 1 << 20,
      });
    },
  } as unknown as ModuleEngine;
  const server = await startExporterServer({
    engine,
    metrics: () => Promise.resolve({ contentType: "text/plain", body: "" }),
    logger: createNullLogger(),
    address: { hostname: "127.0.0.1", port: 0 },
  });
  return { server, port: server.address!.port, aborted: aborted.promise, started: started.promise };
}

Deno.test("native module path: a scraper that leaves aborts the module request", async () => {
  // Mid-body: the head and the first bytes were sent.
  {
    const { server, port, aborted } = await hangingServer(encoder.encode("up 1\n"));
    const client = await RawClient.open(port);
    try {
      await client.send("GET /proxy?module=m HTTP/1.1\r\nHost: x\r\n\r\n");
      const buffer = new Uint8Array(4096);
      assert.ok((await client.conn.read(buffer))! > 0);
      client.close();
      assert.match(String(await aborted), /closed the connection/);
    } finally {
      client.close();
      await server.close();
    }
  }
  // Before the answer.
  {
    const { server, port, aborted, started } = await hangingServer(null);
    const client = await RawClient.open(port);
    try {
      await client.send("GET /proxy?module=m HTTP/1.1\r\nHost: x\r\n\r\n");
      await started;
      client.close();
      assert.match(String(await aborted), /closed the connection/);
    } finally {
      client.close();
      await server.close();
    }
  }
  // Stopping the listener aborts a request in flight.
  {
    const { server, port, aborted, started } = await hangingServer(null);
    const client = await RawClient.open(port);
    try {
      await client.send("GET /proxy?module=m HTTP/1.1\r\nHost: x\r\n\r\n");
      await started;
      await server.close();
      await aborted;
      assert.ok(await client.closed());
    } finally {
      client.close();
    }
  }
});

Deno.test("native module path: module requests never reach node:http; others do", async () => {
  const stop = new AbortController();
  let handedOver = 0;
  const budget = createConnectionBudget({ maxConnections: 0, maxPerSource: 0 });
  const route = nativeModuleRoute({
    claim: (head) =>
      head.target.startsWith("/proxy?") ? new URLSearchParams(head.target.slice(7)) : null,
    headers: [],
    serve: (request) =>
      Promise.resolve({
        response: {
          status: 200,
          headers: [{ name: "content-type", value: "text/plain" }],
          error: "",
          body: (async function* () {
            yield encoder.encode(`module ${request.searchParams.get("module")}\n`);
          })(),
        },
      }),
    headersTimeoutMs: 5_000,
    maxHeaderBytes: 16_384,
    idleTimeoutMs: 5_000,
    budget,
    signal: stop.signal,
    logger: createNullLogger(),
  });
  const door = listenFrontDoor({
    hostname: "127.0.0.1",
    port: 0,
    signal: stop.signal,
    // node:http that cannot load: a handed-over connection gets a 503.
    server: () => {
      handedOver++;
      return Promise.reject(new Error("not here"));
    },
    budget,
    native: route,
  });
  const client = await RawClient.open(door.address.port);
  try {
    await client.send(
      "GET /proxy?module=a HTTP/1.1\r\nHost: x\r\n\r\nHEAD /proxy?module=b HTTP/1.1\r\nHost: x\r\n\r\n" +
        "GET /proxy?module=c HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    const a = await client.response();
    assert.match(
      a.head,
      /^HTTP\/1\.1 200 OK\r\ncontent-type: text\/plain\r\nDate: .*\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\nTransfer-Encoding: chunked\r\n\r\n$/,
    );
    assert.equal(decoder.decode(a.body), "module a\n");
    const b = await client.response(true);
    assert.doesNotMatch(b.head, /Transfer-Encoding/);
    assert.equal(decoder.decode((await client.response()).body), "module c\n");
    assert.equal(handedOver, 0);
    await client.send("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    assert.match((await client.response()).head, /^HTTP\/1\.1 503 /);
    assert.equal(handedOver, 1);
  } finally {
    client.close();
    stop.abort();
    await door.finished;
  }
});

Deno.test("nativeModuleQuery() claims plain module GET and HEAD only", () => {
  const query = (text: string, proxyPath = "/proxy") => {
    const scan = scanRequestHead(encoder.encode(text), 16_384);
    assert.equal(scan.kind, "head", text);
    return nativeModuleQuery((scan as { head: RequestHead }).head, proxyPath);
  };
  const h = (line: string, ...fields: string[]) =>
    `${line} HTTP/1.1\r\nHost: x\r\n${fields.map((f) => f + "\r\n").join("")}\r\n`;
  assert.equal(query(h("GET /proxy?module=a"))?.get("module"), "a");
  assert.equal(query(h("HEAD /proxy?module=a"))?.get("module"), "a");
  assert.equal(query(h("GET /proxy?module=a", "Connection: keep-alive"))?.get("module"), "a");
  assert.equal(query(h("GET /proxy?module=a", "Connection: close"))?.get("module"), "a");
  assert.equal(query(h("GET /proxy?module=a", "Content-Length: 0"))?.get("module"), "a");
  assert.equal(query(h("GET /p?module=a"), "/p")?.get("module"), "a");
  assert.equal(query(h("GET /proxy"))?.get("module"), null);
  for (
    const text of [
      h("POST /proxy?module=a"),
      h("PUT /proxy?module=a"),
      h("GET /"),
      h("GET /metrics"),
      h("GET /-/healthy"),
      h("GET /proxy/x?module=a"),
      h("GET /proxy?module=a", "Content-Length: 5"),
      h("GET /proxy?module=a", "Transfer-Encoding: chunked"),
      h("GET /proxy?module=a", "Expect: 100-continue"),
      h("GET /proxy?module=a", "Upgrade: websocket", "Connection: Upgrade"),
      h("GET /proxy?module=a", "Connection: Upgrade"),
      h("GET /proxy?module=a", "Connection: keep-alive, x-other"),
    ]
  ) assert.equal(query(text), null, text);
  assert.equal(query(h("GET /proxy?module=a"), "/p"), null);
});
