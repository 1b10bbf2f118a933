import assert from "node:assert/strict";
import { idleWaitMs, startAgent } from "./agent.ts";
import { createNullLogger } from "../../lib/logger.ts";
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

Deno.test("startAgent: aborting options.signal stops it and settles finished", async () => {
  // A closed port: the poll loop fails and backs off until the signal aborts.
  const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (probe.addr as Deno.NetAddr).port;
  probe.close();
  const stop = new AbortController();
  const agent = await startAgent({
    proxyUrl: `http://127.0.0.1:${port}`,
    fqdn: "agent-test",
    logger: createNullLogger(),
    metricsAddress: null,
    env: {},
    retryInitialMs: 50,
    retryMaxMs: 50,
    signal: stop.signal,
  });
  await sleep(100);
  stop.abort();
  await agent.finished;
  assert.equal(agent.connectedProxies, 0);
});
