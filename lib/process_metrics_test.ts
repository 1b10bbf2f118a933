import assert from "node:assert/strict";
import { Registry } from "prom-client";
import { parseProcText, registerProcessMetrics } from "./process_metrics.ts";

const STATUS = "Name:\tdeno\nVmSize:\t 18165824 kB\nVmRSS:\t   81920 kB\nVmData:\t  564164 kB\n";
const LIMITS = "Limit                     Soft Limit           Hard Limit           Units\n" +
  "Max open files            1024                 524288               files\n";

Deno.test("parseProcText() reads VmSize, VmData and the soft open-files limit", () => {
  assert.deepEqual(parseProcText(STATUS + LIMITS), {
    virtualBytes: 18165824 * 1024,
    heapBytes: 564164 * 1024,
    maxFds: 1024,
  });
  assert.deepEqual(
    parseProcText("Max open files            unlimited            unlimited            files\n"),
    {},
  );
});

Deno.test("registerProcessMetrics() exports injected figures, NaN for an unknown one", async () => {
  const registry = new Registry();
  let reads = 0;
  let clock = 0;
  registerProcessMetrics(registry, {
    proc: () => {
      reads++;
      return Promise.resolve({ virtualBytes: 5, heapBytes: 4, openFds: 3 });
    },
    rss: () => 81920 * 1024,
    cpuUsage: () => ({ user: 1_500_000, system: 500_000 }),
    startTime: 1700000000,
    now: () => clock,
  });
  const text = await registry.metrics();
  assert.match(text, /^process_resident_memory_bytes 83886080$/m);
  assert.match(text, /^process_cpu_seconds_total 2$/m);
  assert.match(text, /^process_cpu_user_seconds_total 1.5$/m);
  assert.match(text, /^process_start_time_seconds 1700000000$/m);
  assert.match(text, /^process_open_fds 3$/m);
  // prom-client writes "Nan"; Prometheus parses NaN case-insensitively.
  assert.match(text, /^process_max_fds NaN$/im);
  assert.equal(reads, 1, "one /proc reading per collection");
  await registry.metrics();
  assert.equal(reads, 1, "reused within cacheMs");
  clock = 1000;
  await registry.metrics();
  assert.equal(reads, 2);
});

Deno.test("registerProcessMetrics() without a /proc reader leaves the /proc series out", async () => {
  const registry = new Registry();
  registerProcessMetrics(registry, { proc: null });
  const text = await registry.metrics();
  assert.match(text, /^process_resident_memory_bytes \d+$/m);
  assert.doesNotMatch(text, /process_open_fds|process_max_fds|process_virtual_memory_bytes/);
});
