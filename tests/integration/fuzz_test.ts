/**
 * A small fuzz run with a fixed seed: random and mutated absolute-form
 * requests over raw sockets, and random and mutated Connect envelopes to Poll
 * and Push. Bounded in count and time. The proxy must not crash or hang: it
 * still answers /clients, and a real scrape still works, afterwards.
 */

import assert from "node:assert/strict";
import { connect } from "node:net";
import { connectClient, fakeClient, send, startSecureProxy } from "../secure_stack.ts";
import { seededRandom as random } from "../../lib/testing/random.ts";

const SEED = 20261121;
const COUNT = 300;

function mutate(bytes: Uint8Array, next: () => number): Uint8Array {
  const out = [...bytes];
  const edits = 1 + Math.floor(next() * 6);
  for (let i = 0; i < edits; i++) {
    const at = Math.floor(next() * (out.length + 1));
    const kind = Math.floor(next() * 4);
    const byte = Math.floor(next() * 256);
    if (kind === 0 && out.length > 0) out[Math.min(at, out.length - 1)] = byte;
    else if (kind === 1) out.splice(at, 0, byte);
    else if (kind === 2) out.splice(at, 1 + Math.floor(next() * 8));
    else out.splice(at, 0, ...out.slice(0, Math.floor(next() * 16)));
  }
  return Uint8Array.from(out);
}

function randomBytes(next: () => number, max: number): Uint8Array {
  return Uint8Array.from({ length: Math.floor(next() * max) }, () => Math.floor(next() * 256));
}

/** Writes bytes to the port, reads for a short while, never waits longer than `ms`. */
function exchange(port: number, bytes: Uint8Array, ms: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect(port, "127.0.0.1");
    let answer = "";
    const done = () => {
      clearTimeout(timer);
      socket.destroy();
      resolve(answer);
    };
    const timer = setTimeout(done, ms);
    socket.on("data", (chunk) => {
      answer += String(chunk);
      if (answer.includes("\r\n\r\n")) done();
    });
    socket.on("error", done);
    socket.on("close", done);
    socket.write(bytes);
    socket.end();
  });
}

const SEEDS = [
  "GET http://fuzz:9100/metrics HTTP/1.1\r\nHost: fuzz:9100\r\nX-Prometheus-Scrape-Timeout-Seconds: 1\r\n\r\n",
  "GET http://fuzz:9100/metrics?_scheme=https&a=%zz HTTP/1.1\r\nHost: fuzz\r\nProxy-Authorization: Basic Zm9vOmJhcg==\r\n\r\n",
  "HEAD http://[::1]:80/ HTTP/1.1\r\nHost: [::1]\r\nConnection: keep-alive\r\n\r\n",
  "GET http://user:pass@fuzz/ HTTP/1.0\r\n\r\n",
  "CONNECT fuzz:443 HTTP/1.1\r\nHost: fuzz:443\r\n\r\n",
  "GET /clients HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer abc\r\n\r\n",
];

/** A Connect streaming request: envelopes of (flags, length, message). */
function envelope(flags: number, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(5 + payload.length);
  out[0] = flags;
  new DataView(out.buffer).setUint32(1, payload.length);
  out.set(payload, 5);
  return out;
}

function connectRequest(path: string, body: Uint8Array): Uint8Array {
  const head = `POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/connect+proto\r\n` +
    `Connect-Protocol-Version: 1\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`;
  const bytes = new Uint8Array(head.length + body.length);
  bytes.set(new TextEncoder().encode(head));
  bytes.set(body, head.length);
  return bytes;
}

// Valid protobuf for PollRequest{fqdn:"fuzzpoll"} and PushRequest{head:{scrape_id:"x",status:200}}.
const POLL = Uint8Array.from([0x0a, 8, ...new TextEncoder().encode("fuzzpoll")]);
const PUSH_HEAD = Uint8Array.from([0x0a, 6, 0x0a, 1, 0x78, 0x18, 0xc8, 0x01]);

Deno.test({
  name:
    `fuzz: ${COUNT} absolute-form requests and ${COUNT} Connect messages (seed ${SEED}) crash or hang nothing`,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const proxy = await startSecureProxy({
      headersTimeoutMs: 1_000,
      proxy: { maxMessageBytes: 64 * 1024, defaultScrapeTimeoutMs: 500 },
    });
    const client = fakeClient(connectClient(proxy.url), "fuzz");
    await client.registered;
    const next = random(SEED);
    const started = Date.now();
    const statuses = new Map<string, number>();
    const count = (answer: string) => {
      const status = /^HTTP\/1\.[01] (\d{3})/.exec(answer)?.[1] ?? "none";
      statuses.set(status, (statuses.get(status) ?? 0) + 1);
    };
    try {
      const encoder = new TextEncoder();
      const batch: Promise<string>[] = [];
      for (let i = 0; i < COUNT; i++) {
        const seed = encoder.encode(SEEDS[Math.floor(next() * SEEDS.length)]!);
        const bytes = next() < 0.15 ? randomBytes(next, 512) : mutate(seed, next);
        batch.push(exchange(proxy.port, bytes, 2_000));
        if (batch.length === 20) count((await Promise.all(batch.splice(0))).join("|"));
      }
      await Promise.all(batch);
      for (let i = 0; i < COUNT; i++) {
        const path = next() < 0.5
          ? "/pushprox.v1.ClientService/Poll"
          : "/pushprox.v1.ClientService/Push";
        const base = path.endsWith("Poll")
          ? envelope(0, POLL)
          : new Uint8Array([...envelope(0, PUSH_HEAD), ...envelope(0, randomBytes(next, 64))]);
        const body = next() < 0.2 ? randomBytes(next, 256) : mutate(base, next);
        // Poll streams that do register are closed by the short read window.
        batch.push(exchange(proxy.port, connectRequest(path, body), 300));
        if (batch.length === 20) count((await Promise.all(batch.splice(0))).join("|"));
      }
      await Promise.all(batch);

      assert.ok(Date.now() - started < 60_000, "bounded in time");
      const clients = await send(proxy, "/clients");
      assert.equal(clients.status, 200, "still answers /clients");
      const scrape = await send(proxy, "http://fuzz:9100/metrics");
      assert.equal(scrape.status, 200, "still scrapes");
      assert.equal(scrape.body, "up 1\n");
      console.log(`fuzz: ${Date.now() - started}ms`);
    } finally {
      client.stop();
      await proxy.close();
    }
  },
});
