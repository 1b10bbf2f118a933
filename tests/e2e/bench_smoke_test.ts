/**
 * Proves the benchmark harness works: runs `bench/main.ts --profile=smoke`
 * (target, proxy, client, load generator and holder, every profile in
 * miniature) with a peer proxy and client (this project's own, started from
 * `--peer.*` command templates, as upstream PushProx would be) and a peer
 * exporter_exporter (Debian's when installed, else this client again), and
 * checks that its JSON result holds sane numbers. It checks no performance
 * figure: benchmarks are not timed tests.
 *
 * @module
 */

import assert from "node:assert/strict";
import { denoEnv, ROOT } from "../support.ts";
import { tempDir } from "../fixture.ts";

const EXPORTER_EXPORTER = "/usr/bin/prometheus-exporter-exporter";

interface Memory {
  idle: number;
  peak: number;
  postLoad: number;
  anon?: { idle: number; postLoad: number };
}

interface SmokeCase {
  name: string;
  mode: string;
  impl: string;
  round: number;
  requests: number;
  errors: number;
  errorSamples: string[];
  rps: number;
  bodyBytes: number;
  latencyMs: { p50: number; p99: number };
  cpu: { proxyAndClient: { seconds: number; perMiBMs: number } };
  peakRssMiB: { proxy: number; client: number };
  memory?: { postLoadWaitSeconds: number; processes: Record<string, Memory> };
}

interface SmokeModuleCase {
  name: string;
  impl: string;
  verify: boolean;
  requests: number;
  errors: number;
  errorSamples: string[];
  bodyBytes: number;
  cpu: { exporter: { seconds: number; perMiBMs: number } };
  memory: { processes: { exporter: Memory } };
}

interface SmokeResult {
  profile: string;
  machine: { nproc: number; cpuModel: string };
  cases: SmokeCase[];
  modules: SmokeModuleCase[];
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
    memory: { processes: Record<string, Memory> };
  }[];
  churn: {
    cycles: number;
    failed: number;
    proxy: { after: { rssKiB: number; fds: number } };
    scrapes: { requests: number; errors: number };
    memory: { processes: Record<string, Memory> };
  };
  goals: { goal: string; measured: string; pass: boolean | null }[];
}

function assertMemory(m: Memory | undefined, what: string): void {
  assert.ok(m, `${what}: no memory figures`);
  assert.ok(m.idle > 0 && m.peak > 0 && m.postLoad > 0, `${what}: ${JSON.stringify(m)}`);
  if (m.anon) {
    // Private memory is part of the RSS, never all of it (the executable's pages are file pages).
    assert.ok(m.anon.idle > 0 && m.anon.idle < m.idle, `${what}: ${JSON.stringify(m)}`);
    assert.ok(m.anon.postLoad > 0 && m.anon.postLoad < m.postLoad, `${what}: ${JSON.stringify(m)}`);
  }
}

Deno.test("bench --profile=smoke runs every part, side by side with peers, and reports sane numbers", async () => {
  await using temp = await tempDir({ prefix: "bench_smoke_" });
  const dir = temp.path;
  const deno = Deno.execPath();
  let hasExpexp = false;
  try {
    hasExpexp = (await Deno.stat(EXPORTER_EXPORTER)).isFile;
  } catch {
    // Not installed: this client stands in as the peer exporter.
  }
  const out = `${dir}/smoke.json`;
  const result = await new Deno.Command(deno, {
    args: [
      "run",
      "--allow-all",
      "bench/main.ts",
      "--profile=smoke",
      `--out=${out}`,
      `--peer.proxy=${deno} run -A proxy/main.ts --web.listen-address={address}`,
      `--peer.client=${deno} run -A client/main.ts --proxy-url={proxy_url} --fqdn={fqdn} ` +
      "--metrics-addr=127.0.0.1:{metrics_port} --log.level=warn",
      "--peer.exporter=" +
      (hasExpexp
        ? `${EXPORTER_EXPORTER} -web.listen-address={address} -config.file={config}`
        : `${deno} run -A client/main.ts --web.listen-address={address} --config.file={config}`),
    ],
    cwd: ROOT,
    env: denoEnv(),
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    // bench/main.ts stops every process it started on SIGTERM.
    signal: AbortSignal.timeout(120_000),
  }).output();
  const stderr = new TextDecoder().decode(result.stderr);
  assert.equal(result.code, 0, `bench failed:\n${stderr.slice(-4000)}`);
  const stdout = new TextDecoder().decode(result.stdout);
  assert.match(stdout, /### Goals/);
  assert.match(stdout, /### Side by side: this project \/ peer/);
  assert.match(stdout, /### Module path/);

  const report = JSON.parse(await Deno.readTextFile(out)) as SmokeResult;
  assert.equal(report.profile, "smoke");
  assert.ok(report.machine.nproc > 0);

  // 57 KiB at c1, two rounds of: direct, this project, the peer (alternating).
  assert.deepEqual(
    report.cases.map((c) => `${c.round} ${c.mode} ${c.impl}`),
    [
      "1 direct self",
      "1 proxied self",
      "1 proxied peer",
      "2 direct self",
      "2 proxied peer",
      "2 proxied self",
    ],
  );
  for (const c of report.cases) {
    assert.equal(c.errors, 0, `${c.name}: ${c.errorSamples.join("; ")}`);
    assert.ok(c.requests > 0 && c.rps > 0, `${c.name}: no scrapes`);
    assert.ok(c.bodyBytes > 0, c.name);
    assert.ok(
      c.latencyMs.p50 > 0 && c.latencyMs.p99 >= c.latencyMs.p50,
      `${c.name}: latency ${JSON.stringify(c.latencyMs)}`,
    );
    if (c.mode === "proxied") {
      assert.ok(c.peakRssMiB.proxy > 0 && c.peakRssMiB.client > 0, c.name);
      assert.ok(c.cpu.proxyAndClient.seconds > 0, `${c.name}: no CPU seen`);
      assert.ok(c.cpu.proxyAndClient.perMiBMs > 0, c.name);
      assertMemory(c.memory?.processes.proxy, `${c.name} proxy`);
      assertMemory(c.memory?.processes.client, `${c.name} client`);
      assert.ok(c.memory?.processes.client?.anon, `${c.name}: no private memory figures`);
    }
  }

  // 1 MiB at c2 through the module listener, verification off and on, each
  // for this client and the peer exporter_exporter.
  assert.deepEqual(
    report.modules.map((c) => `${c.verify} ${c.impl}`),
    ["false self", "false peer", "true self", "true peer"],
  );
  for (const c of report.modules) {
    assert.equal(c.errors, 0, `${c.name}: ${c.errorSamples.join("; ")}`);
    assert.ok(c.requests > 0, `${c.name}: no scrapes`);
    assert.equal(c.bodyBytes, 1024 * 1024, c.name);
    assert.ok(c.cpu.exporter.seconds > 0, `${c.name}: no CPU seen`);
    assertMemory(c.memory.processes.exporter, c.name);
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
  assertMemory(held.memory.processes.proxy, "idle clients: proxy");
  assertMemory(held.memory.processes.client, "idle clients: client");

  assert.ok(report.churn.cycles > 0);
  assert.equal(report.churn.failed, 0);
  assert.ok(report.churn.proxy.after.fds > 0);
  assert.equal(report.churn.scrapes.errors, 0);
  assertMemory(report.churn.memory.processes.proxy, "churn: proxy");
  assertMemory(report.churn.memory.processes.client, "churn: client");

  assert.equal(report.goals.length, 19);
  const judged = (pattern: RegExp) => {
    const goal = report.goals.find((g) => pattern.test(g.goal));
    assert.ok(goal, `no goal matching ${pattern}`);
    return goal;
  };
  // Measured by this run (met or missed: figures are not judged here).
  for (const pattern of [/57 KiB c1 against the peer/, /Client idle RSS/, /verify on: rps/]) {
    assert.notEqual(judged(pattern).pass, null, `${pattern}: ${judged(pattern).measured}`);
  }
});
