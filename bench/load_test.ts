import assert from "node:assert/strict";
import { runLoad } from "./load.ts";

/**
 * A raw HTTP/1.1 server for the load generator to scrape: 10-byte bodies on
 * `/ok`, 502 on `/bad`, and `Connection: close` after every answer on
 * `/close`. Counts the connections it accepted.
 */
function server() {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  let connections = 0;
  const served: Promise<void>[] = [];
  const encoder = new TextEncoder();
  const serveOne = async (conn: Deno.Conn) => {
    const buffer = new Uint8Array(16 * 1024);
    let head = "";
    try {
      for (;;) {
        const n = await conn.read(buffer);
        if (n === null) return;
        head += new TextDecoder().decode(buffer.subarray(0, n));
        while (head.includes("\r\n\r\n")) {
          const end = head.indexOf("\r\n\r\n") + 4;
          const line = head.slice(0, head.indexOf("\r\n"));
          head = head.slice(end);
          const closing = line.includes("/close");
          const answer = line.includes("/bad")
            ? "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 3\r\n\r\nbad"
            : `HTTP/1.1 200 OK\r\n${closing ? "Connection: close\r\n" : ""}` +
              "Content-Length: 10\r\n\r\n0123456789";
          await conn.write(encoder.encode(answer));
          if (closing) return;
        }
      }
    } catch {
      // The scraper closed its end.
    } finally {
      conn.close();
    }
  };
  const accepting = (async () => {
    for await (const conn of listener) {
      connections++;
      served.push(serveOne(conn));
    }
  })();
  return {
    port: listener.addr.port,
    connections: () => connections,
    async close() {
      listener.close();
      await accepting.catch(() => {});
      await Promise.all(served);
    },
  };
}

const options = {
  host: "127.0.0.1",
  proxied: false,
  concurrency: 2,
  warmupMs: 20,
  durationMs: 100,
  minRequests: 10,
  maxMs: 5000,
  expectBytes: 10,
  timeoutSeconds: 5,
  watch: {},
};

Deno.test("runLoad() scrapes over kept-alive connections and counts bodies", async () => {
  const s = server();
  try {
    const result = await runLoad({
      ...options,
      port: s.port,
      url: `http://127.0.0.1:${s.port}/ok`,
    });
    assert.equal(result.errors, 0, result.errorSamples.join("; "));
    assert.ok(result.requests >= 10);
    assert.equal(result.bytes, result.requests * 10);
    // One connection per scrape loop, kept for every scrape.
    assert.equal(s.connections(), 2);
  } finally {
    await s.close();
  }
});

Deno.test("runLoad() counts a status other than 200 and a wrong length as errors", async () => {
  const s = server();
  try {
    const bad = await runLoad({ ...options, port: s.port, url: `http://127.0.0.1:${s.port}/bad` });
    assert.equal(bad.errors, bad.requests);
    assert.match(bad.errorSamples[0]!, /Expected 200, got: HTTP\/1\.1 502/);
    const short = await runLoad({
      ...options,
      expectBytes: 11,
      port: s.port,
      url: `http://127.0.0.1:${s.port}/ok`,
    });
    assert.equal(short.errors, short.requests);
    assert.match(short.errorSamples[0]!, /body of 10 bytes, expected 11/);
  } finally {
    await s.close();
  }
});

Deno.test("runLoad() opens a new connection after a server's Connection: close", async () => {
  const s = server();
  try {
    const result = await runLoad({
      ...options,
      port: s.port,
      url: `http://127.0.0.1:${s.port}/close`,
    });
    assert.equal(result.errors, 0, result.errorSamples.join("; "));
    assert.equal(s.connections(), result.requests + result.warmupRequests);
  } finally {
    await s.close();
  }
});
