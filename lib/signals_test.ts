import assert from "node:assert/strict";
import { createShutdownSignals } from "./signals.ts";

Deno.test("createShutdownSignals() counts repeats within the window once", () => {
  let t = 1_000;
  const signals = createShutdownSignals({ windowMs: 2_000, now: () => t });
  assert.equal(signals.next(), "first");
  t += 1; // the same Ctrl-C, forwarded by deno task
  assert.equal(signals.next(), "repeat");
  t += 1_500; // still within 2 s of the first
  assert.equal(signals.next(), "repeat");
  t += 600; // 2.1 s after the first: sent again on purpose
  assert.equal(signals.next(), "again");
  t += 10;
  assert.equal(signals.next(), "repeat", "the window restarts at the signal that counted");
});

Deno.test("createShutdownSignals() defaults to a 2 s window", () => {
  let t = 0;
  const signals = createShutdownSignals({ now: () => t });
  assert.equal(signals.next(), "first");
  t = 1_999;
  assert.equal(signals.next(), "repeat");
  t = 2_000;
  assert.equal(signals.next(), "again");
});
