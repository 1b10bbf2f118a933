/**
 * The client's exporter_exporter listener: its endpoints, access checks,
 * reloads, timeouts and bodies. TLS: exporter_server_tls_test.ts.
 */

import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import http from "node:http";
import { type AddressInfo, connect } from "node:net";
import { createAllowList, parseCidr } from "../../lib/cidr.ts";
import { requestTarget } from "./exporter_server.ts";
import { get, serveModules, withServer } from "./exporter_server_testing.ts";

Deno.test("exporter server: /, /proxy, /metrics, /-/healthy and bad requests", async () => {
  await withServer({}, async (server) => {
    const port = server.address!.port;
    const html = await get(port, "/");
    assert.equal(html.status, 200);
    assert.match(html.headers["content-type"]!, /text\/html/);
    assert.match(html.text, /<a href="\/proxy\?module=cron">cron<\/a>/);

    const json = await get(port, "/", { headers: { accept: "application/json" } });
    assert.equal(json.headers["content-type"], "application/json");
    const listing = JSON.parse(json.text);
    assert.deepEqual(Object.keys(listing), ["cron", "node", "script"]);
    assert.equal(listing.node.HTTP.Port, 9100);
    assert.deepEqual(listing.node.HTTP.Headers, { "x-api-key": "<secret>" });
    assert.deepEqual(listing.script.Exec.Env, { API_TOKEN: "<secret>" });
    for (
      const secret of [
        "header-secret",
        "password-secret",
        "query-secret",
        "arg-secret",
        "env-secret",
      ]
    ) {
      assert.ok(!json.text.includes(secret), `the JSON listing shows ${secret}`);
      assert.ok(!html.text.includes(secret), `the HTML listing shows ${secret}`);
    }
    // A browser's Accept gets HTML.
    const browser = await get(port, "/", {
      headers: { accept: "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8" },
    });
    assert.match(browser.headers["content-type"]!, /text\/html/);

    const cron = await get(port, "/proxy?module=cron");
    assert.equal(cron.status, 200);
    assert.match(cron.text, /^# TYPE up gauge\nup 1\n/);

    const unknown = await get(port, "/proxy?module=mysql");
    assert.equal(unknown.status, 404);
    assert.equal(unknown.text, 'unknown module "mysql"\n');
    assert.equal((await get(port, "/proxy")).status, 400);
    assert.equal((await get(port, "/proxy?module=..%2Fetc")).status, 400);
    assert.equal((await get(port, "/proxy?module=cron", { method: "POST" })).status, 405);
    assert.equal((await get(port, "/nothing")).status, 404);

    const metrics = await get(port, "/metrics");
    assert.equal(metrics.status, 200);
    assert.match(metrics.text, /expexp_proxy_duration_seconds_count\{module="cron"\} 1/);
    assert.match(metrics.text, /expexp_proxy_errors_total\{module="unknown"\} 1/);
    assert.equal((await get(port, "/-/healthy")).status, 200);
    const reload = await get(port, "/-/reload", { method: "POST" });
    assert.equal(reload.status, 403);
    assert.match(reload.text, /--web\.enable-lifecycle/);
  });
});

Deno.test("exporter server: --allow.net refuses other peers with 403", async () => {
  await withServer({ allowList: createAllowList([parseCidr("10.0.0.0/8")]) }, async (server) => {
    const reply = await get(server.address!.port, "/proxy?module=cron");
    assert.equal(reply.status, 403);
    assert.match(reply.text, /127\.0\.0\.1 is not in --allow\.net/);
    // /metrics and / are behind the same chain, as upstream.
    assert.equal((await get(server.address!.port, "/metrics")).status, 403);
  });
  await withServer({ allowList: createAllowList([parseCidr("127.0.0.1/32")]) }, async (server) => {
    assert.equal((await get(server.address!.port, "/proxy?module=cron")).status, 200);
  });
});

Deno.test("exporter server: a bearer token is required when configured", async () => {
  await withServer({ bearerToken: "s3cret" }, async (server) => {
    const port = server.address!.port;
    let reply = await get(port, "/proxy?module=cron");
    assert.equal(reply.status, 401);
    assert.match(reply.text, /Authorization header is missing/);
    reply = await get(port, "/", { headers: { authorization: "Bearer wrong" } });
    assert.equal(reply.status, 401);
    assert.match(reply.text, /Invalid Bearer Token/);
    reply = await get(port, "/", { headers: { authorization: "Basic eDp5" } });
    assert.equal(reply.status, 401);
    reply = await get(port, "/proxy?module=cron", { headers: { authorization: "Bearer s3cret" } });
    assert.equal(reply.status, 200);
  });
});

Deno.test("exporter server: POST /-/reload with --web.enable-lifecycle", async () => {
  let calls = 0;
  await withServer({
    reload: () => {
      calls++;
      return Promise.resolve(
        calls === 1 ? { ok: true, modules: ["a", "b"] } : { ok: false, error: "x.yaml:3: bad" },
      );
    },
  }, async (server) => {
    const port = server.address!.port;
    assert.equal((await get(port, "/-/reload")).status, 405);
    const ok = await get(port, "/-/reload", { method: "POST" });
    assert.equal(ok.status, 200);
    assert.match(ok.text, /Reloaded: 2 modules/);
    const bad = await get(port, "/-/reload", { method: "POST" });
    assert.equal(bad.status, 500);
    assert.match(bad.text, /the old configuration stays: x\.yaml:3: bad/);
  });
});

/** Opens a raw connection; resolves with what the server sent until it closed. */
function rawExchange(
  port: number,
  send: string,
): { socket: import("node:net").Socket; closed: Promise<{ text: string; ms: number }> } {
  const started = performance.now();
  const socket = connect(port, "127.0.0.1");
  socket.on("error", () => {});
  let text = "";
  socket.on("data", (chunk: Buffer) => text += chunk.toString("latin1"));
  socket.write(send);
  const closed = new Promise<{ text: string; ms: number }>((resolve) =>
    socket.once("close", () => resolve({ text, ms: performance.now() - started }))
  );
  return { socket, closed };
}

Deno.test("exporter server: the header timeout fires when set, not at node's 30 s check", async () => {
  await withServer({ headersTimeoutMs: 1_000 }, async (server) => {
    const { closed } = rawExchange(server.address!.port, "GET /metrics HTTP/1.1\r\nHost: x\r\n");
    const { text, ms } = await closed;
    assert.match(text, /^HTTP\/1\.1 408 Request Timeout\r\n/);
    assert.ok(ms >= 900 && ms < 10_000, `answered after ${Math.round(ms)} ms`);
  });
});

Deno.test("exporter server: idle keep-alive connections at the cap do not lock out a new scraper", async () => {
  await withServer({ maxConnections: 8 }, async (server) => {
    const port = server.address!.port;
    const idle: import("node:net").Socket[] = [];
    try {
      for (let i = 0; i < 8; i++) {
        // Each makes one request and stays open (keep-alive), as idle scrapers do.
        const { socket } = rawExchange(port, "GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n");
        await new Promise((resolve) => socket.once("data", resolve));
        idle.push(socket);
      }
      const started = performance.now();
      const fresh = await get(port, "/proxy?module=cron");
      assert.equal(fresh.status, 200);
      assert.ok(performance.now() - started < 5_000);
      const alive = idle.filter((socket) => !socket.destroyed && socket.readyState === "open");
      assert.ok(alive.length <= 7, "the longest idle connection made room");
    } finally {
      for (const socket of idle) socket.destroy();
    }
  });
});

Deno.test("exporter server: a request that throws gets 500 and a closed connection; others go on", async () => {
  let calls = 0;
  await withServer({
    metrics: () => {
      calls++;
      if (calls === 1) throw new Error("boom");
      return Promise.reject(new Error("rejected"));
    },
  }, async (server) => {
    const port = server.address!.port;
    for (let i = 0; i < 2; i++) {
      const { text } = await rawExchange(
        port,
        "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
      ).closed;
      assert.match(text, /^HTTP\/1\.1 500 /);
      assert.match(text, /\r\nconnection: close\r\n/i);
    }
    assert.equal((await get(port, "/proxy?module=cron")).status, 200);
  });
});

Deno.test("exporter server: --web.proxy-path and --web.telemetry-path move the endpoints", async () => {
  await withServer({ proxyPath: "/p", telemetryPath: "/m" }, async (server) => {
    const port = server.address!.port;
    assert.equal((await get(port, "/p?module=cron")).status, 200);
    assert.match((await get(port, "/m")).text, /expexp_proxy_duration_seconds/);
    assert.equal((await get(port, "/proxy?module=cron")).status, 404);
    assert.match((await get(port, "/")).text, /href="\/p\?module=cron"/);
  });
});

Deno.test("exporter server: http module bodies pass intact (Content-Length, chunked, gzip), HEAD too", async () => {
  const text = Array.from({ length: 40_000 }, (_, i) => `metric_${i}{a="b"} ${i}\n`).join("");
  const gzip = new Uint8Array(
    await new Response(
      new Blob([text]).stream().pipeThrough(new CompressionStream("gzip")),
    ).arrayBuffer(),
  );
  const backend = http.createServer((req, res) => {
    if (req.url?.startsWith("/chunked")) {
      res.writeHead(200, { "content-type": "text/plain; version=0.0.4" });
      for (let at = 0; at < text.length; at += 7_777) res.write(text.slice(at, at + 7_777));
      res.end();
    } else if (req.url?.startsWith("/gzip")) {
      res.writeHead(200, {
        "content-type": "text/plain; version=0.0.4",
        "content-encoding": "gzip",
        "content-length": gzip.byteLength,
      }).end(gzip);
    } else {
      res.writeHead(200, {
        "content-type": "text/plain; version=0.0.4",
        "content-length": Buffer.byteLength(text),
      }).end(text);
    }
  });
  await new Promise<void>((resolve) => backend.listen(0, "127.0.0.1", resolve));
  const backendPort = (backend.address() as AddressInfo).port;
  const modules = ["length", "chunked", "gzip"].flatMap((path) =>
    [true, false].map((verify) =>
      `  ${path}_${verify}:\n    method: http\n    http:\n      address: 127.0.0.1\n` +
      `      port: ${backendPort}\n      path: /${path}\n      verify: ${verify}\n`
    )
  ).join("");
  const served = await serveModules(`modules:\n${modules}`);
  try {
    const port = served.port;
    for (const path of ["length", "chunked", "gzip"]) {
      for (const verify of [true, false]) {
        const name = `${path}_${verify}`;
        const raw = await new Promise<{ headers: http.IncomingHttpHeaders; body: Buffer }>(
          (resolve, reject) => {
            http.get({
              host: "127.0.0.1",
              port,
              path: `/proxy?module=${name}`,
              headers: { "accept-encoding": "gzip" },
              agent: false,
            }, (res) => {
              const chunks: Buffer[] = [];
              res.on("data", (c: Buffer) => chunks.push(c));
              res.on("end", () => resolve({ headers: res.headers, body: Buffer.concat(chunks) }));
              res.on("error", reject);
            }).on("error", reject);
          },
        );
        if (path === "gzip") {
          assert.equal(raw.headers["content-encoding"], "gzip", name);
          assert.deepEqual(new Uint8Array(raw.body), gzip, name);
        } else {
          assert.equal(raw.body.toString(), text, name);
        }
        assert.equal(
          raw.headers["content-length"],
          path === "chunked" ? undefined : String(raw.body.byteLength),
          name,
        );
        const head = await get(port, `/proxy?module=${name}`, { method: "HEAD" });
        assert.equal(head.status, 200, name);
        assert.equal(head.text, "", name);
      }
    }
  } finally {
    await served.close();
    backend.closeAllConnections();
    await new Promise((resolve) => backend.close(resolve));
  }
});

Deno.test("startExporterServer: aborting signal closes the listener and settles finished", async () => {
  const stop = new AbortController();
  const { engine, server, port } = await serveModules("modules: {}\n", { signal: stop.signal });
  const open = await Deno.connect({ hostname: "127.0.0.1", port });
  open.close();
  stop.abort();
  await server.finished;
  engine.close();
  await assert.rejects(() => Deno.connect({ hostname: "127.0.0.1", port }));
  await server.close(); // idempotent after finished
});

Deno.test("exporter server: a scraper that leaves mid-body, or a stop, closes the backend's connection", async () => {
  // A backend that promises a long body, sends its start, and reports when
  // its connection is closed.
  const backend = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const closed: PromiseWithResolvers<void>[] = [];
  const serving = (async () => {
    for await (const conn of backend) {
      const gone = Promise.withResolvers<void>();
      closed.push(gone);
      (async () => {
        const buffer = new Uint8Array(16384);
        let head = "";
        while (!head.includes("\r\n\r\n")) {
          const n = await conn.read(buffer);
          if (n === null) break;
          head += new TextDecoder().decode(buffer.subarray(0, n));
        }
        await conn.write(new TextEncoder().encode(
          "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 1000000\r\n\r\nup 1\n",
        ));
        try {
          while (await conn.read(buffer) !== null) { /* the client sends nothing more */ }
        } catch { /* reset */ }
        conn.close();
        gone.resolve();
      })();
    }
  })();
  const port = (backend.addr as Deno.NetAddr).port;
  const served = await serveModules(
    `modules:\n  slow:\n    method: http\n    http:\n      address: 127.0.0.1\n      port: ${port}\n      verify: false\n`,
  );
  const within = <T>(promise: Promise<T>, what: string) => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    return Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what} within 10 s`)), 10_000);
      }),
    ]).finally(() => clearTimeout(timer));
  };
  /** Sends a scrape and reads until the body's start arrived. */
  const scrape = async () => {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: served.port });
    await conn.write(
      new TextEncoder().encode("GET /proxy?module=slow HTTP/1.1\r\nhost: x\r\n\r\n"),
    );
    const buffer = new Uint8Array(16384);
    let text = "";
    while (!text.includes("up 1")) {
      const n = await conn.read(buffer);
      if (n === null) break;
      text += new TextDecoder().decode(buffer.subarray(0, n));
    }
    assert.match(text, /^HTTP\/1\.1 200 .*\r\ncontent-length: 1000000\r\n.*up 1\n$/s);
    return conn;
  };
  try {
    const leaving = await scrape();
    leaving.close();
    await within(
      closed[0]!.promise,
      "the backend's connection was not closed after the scraper left",
    );

    const staying = await scrape();
    await served.server.close();
    await within(closed[1]!.promise, "the backend's connection was not closed at stop");
    staying.close();
  } finally {
    await served.close();
    backend.close();
    await serving.catch(() => {});
  }
});

/** A backend that sends 64 MiB as fast as it is read, and reports when its connection is closed. */
function bigBackend() {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const closed = Promise.withResolvers<void>();
  const state = { sent: 0 };
  const serving = (async () => {
    for await (const conn of listener) {
      (async () => {
        const buffer = new Uint8Array(16384);
        let head = "";
        while (!head.includes("\r\n\r\n")) {
          const n = await conn.read(buffer);
          if (n === null) break;
          head += new TextDecoder().decode(buffer.subarray(0, n));
        }
        const piece = new Uint8Array(65536).fill(0x61);
        try {
          await conn.write(new TextEncoder().encode(
            `HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: ${64 << 20}\r\n\r\n`,
          ));
          for (state.sent = 0; state.sent < 64 << 20; state.sent += piece.byteLength) {
            await conn.write(piece);
          }
        } catch { /* the client closed the connection */ }
        conn.close();
        closed.resolve();
      })();
    }
  })();
  const port = (listener.addr as Deno.NetAddr).port;
  return {
    state,
    modules:
      `modules:\n  big:\n    method: http\n    http:\n      address: 127.0.0.1\n      port: ${port}\n      verify: false\n`,
    /** Resolves when the backend's connection was closed; rejects after 10 s. */
    async closedWithin10s(): Promise<void> {
      let timer: ReturnType<typeof setTimeout> | undefined;
      try {
        await Promise.race([
          closed.promise,
          new Promise<never>((_, reject) => {
            timer = setTimeout(
              () => reject(new Error("the backend's connection was not closed within 10 s")),
              10_000,
            );
          }),
        ]);
      } finally {
        clearTimeout(timer);
      }
    },
    async close(): Promise<void> {
      listener.close();
      await serving.catch(() => {});
    },
  };
}

/** Reads `bytes` of an answer (head and body) from `conn`. */
async function readAtLeast(conn: Deno.Conn, bytes: number): Promise<void> {
  const buffer = new Uint8Array(65536);
  let received = 0;
  while (received < bytes) {
    const n = await conn.read(buffer);
    if (n === null) throw new Error("the answer ended early");
    received += n;
  }
}

Deno.test("exporter server: a large body waits for the scraper and ends when it leaves mid-body", async () => {
  const backend = bigBackend();
  const served = await serveModules(backend.modules);
  try {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: served.port });
    await conn.write(new TextEncoder().encode("GET /proxy?module=big HTTP/1.1\r\nhost: x\r\n\r\n"));
    // 4 MiB read, then a pause: the client's writes wait for the scraper.
    await readAtLeast(conn, 4 << 20);
    await new Promise((resolve) => setTimeout(resolve, 200));
    // Back-pressure: the client read from the backend about as much as the
    // scraper took plus socket buffers, not the whole 64 MiB.
    assert.ok(
      backend.state.sent < 32 << 20,
      `the backend sent ${backend.state.sent} bytes while the scraper paused`,
    );
    conn.close();
    await backend.closedWithin10s();
  } finally {
    await served.close();
    await backend.close();
  }
});

Deno.test("exporter server: a scraper that stops reading is dropped after the idle timeout", async () => {
  for (const nativeModules of [true, false]) {
    const backend = bigBackend();
    const served = await serveModules(backend.modules, { idleTimeoutMs: 500, nativeModules });
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: served.port });
    try {
      await conn.write(
        new TextEncoder().encode("GET /proxy?module=big HTTP/1.1\r\nhost: x\r\n\r\n"),
      );
      // 1 MiB read, then nothing more, with the connection left open: the
      // client closes it (and the backend's) instead of waiting for ever.
      await readAtLeast(conn, 1 << 20);
      await backend.closedWithin10s();
      assert.ok(
        backend.state.sent < 32 << 20,
        `${nativeModules ? "native" : "node:http"}: the backend sent ${backend.state.sent} bytes`,
      );
    } finally {
      conn.close();
      await served.close();
      await backend.close();
    }
  }
});

Deno.test("requestTarget() reads a target as URL does", () => {
  for (
    const target of [
      "/",
      "/proxy",
      "/proxy?module=node",
      "/proxy?module=blackbox&module=icmp&target=example.com",
      "/proxy?module=a+b&x=%41%zz&y=\"<>'&z",
      "/proxy?",
      "/proxy/",
      "/-/healthy",
      "/proxy/../metrics",
      "/./proxy?module=x",
      "//proxy?module=x",
      "/pro%78y?module=x",
      "/proxy?module=x#fragment",
      "/proxy?module=caf\u00e9",
      "/proxy?module=x y",
      "http://example.com/proxy?module=x",
      "*",
    ]
  ) {
    const url = new URL(target, "http://localhost");
    const read = requestTarget(target);
    assert.ok(read !== null, target);
    assert.equal(read.pathname, url.pathname, target);
    assert.deepEqual([...read.searchParams], [...url.searchParams], target);
  }
  assert.equal(requestTarget("http://[::1"), null);
});
