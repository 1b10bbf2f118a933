import assert from "node:assert/strict";
import type { ModuleCaseResult } from "./modules.ts";
import { memoryFigures } from "./services.ts";
import type { CaseResult, CpuFigure } from "./throughput.ts";
import { judgeGoals } from "./goals.ts";
import { memoryTable, modulesTable, peerTable } from "./report.ts";

const MIB = 1024 * 1024;

function cpu(perScrapeMs: number, perMiBMs = perScrapeMs): CpuFigure {
  return { seconds: 1, perScrapeMs, perMiBMs, cores: 0.5 };
}

function latency(p50: number, p99: number) {
  return { p50, p90: p99, p99, max: p99, mean: p50 };
}

function makeCase(
  over: Partial<CaseResult> & Pick<CaseResult, "mode" | "impl" | "round">,
): CaseResult {
  return {
    name: "x",
    payload: "57KiB",
    encoding: "identity",
    bodyBytes: 58368,
    concurrency: 1,
    implLabel: over.impl === "peer" ? "peer" : "this project",
    requests: 100,
    errors: 0,
    errorSamples: [],
    seconds: 1,
    rps: 100,
    mibPerSecond: 5,
    latencyMs: latency(0.3, 1),
    cpu: {
      proxy: cpu(0.1),
      client: cpu(0.2),
      proxyAndClient: cpu(0.3),
      target: cpu(0),
      load: cpu(0),
      other: cpu(0),
    },
    peakRssMiB: { proxy: 50, client: 40, proxyAndClient: 90 },
    rssMiB: { proxyStart: 0, proxyEnd: 0, clientStart: 0, clientEnd: 0 },
    ...over,
  };
}

function goal(verdicts: ReturnType<typeof judgeGoals>, pattern: RegExp) {
  const found = verdicts.find((v) => pattern.test(v.goal));
  assert.ok(found, `no goal matching ${pattern}`);
  return found;
}

Deno.test("judgeGoals() judges issue 11's goals from the cases it has", () => {
  const cases = [
    makeCase({ mode: "direct", impl: "self", round: 1, latencyMs: latency(0.3, 1) }),
    makeCase({
      mode: "proxied",
      impl: "self",
      round: 1,
      rps: 300,
      latencyMs: latency(0.7, 2.5),
      memory: memoryFigures({ proxy: 50 * 1024, client: 40 * 1024 }, { proxy: 60, client: 50 }, {
        proxy: 50 * 1024,
        client: 40 * 1024,
      }, 5000),
    }),
    makeCase({ mode: "proxied", impl: "peer", round: 1, rps: 100 }),
    makeCase({
      mode: "proxied",
      impl: "self",
      round: 1,
      payload: "20MiB",
      bodyBytes: 20 * MIB,
      concurrency: 8,
      cpu: {
        ...makeCase({ mode: "direct", impl: "self", round: 1 }).cpu,
        proxyAndClient: cpu(20, 0.9),
      },
      memory: memoryFigures(
        { proxy: 50 * 1024, client: 40 * 1024 },
        { proxy: 120, client: 100 },
        { proxy: 60 * 1024, client: 45 * 1024 },
        60_000,
      ),
    }),
  ];
  const verdicts = judgeGoals({ cases, modules: [], clients: [], churn: null });
  assert.equal(verdicts.length, 19);
  assert.equal(goal(verdicts, /CPU per scrape.*57 KiB/).pass, true);
  assert.equal(goal(verdicts, /CPU per MiB.*20MiB/).pass, true);
  assert.equal(goal(verdicts, /CPU per MiB.*1MiB/).pass, null);
  assert.equal(goal(verdicts, /against the peer/).pass, true);
  assert.match(goal(verdicts, /against the peer/).measured, /3\.00×/);
  assert.equal(goal(verdicts, /Added p50/).pass, true);
  assert.equal(goal(verdicts, /p99 latency/).pass, true);
  assert.equal(goal(verdicts, /Client idle RSS/).pass, true);
  assert.equal(goal(verdicts, /Client peak RSS at 8 × 20 MiB/).pass, false);
  assert.equal(goal(verdicts, /Proxy peak RSS at 8 × 20 MiB/).pass, true);
  // 40 → 45 MiB is +12.5 % a minute later.
  const back = goal(verdicts, /Client RSS a minute after/);
  assert.equal(back.pass, false);
  assert.match(back.measured, /40\.0 → 45\.0 MiB \(13 %\) after 60 s/);
  assert.equal(goal(verdicts, /256 MiB/).pass, null);
});

Deno.test("judgeGoals() shows the private memory beside the post-load RSS when it was read", () => {
  const memory = memoryFigures(
    { proxy: 1024, client: 46 * 1024 },
    { proxy: 1, client: 60 },
    { proxy: 1024, client: 53 * 1024 },
    60_000,
    { idle: { proxy: 512, client: 15.5 * 1024 }, postLoad: { proxy: 512, client: 16.5 * 1024 } },
  );
  assert.deepEqual(memory.processes.client!.anon, { idle: 15.5, postLoad: 16.5 });
  const cases = [makeCase({
    mode: "proxied",
    impl: "self",
    round: 1,
    payload: "20MiB",
    concurrency: 8,
    memory,
  })];
  const back = goal(
    judgeGoals({ cases, modules: [], clients: [], churn: null }),
    /Client RSS a minute after/,
  );
  // The verdict stays on RSS: 46 → 53 MiB is +15 %.
  assert.equal(back.pass, false);
  assert.match(
    back.measured,
    /46\.0 → 53\.0 MiB \(15 %\) after 60 s; private \(RssAnon\) 15\.5 → 16\.5 MiB$/,
  );
});

Deno.test("judgeGoals() does not judge a post-load RSS read sooner than a minute as missed", () => {
  const cases = [makeCase({
    mode: "proxied",
    impl: "self",
    round: 1,
    payload: "20MiB",
    concurrency: 8,
    memory: memoryFigures({ proxy: 1024, client: 40 * 1024 }, { proxy: 1, client: 100 }, {
      proxy: 1024,
      client: 80 * 1024,
    }, 1000),
  })];
  const verdicts = judgeGoals({ cases, modules: [], clients: [], churn: null });
  assert.equal(goal(verdicts, /Client RSS a minute after/).pass, null);
});

function moduleCase(impl: "self" | "peer", verify: boolean, rps: number): ModuleCaseResult {
  return {
    name: "m",
    impl,
    implLabel: impl,
    round: 1,
    module: "p1048576_verify",
    payload: "1MiB",
    bodyBytes: MIB,
    concurrency: 1,
    verify,
    requests: 10,
    errors: 0,
    errorSamples: [],
    seconds: 1,
    rps,
    mibPerSecond: rps,
    latencyMs: latency(1, 2),
    cpu: { exporter: cpu(0.5, 0.5), target: cpu(0), other: cpu(0) },
    memory: memoryFigures({ exporter: 10 * 1024 }, { exporter: 20 }, { exporter: 12 * 1024 }, 5000),
  };
}

Deno.test("judgeGoals() compares the module path with the peer exporter when it ran", () => {
  const modules = [
    moduleCase("self", false, 100),
    moduleCase("peer", false, 200),
    moduleCase("self", true, 50),
    moduleCase("peer", true, 10),
  ];
  modules[1]!.cpu.exporter = cpu(0.4, 0.4);
  const verdicts = judgeGoals({ cases: [], modules, clients: [], churn: null });
  const off = goal(verdicts, /verify off, 1MiB c1/);
  assert.match(off.target, /≤ 0\.40 ms\/MiB \(the peer, measured\)/);
  assert.equal(off.pass, false);
  assert.equal(goal(verdicts, /verify on: rps/).pass, true);
  assert.match(goal(verdicts, /verify on: rps/).measured, /1MiB c1 5\.00×/);
  const table = modulesTable(modules);
  assert.match(table, /\| 1MiB c1 \| off +\| 100 \/ 200 +\| 0\.50× /);
});

Deno.test("peerTable() and memoryTable() show both implementations, every round", () => {
  const memory = memoryFigures({ proxy: 8 * 1024, client: 8 * 1024 }, { proxy: 14, client: 15 }, {
    proxy: 9 * 1024,
    client: 9 * 1024,
  }, 60_000);
  const cases = [
    makeCase({ mode: "direct", impl: "self", round: 1 }),
    makeCase({ mode: "proxied", impl: "self", round: 1, rps: 200 }),
    makeCase({ mode: "proxied", impl: "peer", round: 1, rps: 100, memory }),
    makeCase({ mode: "direct", impl: "self", round: 2 }),
    makeCase({ mode: "proxied", impl: "peer", round: 2, rps: 120, memory }),
    makeCase({ mode: "proxied", impl: "self", round: 2, rps: 240 }),
  ];
  const table = peerTable(cases);
  assert.match(table, /\| 57KiB c1 \| 200–240 \/ 100–120 \| 2\.00× /);
  assert.match(memoryTable(cases), /\| peer +\| 2 +\| 57KiB c1 \| 8\.0 \/ 14\.0 \/ 9\.0 /);
});
