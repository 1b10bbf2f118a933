import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { createServer, type Server } from "node:http";
import { connect, type Socket } from "node:net";
import type { AddressInfo } from "node:net";
import { createNullLogger } from "./logger.ts";
import { type GuardedHandler, guardHandler, guardServer } from "./listener_guard.ts";
import { closing } from "../tests/fixture.ts";

async function serve(
  handler: GuardedHandler,
  maxConnections: number,
): Promise<{ server: Server; port: number; close(): Promise<void> }> {
  const logger = createNullLogger();
  const server = createServer(guardHandler(handler, logger));
  guardServer(server, { logger, maxConnections });
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

/** Sends raw bytes; resolves with the first answer bytes, and exposes the close. */
function raw(port: number, text: string) {
  const socket = connect(port, "127.0.0.1");
  socket.on("error", () => {});
  let received = "";
  const firstData = new Promise<string>((resolve) =>
    socket.once("data", (chunk: Buffer) => resolve(chunk.toString("latin1")))
  );
  socket.on("data", (chunk: Buffer) => received += chunk.toString("latin1"));
  const closed = new Promise<string>((resolve) => socket.once("close", () => resolve(received)));
  socket.write(text);
  return { socket, firstData, closed };
}

const GET = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";

Deno.test("guardHandler() answers a throw or a rejection with 500 and closes the connection", async () => {
  let n = 0;
  await using s = closing(
    await serve(() => {
      n++;
      if (n === 1) throw new Error("sync");
      if (n === 2) return Promise.reject(new Error("async"));
      throw "not even an Error";
    }, 16),
  );
  for (let i = 0; i < 3; i++) {
    const text = await raw(s.port, GET).closed;
    assert.match(text, /^HTTP\/1\.1 500 /);
    assert.match(text, /\r\nconnection: close\r\n/i);
  }
});

Deno.test("guardServer() closes the longest idle connection at the cap; busy ones are kept", async () => {
  const release = Promise.withResolvers<void>();
  const s = await serve(async (req, res) => {
    if (req.url === "/slow") await release.promise;
    res.end("ok\n");
  }, 3);
  const sockets: Socket[] = [];
  try {
    // Two idle keep-alive connections, then one with a request in flight.
    const first = raw(s.port, GET);
    await first.firstData;
    const second = raw(s.port, GET);
    await second.firstData;
    const busy = raw(s.port, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n");
    sockets.push(first.socket, second.socket, busy.socket);
    await new Promise((resolve) => setTimeout(resolve, 100));
    // At the cap: the oldest idle one (first) makes room.
    const fourth = raw(s.port, GET);
    sockets.push(fourth.socket);
    assert.match(await fourth.firstData, /^HTTP\/1\.1 200 /);
    await first.closed;
    assert.equal(second.socket.destroyed, false);
    assert.equal(busy.socket.destroyed, false);
    release.resolve();
    assert.match(await busy.firstData, /^HTTP\/1\.1 200 /);
  } finally {
    release.resolve();
    for (const socket of sockets) socket.destroy();
    await s.close();
  }
});

Deno.test("guardServer() refuses a new connection only when every one has a request in flight", async () => {
  const release = Promise.withResolvers<void>();
  const s = await serve(async (_req, res) => {
    await release.promise;
    res.end("ok\n");
  }, 2);
  const sockets: Socket[] = [];
  try {
    const a = raw(s.port, GET);
    const b = raw(s.port, GET);
    sockets.push(a.socket, b.socket);
    await new Promise((resolve) => setTimeout(resolve, 200));
    const c = raw(s.port, GET);
    sockets.push(c.socket);
    assert.equal(await c.closed, "", "closed without an answer");
    release.resolve();
    assert.match(await a.firstData, /^HTTP\/1\.1 200 /);
  } finally {
    release.resolve();
    for (const socket of sockets) socket.destroy();
    await s.close();
  }
});

Deno.test("guardServer() answers malformed requests with a readable 400", async () => {
  await using s = closing(await serve((_req, res) => res.end("ok\n"), 4));
  const text = await raw(s.port, "NOT HTTP AT ALL\r\n\r\n").closed;
  assert.match(text, /^HTTP\/1\.1 400 Bad Request\r\n/);
  assert.match(text, /Bad Request: /);
});
