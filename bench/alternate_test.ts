import assert from "node:assert/strict";
import { median } from "./alternate.ts";

Deno.test("median() takes the middle value, or the mean of the middle two", () => {
  assert.equal(median([3, 1, 2]), 2);
  assert.equal(median([4, 1, 3, 2]), 2.5);
  assert.throws(() => median([]), RangeError);
});

Deno.test({
  name: "bench:alternate compares a checkout with itself through two real stacks",
  // Starts a target, two proxies and two clients from these sources; ~10 s.
  // The target answers chunked (--body=chunked): the proxies relay it with
  // chunked framing, which the meter checks byte by byte.
  sanitizeResources: true,
  async fn() {
    const json = await Deno.makeTempFile({ suffix: ".json" });
    try {
      const output = await new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "--lock=deno.dev.lock",
          "--frozen",
          "--allow-all",
          "bench/alternate.ts",
          "--against=.",
          "--requests=300",
          "--rounds=1",
          "--warmup=5",
          "--size=40000",
          "--body=chunked",
          `--json=${json}`,
        ],
        cwd: new URL("..", import.meta.url).pathname,
        stdout: "piped",
        stderr: "piped",
        signal: AbortSignal.timeout(120_000),
      }).output();
      const stdout = new TextDecoder().decode(output.stdout);
      assert.equal(output.code, 0, new TextDecoder().decode(output.stderr).slice(-2000));
      assert.match(
        stdout,
        /^round 1: this checkout [\d.]+ ms \(proxy [\d.]+, client [\d.]+; user [\d.]+\)/m,
      );
      const summary = JSON.parse(await Deno.readTextFile(json));
      assert.equal(summary.requests, 300);
      assert.equal(summary.body, "chunked");
      assert.ok(summary.msPerRequest.a > 0 && summary.msPerRequest.b > 0);
      // User time is part of the total, never more.
      assert.ok(summary.userMsPerRequest.a > 0);
      assert.ok(summary.userMsPerRequest.a <= summary.msPerRequest.a + 1e-9);
      assert.ok(Number.isFinite(summary.ratio) && summary.ratio > 0);
      assert.deepEqual(Object.keys(summary.ratioByProcess), ["proxy", "client"]);
    } finally {
      await Deno.remove(json);
    }
  },
});
