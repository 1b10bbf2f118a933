import assert from "node:assert/strict";
import { sleep } from "./sleep.ts";

Deno.test("sleep() resolves after the time passes", async () => {
  const started = performance.now();
  await sleep(20);
  assert.ok(performance.now() - started >= 15);
});

Deno.test("sleep(0) resolves on the next turn of the timer queue", async () => {
  let done = false;
  const waiting = sleep(0).then(() => done = true);
  await Promise.resolve();
  assert.equal(done, false, "not synchronously");
  await waiting;
  assert.equal(done, true);
});

Deno.test("sleep() rejects with the signal's reason when aborted", async () => {
  const controller = new AbortController();
  const waiting = sleep(60_000, { signal: controller.signal });
  const reason = new Error("stopping");
  controller.abort(reason);
  await assert.rejects(waiting, (error) => error === reason);
});

Deno.test("sleep() rejects at once when the signal already aborted", async () => {
  const reason = new Error("already");
  await assert.rejects(sleep(60_000, { signal: AbortSignal.abort(reason) }), (e) => e === reason);
});

Deno.test("sleep(Infinity) waits until the signal aborts", async () => {
  const controller = new AbortController();
  let settled = false;
  const waiting = sleep(Infinity, { signal: controller.signal }).finally(() => settled = true);
  await sleep(20);
  assert.equal(settled, false);
  controller.abort();
  await assert.rejects(waiting, (error) => (error as DOMException).name === "AbortError");
});

Deno.test("sleep() refuses negative and NaN durations", async () => {
  await assert.rejects(sleep(-1), RangeError);
  await assert.rejects(sleep(NaN), RangeError);
});

Deno.test("sleep() leaves no listener behind once resolved", async () => {
  const controller = new AbortController();
  await sleep(1, { signal: controller.signal });
  // An abort after the wait ended must not reject anything (the test would
  // fail with an unhandled rejection).
  controller.abort();
});
