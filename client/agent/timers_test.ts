import assert from "node:assert/strict";
import { Deadlines, Watchdog } from "./timers.ts";

const wait = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

Deno.test("Watchdog expires only when not re-armed for its interval, with the last reason", async () => {
  const expired: string[] = [];
  const watchdog = new Watchdog((reason) => expired.push(reason));
  watchdog.arm(60, "first");
  for (let i = 0; i < 8; i++) {
    await wait(15);
    watchdog.arm(60, `re-armed ${i}`);
  }
  assert.deepEqual(expired, []);
  await wait(200);
  assert.deepEqual(expired, ["re-armed 7"]);
  // A shorter interval than the timer waiting for a longer one still counts.
  watchdog.arm(10_000, "long");
  watchdog.arm(20, "short");
  await wait(150);
  assert.deepEqual(expired, ["re-armed 7", "short"]);
  watchdog.arm(20, "cleared");
  watchdog.clear();
  await wait(80);
  assert.deepEqual(expired, ["re-armed 7", "short"]);
});

Deno.test("Deadlines abort at the deadline with a TimeoutError, and not once released", async () => {
  const deadlines = new Deadlines();
  try {
    const late = deadlines.start(10_000);
    const released = deadlines.start(30);
    const soon = deadlines.start(40);
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
    const earlier = deadlines.start(20);
    await wait(150);
    assert.deepEqual(earlier.signal.aborted, true);
    assert.deepEqual(late.signal.aborted, false);
    late.release();
    const zero = deadlines.start(0);
    await wait(50);
    assert.deepEqual(zero.signal.aborted, true);
  } finally {
    deadlines.close();
  }
});

Deno.test("Deadlines.close() ends the timer and aborts what is left", () => {
  const deadlines = new Deadlines();
  const left = deadlines.start(60_000);
  deadlines.close();
  assert.deepEqual((left.signal.reason as DOMException).name, "TimeoutError");
});
