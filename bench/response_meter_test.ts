import assert from "node:assert/strict";
import { ResponseMeter } from "./response_meter.ts";

const encoder = new TextEncoder();

/** Feeds `text` to a fresh meter split at `cut`; returns what each feed answered. */
function feedSplit(text: string, cut: number): { done: boolean[]; meter: ResponseMeter } {
  const bytes = encoder.encode(text);
  const meter = new ResponseMeter();
  const done = [bytes.subarray(0, cut), bytes.subarray(cut)]
    .filter((piece) => piece.length > 0)
    .map((piece) => meter.feed(piece));
  return { done, meter };
}

Deno.test("ResponseMeter ends a Content-Length response on its last byte, however it is split", () => {
  const body = "a".repeat(300);
  const text = `HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\n\r\n${body}`;
  for (let cut = 0; cut <= text.length; cut++) {
    const { done, meter } = feedSplit(text, cut);
    assert.deepEqual(done.slice(0, -1).every((d) => !d), true, `early end at cut ${cut}`);
    assert.equal(done.at(-1), true, `no end at cut ${cut}`);
    assert.equal(meter.bodyBytes, body.length);
  }
});

Deno.test("ResponseMeter follows chunked bodies with extensions and trailers", () => {
  const text = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" +
    "5;x=y\r\nhello\r\n1A\r\n" + "b".repeat(26) + "\r\n0\r\nX-Trailer: 1\r\n\r\n";
  for (let cut = 0; cut <= text.length; cut++) {
    const { done, meter } = feedSplit(text, cut);
    assert.equal(done.at(-1), true, `no end at cut ${cut}`);
    assert.ok(done.slice(0, -1).every((d) => !d), `early end at cut ${cut}`);
    assert.equal(meter.bodyBytes, 31);
  }
  // A chunk of data that looks like the last chunk does not end the body.
  const tricky = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n7\r\n\r\n0\r\n\r\n\r\n";
  const meter = new ResponseMeter();
  assert.equal(meter.feed(encoder.encode(tricky)), false);
  assert.equal(meter.feed(encoder.encode("0\r\n\r\n")), true);
});

Deno.test("ResponseMeter refuses what a benchmark must not count", () => {
  assert.throws(
    () => new ResponseMeter().feed(encoder.encode("HTTP/1.1 502 Bad Gateway\r\n\r\n")),
    /Expected 200, got: HTTP\/1\.1 502/,
  );
  assert.throws(
    () => new ResponseMeter().feed(encoder.encode("HTTP/1.1 200 OK\r\n\r\nabc")),
    /without Content-Length or chunked/,
  );
  assert.throws(
    () =>
      new ResponseMeter().feed(encoder.encode("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nab")),
    /past the response's Content-Length/,
  );
  assert.throws(
    () => new ResponseMeter().feed(new Uint8Array(16 * 1024).fill(65)),
    /head over 16 KiB/,
  );
});

Deno.test("ResponseMeter tells whether the server closes the connection after the response", () => {
  const kept = new ResponseMeter();
  assert.equal(kept.feed(encoder.encode("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")), true);
  assert.equal(kept.closes, false);
  const closing = new ResponseMeter();
  const head = "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok";
  assert.equal(closing.feed(encoder.encode(head)), true);
  assert.equal(closing.closes, true);
});
