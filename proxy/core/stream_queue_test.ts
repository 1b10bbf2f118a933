/**
 * One stream's scrape queue alone, on a fake clock, with the coordinator's
 * hooks replaced by a set of withdrawn ids and a settable refusal.
 */

import assert from "node:assert/strict";
import { CoordinatorError } from "./coordinator_error.ts";
import { createStreamQueue, type ScrapeTask, type StreamQueue } from "./stream_queue.ts";

function setup() {
  let clock = 1_000_000;
  const withdrawn = new Set<string>();
  const sent: string[] = [];
  let refusal: CoordinatorError | null = null;
  const queue: StreamQueue = createStreamQueue({
    now: () => clock,
    markSent(id) {
      if (withdrawn.has(id)) return false;
      sent.push(id);
      return true;
    },
    refusal: () => refusal,
  });
  return {
    queue,
    withdrawn,
    sent,
    refuse(error: CoordinatorError | null) {
      refusal = error;
    },
    tick(ms: number) {
      clock += ms;
    },
    get now() {
      return clock;
    },
  };
}

function task(id: string): ScrapeTask {
  return { id, method: "GET", url: `http://node/${id}`, headers: [], timeoutMs: 0 };
}

Deno.test("a queued scrape is handed out in order with the time left to its deadline", async () => {
  const s = setup();
  s.queue.offer(task("a"), s.now + 5_000);
  s.queue.offer(task("b"), s.now + 9_000);
  s.tick(2_000);
  const signal = new AbortController().signal;
  assert.deepEqual(await s.queue.next(signal), { ...task("a"), timeoutMs: 3_000 });
  assert.deepEqual(await s.queue.next(signal), { ...task("b"), timeoutMs: 7_000 });
  assert.deepEqual(s.sent, ["a", "b"]);
});

Deno.test("a waiting next is handed the next offer at once", async () => {
  const s = setup();
  const next = s.queue.next(new AbortController().signal);
  s.queue.offer(task("a"), s.now + 5_000);
  assert.deepEqual(await next, { ...task("a"), timeoutMs: 5_000 });
  assert.deepEqual(s.sent, ["a"]);
  assert.equal(s.queue.takeQueued().length, 0);
});

Deno.test("a past deadline still leaves 1 ms, never 0 or less", async () => {
  const s = setup();
  s.queue.offer(task("a"), s.now + 1_000);
  s.tick(5_000);
  assert.equal((await s.queue.next(new AbortController().signal))?.timeoutMs, 1);
});

Deno.test("a withdrawn scrape is skipped, not handed out", async () => {
  const s = setup();
  s.queue.offer(task("a"), s.now + 5_000);
  s.queue.offer(task("b"), s.now + 5_000);
  s.withdrawn.add("a");
  assert.equal((await s.queue.next(new AbortController().signal))?.id, "b");
});

Deno.test("next resolves null when its signal aborts, or at once when already aborted", async () => {
  const s = setup();
  const controller = new AbortController();
  const next = s.queue.next(controller.signal);
  controller.abort();
  assert.equal(await next, null);
  s.queue.offer(task("a"), s.now + 5_000);
  assert.equal(await s.queue.next(controller.signal), null);
  assert.equal(s.queue.takeQueued().length, 1, "the offer stays queued");
});

Deno.test("only one next may wait at a time", async () => {
  const s = setup();
  const controller = new AbortController();
  const first = s.queue.next(controller.signal);
  await assert.rejects(
    s.queue.next(controller.signal),
    (error: unknown) => error instanceof CoordinatorError && error.kind === "invalid",
  );
  controller.abort();
  assert.equal(await first, null);
});

Deno.test("a refusal fails next before anything is handed out", async () => {
  const s = setup();
  s.queue.offer(task("a"), s.now + 5_000);
  s.refuse(new CoordinatorError("replaced", "replaced"));
  await assert.rejects(
    s.queue.next(new AbortController().signal),
    (error: unknown) => error instanceof CoordinatorError && error.kind === "replaced",
  );
  assert.deepEqual(s.sent, []);
});

Deno.test("fail ends a waiting next with the error; without one it does nothing", async () => {
  const s = setup();
  s.queue.fail(new CoordinatorError("draining", "draining"));
  const next = s.queue.next(new AbortController().signal);
  s.queue.fail(new CoordinatorError("draining", "draining"));
  await assert.rejects(
    next,
    (error: unknown) => error instanceof CoordinatorError && error.kind === "draining",
  );
});

Deno.test("close wakes a waiting next with null and drops what is queued", async () => {
  const s = setup();
  const next = s.queue.next(new AbortController().signal);
  s.queue.close();
  assert.equal(await next, null);
  assert.equal(s.queue.closed, true);
  s.queue.offer(task("a"), s.now + 5_000);
  assert.equal(await s.queue.next(new AbortController().signal), null);
  s.queue.close(); // idempotent
});

Deno.test("takeQueued empties the queue, to move it to a newer stream", () => {
  const s = setup();
  s.queue.offer(task("a"), s.now + 5_000);
  s.queue.offer(task("b"), s.now + 6_000);
  const moved = s.queue.takeQueued();
  assert.deepEqual(moved.map((q) => [q.task.id, q.deadline]), [
    ["a", s.now + 5_000],
    ["b", s.now + 6_000],
  ]);
  assert.deepEqual(s.queue.takeQueued(), []);
});

Deno.test("listen: hands a queued scrape at once, a later one when offered", () => {
  const s = setup();
  const got: (string | null)[] = [];
  const onTask = (t: ScrapeTask | null, error?: Error) =>
    got.push(error ? error.message : t?.id ?? null);
  s.queue.offer(task("a"), s.now + 5000);
  s.withdrawn.add("w");
  s.queue.offer(task("w"), s.now + 5000);
  s.queue.listen(onTask);
  assert.deepEqual(got, ["a"]);
  s.queue.listen(onTask);
  assert.deepEqual(got, ["a"], "a withdrawn scrape is skipped; the listener waits");
  s.tick(1000);
  s.queue.offer(task("b"), s.now + 3000);
  assert.deepEqual(got, ["a", "b"]);
  assert.deepEqual(s.sent, ["a", "b"]);
});

Deno.test("listen: unlisten withdraws; close, fail and refusal call back", () => {
  const s = setup();
  const got: (string | null)[] = [];
  const onTask = (t: ScrapeTask | null, error?: Error) =>
    got.push(error ? error.message : t?.id ?? null);
  s.queue.listen(onTask);
  s.queue.unlisten(onTask);
  s.queue.offer(task("queued"), s.now + 5000);
  assert.deepEqual(got, [], "an offer after unlisten is queued");
  s.queue.listen(onTask);
  assert.deepEqual(got, ["queued"]);
  s.queue.listen(onTask);
  s.queue.fail(new CoordinatorError("replaced", "replaced"));
  assert.deepEqual(got, ["queued", "replaced"]);
  s.refuse(new CoordinatorError("draining", "draining"));
  s.queue.listen(onTask);
  assert.deepEqual(got, ["queued", "replaced", "draining"]);
  s.refuse(null);
  s.queue.listen(onTask);
  s.queue.close();
  assert.deepEqual(got, ["queued", "replaced", "draining", null]);
  s.queue.listen(onTask);
  assert.deepEqual(got, ["queued", "replaced", "draining", null, null]);
});
