import assert from "node:assert/strict";
import { readLegacyResponse } from "./response.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Yields `text` in pieces of `size` bytes. */
async function* pieces(text: string | Uint8Array, size: number): AsyncGenerator<Uint8Array> {
  const bytes = typeof text === "string" ? encoder.encode(text) : text;
  for (let i = 0; i < bytes.length; i += size) yield bytes.slice(i, i + size);
}

async function readBody(body: AsyncIterable<Uint8Array>): Promise<string> {
  let text = "";
  for await (const chunk of body) text += decoder.decode(chunk, { stream: true });
  return text;
}

for (const size of [1, 3, 1 << 16]) {
  Deno.test(`readLegacyResponse() reads a Content-Length response in ${size}-byte pieces`, async () => {
    const response = await readLegacyResponse(pieces(
      "HTTP/1.1 200 OK\r\nContent-Length: 9\r\nContent-Type: text/plain; version=0.0.4\r\n" +
        "Id: abc\r\nX-Prometheus-Scrape-Timeout: 9.871234\r\n\r\nup 1\nx 2\ntrailing garbage",
      size,
    ));
    assert.equal(response.major, 1);
    assert.equal(response.minor, 1);
    assert.equal(response.status, 200);
    assert.equal(response.reason, "OK");
    assert.deepEqual(response.headers, [
      ["Content-Length", "9"],
      ["Content-Type", "text/plain; version=0.0.4"],
      ["Id", "abc"],
      ["X-Prometheus-Scrape-Timeout", "9.871234"],
    ]);
    assert.equal(await readBody(response.body()), "up 1\nx 2\n");
  });

  Deno.test(`readLegacyResponse() decodes chunked bodies with extensions and trailers in ${size}-byte pieces`, async () => {
    const response = await readLegacyResponse(pieces(
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nId: 1\r\n\r\n" +
        "5\r\nhello\r\n7;ext=1\r\n, world\r\nA\r\n0123456789\r\n0\r\nX-Trailer: t\r\n\r\n",
      size,
    ));
    assert.equal(await readBody(response.body()), "hello, world0123456789");
  });
}

Deno.test("readLegacyResponse() reads upstream's synthetic error response up to the end", async () => {
  const response = await readLegacyResponse(pieces(
    "HTTP/0.0 500 Internal Server Error\r\nId: 42\r\nX-Prometheus-Scrape-Timeout: 4.2\r\n\r\n" +
      'Get "http://node:9100/metrics": dial tcp: connection refused',
    7,
  ));
  assert.equal(response.major, 0);
  assert.equal(response.status, 500);
  assert.equal(response.reason, "Internal Server Error");
  assert.equal(
    await readBody(response.body()),
    'Get "http://node:9100/metrics": dial tcp: connection refused',
  );
});

Deno.test("readLegacyResponse() ignores Transfer-Encoding before HTTP/1.1, as Go does", async () => {
  const response = await readLegacyResponse(
    pieces("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", 5),
  );
  assert.equal(await readBody(response.body()), "3\r\nabc\r\n0\r\n\r\n");
});

Deno.test("readLegacyResponse() gives no body for HEAD, 204 and 304", async () => {
  const head = await readLegacyResponse(pieces("HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n", 4));
  assert.equal(await readBody(head.body("HEAD")), "");
  const empty = await readLegacyResponse(pieces("HTTP/1.1 204 No Content\r\n\r\nignored", 4));
  assert.equal(await readBody(empty.body()), "");
});

Deno.test("readLegacyResponse() joins folded header lines and keeps Latin-1 bytes", async () => {
  const bytes = new Uint8Array([
    ...encoder.encode("HTTP/1.1 200\r\nX-Long: a\r\n  b\r\nX-Bytes: "),
    0xe9,
    0x80,
    ...encoder.encode("\r\n\r\n"),
  ]);
  const response = await readLegacyResponse(pieces(bytes, 2));
  assert.equal(response.reason, "");
  assert.deepEqual(response.headers, [["X-Long", "a b"], ["X-Bytes", "\u00e9\u0080"]]);
});

Deno.test("readLegacyResponse() relays a body while it is still arriving", async () => {
  let release!: () => void;
  const gate = new Promise<void>((resolve) => release = resolve);
  async function* source(): AsyncGenerator<Uint8Array> {
    yield encoder.encode("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nfirst");
    await gate;
    yield encoder.encode("-last");
  }
  const response = await readLegacyResponse(source());
  const iterator = response.body()[Symbol.asyncIterator]();
  const first = await iterator.next();
  assert.equal(decoder.decode(first.value), "first", "the first bytes come before the rest exists");
  release();
  const second = await iterator.next();
  assert.equal(decoder.decode(second.value), "-last");
  assert.equal((await iterator.next()).done, true);
});

Deno.test("readLegacyResponse() rejects malformed heads", async () => {
  for (
    const text of [
      "",
      "HTTP/1.1 200 OK\r\nContent-Type: x\r\n",
      "HTTP/1.1 abc OK\r\n\r\n",
      "Error WaitForScrapeInstruction: request is expired\n",
      "<html><body>504 Gateway Time-out</body></html>\r\n\r\n",
      "HTTP/1.1 200 OK\r\n folded-first: x\r\n\r\n",
      "HTTP/1.1 200 OK\r\nNo colon here\r\n\r\n",
      "HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n",
    ]
  ) {
    await assert.rejects(
      readLegacyResponse(pieces(text, 3)),
      SyntaxError,
      `must reject ${JSON.stringify(text)}`,
    );
  }
});

Deno.test("readLegacyResponse() limits the size of the head", async () => {
  const big = "HTTP/1.1 200 OK\r\n" + `X-Big: ${"a".repeat(5000)}\r\n`.repeat(3) + "\r\n";
  await assert.rejects(
    readLegacyResponse(pieces(big, 1000), { maxHeaderBytes: 10_000 }),
    SyntaxError,
  );
  const fits = await readLegacyResponse(pieces(big, 1000), { maxHeaderBytes: 20_000 });
  assert.equal(fits.headers.length, 3);
});

Deno.test("the body fails when the push ends early or its framing is broken", async () => {
  const cases: [string, RegExp][] = [
    ["HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", /ended after 5 of 10 bytes/],
    ["HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nabc", /ended after 3 of 5/],
    ["HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", /malformed chunk size/],
    ["HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n", /malformed chunked/],
    ["HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n", /inside chunked data/],
    ["HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", /unsupported transfer/],
    ["HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", /conflicting/],
    ["HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", /bad Content-Length/],
  ];
  for (const [text, message] of cases) {
    const response = await readLegacyResponse(pieces(text, 4));
    await assert.rejects(readBody(response.body()), message, JSON.stringify(text));
  }
});

Deno.test("the body can be opened once", async () => {
  const response = await readLegacyResponse(pieces("HTTP/1.1 200 OK\r\n\r\n", 64));
  response.body();
  assert.throws(() => response.body(), TypeError);
});
