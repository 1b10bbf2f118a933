import assert from "node:assert/strict";
import { Deadlines } from "./deadlines.ts";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

Deno.test("Deadlines expires each deadline once, in order, and never a deleted one", async () => {
  const deadlines = new Deadlines();
  const expired: string[] = [];
  const now = performance.now();
  const late = deadlines.add(now + 60, () => expired.push("late"));
  deadlines.add(now + 20, () => expired.push("first"));
  const deleted = deadlines.add(now + 10, () => expired.push("deleted"));
  deadlines.delete(deleted);
  deadlines.add(now + 40, () => expired.push("second"));
  assert.equal(deadlines.size, 3);
  const until = performance.now() + 5_000;
  while (deadlines.size > 0 && performance.now() < until) await sleep(10);
  assert.deepEqual(expired, ["first", "second", "late"]);
  // Deleting a passed deadline is harmless.
  deadlines.delete(late);
  deadlines.clear();
});

Deno.test("Deadlines re-arms for the earliest deadline left after the timer fires for nothing", async () => {
  let clock = 0;
  const deadlines = new Deadlines(() => clock);
  const expired: number[] = [];
  const first = deadlines.add(5, () => expired.push(5));
  deadlines.add(30, () => expired.push(30));
  deadlines.delete(first);
  const until = performance.now() + 5_000;
  while (expired.length === 0 && performance.now() < until) {
    await sleep(10);
    clock += 10;
  }
  assert.deepEqual(expired, [30]);
  assert.equal(deadlines.size, 0);
  deadlines.clear();
});
