import assert from "node:assert/strict";
import { InvalidTimeoutError, scrapeTimeoutMs } from "./timeout.ts";

const OPTIONS = { defaultMs: 15_000, maxMs: 300_000 };

Deno.test("scrapeTimeoutMs() uses the header when present", () => {
  assert.equal(scrapeTimeoutMs("10", OPTIONS), 10_000);
  assert.equal(scrapeTimeoutMs("0.5", OPTIONS), 500);
  assert.equal(scrapeTimeoutMs(" 9.75 ", OPTIONS), 9_750);
});

Deno.test("scrapeTimeoutMs() falls back to the default when absent", () => {
  assert.equal(scrapeTimeoutMs(null, OPTIONS), 15_000);
  assert.equal(
    scrapeTimeoutMs(null, { defaultMs: 15_000, maxMs: 5_000 }),
    5_000,
  );
});

Deno.test("scrapeTimeoutMs() clamps to the maximum", () => {
  assert.equal(scrapeTimeoutMs("3600", OPTIONS), 300_000);
});

Deno.test("scrapeTimeoutMs() rejects garbage", () => {
  for (const bad of ["", "abc", "-1", "0", "NaN", "Infinity", "1s", "0x10"]) {
    assert.throws(
      () => scrapeTimeoutMs(bad, OPTIONS),
      InvalidTimeoutError,
      bad,
    );
  }
});
