import assert from "node:assert/strict";
import {
  clampTimeoutMs,
  formatScrapeTimeout,
  InvalidTimeoutError,
  parseScrapeTimeout,
  scrapeTimeoutMs,
} from "./scrape_timeout.ts";

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
  const bad = [
    "",
    "abc",
    "-1",
    "0",
    "NaN",
    "Infinity",
    "1s",
    "0x10",
    "0x1p4",
    "inf",
    "1_0",
    "1e400",
  ];
  for (const value of [...bad, "-0", "0e5", ".", "e1", "1e", "1 0", "+-1", "5s"]) {
    assert.throws(
      () => scrapeTimeoutMs(value, OPTIONS),
      InvalidTimeoutError,
      value,
    );
  }
});

Deno.test("parseScrapeTimeout() accepts the decimal forms of Go's strconv.ParseFloat", () => {
  // Prometheus writes FormatFloat(s, 'f', -1, 64); upstream PushProx reads
  // ParseFloat, which also takes these forms.
  const cases: [string, number][] = [
    ["10", 10_000],
    ["1e1", 10_000],
    ["2.5E-1", 250],
    [".5", 500],
    ["5.", 5_000],
    ["+3", 3_000],
    ["0.0001", 1],
  ];
  for (const [value, ms] of cases) assert.equal(parseScrapeTimeout(value), ms, value);
  assert.equal(parseScrapeTimeout(null), undefined);
  assert.equal(parseScrapeTimeout(undefined), undefined);
});

Deno.test("InvalidTimeoutError is a RangeError naming the header and the value", () => {
  assert.throws(() => parseScrapeTimeout("soon"), (error: unknown) => {
    assert.ok(error instanceof InvalidTimeoutError);
    assert.ok(error instanceof RangeError);
    assert.match(error.message, /x-prometheus-scrape-timeout-seconds "soon"/);
    return true;
  });
});

Deno.test("clampTimeoutMs() takes the lower of two optional limits", () => {
  assert.equal(clampTimeoutMs(undefined, undefined), undefined);
  assert.equal(clampTimeoutMs(1000, undefined), 1000);
  assert.equal(clampTimeoutMs(undefined, 9500), 9500);
  assert.equal(clampTimeoutMs(20000, 9500), 9500);
});

Deno.test("formatScrapeTimeout() writes what parseScrapeTimeout() reads", () => {
  assert.equal(formatScrapeTimeout(10_000), "10");
  assert.equal(formatScrapeTimeout(9_873.4), "9.873");
  assert.equal(formatScrapeTimeout(0), "0.001");
  for (const ms of [1, 999, 1000, 9_873, 300_000]) {
    assert.equal(parseScrapeTimeout(formatScrapeTimeout(ms)), ms);
  }
});
