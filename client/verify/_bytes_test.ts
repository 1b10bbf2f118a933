import assert from "node:assert/strict";
import { checkFloat, checkInt64, isValidUtf8, quoteBytes } from "./_bytes.ts";

const ENCODER = new TextEncoder();

function float(text: string): string | undefined {
  const b = ENCODER.encode(text);
  return checkFloat(b, 0, b.length);
}

function int(text: string): string | undefined {
  const b = ENCODER.encode(text);
  return checkInt64(b, 0, b.length);
}

Deno.test("checkFloat() accepts what Go's ParseFloat accepts for Prometheus", () => {
  for (
    const text of [
      "0",
      "-0",
      "+1",
      "1.",
      ".5",
      "1.5e10",
      "1E-3",
      "1e+3",
      "NaN",
      "nan",
      "Inf",
      "+Inf",
      "-inf",
      "infinity",
      "-Infinity",
      "1.7976931348623157e308",
      "123456789012345678901234567890",
    ]
  ) {
    assert.equal(float(text), undefined, text);
  }
});

Deno.test("checkFloat() rejects everything else", () => {
  for (
    const text of [
      "",
      "+",
      ".",
      "e5",
      "1e",
      "1e+",
      "0x10",
      "0x1p3",
      "1_000",
      "+NaN",
      "-nan",
      "in",
      "infinit",
      "1.2.3",
      "1e400",
      "-1e400",
      "1,5",
      " 1",
    ]
  ) {
    assert.notEqual(float(text), undefined, text);
  }
});

Deno.test("checkInt64() accepts the int64 range only", () => {
  for (const text of ["0", "-1", "00042", "9223372036854775807", "-9223372036854775808"]) {
    assert.equal(int(text), undefined, text);
  }
  for (
    const text of [
      "",
      "-",
      "+1",
      "1.0",
      "1e3",
      "9223372036854775808",
      "-9223372036854775809",
      "99999999999999999999",
    ]
  ) {
    assert.notEqual(int(text), undefined, text);
  }
});

Deno.test("isValidUtf8() matches TextDecoder's fatal mode", () => {
  const decoder = new TextDecoder("utf-8", { fatal: true });
  const samples = [
    [0x61],
    [0xc3, 0xbc],
    [0xc0, 0x80],
    [0xc3],
    [0xe0, 0x80, 0x80],
    [0xe2, 0x82, 0xac],
    [0xed, 0xa0, 0x80],
    [0xf0, 0x9f, 0x98, 0x80],
    [0xf0, 0x8f, 0xbf, 0xbf],
    [0xf4, 0x90, 0x80, 0x80],
    [0xf5, 0x80, 0x80, 0x80],
    [0xff],
    [0x80],
  ];
  for (const sample of samples) {
    const b = Uint8Array.from(sample);
    let expected = true;
    try {
      decoder.decode(b);
    } catch {
      expected = false;
    }
    assert.equal(isValidUtf8(b, 0, b.length), expected, sample.join(","));
  }
});

Deno.test("quoteBytes() shortens long previews", () => {
  const b = ENCODER.encode("x".repeat(100));
  assert.equal(quoteBytes(b, 0, 3), '"xxx"');
  assert.equal(quoteBytes(b, 0, 100), JSON.stringify("x".repeat(64) + "…"));
});
