import assert from "node:assert/strict";
import { childEnv, spawnProcess } from "./process.ts";

const DENO = Deno.execPath();
const evalArgs = (code: string) => ["eval", "--no-config", code];

Deno.test("spawnProcess() reads both outputs, lines and the exit status", async () => {
  const child = spawnProcess(
    DENO,
    evalArgs("console.log('one'); console.error('two'); console.log('three'); Deno.exit(3)"),
    { name: "printer", env: childEnv(), clearEnv: true },
  );
  const lines: string[] = [];
  child.onLine((line) => lines.push(line));
  const status = await child.status;
  assert.equal(status.code, 3);
  assert.equal(child.exited, true);
  assert.equal(child.stdout(), "one\nthree\n");
  assert.equal(child.stderr(), "two\n");
  assert.match(child.output(), /one\n[^]*two\n/);
  assert.deepEqual(lines, ["one", "three"]);
  assert.equal(child.name, "printer");
});

Deno.test("spawnProcess() waitFor() resolves on a match, fails when the process exits first", async () => {
  const child = spawnProcess(DENO, evalArgs("console.error('port=4242'); Deno.exit(0)"));
  const match = await child.waitFor(/port=(\d+)/);
  assert.equal(match[1], "4242");
  await assert.rejects(child.waitFor(/never/), /exited before printing \/never\//);
  await child.status;
});

Deno.test("spawnProcess() keeps a bounded tail, and stop() kills one that ignores SIGTERM", async () => {
  const child = spawnProcess(
    DENO,
    evalArgs(
      "Deno.addSignalListener('SIGTERM', () => {}); console.log('x'.repeat(10000)); console.log('end'); setInterval(() => {}, 1000)",
    ),
    { maxOutputChars: 100 },
  );
  await child.waitFor(/end/, 30_000);
  assert.ok(child.stdout().length <= 100);
  assert.match(child.stdout(), /end\n$/);
  await assert.rejects(child.waitFor(/never/, 50), /Timed out after 50 ms waiting for \/never\//);
  const status = await child.stop(200);
  assert.equal(status.signal, "SIGKILL");
  child.kill(); // after the exit: nothing happens
});

Deno.test("childEnv() turns colour off and passes the caches on", () => {
  const env = childEnv();
  assert.equal(env.NO_COLOR, "1");
  assert.equal(env.PATH, Deno.env.get("PATH"));
});
