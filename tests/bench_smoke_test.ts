/**
 * Proves the benchmark harness works: runs `bench/main.ts --profile=smoke`
 * (target, proxy, client, load generator and holder, every profile in
 * miniature) and checks that its JSON result holds sane numbers. It checks
 * no performance figure: benchmarks are not timed tests.
 *
 * @module
 */

import assert from "node:assert/strict";
import { denoEnv, ROOT } from "./support.ts";

interface SmokeCase {
  name: string;
  mode: string;
  requests: number;
  errors: number;
  errorSamples: string[];
  rps: number;
  bodyBytes: number;
  latencyMs: { p50: number; p99: number };
  cpu: { proxyAndClient: { seconds: number; perMiBMs: number } };
  peakRssMiB: { proxy: number; client: number };
}

interface SmokeResult {
  profile: string;
  machine: { nproc: number; cpuModel: string };
  cases: SmokeCase[];
  clients: {
    clients: number;
    registered: number;
    failed: number;
    dropped: number;
    proxy: {
      baseline: { rssKiB: number; fds: number };
      held: { rssKiB: number; fds: number };
    };
    scrapes: { requests: number; errors: number };
  }[];
  churn: {
    cycles: number;
    failed: number;
    proxy: { after: { rssKiB: number; fds: number } };
    scrapes: { requests: number; errors: number };
  };
  goals: { goal: string; pass: boolean | null }[];
}

Deno.test("bench --profile=smoke runs every part and reports sane numbers", async () => {
  const dir = await Deno.makeTempDir({ prefix: "bench_smoke_" });
  try {
    const out = `${dir}/smoke.json`;
    const result = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-all", "bench/main.ts", "--profile=smoke", `--out=${out}`],
      cwd: ROOT,
      env: denoEnv(),
      clearEnv: true,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      // bench/main.ts stops every process it started on SIGTERM.
      signal: AbortSignal.timeout(60_000),
    }).output();
    const stderr = new TextDecoder().decode(result.stderr);
    assert.equal(result.code, 0, `bench failed:\n${stderr.slice(-4000)}`);
    assert.match(new TextDecoder().decode(result.stdout), /### Goals/);

    const report = JSON.parse(await Deno.readTextFile(out)) as SmokeResult;
    assert.equal(report.profile, "smoke");
    assert.ok(report.machine.nproc > 0);

    assert.equal(report.cases.length, 12, "3 payloads × 2 concurrencies × 2 modes");
    for (const c of report.cases) {
      assert.equal(c.errors, 0, `${c.name}: ${c.errorSamples.join("; ")}`);
      assert.ok(c.requests > 0 && c.rps > 0, `${c.name}: no scrapes`);
      assert.ok(c.bodyBytes > 0, c.name);
      assert.ok(
        c.latencyMs.p50 > 0 && c.latencyMs.p99 >= c.latencyMs.p50,
        `${c.name}: latency ${JSON.stringify(c.latencyMs)}`,
      );
      assert.ok(c.peakRssMiB.proxy > 0 && c.peakRssMiB.client > 0, c.name);
      if (c.mode === "proxied") {
        assert.ok(c.cpu.proxyAndClient.seconds > 0, `${c.name}: no CPU seen`);
        assert.ok(c.cpu.proxyAndClient.perMiBMs > 0, c.name);
      }
    }

    assert.equal(report.clients.length, 1);
    const held = report.clients[0]!;
    assert.equal(held.registered, held.clients);
    assert.equal(held.failed, 0);
    assert.equal(held.dropped, 0);
    assert.ok(
      held.proxy.held.fds >= held.proxy.baseline.fds + held.clients,
      "every held stream is an open socket in the proxy",
    );
    assert.ok(held.scrapes.requests > 0);
    assert.equal(held.scrapes.errors, 0);

    assert.ok(report.churn.cycles > 0);
    assert.equal(report.churn.failed, 0);
    assert.ok(report.churn.proxy.after.fds > 0);
    assert.equal(report.churn.scrapes.errors, 0);

    assert.equal(report.goals.length, 5);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
