import assert from "node:assert/strict";
import { createScrapeStats } from "./scrape_stats.ts";

Deno.test("createScrapeStats() counts scrapes and errors per bucket", () => {
  const stats = createScrapeStats({ bucketMs: 10_000, buckets: 3 });
  stats.record(100_000, false);
  stats.record(105_000, true);
  stats.record(112_000, false);
  const { buckets, bucketMs } = stats.snapshot(119_000);
  assert.equal(bucketMs, 10_000);
  assert.deepEqual(buckets.map((b) => [b.start, b.scrapes, b.errors]), [
    [100_000, 2, 1],
    [110_000, 1, 0],
  ]);
});

Deno.test("createScrapeStats() keeps a bounded ring and fills idle buckets", () => {
  const stats = createScrapeStats({ bucketMs: 10_000, buckets: 3 });
  stats.setInFlight(2, 100_000);
  stats.setInFlight(5, 101_000);
  stats.setInFlight(1, 102_000);
  stats.record(100_000, false);
  // Two idle buckets later: they had one scrape in flight all along.
  const { buckets, inFlight } = stats.snapshot(135_000);
  assert.equal(inFlight, 1);
  assert.deepEqual(buckets.map((b) => [b.start, b.scrapes, b.maxInFlight]), [
    [110_000, 0, 1],
    [120_000, 0, 1],
    [130_000, 0, 1],
  ]);
  // A gap longer than the ring starts over.
  assert.deepEqual(stats.snapshot(1_000_000).buckets.map((b) => b.start), [
    980_000,
    990_000,
    1_000_000,
  ]);
});

Deno.test("createScrapeStats() refuses a non-positive size", () => {
  assert.throws(() => createScrapeStats({ buckets: 0 }), RangeError);
});
