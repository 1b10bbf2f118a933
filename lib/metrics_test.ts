import assert from "node:assert/strict";
import { Registry } from "./prom_client.ts";
import { exposition, registerDefaultMetrics } from "./metrics.ts";

Deno.test("registerDefaultMetrics() defers nodejs_* to the first exposition, process_* once", async () => {
  const registry = new Registry();
  registerDefaultMetrics(registry);
  // Not loaded at start: a registry nobody scrapes never carries them.
  const before = await registry.metrics();
  assert.doesNotMatch(before, /^nodejs_/m);
  assert.match(before, /^process_resident_memory_bytes /m);

  const [first, second] = [await exposition(registry), await exposition(registry)];
  for (const text of [first, second]) {
    assert.match(text, /^nodejs_eventloop_lag_seconds /m);
    assert.match(text, /^nodejs_heap_size_used_bytes /m);
    assert.doesNotMatch(text, /^nodejs_version_info/m);
    // Ours, not prom-client's: one HELP line per family.
    assert.equal(text.match(/^# HELP process_resident_memory_bytes /gm)?.length, 1);
    assert.equal(text.match(/^# HELP nodejs_eventloop_lag_seconds /gm)?.length, 1);
  }
});

Deno.test("exposition() of a registry without default metrics is its own text", async () => {
  const registry = new Registry();
  assert.equal(await exposition(registry), await registry.metrics());
  assert.doesNotMatch(await exposition(registry), /^nodejs_/m);
});
