import assert from "node:assert/strict";
import { median, ResponseMeter } from "./alternate.ts";

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

Deno.test("median() takes the middle value, or the mean of the middle two", () => {
  assert.equal(median([3, 1, 2]), 2);
  assert.equal(median([4, 1, 3, 2]), 2.5);
  assert.throws(() => median([]), RangeError);
});

Deno.test({
  name: "bench:alternate compares a checkout with itself through two real stacks",
  // Starts a target, two proxies and two clients from these sources; ~10 s.
  // The target answers chunked (--body=chunked): the proxies relay it with
  // chunked framing, which the meter checks byte by byte.
  sanitizeResources: true,
  async fn() {
    const json = await Deno.makeTempFile({ suffix: ".json" });
    try {
      const output = await new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "--lock=deno.dev.lock",
          "--frozen",
          "--allow-all",
          "bench/alternate.ts",
          "--against=.",
          "--requests=300",
          "--rounds=1",
          "--warmup=5",
          "--size=40000",
          "--body=chunked",
          `--json=${json}`,
        ],
        cwd: new URL("..", import.meta.url).pathname,
        stdout: "piped",
        stderr: "piped",
        signal: AbortSignal.timeout(120_000),
      }).output();
      const stdout = new TextDecoder().decode(output.stdout);
      assert.equal(output.code, 0, new TextDecoder().decode(output.stderr).slice(-2000));
      assert.match(
        stdout,
        /^round 1: this checkout [\d.]+ ms \(proxy [\d.]+, client [\d.]+; user [\d.]+\)/m,
      );
      const summary = JSON.parse(await Deno.readTextFile(json));
      assert.equal(summary.requests, 300);
      assert.equal(summary.body, "chunked");
      assert.ok(summary.msPerRequest.a > 0 && summary.msPerRequest.b > 0);
      // User time is part of the total, never more.
      assert.ok(summary.userMsPerRequest.a > 0);
      assert.ok(summary.userMsPerRequest.a <= summary.msPerRequest.a + 1e-9);
      assert.ok(Number.isFinite(summary.ratio) && summary.ratio > 0);
      assert.deepEqual(Object.keys(summary.ratioByProcess), ["proxy", "client"]);
    } finally {
      await Deno.remove(json);
    }
  },
});
