import assert from "node:assert/strict";
import { createBackoff } from "./backoff.ts";

Deno.test("createBackoff() grows to the maximum and resets", () => {
  const backoff = createBackoff({
    initialMs: 1000,
    maxMs: 5000,
    random: () => 0.5,
  });
  assert.deepEqual([1, 2, 3, 4, 5, 6].map(() => backoff.next()), [
    1000,
    1500,
    2250,
    3375,
    5000,
    5000,
  ]);
  backoff.reset();
  assert.equal(backoff.next(), 1000);
});

Deno.test("createBackoff() spreads waits by the jitter", () => {
  const low = createBackoff({ initialMs: 1000, maxMs: 5000, random: () => 0 });
  const high = createBackoff({ initialMs: 1000, maxMs: 5000, random: () => 1 });
  assert.equal(low.next(), 500);
  assert.equal(high.next(), 1500);
});
