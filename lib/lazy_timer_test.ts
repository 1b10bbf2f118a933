import assert from "node:assert/strict";
import { LazyTimer, within } from "./lazy_timer.ts";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

Deno.test("LazyTimer calls onExpire once at its deadline", async () => {
  const timer = new LazyTimer();
  const started = performance.now();
  let calls = 0;
  const expired = new Promise<number>((resolve) =>
    timer.set(30, () => {
      calls++;
      resolve(performance.now() - started);
    })
  );
  const after = await expired;
  assert.ok(after >= 29, `expired after ${after} ms`);
  await sleep(50);
  assert.equal(calls, 1);
  timer.close();
});

Deno.test("LazyTimer.clear ends the wait; the running timer then stops by itself", async () => {
  const timer = new LazyTimer();
  let calls = 0;
  timer.set(10, () => calls++);
  timer.clear();
  await sleep(40);
  assert.equal(calls, 0);
  // Nothing left running: the test's leak check would fail otherwise.
});

Deno.test("LazyTimer.set again moves the deadline later, re-arming when the timer fires early", async () => {
  let now = 0;
  const timer = new LazyTimer({ now: () => now });
  const calls: string[] = [];
  timer.set(10, () => calls.push("first"));
  // The clock says 8 ms passed: the next wait ends at 8 + 30 = 38.
  now = 8;
  timer.set(30, () => calls.push("second"));
  await sleep(40);
  // The timer fired (real 10 ms), found the deadline ahead on the clock and re-armed.
  assert.deepEqual(calls, []);
  now = 38;
  await sleep(60);
  assert.deepEqual(calls, ["second"]);
  timer.close();
});

Deno.test("LazyTimer.set with an earlier deadline replaces the running timer", async () => {
  const timer = new LazyTimer();
  let calls = 0;
  timer.set(60_000, () => assert.fail("the first wait was replaced"));
  const started = performance.now();
  await new Promise<void>((resolve) =>
    timer.set(10, () => {
      calls++;
      resolve();
    })
  );
  assert.ok(performance.now() - started < 30_000);
  assert.equal(calls, 1);
  timer.close();
});

Deno.test("LazyTimer.clear(onExpire) leaves a later wait alone", async () => {
  const timer = new LazyTimer();
  const first = () => assert.fail("cleared");
  timer.set(10, first);
  const second = new Promise<void>((resolve) => timer.set(20, resolve));
  timer.clear(first);
  await second;
  timer.close();
});

Deno.test("LazyTimer.close stops the timer and drops the wait", async () => {
  const timer = new LazyTimer();
  timer.set(10, () => assert.fail("closed"));
  timer.close();
  await sleep(30);
});

Deno.test("LazyTimer waits longer than setTimeout's limit in steps", () => {
  let now = 0;
  const timer = new LazyTimer({ now: () => now });
  let calls = 0;
  // Would fire at once if handed to setTimeout as is.
  timer.set(2 ** 32, () => calls++);
  now = 1;
  timer.close();
  assert.equal(calls, 0);
});

Deno.test("LazyTimer.set(ms, onExpire, now) counts from the time the caller read", async () => {
  let reads = 0;
  let clock = 1000;
  const timer = new LazyTimer({ now: () => (reads++, clock) });
  let calls = 0;
  // Read at 0: the deadline (10) has passed once the clock says 1000.
  timer.set(10, () => calls++, 0);
  assert.equal(reads, 0);
  const until = performance.now() + 5_000;
  while (calls === 0 && performance.now() < until) await sleep(10);
  assert.equal(calls, 1);
  clock += 1;
  timer.close();
});

Deno.test("LazyTimer.now reads the timer's own clock, a reading set takes", async () => {
  let now = 5;
  const timer = new LazyTimer({ now: () => now });
  assert.equal(timer.now(), 5);
  const calls: string[] = [];
  // Given the reading, the deadline is 5 + 10 = 15 on the timer's clock.
  timer.set(10, () => calls.push("expired"), timer.now());
  now = 14;
  await sleep(40);
  assert.deepEqual(calls, []);
  now = 15;
  await sleep(60);
  assert.deepEqual(calls, ["expired"]);
  timer.close();
});

Deno.test("within(timer, promise, ms, now) counts from the caller's reading, no read of its own", async () => {
  let reads = 0;
  const timer = new LazyTimer({ now: () => (reads++, 1000) });
  // Read at 0: the wait's deadline (10) has passed by the time the clock is read.
  const outcome = await within(timer, new Promise<never>(() => {}), 10, 0);
  assert.equal(outcome, "timeout");
  assert.equal(reads, 1);
  // Without it, one read: the wait counts from 1000.
  reads = 0;
  const value = await within(timer, Promise.resolve("done"), 10);
  assert.equal(value, "done");
  assert.equal(reads, 1);
  timer.close();
});
