/**
 * createVerifier(): what it accepts and what it rejects, with the message,
 * in each format. Chunking, limits and memory: verifier_stream_test.ts.
 */

import assert from "node:assert/strict";
import { createVerifier } from "./verifier.ts";
import {
  HTML_PAGE,
  OM,
  OPENMETRICS_SAMPLE,
  PROTO,
  PROTOBUF_SAMPLE,
  TEXT,
  TEXT_SAMPLE,
  verify,
  verifyError,
} from "./verifier_testing.ts";

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

Deno.test("createVerifier() validates its options", () => {
  assert.throws(() => createVerifier({ maxLineBytes: 0 }), RangeError);
  assert.throws(() => createVerifier({ maxMessageBytes: 1.5 }), RangeError);
  assert.throws(() => createVerifier({ maxBytes: -1 }), RangeError);
  assert.throws(() => createVerifier({ maxFamilies: NaN }), RangeError);
  assert.equal(createVerifier(OM).format, "openmetrics");
  assert.equal(createVerifier(PROTO).format, "protobuf");
});
