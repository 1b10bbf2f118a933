import assert from "node:assert/strict";
import { formatDuration, parseDuration, parseGoDuration } from "./duration.ts";

Deno.test("parseDuration() reads Go durations", () => {
  assert.equal(parseDuration("15s"), 15_000);
  assert.equal(parseDuration("5m"), 300_000);
  assert.equal(parseDuration("1h30m"), 5_400_000);
  assert.equal(parseDuration("250ms"), 250);
  assert.equal(parseDuration("1.5s"), 1500);
  assert.equal(parseDuration("0"), 0);
  // Go's grammar (it used to be a narrower one here): a sign, the Greek mu.
  assert.equal(parseDuration("+2s"), 2000);
  assert.equal(parseDuration("-0"), 0);
  assert.equal(parseDuration("250\u03bcs"), 0.25);
});

Deno.test("parseDuration() rejects garbage with a clear message", () => {
  // " 1s" and "1s " were trimmed before; Go refuses them, and so does this now.
  for (const bad of ["", "15", "abc", "5 m", "1d", " 1s", "1s ", "3000000h"]) {
    assert.throws(() => parseDuration(bad), SyntaxError, bad);
  }
  assert.throws(() => parseDuration("1d"), /Cannot parse duration "1d"/);
});

Deno.test("parseDuration() refuses negative durations", () => {
  assert.throws(() => parseDuration("-1s"), RangeError);
  assert.throws(() => parseDuration("-1s"), /must not be negative/);
});

Deno.test("parseGoDuration() follows time.ParseDuration", () => {
  const cases: [string, number | undefined][] = [
    ["0", 0],
    ["-0", 0],
    ["+0", 0],
    ["0s", 0],
    ["-0s", 0],
    ["1s", 1000],
    ["1.5s", 1500],
    [".5s", 500],
    ["5.s", 5000],
    ["300ms", 300],
    ["1m30s", 90_000],
    ["2h45m", 9_900_000],
    ["1h0m0.5s", 3_600_500],
    ["1ms5s", 5_001],
    ["250us", 0.25],
    ["250\\u00b5s", 0.25],
    ["250\\u03bcs", 0.25],
    ["100ns", 0.0001],
    ["-1s", -1000],
    ["+2s", 2000],
    ["", undefined],
    ["-", undefined],
    ["5", undefined],
    ["s", undefined],
    [".s", undefined],
    ["1d", undefined],
    ["1hm", undefined],
    ["1msec", undefined],
    [" 1s", undefined],
    ["1s ", undefined],
    ["1 s", undefined],
    ["3000000h", undefined],
  ];
  for (const [text, expected] of cases) {
    const input = JSON.parse(`"${text}"`) as string;
    assert.equal(parseGoDuration(input), expected, text);
  }
});

Deno.test("formatDuration() round-trips common values", () => {
  for (const text of ["15s", "5m0s", "1h30m0s", "250ms"]) {
    assert.equal(formatDuration(parseDuration(text)), text);
  }
});
