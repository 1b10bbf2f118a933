import assert from "node:assert/strict";
import {
  concat,
  counterFamily,
  delimited,
  histogramFamily,
  OPENMETRICS_CONTENT_TYPE,
  PROTOBUF_CONTENT_TYPE,
  TEXT_CONTENT_TYPE,
} from "./_testing.ts";
import { VerificationError } from "./verification_error.ts";
import { createVerifier, type VerifierOptions } from "./verifier.ts";

const ENCODER = new TextEncoder();
const TEXT_SAMPLE = await Deno.readFile(
  new URL("./testdata/text_valid.prom", import.meta.url),
);
const OPENMETRICS_SAMPLE = await Deno.readFile(
  new URL("./testdata/openmetrics_valid.om", import.meta.url),
);
const HTML_PAGE = await Deno.readFile(
  new URL("./testdata/error_page.txt", import.meta.url),
);
const PROTOBUF_SAMPLE = delimited(
  counterFamily("http_requests_total", [1027, 3]),
  histogramFamily("request_duration_seconds"),
  counterFamily("empty_family", []),
);

const TEXT: VerifierOptions = { contentType: TEXT_CONTENT_TYPE };
const OM: VerifierOptions = { contentType: OPENMETRICS_CONTENT_TYPE };
const PROTO: VerifierOptions = { contentType: PROTOBUF_CONTENT_TYPE };

function bytesOf(body: Uint8Array | string): Uint8Array {
  return typeof body === "string" ? ENCODER.encode(body) : body;
}

function verifyChunks(chunks: Uint8Array[], options: VerifierOptions): void {
  const verifier = createVerifier(options);
  for (const chunk of chunks) verifier.push(chunk);
  verifier.finish();
}

function verify(body: Uint8Array | string, options: VerifierOptions): void {
  verifyChunks([bytesOf(body)], options);
}

function failure(
  fn: () => void,
): VerificationError {
  try {
    fn();
  } catch (error) {
    assert.ok(
      error instanceof VerificationError,
      `expected a VerificationError, got ${error}`,
    );
    return error;
  }
  assert.fail("expected verification to fail");
}

function verifyError(
  body: Uint8Array | string,
  options: VerifierOptions,
): VerificationError {
  return failure(() => verify(body, options));
}

function splitAt(bytes: Uint8Array, cuts: number[]): Uint8Array[] {
  const chunks: Uint8Array[] = [];
  let last = 0;
  for (const cut of cuts) {
    chunks.push(bytes.subarray(last, cut));
    last = cut;
  }
  chunks.push(bytes.subarray(last));
  return chunks;
}

// ---- valid bodies -----------------------------------------------------------

Deno.test("createVerifier() accepts the sample text exposition", () => {
  verify(TEXT_SAMPLE, TEXT);
  verify(TEXT_SAMPLE, {}); // no Content-Type means text 0.0.4
});

Deno.test("createVerifier() accepts text with info/unknown/untyped types that exporter_exporter rejects", () => {
  verify(
    '# TYPE a info\na_info{v="1"} 1\n# TYPE b unknown\nb 2\n# TYPE c untyped\nc 3\n# TYPE d stateset\nd{d="x"} 1\n# TYPE e gaugehistogram\ne_bucket{le="+Inf"} 1\ne_gcount 1\ne_gsum 1\n',
    TEXT,
  );
});

Deno.test("createVerifier() accepts text edge cases", () => {
  for (
    const body of [
      "",
      "\n\n",
      "   \n\t\n",
      "foo 1",
      "foo{} 1\n",
      "foo{}1\n",
      'foo{a="b",} 1\n',
      'foo {a="b"} 1\n',
      "  foo  1  123  \n",
      "foo\t1\t-5\n",
      'foo{a="\\\\ \\" \\n \\t"} 0\n',
      "foo -Inf\nbar +inf\nbaz Infinity\nqux nan\n",
      "foo .5\nbar 5.\nbaz 1E-3\nqux -0\n",
      "foo 1 9223372036854775807\nbar 1 -9223372036854775808\n",
      "#HELP not metadata without a space\n",
      '# a comment with ünïcödé and "quotes" {\n',
      "# HELP foo\n# HELP\n# TYPE\n",
      "# HELP foo  two spaces keep the second one in the text\n",
      "# TYPE foo counter \nfoo 1\n",
      "# EOF\n# UNIT is only a comment in 0.0.4\n",
      '{"a.b"} 1\n{"a.b", c="d"} 2\n',
      '# TYPE "a.b" gauge\n{"a.b"} 1\n',
    ]
  ) {
    verify(body, TEXT);
  }
});

Deno.test("createVerifier() accepts the sample OpenMetrics exposition", () => {
  verify(OPENMETRICS_SAMPLE, OM);
});

Deno.test("createVerifier() accepts OpenMetrics edge cases", () => {
  for (
    const body of [
      "# EOF",
      "# EOF\n",
      "foo 1\n# EOF",
      "# HELP foo \n# UNIT foo \nfoo 1\n# EOF\n",
      "# TYPE foo_seconds gauge\n# UNIT foo_seconds seconds\nfoo_seconds 1 -1.5\n# EOF\n",
      '# TYPE c counter\nc_total 1 # {a="b"} 1 1.5\nc_created 1\n# EOF\n',
      '# TYPE s stateset\ns{s="a"} 1\ns{s="b"} 0\n# EOF\n',
    ]
  ) {
    verify(body, OM);
  }
});

Deno.test("createVerifier() accepts protobuf built by hand", () => {
  verify(PROTOBUF_SAMPLE, PROTO);
  verify(new Uint8Array(0), PROTO);
});

// ---- invalid bodies ---------------------------------------------------------

const TEXT_ERRORS: [string, string][] = [
  ["1abc 1\n", 'line 1: invalid metric name "1abc"'],
  ["ok 1\nfoo-bar 1\n", 'line 2: invalid metric name "foo-bar"'],
  ["foo\n", 'line 1: missing value for metric "foo"'],
  ["foo abc\n", 'line 1: invalid value "abc" for metric "foo": not a number'],
  ["foo 1e400\n", 'invalid value "1e400" for metric "foo": number out of range'],
  ["foo 0x1p3\n", 'invalid value "0x1p3"'],
  ["foo 1_000\n", 'invalid value "1_000"'],
  ["foo +NaN\n", 'invalid value "+NaN"'],
  ['foo{a="b} 1\n', "unterminated quoted label value"],
  ['foo{a="b"\n', 'unterminated label set: missing "}"'],
  ["foo{a=b} 1\n", 'expected a quoted value for label "a"'],
  ['foo{1a="b"} 1\n', 'expected label name, got "1a"'],
  ['foo{a-b="c"} 1\n', 'invalid label name "a-b"'],
  ["foo{,} 1\n", 'expected label name, got ""'],
  ['foo{a="b" c="d"} 1\n', 'expected "," or "}" in the label set'],
  ['foo{""="x"} 1\n', "empty label name"],
  ['foo{"a","b"} 1\n', "metric name given twice"],
  ['bar{"foo"} 1\n', "metric name given both before and inside the braces"],
  ['{a="b"} 1\n', "missing metric name"],
  ["foo 1 abc\n", 'invalid timestamp "abc"'],
  ["foo 1 1.5\n", 'invalid timestamp "1.5"'],
  ["foo 1 9223372036854775808\n", "integer out of range"],
  ["foo 1 2 3\n", 'unexpected text after timestamp: "3"'],
  ['foo 1 # {a="b"} 1\n', "exemplars and trailing comments are not allowed"],
  ["foo 1\r\n", "carriage return in line (CRLF line endings are not allowed)"],
  ["# TYPE foo counter\r\n", "carriage return"],
  ['foo{a="\xff"} 1\n', "invalid UTF-8 in label value"],
  ["# TYPE foo bogus\n", 'line 1: invalid metric type "bogus"'],
  ["# TYPE foo\n", 'missing metric type in # TYPE line for "foo"'],
  ["# TYPE foo counter extra\n", "unexpected text after metric type"],
  ["# TYPE 1foo counter\n", 'invalid metric name "1foo"'],
  ["# HELP foo-bar x\n", 'invalid metric name "foo-bar"'],
  [
    "# TYPE foo counter\nfoo 1\n# TYPE foo counter\n",
    'line 3: duplicate # TYPE line for metric family "foo"',
  ],
  [
    "foo 1\n# TYPE foo counter\n",
    'line 2: # TYPE line for metric family "foo" must come before its samples',
  ],
  [
    "# HELP foo a\n# HELP foo b\n",
    'line 2: duplicate # HELP line for metric family "foo"',
  ],
  [
    "# TYPE foo gauge\nfoo 1\n# TYPE bar gauge\nbar 1\n# TYPE foo gauge\n",
    'line 5: duplicate # TYPE line for metric family "foo"',
  ],
];

Deno.test("createVerifier() rejects invalid text with precise messages", () => {
  for (const [body, message] of TEXT_ERRORS) {
    const error = verifyError(
      body.includes("\xff") ? Uint8Array.from(body, (c) => c.charCodeAt(0)) : body,
      TEXT,
    );
    assert.ok(
      error.message.includes(message),
      `${JSON.stringify(body)}: got ${JSON.stringify(error.message)}, want ${
        JSON.stringify(message)
      }`,
    );
    assert.equal(error.name, "VerificationError");
    assert.equal(error.kind, "malformed");
    assert.equal(typeof error.line, "number");
  }
});

const OPENMETRICS_ERRORS: [string, string][] = [
  ["foo 1\n", 'line 1: OpenMetrics body does not end with "# EOF"'],
  ["", 'OpenMetrics body does not end with "# EOF"'],
  ["# EOF\nfoo 1\n", "line 2: unexpected data after # EOF"],
  ["# EOF\n\n", "line 2: unexpected data after # EOF"],
  ["foo 1\n\n# EOF\n", "line 2: empty lines are not allowed in OpenMetrics"],
  [" foo 1\n# EOF\n", "leading whitespace is not allowed"],
  ["# a comment\n# EOF\n", 'OpenMetrics only allows "# HELP"'],
  ["# EOF \n", "OpenMetrics only allows"],
  ["# TYPE foo untyped\n# EOF\n", 'invalid metric type "untyped"'],
  ["# TYPE foo gauge \n# EOF\n", 'invalid metric type "gauge "'],
  ["# HELP foo\n# EOF\n", "expected a space and text after metric name"],
  ["foo  1\n# EOF\n", 'invalid value "" for metric "foo": empty number'],
  ["foo\t1\n# EOF\n", "invalid metric name"],
  ["foo 1 \n# EOF\n", 'invalid timestamp ""'],
  ['foo{a="b" } 1\n# EOF\n', 'expected "," or "}" in the label set'],
  ['foo{a = "b"} 1\n# EOF\n', 'expected "=" after label name "a", got " "'],
  ["foo 1 NaN\n# EOF\n", 'invalid timestamp "NaN": must be finite'],
  ["foo 1 1 2\n# EOF\n", "unexpected text after timestamp"],
  ['foo 1 # {a="b"}\n# EOF\n', "expected a space and a value after the exemplar labels"],
  ["foo 1 #{}\n# EOF\n", 'invalid exemplar "#{}": expected "# {"'],
  ['foo 1 # {a="b"} x\n# EOF\n', 'invalid exemplar value "x"'],
  ['foo 1 # {a="b"} 1 2 3\n# EOF\n', "unexpected text after exemplar timestamp"],
  ['foo 1 # {"x"} 1\n# EOF\n', 'expected "=" after label name'],
  ["# UNIT foo_seconds bytes\n# EOF\n", 'unit "bytes" is not a suffix of metric "foo_seconds"'],
  ["# UNIT seconds seconds\n# EOF\n", "is not a suffix"],
  ["# HELP foo x\n# HELP foo y\n# EOF\n", 'line 2: duplicate # HELP line for metric family "foo"'],
  ["# UNIT foo_s s\n# UNIT foo_s s\n# EOF\n", "duplicate # UNIT line"],
  [
    "# TYPE foo counter\nfoo_total 1\n# HELP foo late\n# EOF\n",
    'line 3: # HELP line for metric family "foo" must come before its samples',
  ],
  [
    "foo_total 1\n# TYPE foo counter\n# EOF\n",
    'line 2: # TYPE line for metric family "foo" must come before its samples (saw "foo_total" earlier)',
  ],
];

Deno.test("createVerifier() rejects invalid OpenMetrics with precise messages", () => {
  for (const [body, message] of OPENMETRICS_ERRORS) {
    const error = verifyError(body, OM);
    assert.ok(
      error.message.includes(message),
      `${JSON.stringify(body)}: got ${JSON.stringify(error.message)}, want ${
        JSON.stringify(message)
      }`,
    );
    assert.equal(error.kind, "malformed");
  }
});

Deno.test("createVerifier() rejects an HTML error page in every format", () => {
  assert.match(
    verifyError(HTML_PAGE, TEXT).message,
    /^line 1: invalid metric name "<!DOCTYPE"/,
  );
  assert.match(
    verifyError(HTML_PAGE, OM).message,
    /^line 1: invalid comment|^line 1: invalid metric name/,
  );
  assert.match(verifyError(HTML_PAGE, PROTO).message, /^protobuf message 1 at byte \d+: /);
});

Deno.test("createVerifier() rejects a text body sent as OpenMetrics (no # EOF)", () => {
  const error = verifyError(TEXT_SAMPLE, OM);
  assert.match(error.message, /^line 1: invalid comment "# A plain comment/);
});

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

Deno.test("createVerifier() validates its options", () => {
  assert.throws(() => createVerifier({ maxLineBytes: 0 }), RangeError);
  assert.throws(() => createVerifier({ maxMessageBytes: 1.5 }), RangeError);
  assert.throws(() => createVerifier({ maxBytes: -1 }), RangeError);
  assert.throws(() => createVerifier({ maxFamilies: NaN }), RangeError);
  assert.equal(createVerifier(OM).format, "openmetrics");
  assert.equal(createVerifier(PROTO).format, "protobuf");
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
