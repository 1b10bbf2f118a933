import assert from "node:assert/strict";
import {
  BackendClosedError,
  backendGet,
  type BackendRequest,
  createBackendPool,
  requestHead,
} from "./backend_http.ts";
import { rawServer, readRequest } from "../_testing.ts";
import { closing } from "../../tests/fixture.ts";

const encoder = new TextEncoder();

async function writeAll(conn: Deno.Conn, data: string | Uint8Array): Promise<void> {
  const bytes = typeof data === "string" ? encoder.encode(data) : data;
  for (let at = 0; at < bytes.byteLength;) at += await conn.write(bytes.subarray(at));
}

async function text(body: ReadableStream<Uint8Array>): Promise<string> {
  return await new Response(body).text();
}

function request(port: number, extra: Partial<BackendRequest> = {}): BackendRequest {
  return {
    url: new URL(`http://127.0.0.1:${port}/metrics?x=1`),
    headers: { accept: ["text/plain"] },
    maxHeaderBytes: 16384,
    moduleName: "node",
    ...extra,
  };
}

Deno.test("requestHead() sends the path, Host and the fields; refuses control characters", () => {
  const head = new TextDecoder().decode(requestHead(request(9100), true));
  assert.equal(
    head,
    "GET /metrics?x=1 HTTP/1.1\r\nhost: 127.0.0.1:9100\r\naccept: text/plain\r\n" +
      "connection: keep-alive\r\n\r\n",
  );
  const host = new TextDecoder().decode(
    requestHead(request(9100, { headers: { host: ["exporter.example"] } }), false),
  );
  assert.match(
    host,
    /^GET \/metrics\?x=1 HTTP\/1\.1\r\nhost: exporter\.example\r\nconnection: close/,
  );
  assert.throws(
    () => requestHead(request(1, { headers: { "x-a": ["a\r\nb: c"] } }), true),
    /control characters/,
  );
});

Deno.test("backendGet() reads Content-Length, chunked (extensions, trailers) and close-delimited bodies", async () => {
  const bodies = [
    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 9\r\n\r\nup 1\nab\n\n",
    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nup 1\n\r\n" +
    "4\r\nab\n\n\r\n0\r\nX-Trailer: t\r\n\r\n",
    "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nup 1\nab\n\n",
  ];
  await using server = closing(rawServer(async (conn, index) => {
    if (await readRequest(conn) === null) return;
    // Byte by byte: framing must not depend on how reads split.
    for (const byte of encoder.encode(bodies[index]!)) await writeAll(conn, new Uint8Array([byte]));
  }));
  for (let i = 0; i < bodies.length; i++) {
    const response = await backendGet(request(server.port), AbortSignal.timeout(5_000));
    assert.equal(response.status, 200);
    assert.equal(await text(response.body), "up 1\nab\n\n", `body ${i}`);
    assert.equal(response.contentLength, i === 0 ? 9 : undefined);
  }
});

Deno.test("backendGet() reuses a connection read to its end and retries once when it went stale", async () => {
  const pool = createBackendPool();
  let requests = 0;
  const server = rawServer(async (conn, index) => {
    for (;;) {
      const head = await readRequest(conn);
      if (head === null) return;
      requests++;
      assert.match(head, /connection: keep-alive/);
      await writeAll(conn, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nup 1\n");
      // The first connection serves two requests, then closes while idle.
      if (index === 0 && requests === 2) return;
    }
  });
  try {
    for (let i = 0; i < 3; i++) {
      const response = await backendGet(request(server.port, { pool }), AbortSignal.timeout(5_000));
      assert.equal(await text(response.body), "up 1\n");
      if (i === 1) await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.equal(requests, 3);
    assert.equal(
      server.connections(),
      2,
      "two requests on the first connection, a retry on a new one",
    );
  } finally {
    pool.close();
    await server.close();
  }
});

Deno.test("backendGet() names a body cut short, oversized headers and a non-HTTP answer", async () => {
  const answers = [
    "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nup 1\n",
    `HTTP/1.1 200 OK\r\nX-Big: ${"a".repeat(2000)}\r\n\r\n`,
    "SSH-2.0-OpenSSH_9.2\r\n\r\n",
  ];
  await using server = closing(rawServer(async (conn, index) => {
    if (await readRequest(conn) === null) return;
    await writeAll(conn, answers[index]!);
  }));
  const cut = await backendGet(request(server.port), AbortSignal.timeout(5_000));
  await assert.rejects(text(cut.body), (error: unknown) => {
    assert.ok(error instanceof BackendClosedError);
    assert.match(error.message, /module node: the backend closed the connection mid-body/);
    return true;
  });
  await assert.rejects(
    backendGet(request(server.port, { maxHeaderBytes: 1024 }), AbortSignal.timeout(5_000)),
    /response headers exceed 1024 bytes/,
  );
  await assert.rejects(
    backendGet(request(server.port), AbortSignal.timeout(5_000)),
    /did not answer HTTP\/1\.x: "SSH-2\.0/,
  );
});

Deno.test("backendGet() reads the backend only as fast as the body is consumed", async () => {
  const total = 256 * 1024 * 1024;
  let written = 0;
  const server = rawServer(async (conn) => {
    if (await readRequest(conn) === null) return;
    await writeAll(conn, `HTTP/1.1 200 OK\r\nContent-Length: ${total}\r\n\r\n`);
    const block = new Uint8Array(1024 * 1024).fill(0x61);
    while (written < total) written += await conn.write(block);
  });
  const abort = new AbortController();
  try {
    const response = await backendGet(request(server.port), abort.signal);
    const reader = response.body.getReader();
    await reader.read();
    await new Promise((resolve) => setTimeout(resolve, 500));
    // Socket buffers hold a few MiB; without back-pressure all 256 would be read.
    assert.ok(written < 64 * 1024 * 1024, `the backend wrote ${written} bytes`);
    abort.abort(new Error("test over"));
    await reader.read().catch(() => {});
  } finally {
    abort.abort();
    await server.close();
  }
});

Deno.test("backendGet() closes the connection when the signal aborts mid-body", async () => {
  let closed!: () => void;
  const serverSawClose = new Promise<void>((resolve) => closed = resolve);
  await using server = closing(rawServer(async (conn) => {
    if (await readRequest(conn) === null) return;
    await writeAll(conn, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nup 1\n");
    const n = await conn.read(new Uint8Array(16)).catch(() => null);
    if (n === null) closed();
  }));
  const abort = new AbortController();
  const response = await backendGet(request(server.port), abort.signal);
  const reader = response.body.getReader();
  assert.equal(new TextDecoder().decode((await reader.read()).value), "up 1\n");
  abort.abort(new Error("deadline"));
  await assert.rejects(reader.read(), /deadline/);
  await serverSawClose;
});

Deno.test("backendGet() removes chunk framing from large reads intact", async () => {
  // Many chunks per socket read, and chunks spanning reads.
  let expected = "";
  let wire = "";
  for (let i = 0; i < 3000; i++) {
    const data = `metric_${i}{a="${"x".repeat(i % 97)}"} ${i}\n`.repeat(1 + (i % 5));
    expected += data;
    wire += `${data.length.toString(16)}\r\n${data}\r\n`;
  }
  wire += "0\r\n\r\n";
  await using server = closing(rawServer(async (conn) => {
    if (await readRequest(conn) === null) return;
    await writeAll(conn, `HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n${wire}`);
  }));
  const response = await backendGet(request(server.port), AbortSignal.timeout(5_000));
  assert.equal(await text(response.body), expected);
});

Deno.test("backendGet() reads header bytes as Latin-1, as node:http and Go do", async () => {
  await using server = closing(rawServer(async (conn) => {
    if (await readRequest(conn) === null) return;
    await writeAll(conn, encoder.encode("HTTP/1.1 200 OK\r\nX-Name: caf"));
    await writeAll(conn, new Uint8Array([0xe9, 0x80]));
    await writeAll(conn, "\r\nContent-Length: 0\r\n\r\n");
  }));
  const response = await backendGet(request(server.port), AbortSignal.timeout(5_000));
  assert.deepEqual(response.headers[0], ["X-Name", "caf\u00e9\u0080"]);
  assert.equal(await text(response.body), "");
});
