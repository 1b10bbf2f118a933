import assert from "node:assert/strict";
import { createNativeScrapeTransport } from "./native_scrape.ts";
import { bodyProgress } from "../../lib/owned_chunks.ts";

/**
 * A raw TCP target on 127.0.0.1: `answer` gets each connection's request
 * heads as they arrive and writes whatever it likes.
 */
function rawTarget(
  answer: (conn: Deno.Conn, request: string, index: number) => Promise<void>,
): { port: number; connections: () => number; close(): Promise<void> } {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns = new Set<Deno.Conn>();
  let count = 0;
  const serving = (async () => {
    for await (const conn of listener) {
      count++;
      conns.add(conn);
      (async () => {
        const buffer = new Uint8Array(65536);
        let text = "";
        let index = 0;
        try {
          for (;;) {
            const n = await conn.read(buffer);
            if (n === null) break;
            text += new TextDecoder().decode(buffer.subarray(0, n));
            let end;
            while ((end = text.indexOf("\r\n\r\n")) >= 0) {
              const request = text.slice(0, end);
              text = text.slice(end + 4);
              await answer(conn, request, index++);
            }
          }
        } catch {
          // Closed by either side.
        } finally {
          conns.delete(conn);
          try {
            conn.close();
          } catch {
            // Already closed.
          }
        }
      })();
    }
  })();
  return {
    port: (listener.addr as Deno.NetAddr).port,
    connections: () => count,
    async close() {
      listener.close();
      for (const conn of conns) {
        try {
          conn.close();
        } catch {
          // Already closed.
        }
      }
      await serving.catch(() => {});
    },
  };
}

async function write(conn: Deno.Conn, text: string | Uint8Array): Promise<void> {
  const bytes = typeof text === "string" ? new TextEncoder().encode(text) : text;
  for (let at = 0; at < bytes.length;) at += await conn.write(bytes.subarray(at));
}

async function readAll(body: AsyncIterable<Uint8Array>): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  for await (const part of body) parts.push(part);
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}

const GET = (signal = AbortSignal.timeout(5000)) => ({
  method: "GET",
  headers: [{ name: "accept-encoding", value: "gzip" }],
  signal,
});

Deno.test("native scrape: bytes intact, keep-alive reuses one connection, chunked too", async () => {
  const binary = new Uint8Array(200_000).map((_, i) => (i * 31) & 0xff);
  const requests: string[] = [];
  const target = rawTarget(async (conn, request, index) => {
    requests.push(request);
    if (index % 2 === 0) {
      await write(
        conn,
        `HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: ${binary.length}\r\n\r\n`,
      );
      await write(conn, binary);
    } else {
      await write(conn, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
      await write(conn, "5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n");
    }
  });
  const transport = createNativeScrapeTransport();
  try {
    const url = new URL(`http://localhost:${target.port}/metrics?x=1`);
    for (let i = 0; i < 4; i++) {
      const response = await transport(url, GET());
      assert.equal(response.status, 200);
      const body = await readAll(response.body);
      if (i % 2 === 0) {
        assert.deepEqual(body, binary);
        assert.ok(response.headers.some(([n, v]) => n === "content-encoding" && v === "gzip"));
      } else assert.equal(new TextDecoder().decode(body), "hello world");
    }
    assert.equal(target.connections(), 1);
    assert.match(requests[0]!, /^GET \/metrics\?x=1 HTTP\/1\.1\r\nhost: localhost:\d+\r\n/);
    assert.match(requests[0]!, /\r\naccept-encoding: gzip$/);
  } finally {
    transport.close();
    await target.close();
  }
});

Deno.test("native scrape: a connection the target closed while idle is not reused", async () => {
  const target = rawTarget(async (conn) => {
    await write(conn, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    conn.close(); // keep-alive promised, then closed
  });
  const transport = createNativeScrapeTransport();
  try {
    const url = new URL(`http://127.0.0.1:${target.port}/`);
    for (let i = 0; i < 3; i++) {
      const response = await transport(url, GET());
      assert.equal(new TextDecoder().decode(await readAll(response.body)), "ok");
    }
    assert.equal(target.connections(), 3);
  } finally {
    transport.close();
    await target.close();
  }
});

Deno.test("native scrape: hostile responses fail with a clear error", async () => {
  const cases: [string, RegExp, "head" | "body"][] = [
    [
      "HTTP/1.1 200 OK\r\nX: " + "a".repeat(20_000) + "\r\n\r\n",
      /header block larger than 16384/,
      "head",
    ],
    [
      "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
      /invalid Content-Length/,
      "head",
    ],
    ["garbage\r\n\r\n", /malformed status line/, "head"],
    ["HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort", /body ended after 5 of 100/, "body"],
    [
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nxyz\r\n",
      /malformed chunk size/,
      "body",
    ],
    [
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n",
      /not followed by CRLF/,
      "body",
    ],
    [
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n9\r\nabc",
      /ended inside a chunk/,
      "body",
    ],
  ];
  for (const [text, error, where] of cases) {
    const target = rawTarget(async (conn) => {
      await write(conn, text);
      conn.close();
    });
    const transport = createNativeScrapeTransport();
    try {
      const url = new URL(`http://127.0.0.1:${target.port}/`);
      if (where === "head") {
        await assert.rejects(transport(url, GET()), error);
      } else {
        const response = await transport(url, GET());
        await assert.rejects(readAll(response.body), error);
      }
    } finally {
      transport.close();
      await target.close();
    }
  }
});

Deno.test("native scrape: the deadline ends a silent target and a stalled body", async () => {
  const target = rawTarget(async (conn, request) => {
    if (request.startsWith("GET /stall")) {
      await write(conn, "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nabc");
    }
    // else: never answers
  });
  const transport = createNativeScrapeTransport();
  try {
    const silent = AbortSignal.timeout(200);
    await assert.rejects(
      transport(new URL(`http://127.0.0.1:${target.port}/silent`), GET(silent)),
      (e: unknown) => e === silent.reason,
    );
    const stalled = AbortSignal.timeout(300);
    const response = await transport(
      new URL(`http://127.0.0.1:${target.port}/stall`),
      GET(stalled),
    );
    await assert.rejects(readAll(response.body), (e: unknown) => e === stalled.reason);
  } finally {
    transport.close();
    await target.close();
  }
});

Deno.test("native scrape: headers with CR or LF are refused before dialling", async () => {
  const transport = createNativeScrapeTransport({
    dial: () => Promise.reject(new Error("must not dial")),
  });
  await assert.rejects(
    transport(new URL("http://127.0.0.1:1/"), {
      method: "GET",
      headers: [{ name: "x", value: "a\r\nInjected: 1" }],
      signal: AbortSignal.timeout(1000),
    }),
    /invalid header "x"/,
  );
  transport.close();
});

Deno.test("native scrape: a body tells when its next piece is at hand and when it is complete", async () => {
  const target = rawTarget(async (conn, _request, index) => {
    if (index === 0) {
      // Head and body in one write: all received with the head.
      await write(conn, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello");
    } else {
      await write(conn, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n");
      await new Promise((resolve) => setTimeout(resolve, 100));
      await write(conn, "hello");
    }
  });
  const transport = createNativeScrapeTransport();
  try {
    const url = new URL(`http://localhost:${target.port}/metrics`);
    const first = await transport(url, GET());
    const progress = bodyProgress(first.body)!;
    assert.deepEqual([progress.ready, progress.complete, progress.owned], [true, false, true]);
    const pieces = first.body[Symbol.asyncIterator]();
    const piece = await pieces.next();
    assert.equal(new TextDecoder().decode(piece.value), "hello");
    // Read into one of the pool's 64 KiB buffers (the push gives it back
    // there), with the headroom and the response head in front of it.
    assert.equal(piece.value!.buffer.byteLength, progress.pool?.size);
    assert.ok(piece.value!.byteOffset >= 1024, `${piece.value!.byteOffset}`);
    assert.deepEqual([progress.ready, progress.complete], [true, true], "Content-Length reached");
    assert.equal((await pieces.next()).done, true);
    // A head received alone: the answer waits for its body's first bytes.
    const second = await transport(url, GET());
    assert.equal(bodyProgress(second.body)!.ready, true, "the body's first bytes came along");
    assert.equal(new TextDecoder().decode(await readAll(second.body)), "hello");
    assert.equal(target.connections(), 1, "the connection went back to the pool");
  } finally {
    transport.close();
    await target.close();
  }
});

Deno.test("native scrape: a request head is sent again as asked after any change", async () => {
  const requests: string[] = [];
  const target = rawTarget(async (conn, request) => {
    requests.push(request);
    const body = request.startsWith("HEAD") ? "" : "ok";
    await write(conn, `HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n${body}`);
  });
  const transport = createNativeScrapeTransport();
  try {
    const url = new URL(`http://localhost:${target.port}/metrics`);
    const fields = (value: string) => [{ name: "accept-encoding", value }];
    const asks: [URL, string, string][] = [
      [url, "GET", "gzip"],
      [url, "GET", "gzip"],
      [url, "GET", "identity"],
      [url, "HEAD", "identity"],
      [new URL(`http://localhost:${target.port}/other`), "HEAD", "identity"],
    ];
    for (const [to, method, value] of asks) {
      const response = await transport(to, {
        method,
        headers: fields(value),
        signal: AbortSignal.timeout(5000),
      });
      if (method === "GET") await readAll(response.body);
      else await response.body[Symbol.asyncIterator]().return?.();
    }
    // The same URL object changed in place: its new target is asked for.
    url.search = "?x=2";
    await readAll((await transport(url, GET())).body);
    const lines = requests.map((r) => r.replace(/host: [^\r]*/, "host"));
    assert.deepEqual(lines, [
      "GET /metrics HTTP/1.1\r\nhost\r\naccept-encoding: gzip",
      "GET /metrics HTTP/1.1\r\nhost\r\naccept-encoding: gzip",
      "GET /metrics HTTP/1.1\r\nhost\r\naccept-encoding: identity",
      "HEAD /metrics HTTP/1.1\r\nhost\r\naccept-encoding: identity",
      "HEAD /other HTTP/1.1\r\nhost\r\naccept-encoding: identity",
      "GET /metrics?x=2 HTTP/1.1\r\nhost\r\naccept-encoding: gzip",
    ]);
  } finally {
    transport.close();
    await target.close();
  }
});
