import assert from "node:assert/strict";
import { formatDuration, parseDuration } from "./duration.ts";

Deno.test("parseDuration() reads Go durations", () => {
  assert.equal(parseDuration("15s"), 15_000);
  assert.equal(parseDuration("5m"), 300_000);
  assert.equal(parseDuration("1h30m"), 5_400_000);
  assert.equal(parseDuration("250ms"), 250);
  assert.equal(parseDuration("1.5s"), 1500);
  assert.equal(parseDuration("0"), 0);
});

Deno.test("parseDuration() rejects garbage with a clear message", () => {
  for (const bad of ["", "15", "abc", "5 m", "1d", "-1s"]) {
    assert.throws(() => parseDuration(bad), SyntaxError, bad);
  }
});

Deno.test("formatDuration() round-trips common values", () => {
  for (const text of ["15s", "5m0s", "1h30m0s", "250ms"]) {
    assert.equal(formatDuration(parseDuration(text)), text);
  }
});
