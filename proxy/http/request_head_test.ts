import assert from "node:assert/strict";
import { scanRequestHead } from "./request_head.ts";

const bytes = (text: string) => new TextEncoder().encode(text);

Deno.test("scanRequestHead() parses a plain head, names as received and lower-cased", () => {
  const text =
    "GET http://node1:9100/metrics HTTP/1.1\r\nHost: node1:9100\r\nAccept: text/plain\r\nX-A: 1\r\nx-a:  2 \r\n\r\nrest";
  const scan = scanRequestHead(bytes(text), 16384);
  assert.equal(scan.kind, "head");
  if (scan.kind !== "head") return;
  assert.equal(scan.head.method, "GET");
  assert.equal(scan.head.target, "http://node1:9100/metrics");
  assert.equal(scan.head.length, text.length - 4);
  assert.deepEqual(scan.head.rawHeaders, [
    "Host",
    "node1:9100",
    "Accept",
    "text/plain",
    "X-A",
    "1",
    "x-a",
    "2",
  ]);
  assert.deepEqual(scan.head.headers.get("x-a"), ["1", "2"]);
});

Deno.test("scanRequestHead() waits for the rest of a plain head", () => {
  for (
    const part of [
      "",
      "G",
      "GET",
      "GET ",
      "GET http://a:1/m",
      "GET http://a:1/m HTTP/1.",
      "GET http://a:1/m HTTP/1.1\r",
      "GET http://a:1/m HTTP/1.1\r\nHost: a",
      "GET http://a:1/m HTTP/1.1\r\nHost: a:1\r\n\r",
    ]
  ) {
    assert.equal(scanRequestHead(bytes(part), 16384).kind, "incomplete", JSON.stringify(part));
  }
});

Deno.test("scanRequestHead() leaves anything unusual to node:http", () => {
  for (
    const text of [
      "\x16\x03\x01\x02\x00",
      "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
      "get /clients HTTP/1.1\r\nHost: x\r\n\r\n",
      "GET /clients HTTP/1.0\r\nHost: x\r\n\r\n",
      "GET /clients  HTTP/1.1\r\nHost: x\r\n\r\n",
      "GET /clients HTTP/1.1\nHost: x\r\n\r\n",
      "GET /clients HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n",
      "GET /clients HTTP/1.1\r\nHost : x\r\n\r\n",
      "GET /clients HTTP/1.1\r\nNoColon\r\n\r\n",
      "GET /clients HTTP/1.1\r\nX: a\nb\r\n\r\n",
      "GET /clients HTTP/1.1\r\nX: \x00\r\n\r\n",
      "GET /clients HTTP/1.1\r\nX: caf\xe9\r\n\r\n",
      "GET /cl\x7fients HTTP/1.1\r\n",
      "\r\nGET /clients HTTP/1.1\r\n\r\n",
      "GET http://a:1/m HTTX",
    ]
  ) {
    const raw = new Uint8Array([...text].map((c) => c.charCodeAt(0)));
    assert.equal(scanRequestHead(raw, 16384).kind, "unusual", JSON.stringify(text));
  }
  // Larger than the limit, complete or not.
  const big = `GET /clients HTTP/1.1\r\nX-Big: ${"a".repeat(5000)}\r\n\r\n`;
  assert.equal(scanRequestHead(bytes(big), 4096).kind, "unusual");
  assert.equal(scanRequestHead(bytes(big.slice(0, 4200)), 4096).kind, "unusual");
});
