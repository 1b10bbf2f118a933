import assert from "node:assert/strict";
import { idleWaitMs, startAgent } from "./agent.ts";
import { createNullLogger, type LogFields, type Logger } from "../../lib/logger.ts";
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

/** A logger that keeps its records (with the fields of `with`). */
function recordingLogger(
  records: { msg: string; fields: LogFields }[],
  base: LogFields = {},
): Logger {
  const log = (msg: string, fields: LogFields = {}) =>
    records.push({ msg, fields: { ...base, ...fields } });
  return {
    debug: log,
    info: log,
    warn: log,
    error: log,
    with: (fields) => recordingLogger(records, { ...base, ...fields }),
  };
}

function closedPort(): number {
  const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (probe.addr as Deno.NetAddr).port;
  probe.close();
  return port;
}

/** Starts an agent, reads which path each endpoint got, stops it. */
async function wiring(options: Partial<Parameters<typeof startAgent>[0]>) {
  const records: { msg: string; fields: LogFields }[] = [];
  const stop = new AbortController();
  const agent = await startAgent({
    fqdn: "agent-test",
    logger: recordingLogger(records),
    metricsAddress: null,
    env: {},
    retryInitialMs: 50,
    retryMaxMs: 50,
    signal: stop.signal,
    ...options,
  });
  try {
    // The first round of the loop starts the pollers.
    for (let i = 0; i < 100 && agent.endpoints().length === 0; i++) await sleep(10);
    const paths = new Map<string, string>();
    for (const { msg, fields } of records) {
      if (msg.startsWith("Polling ")) paths.set(String(fields.proxy), msg);
    }
    return { endpoints: agent.endpoints(), paths };
  } finally {
    stop.abort();
    await agent.finished;
  }
}

const NATIVE = "Polling on native HTTP/1.1, pushing on native HTTP/1.1";
const CONNECT = "Polling through connect-es, pushing through connect-es";

Deno.test("startAgent wiring: one native poll loop per proxy URL by default", async () => {
  const a = `http://127.0.0.1:${closedPort()}`;
  const b = `http://127.0.0.1:${closedPort()}`;
  const { endpoints, paths } = await wiring({ proxyUrls: [a, b] });
  assert.deepEqual(endpoints.toSorted(), [a, b].toSorted());
  assert.deepEqual(Object.fromEntries(paths), { [a]: NATIVE, [b]: NATIVE });
});

Deno.test("startAgent wiring: nativePush/nativePoll false use connect-es", async () => {
  const a = `http://127.0.0.1:${closedPort()}`;
  const { paths } = await wiring({ proxyUrl: a, nativePush: false, nativePoll: false });
  assert.deepEqual(Object.fromEntries(paths), { [a]: CONNECT });
  const only = await wiring({ proxyUrl: a, nativePoll: false });
  assert.deepEqual(Object.fromEntries(only.paths), {
    [a]: "Polling through connect-es, pushing on native HTTP/1.1",
  });
});

Deno.test("startAgent wiring: an HTTP_PROXY from the environment keeps connect-es", async () => {
  const a = `http://127.0.0.1:${closedPort()}`;
  const { paths } = await wiring({
    proxyUrl: a,
    env: { HTTP_PROXY: `http://127.0.0.1:${closedPort()}` },
  });
  assert.deepEqual(Object.fromEntries(paths), { [a]: CONNECT });
});

Deno.test("startAgent wiring: a name resolving to two addresses gets a loop for each", async () => {
  const port = closedPort();
  const asked: string[] = [];
  const { endpoints, paths } = await wiring({
    proxyUrl: `http://proxy.test:${port}`,
    resolveIntervalMs: 60_000,
    resolve: (host) => {
      asked.push(host);
      return Promise.resolve(["127.0.0.1", "127.0.0.2"]);
    },
  });
  assert.deepEqual(asked, ["proxy.test"]);
  assert.equal(endpoints.length, 2, `endpoints: ${endpoints}`);
  assert.equal(paths.size, 2);
  for (const path of paths.values()) assert.equal(path, NATIVE);
});
