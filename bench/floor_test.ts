import assert from "node:assert/strict";

Deno.test("bench/floor.ts relays real scrapes and reports CPU and latency", async () => {
  const output = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      new URL("./floor.ts", import.meta.url).pathname,
      "--size=4096",
      "--scrapes=50",
    ],
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(60_000),
  }).output();
  assert.equal(output.code, 0, new TextDecoder().decode(output.stderr));
  const lines = new TextDecoder().decode(output.stdout).trim().split("\n");
  const result = JSON.parse(lines.at(-1)!);
  assert.equal(result.size, 4096);
  assert.equal(result.scrapes, 50);
  assert.ok(result.rps > 0);
  const { p50, p99, max } = result.latencyMs;
  assert.ok(p50 > 0 && p50 <= p99 && p99 <= max, JSON.stringify(result.latencyMs));
  assert.ok(result.msPerScrape.both >= 0);
});
