import assert from "node:assert/strict";
import { gunzipSync, gzipSync } from "node:zlib";
import { answersFor, prometheusText, respond, serve } from "./target.ts";
import { ResponseMeter } from "./response_meter.ts";

const encoder = new TextEncoder();
const plain = prometheusText(10_000);
const answers = new Map([[10_000, answersFor({ plain, gzip: new Uint8Array(gzipSync(plain)) })]]);

/** Splits an answer into its head and its body bytes (chunked framing removed). */
function parse(bytes: Uint8Array): { head: string; body: Uint8Array } {
  const text = new TextDecoder("latin1").decode(bytes);
  const end = text.indexOf("\r\n\r\n") + 4;
  const head = text.slice(0, end);
  let body = bytes.subarray(end);
  if (/transfer-encoding: chunked/i.test(head)) {
    const pieces: number[] = [];
    let at = 0;
    for (;;) {
      const line = text.slice(end + at, text.indexOf("\r\n", end + at));
      const size = parseInt(line, 16);
      at += line.length + 2;
      if (size === 0) break;
      assert.ok(size <= 4096, `chunk of ${size}`);
      pieces.push(...body.subarray(at, at + size));
      at += size + 2;
    }
    body = new Uint8Array(pieces);
  }
  return { head, body };
}

Deno.test("respond() answers each path and encoding with its pre-built answer", () => {
  const get = (path: string, extra = "") =>
    respond(`GET ${path} HTTP/1.1\r\nHost: t\r\n${extra}\r\n`, answers);
  const p = parse(get("/plain/10000", "Accept-Encoding: gzip\r\n").bytes);
  assert.match(p.head, /^HTTP\/1\.1 200 OK\r\n/);
  assert.match(p.head, /content-length: 10000\r\n/);
  assert.deepEqual(p.body, plain);
  const g = parse(get("/gzip/10000", "accept-encoding: deflate, gzip;q=0.5\r\n").bytes);
  assert.match(g.head, /content-encoding: gzip/);
  assert.deepEqual(new Uint8Array(gunzipSync(g.body)), plain);
  // gzip refused (q=0) or not asked for: uncompressed.
  assert.deepEqual(parse(get("/gzip/10000", "Accept-Encoding: gzip;q=0\r\n").bytes).body, plain);
  assert.deepEqual(parse(get("/gzip/10000").bytes).body, plain);
  const c = parse(get("/chunked/10000").bytes);
  assert.doesNotMatch(c.head, /content-length/i);
  assert.deepEqual(c.body, plain);
  assert.match(parse(get("/plain/5").bytes).head, /^HTTP\/1\.1 404 /);
  assert.match(parse(respond("POST /plain/10000 HTTP/1.1\r\n\r\n", answers).bytes).head, / 404 /);
  assert.equal(get("/plain/10000").close, false);
  assert.equal(get("/plain/10000", "Connection: close\r\n").close, true);
  assert.equal(respond("GET /plain/10000 HTTP/1.0\r\n\r\n", answers).close, true);
});

Deno.test("serve() answers requests on one kept-alive connection until it closes", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const served = (async () => {
    const conn = await listener.accept();
    await serve(conn, answers);
  })();
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
  try {
    const buffer = new Uint8Array(64 * 1024);
    for (const [path, bytes] of [["/plain/10000", 10_000], ["/chunked/10000", 10_000]] as const) {
      // The request in two writes: the target waits for the whole head.
      await conn.write(encoder.encode(`GET ${path} HTTP/1.1\r\n`));
      await conn.write(encoder.encode("Host: t\r\n\r\n"));
      const meter = new ResponseMeter();
      for (;;) {
        const n = await conn.read(buffer);
        assert.ok(n !== null, "closed mid-answer");
        if (meter.feed(buffer.subarray(0, n))) break;
      }
      assert.equal(meter.bodyBytes, bytes);
    }
    await conn.write(encoder.encode("GET /plain/10000 HTTP/1.1\r\nConnection: close\r\n\r\n"));
    let total = 0;
    for (;;) {
      const n = await conn.read(buffer);
      if (n === null) break;
      total += n;
    }
    assert.ok(total > 10_000);
  } finally {
    conn.close();
    await served;
    listener.close();
  }
});
