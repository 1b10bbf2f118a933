/**
 * What a plain client loads at start (issue #11): its static imports, from
 * `deno info --json`, reach neither connect-es nor protobuf-es. The native
 * Poll and Push code their messages by hand (client/transport/pushprox_codec.ts)
 * and fail with client/transport/call_error.ts; connect-es and protobuf-es
 * load only with what needs them (the connect-es transport, an unusual
 * message). Loading them costs about 6.5 MiB of RSS per client.
 */
import assert from "node:assert/strict";

interface ModuleInfo {
  specifier: string;
  dependencies?: { code?: { specifier?: string }; isDynamic?: boolean }[];
}

Deno.test("a plain client's static imports reach neither connect-es nor protobuf-es", async () => {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", "--lock=deno.lock", "--frozen", "client/main.ts"],
    cwd: new URL("..", import.meta.url),
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(code, 0, new TextDecoder().decode(stderr));
  const info = JSON.parse(new TextDecoder().decode(stdout)) as {
    roots: string[];
    modules: ModuleInfo[];
  };
  const modules = new Map(info.modules.map((m) => [m.specifier, m]));
  const reached = new Map<string, string>();
  const stack: [string, string][] = info.roots.map((root) => [root, "(root)"]);
  while (stack.length > 0) {
    const [specifier, from] = stack.pop()!;
    if (reached.has(specifier)) continue;
    reached.set(specifier, from);
    for (const dependency of modules.get(specifier)?.dependencies ?? []) {
      const target = dependency.code?.specifier;
      if (target !== undefined && !dependency.isDynamic) stack.push([target, specifier]);
    }
  }
  const npm = [...reached.keys()].filter((s) => s.startsWith("npm:"));
  assert.ok(npm.some((s) => s.includes("prom-client")), `graph not as expected: ${npm}`);
  const heavy = npm.filter((s) => /@connectrpc|@bufbuild/.test(s));
  assert.deepEqual(
    heavy.map((s) => `${s} <- ${reached.get(s)}`),
    [],
    "imported statically at start",
  );
});
