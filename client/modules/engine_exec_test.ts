/**
 * The engine's exec modules: output, arguments and environment, stderr,
 * deadlines (the whole process group is killed), output limits and
 * failures.
 */

import assert from "node:assert/strict";
import { gunzipSync } from "node:zlib";
import { Registry } from "prom-client";
import { createLogger } from "../../lib/logger.ts";
import { parseConfig } from "./config.ts";
import { createModuleEngine, prepareConfig } from "./engine.ts";
import { createModuleMetrics } from "./metrics.ts";
import { count, engineFor, serve } from "./engine_testing.ts";
import { tempDir } from "../../tests/fixture.ts";

// ---- exec -----------------------------------------------------------------------

async function script(dir: string, name: string, text: string): Promise<string> {
  const path = `${dir}/${name}`;
  await Deno.writeTextFile(path, `#!/bin/sh\n${text}\n`);
  await Deno.chmod(path, 0o755);
  return path;
}

Deno.test("exec module: output, configured args then args= values, exact env, gzip", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = await script(
      dir,
      "args.sh",
      'echo "# TYPE args gauge"; i=0; for a in "$@"; do i=$((i+1)); echo "args{n=\\"$i\\",v=\\"$a\\"} 1"; done; if /usr/bin/env | /bin/grep -q ^PATH=; then echo env_path 1; else echo env_path 0; fi; echo "env_thing{v=\\"$THING\\"} 1"',
    );
    const { engine, metrics } = await engineFor(`
modules:
  script:
    method: exec
    exec:
      command: ${path}
      args: [one, two]
      env:
        THING: "1"
`);
    const served = await serve(engine, "module=script&args=three&args=four%20five");
    assert.equal(served.status, 200, served.error);
    assert.match(served.headers.get("content-type")!, /^text\/plain; version=0\.0\.4/);
    assert.match(
      served.text,
      /args\{n="1",v="one"\} 1\nargs\{n="2",v="two"\} 1\nargs\{n="3",v="three"\} 1\nargs\{n="4",v="four five"\} 1/,
    );
    assert.match(served.text, /env_thing\{v="1"\}/);
    // exporter_exporter's semantics: a non-empty env is the whole environment.
    assert.match(served.text, /^env_path 0$/m);
    assert.equal(await count(metrics.commandStarts, "script"), 1);

    const zipped = await serve(engine, "module=script", { "Accept-Encoding": "gzip" });
    assert.equal(zipped.headers.get("content-encoding"), "gzip");
    assert.match(gunzipSync(zipped.bytes).toString(), /args\{n="1",v="one"\}/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("exec module: a successful command's stderr is logged, bounded and rate-limited", async () => {
  await using temp = await tempDir();
  const dir = temp.path;
  const path = await script(
    dir,
    "noisy.sh",
    'echo "deprecated option used" >&2; head -c 5000 /dev/zero | tr "\\0" x >&2; echo "# TYPE ok gauge"; echo "ok 1"',
  );
  const lines: string[] = [];
  let clock = 0;
  const engine = createModuleEngine({
    config: await prepareConfig(parseConfig(
      `modules:\n  noisy:\n    method: exec\n    exec:\n      command: ${path}\n`,
      "expexp.yaml",
    )),
    metrics: createModuleMetrics(new Registry()),
    logger: createLogger({ level: "warn", format: "json", write: (line) => lines.push(line) }),
    stderrLogIntervalMs: 10_000,
    now: () => clock,
  });
  for (const at of [0, 1_000, 2_000, 12_000]) {
    clock = at;
    const served = await serve(engine, "module=noisy");
    assert.equal(served.status, 200, served.error);
  }
  const records = lines.map((line) => JSON.parse(line));
  assert.equal(records.length, 2, "one line per 10 s per module");
  assert.equal(records[0].msg, "Command wrote to stderr");
  assert.equal(records[0].module, "noisy");
  assert.match(records[0].stderr, /x{100}$/);
  assert.ok(records[0].stderr.length <= 2048, "bounded");
  assert.equal(records[1].skipped, 2);
});

function processGone(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    // Field 3 is the state; a zombie (Z) is dead, only not yet reaped.
    return /^\d+ \(.*\) [ZX]/.test(stat);
  } catch {
    return true;
  }
}

Deno.test({
  name: "exec module: a hanging command gets 504 and its whole process group is killed",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    await using temp = await tempDir();
    const dir = temp.path;
    const path = await script(
      dir,
      "hang.sh",
      `sleep 300 & echo $! > ${dir}/grandchild.pid; wait`,
    );
    const { engine, metrics } = await engineFor(
      `modules:\n  hang:\n    method: exec\n    timeout: 500ms\n    exec:\n      command: ${path}\n`,
    );
    const started = Date.now();
    const served = await serve(engine, "module=hang");
    assert.equal(served.status, 504);
    assert.match(served.error, /module hang: no complete answer within 500ms/);
    assert.ok(Date.now() - started < 3000);
    const grandchild = Number(await Deno.readTextFile(`${dir}/grandchild.pid`));
    assert.ok(grandchild > 0);
    for (let i = 0; i < 20 && !processGone(grandchild); i++) {
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.ok(processGone(grandchild), `grandchild ${grandchild} still runs`);
    assert.equal(await count(metrics.timeouts, "hang"), 1);
    assert.equal(await count(metrics.commandFails, "hang"), 1);
  },
});

Deno.test("exec module: endless output is cut at --exec.max-output-bytes with 502", async () => {
  await using temp = await tempDir();
  const dir = temp.path;
  const path = await script(dir, "yes.sh", "exec yes 'm 1'");
  const { engine, metrics } = await engineFor(
    `modules:\n  flood:\n    method: exec\n    timeout: 20s\n    exec:\n      command: ${path}\n`,
  );
  const before = Deno.memoryUsage().rss;
  const served = await serve(engine, "module=flood");
  assert.equal(served.status, 502);
  assert.match(
    served.error,
    /command output exceeded 1048576 bytes \(--exec\.max-output-bytes\)/,
  );
  assert.ok(Deno.memoryUsage().rss - before < 64 * 1024 * 1024);
  assert.equal(await count(metrics.commandFails, "flood"), 1);
});

Deno.test("exec module: a non-zero exit gets 502 with the status and stderr", async () => {
  await using temp = await tempDir();
  const dir = temp.path;
  const path = await script(dir, "fail.sh", "echo 'm 1'; echo 'disk on fire' >&2; exit 3");
  const { engine } = await engineFor(
    `modules:\n  fail:\n    method: exec\n    exec:\n      command: ${path}\n`,
  );
  const served = await serve(engine, "module=fail");
  assert.equal(served.status, 502);
  assert.match(served.error, /module fail: command exited with status 3; stderr: "disk on fire"/);
});

Deno.test("exec module: invalid output gets 502; a missing command gets 502", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = await script(dir, "bad.sh", "echo 'this is not metrics'");
    const { engine, metrics } = await engineFor(`
modules:
  bad:
    method: exec
    exec: {command: ${path}}
  missing:
    method: exec
    exec: {command: no-such-command-anywhere}
`);
    let served = await serve(engine, "module=bad");
    assert.equal(served.status, 502);
    assert.match(served.error, /command output is not valid Prometheus text format: line 1/);
    assert.equal(await count(metrics.malformed, "bad"), 1);
    served = await serve(engine, "module=missing");
    assert.equal(served.status, 502);
    assert.match(served.error, /command "no-such-command-anywhere" not found in PATH/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("exec module: a bare command name is found in the client's PATH", async () => {
  const { engine } = await engineFor(
    `modules:\n  echo:\n    method: exec\n    exec:\n      command: echo\n      args: ["m 1"]\n      env: {A: b}\n`,
  );
  const served = await serve(engine, "module=echo");
  assert.equal(served.status, 200, served.error);
  assert.equal(served.text, "m 1\n");
});
