import assert from "node:assert/strict";
import { createProxyMetrics } from "./metrics.ts";
import { ScrapeRecorder } from "./scrape_recorder.ts";
import { seededRandom } from "../../lib/testing/random.ts";

function metrics() {
  return createProxyMetrics({
    clientCount: () => 0,
    scrapesInFlight: () => 0,
    defaultMetrics: false,
  });
}

Deno.test("ScrapeRecorder exposes what prom-client's own inc and observe would, byte for byte", async () => {
  const plain = metrics();
  const recorded = metrics();
  const recorder = new ScrapeRecorder(recorded.proxiedRequests, recorded.scrapeDuration);
  const next = seededRandom(11);
  const statuses = [200, 200, 200, 404, 502, 504, 503, 500, 407];
  const durations = [0, 0.0001, 0.005, 0.0050001, 0.3, 1, 7.5, 1e9, NaN, -1, Infinity];
  const names = ["pushproxy_proxied_requests_total", "pushprox_proxy_scrape_duration_seconds"];
  const same = async (what: string) => {
    for (const name of names) {
      assert.equal(
        await recorded.registry.getSingleMetricAsString(name),
        await plain.registry.getSingleMetricAsString(name),
        `${name} ${what}`,
      );
    }
  };
  for (let i = 0; i < 3000; i++) {
    const status = statuses[Math.floor(next() * statuses.length)]!;
    const seconds = next() < 0.5 ? durations[Math.floor(next() * durations.length)]! : next() * 3;
    const code = String(status);
    plain.proxiedRequests.inc({ code });
    let failed: unknown = null;
    try {
      plain.scrapeDuration.observe({ code }, seconds);
    } catch (error) {
      failed = error;
    }
    if (failed === null) recorder.record(status, seconds);
    else assert.throws(() => recorder.record(status, seconds), TypeError, "a value refused");
    if (i % 500 === 0) await same(`after ${i}`);
    // Reset and removed label sets are made again by prom-client, then kept anew.
    if (i === 1000) {
      plain.registry.resetMetrics();
      recorded.registry.resetMetrics();
    }
    if (i === 2000) {
      for (const m of [plain, recorded]) {
        m.proxiedRequests.remove({ code: "200" });
        m.scrapeDuration.remove({ code: "502" });
      }
    }
  }
  await same("at the end");
  // The direct path was taken: the entries kept are prom-client's own.
  const before = await recorded.registry.getSingleMetricAsString(names[0]!);
  recorder.record(200, 0.001);
  assert.notEqual(await recorded.registry.getSingleMetricAsString(names[0]!), before);
});
