import assert from "node:assert/strict";
import {
  bodyFraming,
  ByteReader,
  Http1Error,
  readResponseHead,
  readWholeBody,
  reusable,
} from "./http1.ts";

/** A reader over fixed pieces, handed out one per read (split anywhere). */
function readerOf(...pieces: (string | Uint8Array)[]): ByteReader {
  const queue = pieces.map((p) => typeof p === "string" ? new TextEncoder().encode(p) : p);
  return new ByteReader((buffer) => {
    const next = queue.shift();
    if (next === undefined) return Promise.resolve(null);
    const n = Math.min(next.byteLength, buffer.byteLength);
    buffer.set(next.subarray(0, n));
    if (n < next.byteLength) queue.unshift(next.subarray(n));
    return Promise.resolve(n);
  }, 64);
}

async function parse(text: string | string[], maxHeader = 1024, maxBody = 1024) {
  const reader = readerOf(...(Array.isArray(text) ? text : [text]));
  const head = await readResponseHead(reader, maxHeader);
  const framing = bodyFraming(head, "POST");
  const body = new TextDecoder().decode(await readWholeBody(reader, framing, maxBody));
  return { head, framing, body, keep: reusable(head, framing) };
}

Deno.test("http1: Content-Length, chunked and close-delimited bodies, split anywhere", async () => {
  const cl = await parse(["HTTP/1.1 200 OK\r\nContent-Le", "ngth: 5\r\n\r\nhel", "lo"]);
  assert.equal(cl.head.status, 200);
  assert.deepEqual(cl.head.headers, [["content-length", "5"]]);
  assert.equal(cl.body, "hello");
  assert.equal(cl.keep, true);

  const chunked = await parse(
    "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3;x=y\r\nhel\r\n2\r\nlo\r\n0\r\nT: v\r\n\r\n",
  );
  assert.equal(chunked.body, "hello");
  assert.equal(chunked.keep, true);

  const close = await parse("HTTP/1.1 200 OK\r\n\r\nhello");
  assert.equal(close.body, "hello");
  assert.equal(close.keep, false);

  const closing = await parse("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
  assert.equal(closing.keep, false);
  const old = await parse("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n");
  assert.equal(old.keep, false);
});

Deno.test("http1: interim 1xx responses are skipped", async () => {
  const r = await parse("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n");
  assert.equal(r.head.status, 204);
  assert.equal(r.body, "");
});

Deno.test("http1: hostile heads are refused with a clear error", async () => {
  const cases: [string, RegExp][] = [
    ["HTTP/1.1 200 OK\r\nX: " + "a".repeat(2000) + "\r\n\r\n", /header block larger than 1024/],
    ["HTTP/1.1 200 OK\r\n" + "X: a\r\n".repeat(300) + "\r\n", /header block larger than 1024/],
    ["HTTP/1.1 200 " + "a".repeat(2000) + "\r\n\r\n", /status line: longer than 1024/],
    ["HTTP/2 200 OK\r\n\r\n", /malformed status line/],
    ["HTTP/1.1 20 OK\r\n\r\n", /malformed status line/],
    ["HTTP/1.1 200 OK\nX: a\r\n\r\n", /not ended by CRLF/],
    ["HTTP/1.1 200 OK\r\nBad Name: a\r\n\r\n", /malformed header line/],
    ["HTTP/1.1 200 OK\r\n folded\r\n\r\n", /malformed header line/],
    ["HTTP/1.1 200 OK\r\nX: a\x00b\r\n\r\n", /bad characters in header X/],
    ["HTTP/1.1 200 OK\r\nX: a", /connection ended/],
    ["", /connection ended/],
  ];
  for (const [text, error] of cases) {
    await assert.rejects(parse(text), (e: unknown) => {
      assert.ok(e instanceof Http1Error, String(e));
      assert.match(e.message, error, JSON.stringify(text.slice(0, 40)));
      return true;
    });
  }
});

Deno.test("http1: bad framing and short or oversized bodies are refused", async () => {
  const cases: [string, RegExp][] = [
    [
      "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
      /both Transfer-Encoding and Content-Length/,
    ],
    [
      "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
      /invalid Content-Length/,
    ],
    ["HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", /invalid Content-Length/],
    ["HTTP/1.1 200 OK\r\nContent-Length: 0x10\r\n\r\n", /invalid Content-Length/],
    ["HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", /unsupported Transfer-Encoding/],
    [
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
      /unsupported Transfer-Encoding/,
    ],
    ["HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", /connection ended after 5 of 10/],
    ["HTTP/1.1 200 OK\r\nContent-Length: 2000\r\n\r\n", /2000 bytes is larger than 1024/],
    ["HTTP/1.1 200 OK\r\n\r\n" + "a".repeat(2000), /body larger than 1024/],
    ["HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", /malformed chunk size/],
    ["HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n", /malformed chunk size/],
    [
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n123456789\r\n",
      /malformed chunk size/,
    ],
    [
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n0\r\n\r\n",
      /not followed by CRLF/,
    ],
    [
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
      /connection ended after 2 of 5/,
    ],
    [
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n",
      /chunk size: connection ended/,
    ],
    [
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + "200\r\n" + "a".repeat(512) +
      "\r\n" + "300\r\n" + "a".repeat(768) + "\r\n0\r\n\r\n",
      /body larger than 1024/,
    ],
    [
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n" + "T: v\r\n".repeat(5000),
      /chunked trailer too large/,
    ],
  ];
  for (const [text, error] of cases) {
    await assert.rejects(parse(text), (e: unknown) => {
      assert.ok(e instanceof Http1Error, String(e));
      assert.match(e.message, error, JSON.stringify(text.slice(0, 60)));
      return true;
    });
  }
});

Deno.test("http1: a prefetched read is taken by the next fill", async () => {
  const reader = readerOf("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
  const pending = reader.prefetch();
  assert.equal(reader.prefetch(), pending);
  const head = await readResponseHead(reader, 1024);
  assert.equal(head.status, 200);
  assert.equal(
    new TextDecoder().decode(await readWholeBody(reader, bodyFraming(head, "GET"), 10)),
    "ok",
  );
});
