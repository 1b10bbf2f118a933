import assert from "node:assert/strict";
import { DirectCounter, DirectHistogram } from "./metric_entries.ts";
import { Counter, Histogram, Registry } from "./prom_client.ts";
import { seededRandom } from "./testing/random.ts";

function metrics() {
  const registry = new Registry();
  const counter = new Counter({
    name: "scrapes_total",
    help: "Scrapes by code.",
    labelNames: ["code"] as const,
    registers: [registry],
  });
  const byCode = new Histogram({
    name: "scrape_duration_seconds",
    help: "Durations by code.",
    labelNames: ["code"] as const,
    buckets: [0.005, 0.01, 0.1, 1, 5],
    registers: [registry],
  });
  const plain = new Histogram({
    name: "duration_seconds",
    help: "Durations.",
    registers: [registry],
  });
  return { registry, counter, byCode, plain };
}

Deno.test("DirectCounter and DirectHistogram expose what prom-client's inc and observe would, byte for byte", async () => {
  const expected = metrics();
  const actual = metrics();
  const counter = new DirectCounter(actual.counter, "code");
  const byCode = new DirectHistogram(actual.byCode, "code");
  const plain = new DirectHistogram(actual.plain, null);
  const next = seededRandom(17);
  const codes = ["200", "200", "200", "404", "502", "504", "503", "500"];
  const values = [0, 0.0001, 0.005, 0.0050001, 0.3, 1, 7.5, 1e9, NaN, -1, Infinity];
  const same = async (what: string) => {
    assert.equal(await actual.registry.metrics(), await expected.registry.metrics(), what);
  };
  for (let i = 0; i < 3000; i++) {
    const code = codes[Math.floor(next() * codes.length)]!;
    const seconds = next() < 0.5 ? values[Math.floor(next() * values.length)]! : next() * 3;
    expected.counter.inc({ code });
    counter.inc(code);
    let refused: unknown = null;
    try {
      expected.byCode.observe({ code }, seconds);
      expected.plain.observe(seconds);
    } catch (error) {
      refused = error;
    }
    if (refused === null) {
      byCode.observe(code, seconds);
      plain.observe(null, seconds);
    } else {
      assert.throws(() => byCode.observe(code, seconds), TypeError, "a value refused");
      assert.throws(() => plain.observe(null, seconds), TypeError, "a value refused");
    }
    if (i % 500 === 0) await same(`after ${i}`);
    // Reset and removed label sets are made again by prom-client, then kept anew.
    if (i === 1000) {
      expected.registry.resetMetrics();
      actual.registry.resetMetrics();
    }
    if (i === 2000) {
      for (const m of [expected, actual]) {
        m.counter.remove({ code: "200" });
        m.byCode.remove({ code: "502" });
        m.plain.reset();
      }
    }
  }
  await same("at the end");
});

Deno.test("DirectCounter and DirectHistogram add to a kept entry without prom-client's calls", () => {
  const { counter, byCode, plain } = metrics();
  const direct = {
    counter: new DirectCounter(counter, "code"),
    byCode: new DirectHistogram(byCode, "code"),
    plain: new DirectHistogram(plain, null),
  };
  direct.counter.inc("200");
  direct.byCode.observe("200", 0.2);
  direct.plain.observe(null, 0.2);
  const slow = () => {
    throw new Error("prom-client's own path was taken");
  };
  counter.inc = slow;
  byCode.observe = slow;
  plain.observe = slow;
  direct.counter.inc("200");
  direct.byCode.observe("200", 0.3);
  direct.plain.observe(null, 0.004);
  // A value not seen before takes prom-client's path once.
  assert.throws(() => direct.counter.inc("404"), /own path/);
});

Deno.test("A counter that records exemplars is left to prom-client", () => {
  const { counter } = metrics();
  const exemplars = counter as unknown as { enableExemplars: boolean };
  exemplars.enableExemplars = true;
  const direct = new DirectCounter(counter, "code");
  let calls = 0;
  const inc = counter.inc.bind(counter);
  counter.inc = ((labels: Record<string, string>) => {
    calls++;
    // (Exemplars themselves need an OpenMetrics registry: not recorded here.)
    exemplars.enableExemplars = false;
    inc(labels);
    exemplars.enableExemplars = true;
  }) as typeof counter.inc;
  direct.inc("200");
  direct.inc("200");
  assert.equal(calls, 2);
});
