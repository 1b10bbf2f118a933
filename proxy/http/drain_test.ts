import assert from "node:assert/strict";
import { createNullLogger } from "../../lib/logger.ts";
import { createCoordinator } from "../core/coordinator.ts";
import { drainProxy } from "./drain.ts";

function proxyWithOneScrape() {
  const coordinator = createCoordinator({ registrationTimeoutMs: 60_000 });
  let closed = 0;
  const session = coordinator.register({
    fqdn: "a",
    labels: {},
    version: "",
    modules: [],
    protocol: "connect",
  });
  const withdraw = new AbortController();
  const scrape = coordinator.requestScrape({
    host: "a",
    method: "GET",
    url: "http://a:9100/metrics",
    headers: [],
    deadline: Date.now() + 10_000,
  }, withdraw.signal);
  return { coordinator, session, scrape, withdraw, close: () => closed++, closed: () => closed };
}

Deno.test("drainProxy() waits for scrapes in flight to finish", async () => {
  const proxy = proxyWithOneScrape();
  const task = await proxy.session.next(new AbortController().signal);
  assert.ok(task);
  const draining = drainProxy(proxy, { timeoutMs: 5_000, logger: createNullLogger() });
  assert.equal(proxy.coordinator.draining, true);
  assert.equal(proxy.closed(), 1);
  setTimeout(() => {
    proxy.coordinator.acceptPush(
      { scrapeId: task.id, sessionId: proxy.session.id, status: 200, headers: [], error: "" },
      (async function* () {})(),
    );
  }, 100);
  (await proxy.scrape).settle();
  const result = await draining;
  assert.equal(result.abandoned, 0);
  assert.ok(result.waitedMs >= 80 && result.waitedMs < 2_000, `${result.waitedMs}ms`);
});

Deno.test("drainProxy() gives up after its timeout and reports what is left", async () => {
  const proxy = proxyWithOneScrape();
  await proxy.session.next(new AbortController().signal);
  const result = await drainProxy(proxy, { timeoutMs: 150, logger: createNullLogger() });
  assert.equal(result.abandoned, 1);
  assert.ok(result.waitedMs >= 140, `${result.waitedMs}ms`);
  proxy.withdraw.abort(new Error("deadline"));
  await assert.rejects(proxy.scrape, /deadline/);
  assert.equal(proxy.coordinator.scrapesInFlight, 0);
});
