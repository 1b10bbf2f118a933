import assert from "node:assert/strict";
import { ProtobufChecker } from "./_protobuf_checker.ts";
import {
  concat,
  counterFamily,
  delimited,
  doubleField,
  histogramFamily,
  label,
  lenField,
  messageField,
  tag,
  uintField,
  varint,
} from "./_testing.ts";
import { VerificationError } from "./verification_error.ts";

function check(body: Uint8Array, maxMessageBytes = 1 << 20): void {
  const checker = new ProtobufChecker({ maxMessageBytes });
  checker.push(body);
  checker.finish();
}

function checkError(body: Uint8Array, maxMessageBytes = 1 << 20): string {
  try {
    check(body, maxMessageBytes);
  } catch (error) {
    assert.ok(error instanceof VerificationError, String(error));
    return error.message;
  }
  assert.fail("expected a VerificationError");
}

const NAME = lenField(1, "up");

Deno.test("ProtobufChecker accepts families of every metric type", () => {
  check(
    delimited(
      counterFamily("a_total", [1, 2]),
      histogramFamily("b_seconds"),
      concat(NAME, uintField(3, 1), messageField(4, messageField(2, doubleField(1, 1)))),
      concat(
        lenField(1, "s"),
        uintField(3, 2),
        messageField(
          4,
          messageField(
            4,
            uintField(1, 3),
            doubleField(2, 1.5),
            messageField(3, doubleField(1, 0.5), doubleField(2, 0.1)),
            messageField(4, uintField(1, 1)),
          ),
        ),
      ),
      concat(
        lenField(1, "u"),
        uintField(3, 3),
        messageField(4, messageField(5, doubleField(1, 7))),
      ),
      concat(lenField(1, "gh"), uintField(3, 5)),
      concat(lenField(1, "dotted.utf8.näme")),
    ),
  );
});

Deno.test("ProtobufChecker skips unknown fields of every wire type", () => {
  check(
    delimited(
      concat(
        NAME,
        uintField(99, 5),
        concat(tag(98, 1), new Uint8Array(8)),
        concat(tag(97, 5), new Uint8Array(4)),
        lenField(96, Uint8Array.of(0xff, 0xfe)), // unknown bytes are not UTF-8-checked
      ),
    ),
  );
});

Deno.test("ProtobufChecker accepts unpacked repeated scalars", () => {
  check(
    delimited(
      concat(
        NAME,
        uintField(3, 4),
        messageField(4, messageField(7, uintField(13, 2), uintField(13, 3), doubleField(14, 1))),
      ),
    ),
  );
});

const ERRORS: [Uint8Array, RegExp][] = [
  [delimited(concat(lenField(2, "help only"))), /MetricFamily: missing required field name/],
  [delimited(lenField(1, "")), /MetricFamily\.name: must not be empty/],
  [
    delimited(lenField(1, Uint8Array.of(0x61, 0xc3))),
    /MetricFamily\.name: invalid UTF-8 in string/,
  ],
  [delimited(concat(NAME, uintField(3, 9))), /MetricFamily\.type: unknown enum value 9/],
  [
    delimited(concat(tag(1, 0), varint(5))),
    /MetricFamily\.name: wire type 0 where a string \(wire type 2\) is expected/,
  ],
  [delimited(concat(NAME, uintField(4, 1))), /MetricFamily\.metric: wire type 0 where a message/],
  [
    delimited(concat(NAME, tag(3, 1), new Uint8Array(8))),
    /MetricFamily\.type: wire type 1 where an enum/,
  ],
  [
    delimited(concat(NAME, messageField(4, messageField(1, lenField(2, "v"))))),
    /MetricFamily\.metric\.label: missing required field name/,
  ],
  [
    delimited(concat(NAME, messageField(4, label("a", "b"), messageField(2, uintField(1, 3))))),
    /MetricFamily\.metric\.gauge\.value: wire type 0 where a 64-bit value/,
  ],
  [
    delimited(concat(NAME, messageField(4, messageField(7, lenField(11, new Uint8Array(7)))))),
    /negative_count: packed 64-bit values of 7 bytes/,
  ],
  [
    delimited(concat(NAME, messageField(4, messageField(7, lenField(13, Uint8Array.of(0x80)))))),
    /positive_delta: truncated packed varint/,
  ],
  [
    delimited(concat(NAME, messageField(4, messageField(2, lenField(1, "x"))))),
    /gauge\.value: wire type 2 where a 64-bit value/,
  ],
  [delimited(concat(NAME, tag(0, 0), varint(1))), /invalid field number 0/],
  [delimited(concat(NAME, tag(5, 3))), /unexpected group wire type in field 5/],
  [delimited(concat(NAME, tag(5, 7))), /invalid wire type 7 in field 5/],
  [delimited(concat(NAME, tag(20, 1), new Uint8Array(3))), /truncated 64-bit value/],
  [delimited(concat(NAME, tag(20, 5), new Uint8Array(3))), /truncated 32-bit value/],
  [
    delimited(concat(NAME, tag(20, 2), varint(50), new Uint8Array(3))),
    /length 50 runs past the end of the enclosing message \(3 bytes left\)/,
  ],
  [delimited(concat(NAME, tag(20, 0), Uint8Array.of(0x80, 0x80))), /truncated varint/],
  [
    delimited(concat(NAME, tag(20, 0), new Uint8Array(10).fill(0xff), Uint8Array.of(1))),
    /malformed varint/,
  ],
  [varint(10), /body ends after 0 of 10 message bytes/],
  [concat(varint(10), new Uint8Array(4)), /body ends after 4 of 10 message bytes/],
  [Uint8Array.of(0x80), /body ends inside a length prefix/],
];

Deno.test("ProtobufChecker rejects malformed messages with their position", () => {
  for (const [body, pattern] of ERRORS) {
    assert.match(checkError(body), pattern);
  }
});

Deno.test("ProtobufChecker numbers messages and byte offsets", () => {
  const good = delimited(counterFamily("a", [1]));
  const bad = delimited(concat(NAME, uintField(3, 9)));
  const message = checkError(concat(good, good, bad));
  const typeOffset = 2 * good.length + 1 + NAME.length;
  assert.equal(
    message,
    `protobuf message 3 at byte ${typeOffset + 1}: MetricFamily.type: unknown enum value 9`,
  );
});

Deno.test("ProtobufChecker detects truncation at every byte", () => {
  const body = delimited(counterFamily("a", [1, 2]), histogramFamily("h"));
  const boundaries = new Set<number>([0]);
  let at = 0;
  for (const m of [counterFamily("a", [1, 2]), histogramFamily("h")]) {
    at += varint(m.length).length + m.length;
    boundaries.add(at);
  }
  for (let cut = 0; cut <= body.length; cut++) {
    const truncated = body.subarray(0, cut);
    if (boundaries.has(cut)) check(truncated);
    else assert.match(checkError(truncated), /body ends/);
  }
});

Deno.test("ProtobufChecker rejects an oversized length before buffering", () => {
  const checker = new ProtobufChecker({ maxMessageBytes: 1000 });
  assert.throws(
    () => checker.push(Uint8Array.of(0xff, 0xff)),
    (error: unknown) =>
      error instanceof VerificationError && error.kind === "too_large" &&
      error.message ===
        "protobuf message 1 at byte 0: message length of at least 16383 bytes exceeds the limit of 1000 bytes",
  );
  assert.match(
    checkError(concat(varint(1001), new Uint8Array(1001)), 1000),
    /message length 1001 bytes exceeds the limit of 1000 bytes/,
  );
});
