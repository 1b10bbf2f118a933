/**
 * The programs' `process_*` metrics are true when they run with their
 * deno.json tasks' permission flags (not `--allow-all`): `/metrics` of the
 * real process against `/proc/<pid>` of the same process.
 */

import assert from "node:assert/strict";
import { DENO, denoEnv, processList, spawn, taskArgs } from "../support.ts";

function sample(text: string, name: string): number | undefined {
  const match = text.match(new RegExp(`^${name} (\\S+)$`, "m"));
  return match?.[1] === undefined ? undefined : Number(match[1]);
}

function procFigures(pid: number) {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const limits = Deno.readTextFileSync(`/proc/${pid}/limits`);
  return {
    rss: Number(status.match(/^VmRSS:\s+(\d+) kB/m)![1]) * 1024,
    fds: [...Deno.readDirSync(`/proc/${pid}/fd`)].length,
    maxFds: Number(limits.match(/^Max open files\s+(\d+)/m)![1]),
  };
}

function assertTrue(name: string, pid: number, text: string): void {
  const proc = procFigures(pid);
  const rss = sample(text, "process_resident_memory_bytes");
  const fds = sample(text, "process_open_fds");
  const maxFds = sample(text, "process_max_fds");
  const cpu = sample(text, "process_cpu_seconds_total");
  const start = sample(text, "process_start_time_seconds");
  assert.ok(rss !== undefined && rss > 0, `${name}: process_resident_memory_bytes=${rss}`);
  // Memory moves between the scrape and the read of /proc: a loose bound.
  assert.ok(
    Math.abs(rss - proc.rss) <= Math.max(16 * 1024 * 1024, proc.rss * 0.25),
    `${name}: RSS ${rss} in /metrics vs ${proc.rss} in /proc/${pid}/status`,
  );
  assert.ok(fds !== undefined && fds > 0, `${name}: process_open_fds=${fds}`);
  // The collector's own child pipes and the scrape's socket come and go.
  assert.ok(
    Math.abs(fds - proc.fds) <= 6,
    `${name}: ${fds} fds in /metrics vs ${proc.fds} in /proc`,
  );
  assert.equal(maxFds, proc.maxFds, `${name}: process_max_fds`);
  assert.ok(cpu !== undefined && cpu > 0, `${name}: process_cpu_seconds_total=${cpu}`);
  assert.ok(
    start !== undefined && Math.abs(start - Date.now() / 1000) < 600,
    `${name}: process_start_time_seconds=${start}`,
  );
  assert.doesNotMatch(text, /^nodejs_version_info/m, `${name}: Node compat version exported`);
  assert.match(text, /^pushprox_build_info\{.*runtime="deno \d+\.\d+\.\d+".*\} 1$/m);
}

Deno.test({
  name: "process_* metrics of proxy and client under the tasks' flags match /proc",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using processes = processList();
    const proxy = spawn(DENO, [...taskArgs("proxy"), "--web.listen-address=127.0.0.1:0"], {
      env: denoEnv(),
    });
    processes.push(proxy);
    const port = Number(
      (await proxy.waitFor(/msg="Listening on" address=127\.0\.0\.1:(\d+)/, 60_000))[1],
    );
    const client = spawn(DENO, [
      ...taskArgs("client"),
      `--proxy-url=http://127.0.0.1:${port}`,
      "--fqdn=metrics.example",
      "--metrics-addr=127.0.0.1:0",
    ], { env: denoEnv() });
    processes.push(client);
    const clientPort = Number(
      (await client.waitFor(/msg="Listening on" address=127\.0\.0\.1:(\d+)/, 60_000))[1],
    );
    for (
      const [name, pid, url] of [
        ["proxy", proxy.pid, `http://127.0.0.1:${port}/metrics`],
        ["client", client.pid, `http://127.0.0.1:${clientPort}/metrics`],
      ] as const
    ) {
      const text = await (await fetch(url)).text();
      assertTrue(name, pid, text);
    }
  },
});
