import assert from "node:assert/strict";
import { AbortHooks, offAbort, onAbort } from "./abort_hooks.ts";
import { Deadlines } from "./deadlines.ts";

Deno.test("AbortHooks runs what is left once, in order, and nothing added after", () => {
  const hooks = new AbortHooks();
  const ran: string[] = [];
  const a = () => ran.push("a");
  const b = () => ran.push("b");
  hooks.add(a);
  hooks.add(b);
  hooks.add(a);
  hooks.delete(a);
  hooks.run();
  hooks.run();
  hooks.add(b);
  hooks.run();
  assert.deepEqual(ran, ["a", "b"]);
  // Deleted from the front, the middle and the end.
  const more = new AbortHooks();
  const seen: number[] = [];
  const each = [0, 1, 2, 3, 4].map((n) => () => seen.push(n));
  for (const callback of each) more.add(callback);
  more.delete(each[0]!);
  more.delete(each[2]!);
  more.delete(each[4]!);
  more.delete(each[4]!);
  more.run();
  assert.deepEqual(seen, [1, 3]);
  // Added and deleted in turn (a scrape's hooks), then more past the first two.
  const turns = new AbortHooks();
  const order: string[] = [];
  const named = (name: string) => () => order.push(name);
  const [p, q, r, s, t] = ["p", "q", "r", "s", "t"].map(named);
  turns.add(p!);
  turns.add(q!);
  turns.delete(q!);
  turns.delete(p!);
  turns.add(r!);
  turns.add(s!);
  turns.add(t!);
  turns.add(p!);
  turns.delete(s!);
  turns.add(q!);
  turns.delete(q!);
  turns.run();
  assert.deepEqual(order, ["r", "t", "p"]);
});

Deno.test("onAbort() takes a signal's hooks where it has them, a listener elsewhere", () => {
  const plain = new AbortController();
  const hooked = new AbortController();
  const hooks = new AbortHooks();
  hooks.attach(hooked.signal);
  const ran: string[] = [];
  const kept = () => ran.push("kept");
  const removed = () => ran.push("removed");
  for (const signal of [plain.signal, hooked.signal]) {
    onAbort(signal, kept);
    onAbort(signal, removed);
    offAbort(signal, removed);
  }
  plain.abort();
  assert.deepEqual(ran, ["kept"]);
  // A hooked signal's listeners are not its hooks: its owner runs them.
  hooked.abort();
  assert.deepEqual(ran, ["kept"]);
  hooks.run();
  assert.deepEqual(ran, ["kept", "kept"]);
});

Deno.test("Deadlines.timeout() runs its signal's hooks after the abort, and not once released", async () => {
  const deadlines = new Deadlines();
  try {
    const released = deadlines.timeout(10);
    const due = deadlines.timeout(20);
    const seen: boolean[] = [];
    onAbort(released.signal, () => seen.push(false));
    released.release();
    const aborted = new Promise<void>((resolve) =>
      onAbort(due.signal, () => {
        seen.push(due.signal.aborted);
        resolve();
      })
    );
    const alive = setTimeout(() => {}, 5000);
    await aborted;
    clearTimeout(alive);
    assert.deepEqual(seen, [true]);
    assert.equal(released.signal.aborted, false);
  } finally {
    deadlines.close();
  }
});
