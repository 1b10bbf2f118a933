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
  deadlines.close();
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
  deadlines.close();
});

Deno.test("Deadlines.timeout() aborts at the deadline with a TimeoutError, and not once released", async () => {
  const deadlines = new Deadlines();
  try {
    const late = deadlines.timeout(10_000);
    const released = deadlines.timeout(30);
    const soon = deadlines.timeout(40);
    released.release();
    const started = performance.now();
    // (The deadline's timer does not keep the process alive: this one does.)
    const alive = setTimeout(() => {}, 5000);
    await new Promise((resolve) => soon.signal.addEventListener("abort", resolve));
    clearTimeout(alive);
    assert(performance.now() - started >= 35, "not before its time");
    const reason = soon.signal.reason as DOMException;
    assert.deepEqual([reason.name, reason.message], ["TimeoutError", "Signal timed out."]);
    assert.deepEqual(released.signal.aborted, false);
    assert.deepEqual(late.signal.aborted, false);
    // An earlier deadline than the one the timer waits for.
    const earlier = deadlines.timeout(20);
    await sleep(150);
    assert.deepEqual(earlier.signal.aborted, true);
    assert.deepEqual(late.signal.aborted, false);
    late.release();
    const zero = deadlines.timeout(0);
    await sleep(50);
    assert.deepEqual(zero.signal.aborted, true);
  } finally {
    deadlines.close();
  }
});

Deno.test("Deadlines.close() ends the timer and expires what is left", () => {
  const deadlines = new Deadlines();
  const left = deadlines.timeout(60_000);
  const expired: string[] = [];
  deadlines.add(performance.now() + 60_000, () => expired.push("added"));
  deadlines.close();
  assert.deepEqual((left.signal.reason as DOMException).name, "TimeoutError");
  assert.deepEqual(expired, ["added"]);
  assert.equal(deadlines.size, 0);
});

Deno.test("Deadlines.timeout(ms, now) counts from the time the caller read", async () => {
  // The clock says 60; the caller read 0: the deadline (50) has passed.
  const deadlines = new Deadlines(() => 60);
  const timer = deadlines.timeout(50, 0);
  const until = performance.now() + 5_000;
  while (!timer.signal.aborted && performance.now() < until) await sleep(10);
  assert.equal(timer.signal.aborted, true);
  deadlines.close();
});
