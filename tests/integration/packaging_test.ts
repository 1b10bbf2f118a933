/**
 * The shipped forms of the programs: `deno task bundle` output runs with an
 * empty cache and no network, end to end; `deno task compile` is exercised
 * when Deno's runtime can be downloaded.
 */

import assert from "node:assert/strict";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { DENO, denoEnv, proxiedGet, ROOT, spawn, type TestProcess, waitUntil } from "../support.ts";

/**
 * The arguments of `deno task bundle`'s command for one program, with the
 * output folder replaced.
 */
function bundleArgs(name: string, outdir: string): string[] {
  const config = JSON.parse(Deno.readTextFileSync(`${ROOT}/deno.json`));
  const command: string = config.tasks.bundle.command;
  const one = command.split("&&").map((part) => part.trim().split(/\s+/))
    .find((words) => words.at(-1) === `${name}/main.ts`);
  assert.ok(one && one[0] === "deno", `no bundle command for ${name} in: ${command}`);
  const args = one.slice(1);
  const at = args.indexOf("--outdir");
  assert.ok(at > 0, `no --outdir in: ${one.join(" ")}`);
  args[at + 1] = outdir;
  return args;
}

async function run(args: string[], env: Record<string, string> = denoEnv()) {
  const output = await new Deno.Command(DENO, {
    args,
    cwd: ROOT,
    env,
    stdout: "piped",
    stderr: "piped",
  })
    .output();
  const text = new TextDecoder().decode(output.stdout) + new TextDecoder().decode(output.stderr);
  return { code: output.code, text };
}

Deno.test({
  name: "bundled proxy and client run with an empty cache and proxy a scrape",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "pushprox-bundle-" });
    const processes: TestProcess[] = [];
    const target = createServer((_req, res) => res.end("# TYPE up gauge\nup 1\n"));
    try {
      for (const name of ["client", "proxy"]) {
        // Exactly what `deno task bundle` runs (minified: a flag that breaks
        // the output must fail here), written to the test's own folder.
        const result = await run(bundleArgs(name, `${dir}/pushprox-${name}`));
        assert.equal(result.code, 0, result.text);
      }
      // What a plain client never uses stays out of its start (the module
      // engine is a chunk of its own, loaded by a dynamic import): one file
      // would load it all at start (about 3 MiB more RSS, README "Performance").
      const clientMain = await Deno.readTextFile(`${dir}/pushprox-client/main.js`);
      const engine = [...Deno.readDirSync(`${dir}/pushprox-client`)]
        .find((e) => /^engine-\w+\.js$/.test(e.name));
      assert.ok(engine, "the module engine is a chunk of its own");
      assert.ok(clientMain.includes(`import("./${engine.name}")`), "main.js loads it on demand");
      // Nor does the proxy load node:http, node:https, node:stream (the node
      // server and the socket handed to it), connect-node or node:http2 at
      // start: each comes with a chunk main.js imports on demand (about 4 MiB
      // of idle RSS, README "Performance").
      const proxyDir = `${dir}/pushprox-proxy`;
      const proxyFiles = [...Deno.readDirSync(proxyDir)].map((e) => e.name);
      const proxyMain = await Deno.readTextFile(`${proxyDir}/main.js`);
      for (const name of ["node_server", "conn_socket", "connect_node", "grpc_server"]) {
        const chunk = proxyFiles.find((file) => new RegExp(`^${name}-\\w+\\.js$`).test(file));
        assert.ok(chunk, `${name} is a chunk of its own`);
        assert.ok(proxyMain.includes(`import("./${chunk}")`), `main.js loads ${name} on demand`);
      }
      const atStart = new Set<string>();
      const visit = async (file: string) => {
        if (atStart.has(file)) return;
        atStart.add(file);
        const text = await Deno.readTextFile(`${proxyDir}/${file}`);
        assert.doesNotMatch(text, /from ?"node:(http|https|http2|stream|zlib)"/, file);
        for (const m of text.matchAll(/(?:from|import) ?"\.\/([\w-]+\.js)"/g)) await visit(m[1]!);
      };
      await visit("main.js");
      // No cache, no npm: the bundles must stand alone.
      const env = {
        ...denoEnv(),
        DENO_DIR: `${dir}/empty-cache`,
        NPM_CONFIG_REGISTRY: "http://127.0.0.1:9/",
      };
      await new Promise<void>((resolve) => target.listen(0, "127.0.0.1", resolve));
      const targetPort = (target.address() as AddressInfo).port;

      const proxy = spawn(DENO, [
        "run",
        "--allow-all",
        `${dir}/pushprox-proxy/main.js`,
        "--web.listen-address=127.0.0.1:0",
      ], { env, cwd: dir });
      processes.push(proxy);
      const port = Number((await proxy.waitFor(/address=127\.0\.0\.1:(\d+)/))[1]);
      const client = spawn(DENO, [
        "run",
        "--allow-all",
        `${dir}/pushprox-client/main.js`,
        `--proxy-url=http://127.0.0.1:${port}`,
        "--fqdn=localhost",
        "--metrics-addr=",
      ], { env, cwd: dir });
      processes.push(client);
      await client.waitFor(/Registered with the proxy/);
      const response = await waitUntil(
        async () => {
          const r = await proxiedGet(port, `http://localhost:${targetPort}/metrics`);
          return r.status === 200 ? r : undefined;
        },
        10_000,
        "a scrape through the bundles",
      );
      assert.equal(new TextDecoder().decode(response.body), "# TYPE up gauge\nup 1\n");
      // Native, then handed to node:http, whose chunks load from the bundle.
      const clients = await fetch(`http://127.0.0.1:${port}/clients`);
      assert.match(await clients.text(), /"localhost"/);
      const page = await fetch(`http://127.0.0.1:${port}/`);
      assert.equal(page.status, 200);
      assert.match(await page.text(), /<title>PushProx proxy<\/title>/);
    } finally {
      await Promise.all(processes.map((p) => p.stop()));
      target.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

// `deno compile` needs Deno's runtime (denort) from dl.deno.land. Probe once:
// where it cannot be downloaded, the test says so and skips.
const compileDir = await Deno.makeTempDir({ prefix: "pushprox-compile-" });
const probe = await run([
  "compile",
  "--allow-all",
  "--output",
  `${compileDir}/pushprox-client`,
  "client/main.ts",
]);
const compileSkip = probe.code === 0
  ? ""
  : (/dl\.deno\.land|error sending request|dns error/.test(probe.text)
    ? "deno compile cannot download Deno's runtime (denort) here; it works with internet access"
    : "");
if (compileSkip) console.warn(`SKIPPED compile test: ${compileSkip}`);
addEventListener("unload", () => {
  try {
    Deno.removeSync(compileDir, { recursive: true });
  } catch { /* gone */ }
});

Deno.test({
  name: "deno compile builds a pushprox-client binary that runs",
  ignore: compileSkip !== "",
  async fn() {
    assert.equal(probe.code, 0, `deno compile failed:\n${probe.text}`);
    const output = await new Deno.Command(`${compileDir}/pushprox-client`, { args: ["--version"] })
      .output();
    assert.equal(output.code, 0);
    assert.match(new TextDecoder().decode(output.stdout), /^pushprox-client \d+\.\d+\.\d+/);
  },
});

Deno.test("deno task compile builds both programs, each with its run task's permissions", () => {
  const config = JSON.parse(Deno.readTextFileSync(`${ROOT}/deno.json`));
  const compile: string = config.tasks.compile.command ?? config.tasks.compile;
  const steps = compile.split("&&").map((s) => s.trim().split(/\s+/));
  const built = new Map<string, string[]>();
  for (const words of steps) {
    assert.deepEqual(words.slice(0, 2), ["deno", "compile"], words.join(" "));
    const output = words[words.indexOf("--output") + 1]!;
    built.set(output, words.filter((w) => w.startsWith("--allow-")));
  }
  for (const name of ["proxy", "client"]) {
    const run: string = config.tasks[name].command ?? config.tasks[name];
    const permissions = run.split(/\s+/).filter((w) => w.startsWith("--allow-"));
    assert.deepEqual(built.get(`dist/pushprox-${name}`), permissions, `dist/pushprox-${name}`);
  }
});
