/**
 * A fresh machine: `deno task proxy` and `deno task client` with an empty
 * DENO_DIR fetch only the packages the programs import (deno.runtime.lock),
 * not the test and code-generation tool chain in deno.lock (playwright-core,
 * TypeScript, buf), and print no warning about buf's ignored build scripts.
 */

import assert from "node:assert/strict";
import { DENO, denoEnv, descendants, spawn, type TestProcess } from "../support.ts";

/** Packages only tests, benchmarks and `deno task gen` use. */
const DEV_ONLY = [
  "playwright-core",
  "typescript",
  "@bufbuild/buf",
  "@bufbuild/buf-linux-x64",
  "@bufbuild/protoc-gen-es",
  "@bufbuild/protoplugin",
  "@typescript/vfs",
];

function cachedPackages(denoDir: string): string[] {
  const names: string[] = [];
  let registries: Deno.DirEntry[] = [];
  try {
    registries = [...Deno.readDirSync(`${denoDir}/npm`)];
  } catch {
    return names;
  }
  for (const registry of registries) {
    const base = `${denoDir}/npm/${registry.name}`;
    for (const entry of Deno.readDirSync(base)) {
      if (entry.name.startsWith("@")) {
        for (const scoped of Deno.readDirSync(`${base}/${entry.name}`)) {
          names.push(`${entry.name}/${scoped.name}`);
        }
      } else {
        names.push(entry.name);
      }
    }
  }
  return names.sort();
}

/** Stops `deno task` and the `deno run` it started, children first, by PID. */
async function stopTree(task: TestProcess): Promise<void> {
  for (const pid of descendants(task.pid).reverse()) {
    try {
      Deno.kill(pid, "SIGKILL");
    } catch { /* gone */ }
  }
  await task.stop(2_000);
}

Deno.test({
  name: "deno task proxy and deno task client on an empty DENO_DIR fetch no test-only package",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "pushprox-fresh-" });
    const tasks: TestProcess[] = [];
    try {
      const proxyDir = `${dir}/proxy-cache`;
      const proxy = spawn(DENO, ["task", "proxy", "--web.listen-address=127.0.0.1:0"], {
        env: { ...denoEnv(), DENO_DIR: proxyDir },
      });
      tasks.push(proxy);
      // Downloads from the npm registry: generous but bounded.
      const port = Number(
        (await proxy.waitFor(/msg="Listening on" address=127\.0\.0\.1:(\d+)/, 180_000))[1],
      );
      const metrics = await fetch(`http://127.0.0.1:${port}/metrics`);
      assert.equal(metrics.status, 200);
      await metrics.body?.cancel();

      const clientDir = `${dir}/client-cache`;
      const client = spawn(DENO, [
        "task",
        "client",
        `--proxy-url=http://127.0.0.1:${port}`,
        "--fqdn=fresh.example",
        "--metrics-addr=127.0.0.1:0",
      ], { env: { ...denoEnv(), DENO_DIR: clientDir } });
      tasks.push(client);
      await client.waitFor(/Registered with the proxy/, 180_000);

      for (
        const [name, cache, output] of [
          ["proxy", proxyDir, proxy.output()],
          ["client", clientDir, client.output()],
        ] as const
      ) {
        const packages = cachedPackages(cache);
        assert.ok(
          packages.includes("prom-client"),
          `${name}: npm cache not where expected: ${packages}`,
        );
        const dev = packages.filter((p) => DEV_ONLY.includes(p));
        assert.deepEqual(dev, [], `${name} fetched test-only packages: ${dev.join(", ")}`);
        assert.doesNotMatch(output, /Ignored build scripts/, `${name} printed:\n${output}`);
      }
    } finally {
      await Promise.all(tasks.map(stopTree));
      await Deno.remove(dir, { recursive: true });
    }
  },
});
