import assert from "node:assert/strict";
import { idleWaitMs } from "./agent.ts";
import { sleep } from "../../lib/sleep.ts";

Deno.test("idleWaitMs: without names to re-resolve the loop waits until stopped", async () => {
  // The agent's old private sleep treated 0 as "forever"; lib/sleep.ts treats
  // 0 as one timer turn, so the mapping must give Infinity, not 0.
  assert.equal(idleWaitMs(false, 0), Infinity);
  assert.equal(idleWaitMs(false, 30_000), Infinity);
  assert.equal(idleWaitMs(true, 0), Infinity);
  assert.equal(idleWaitMs(true, 30_000), 30_000);

  const stop = new AbortController();
  let woke = false;
  const waiting = sleep(idleWaitMs(false, 0), { signal: stop.signal }).then(
    () => woke = true,
    () => woke = true,
  );
  await sleep(20);
  assert.equal(woke, false, "the idle loop woke before the stop signal");
  stop.abort();
  await waiting;
  assert.equal(woke, true);
});
