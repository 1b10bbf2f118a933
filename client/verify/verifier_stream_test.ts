/**
 * createVerifier() on a stream: the same answer wherever the body is split,
 * the byte, line, message and family limits, and bounded memory over
 * 50 MB bodies.
 */

import assert from "node:assert/strict";
import { concat, counterFamily, delimited, histogramFamily } from "./_testing.ts";
import { createVerifier, type VerifierOptions } from "./verifier.ts";
import {
  bytesOf,
  failure,
  OM,
  OPENMETRICS_SAMPLE,
  PROTO,
  PROTOBUF_SAMPLE,
  splitAt,
  TEXT,
  TEXT_SAMPLE,
  verify,
  verifyChunks,
  verifyError,
} from "./verifier_testing.ts";

// ---- chunk boundaries -------------------------------------------------------

Deno.test("createVerifier() gives the same result for every single split point", () => {
  for (
    const [body, options] of [
      [TEXT_SAMPLE, TEXT],
      [OPENMETRICS_SAMPLE, OM],
      [PROTOBUF_SAMPLE, PROTO],
    ] as const
  ) {
    for (let cut = 0; cut <= body.length; cut++) {
      verifyChunks(splitAt(body, [cut]), options);
    }
  }
});

Deno.test("createVerifier() gives the same result for every pair of split points", () => {
  const text = bytesOf(
    '# HELP a x\n# TYPE a counter\na_total{l="v\\"w"} 1 2\n\n{"b.c"} NaN\n',
  );
  const om = bytesOf('# TYPE a counter\na_total 1 # {t="x"} 2 3\n# EOF\n');
  const proto = delimited(counterFamily("a", [1]));
  for (
    const [body, options] of [[text, TEXT], [om, OM], [proto, PROTO]] as const
  ) {
    for (let i = 0; i <= body.length; i++) {
      for (let j = i; j <= body.length; j++) {
        verifyChunks(splitAt(body, [i, j]), options);
      }
    }
  }
});

Deno.test("createVerifier() accepts one-byte chunks", () => {
  for (
    const [body, options] of [
      [TEXT_SAMPLE, TEXT],
      [OPENMETRICS_SAMPLE, OM],
      [PROTOBUF_SAMPLE, PROTO],
    ] as const
  ) {
    verifyChunks(
      Array.from(body, (_, i) => body.subarray(i, i + 1)),
      options,
    );
  }
});

Deno.test("createVerifier() reports the same error wherever the body is split", () => {
  for (
    const [body, options] of [
      [bytesOf('ok 1\nok 2\nfoo{a="b" 1\nok 3\n'), TEXT],
      [bytesOf("# TYPE x gauge\nx 1\n# EOF\ny 2\n"), OM],
      [bytesOf("ok 1\n"), OM],
      [concat(delimited(counterFamily("a", [1])), Uint8Array.of(5, 0x0a)), PROTO],
    ] as const
  ) {
    const expected = verifyError(body, options).message;
    for (let cut = 0; cut <= body.length; cut++) {
      const error = failure(() => verifyChunks(splitAt(body, [cut]), options));
      assert.equal(error.message, expected, `split at ${cut}`);
    }
  }
});

// ---- bounds and lifecycle ---------------------------------------------------

Deno.test("createVerifier() enforces maxBytes", () => {
  const body = bytesOf("foo 1\nbar 2\n");
  verify(body, { ...TEXT, maxBytes: body.length });
  const error = verifyError(body, { ...TEXT, maxBytes: body.length - 1 });
  assert.equal(error.kind, "too_large");
  assert.equal(
    error.message,
    `body exceeds the verification limit of ${body.length - 1} bytes`,
  );
});

Deno.test("createVerifier() enforces maxLineBytes within and across chunks", () => {
  const line = `foo{a="${"x".repeat(100)}"} 1\n`;
  verify(line, { ...TEXT, maxLineBytes: line.length - 1 });
  const options = { ...TEXT, maxLineBytes: line.length - 2 };
  const whole = verifyError("ok 1\n" + line, options);
  assert.equal(whole.kind, "too_large");
  assert.equal(
    whole.message,
    `line 2: line exceeds the limit of ${line.length - 2} bytes`,
  );
  const body = bytesOf("ok 1\n" + line);
  for (let cut = 0; cut < body.length; cut++) {
    const error = failure(() => verifyChunks(splitAt(body, [cut]), options));
    assert.equal(error.message, whole.message);
  }
  // A line that never ends is stopped without buffering it all.
  const verifier = createVerifier({ ...TEXT, maxLineBytes: 1024 });
  const error = failure(() => {
    for (let i = 0; i < 100; i++) verifier.push(new Uint8Array(100).fill(0x61));
  });
  assert.equal(error.message, "line 1: line exceeds the limit of 1024 bytes");
});

Deno.test("createVerifier() enforces maxMessageBytes on protobuf", () => {
  const message = counterFamily("big", [1, 2, 3]);
  verify(delimited(message), { ...PROTO, maxMessageBytes: message.length });
  const error = verifyError(delimited(message), {
    ...PROTO,
    maxMessageBytes: message.length - 1,
  });
  assert.equal(error.kind, "too_large");
  assert.match(error.message, /exceeds the limit of/);
});

Deno.test("createVerifier() keeps failing after the first error", () => {
  const verifier = createVerifier(TEXT);
  const first = failure(() => verifier.push(bytesOf("1 2\n")));
  assert.equal(failure(() => verifier.push(bytesOf("ok 1\n"))), first);
  assert.equal(failure(() => verifier.finish()), first);
});

Deno.test("createVerifier() refuses pushes after finish()", () => {
  const verifier = createVerifier(TEXT);
  verifier.push(bytesOf("ok 1\n"));
  verifier.finish();
  verifier.finish();
  assert.throws(() => verifier.push(bytesOf("x 1\n")), TypeError);
  assert.equal(verifier.bytesVerified, 5);
  assert.equal(verifier.format, "text");
});

Deno.test("createVerifier() keeps family tracking bounded by maxFamilies", () => {
  const body = "a 1\nb 1\nc 1\n# TYPE a gauge\n";
  assert.match(verifyError(body, TEXT).message, /must come before its samples/);
  // With room for only two names the check degrades to the current family.
  verify(body, { ...TEXT, maxFamilies: 2 });
});

// ---- large bodies -----------------------------------------------------------

const MIB = 1024 * 1024;

function repeatedBlock(line: (i: number) => string): Uint8Array {
  const lines: string[] = [];
  let size = 0;
  for (let i = 0; size < MIB; i++) {
    const text = line(i);
    lines.push(text);
    size += text.length;
  }
  return bytesOf(lines.join(""));
}

function pushRepeated(
  options: VerifierOptions,
  head: Uint8Array,
  block: Uint8Array,
  tail: Uint8Array,
  totalBytes: number,
): number {
  const verifier = createVerifier(options);
  verifier.push(head);
  const before = Deno.memoryUsage().rss;
  const step = 65521; // prime, so lines and messages straddle chunks
  for (let pushed = 0; pushed < totalBytes; pushed += block.length) {
    for (let at = 0; at < block.length; at += step) {
      verifier.push(block.subarray(at, Math.min(at + step, block.length)));
    }
  }
  verifier.push(tail);
  verifier.finish();
  assert.ok(verifier.bytesVerified >= totalBytes);
  return Deno.memoryUsage().rss - before;
}

const MODES = ["idle", "user", "system", "iowait", "irq", "softirq", "steal", "nice"];

Deno.test("createVerifier() verifies a 50 MB text body with bounded memory", () => {
  const block = repeatedBlock((i) =>
    `node_cpu_seconds_total{cpu="${i % 64}",mode="${MODES[i % 8]}"} ${i * 1.25} 1700000000000\n`
  );
  const growth = pushRepeated(
    TEXT,
    bytesOf(
      "# HELP node_cpu_seconds_total Seconds.\n# TYPE node_cpu_seconds_total counter\n",
    ),
    block,
    new Uint8Array(0),
    50 * MIB,
  );
  assert.ok(growth < 64 * MIB, `rss grew by ${growth} bytes`);
});

Deno.test("createVerifier() verifies a 50 MB OpenMetrics body with bounded memory", () => {
  const block = repeatedBlock((i) =>
    `http_requests_total{code="${200 + (i % 5)}",path="/p/${i % 100}"} ${i} ${
      1700000000 + i
    }.5 # {trace_id="${i.toString(16)}"} 1\n`
  );
  const growth = pushRepeated(
    OM,
    bytesOf("# TYPE http_requests counter\n"),
    block,
    bytesOf("# EOF\n"),
    50 * MIB,
  );
  assert.ok(growth < 64 * MIB, `rss grew by ${growth} bytes`);
});

Deno.test("createVerifier() verifies a 50 MB protobuf body with bounded memory", () => {
  const messages: Uint8Array[] = [];
  let size = 0;
  for (let i = 0; size < MIB; i++) {
    const family = i % 2 === 0
      ? counterFamily(`family_${i}`, Array.from({ length: 50 }, (_, k) => k))
      : histogramFamily(`family_${i}`);
    messages.push(family);
    size += family.length;
  }
  const growth = pushRepeated(
    PROTO,
    new Uint8Array(0),
    delimited(...messages),
    new Uint8Array(0),
    50 * MIB,
  );
  assert.ok(growth < 64 * MIB, `rss grew by ${growth} bytes`);
});
