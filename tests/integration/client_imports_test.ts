/**
 * A plain client loads only what it uses: the static import graph of
 * client/main.ts (what Deno loads before `main()` runs; `import()`s are left
 * out) has no connect-node, HTTP-proxy agent, YAML parser, bcrypt or module
 * engine. They are imported on demand (client/agent/agent.ts,
 * client/modules/cli.ts); each costs memory at idle (README "Performance").
 */

import assert from "node:assert/strict";

interface InfoModule {
  specifier: string;
  dependencies?: {
    specifier: string;
    isDynamic?: boolean;
    code?: { specifier: string };
  }[];
}

async function staticGraph(entry: string): Promise<Set<string>> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", "--lock=deno.lock", "--frozen", entry],
    cwd: new URL("../..", import.meta.url),
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(output.code, 0, new TextDecoder().decode(output.stderr));
  const info = JSON.parse(new TextDecoder().decode(output.stdout)) as {
    roots: string[];
    modules: InfoModule[];
  };
  const modules = new Map(info.modules.map((m) => [m.specifier, m]));
  const seen = new Set<string>();
  const stack = [...info.roots];
  while (stack.length > 0) {
    const specifier = stack.pop()!;
    if (seen.has(specifier)) continue;
    seen.add(specifier);
    for (const dependency of modules.get(specifier)?.dependencies ?? []) {
      if (!dependency.isDynamic && dependency.code) stack.push(dependency.code.specifier);
    }
  }
  return seen;
}

Deno.test({
  name: "a plain client statically loads no connect-node, yaml, bcrypt or module engine",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const graph = [...await staticGraph("client/main.ts")];
    const has = (pattern: RegExp) => graph.filter((s) => pattern.test(s));
    // The check can fail: the module engine is reachable with the dynamic imports.
    assert.ok(graph.some((s) => s.endsWith("/client/main.ts")), "graph read");
    assert.deepEqual(has(/connect-node/), []);
    assert.deepEqual(has(/https-proxy-agent/), []);
    assert.deepEqual(has(/npm:yaml|\/yaml@/), []);
    assert.deepEqual(has(/bcryptjs/), []);
    assert.deepEqual(has(/\/client\/transport\/proxy_transport\.ts$/), []);
    assert.deepEqual(has(/\/client\/modules\/(engine|config|start)\.ts$/), []);
    assert.deepEqual(has(/\/client\/verify\//), []);
    assert.deepEqual(has(/\/lib\/web_config\.ts$/), []);
    // What the native path needs is there.
    assert.equal(has(/\/client\/transport\/native_poll\.ts$/).length, 1);
  },
});
