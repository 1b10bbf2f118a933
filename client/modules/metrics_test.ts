import assert from "node:assert/strict";
import type * as PromClient from "prom-client";
import SummaryModule from "prom-client/lib/summary.js";
import { Registry } from "../../lib/prom_client.ts";
import { createModuleMetrics } from "./metrics.ts";

const Summary: typeof PromClient.Summary = SummaryModule;

/** The same observations on prom-client's own Summary without quantiles. */
function reference(): { registry: Registry; summary: PromClient.Summary<"module"> } {
  const registry = new Registry();
  const summary = new Summary({
    name: "expexp_proxy_duration_seconds",
    help: "Duration of proxying requests to configured exporters",
    labelNames: ["module"] as const,
    percentiles: [],
    registers: [registry],
  });
  return { registry, summary };
}

async function durationText(registry: Registry): Promise<string> {
  return await registry.getSingleMetricAsString("expexp_proxy_duration_seconds");
}

Deno.test("createModuleMetrics() duration exposes what prom-client's Summary would", async () => {
  const registry = new Registry();
  const { duration } = createModuleMetrics(registry);
  const ref = reference();
  const steps: [Record<string, string>, number][] = [
    [{ module: "a" }, 0.5],
    [{ module: "a" }, 0.25],
    [{ module: "b" }, 1],
    [{ module: 'we"ird\\' }, 2],
    [{ module: "a" }, 0.125],
    [{ module: 'we"ird\\' }, 3],
  ];
  for (const [labels, value] of steps) {
    duration.observe(labels, value);
    ref.summary.observe(labels, value);
  }
  const text = await durationText(registry);
  assert.equal(text, await durationText(ref.registry));
  assert.equal(text.includes('expexp_proxy_duration_seconds_count{module="a"} 3'), true);
  assert.equal(text.includes('expexp_proxy_duration_seconds_sum{module="a"} 0.875'), true);
});

Deno.test("createModuleMetrics() duration after reset and remove counts from zero", async () => {
  const registry = new Registry();
  const { duration } = createModuleMetrics(registry);
  const ref = reference();
  for (const s of [duration, ref.summary]) {
    s.observe({ module: "a" }, 1);
    s.observe({ module: "a" }, 1);
    s.reset();
    s.observe({ module: "a" }, 2);
    s.observe({ module: "b" }, 1);
    s.remove("b");
    s.observe({ module: "b" }, 4);
    s.observe({ module: "b" }, 4);
  }
  const text = await durationText(registry);
  assert.equal(text, await durationText(ref.registry));
  assert.equal(text.includes('expexp_proxy_duration_seconds_count{module="b"} 2'), true);
  assert.equal(text.includes('expexp_proxy_duration_seconds_sum{module="a"} 2'), true);
});
