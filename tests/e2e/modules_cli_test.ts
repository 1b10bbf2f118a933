/**
 * The client's module features as a process: a bad configuration at
 * start-up exits 2 naming file, line and key; SIGHUP and POST /-/reload
 * reload, keeping the old configuration when the new one is invalid; the
 * seed README's example configuration works unchanged through the proxy and
 * directly; verification memory stays bounded with large bodies.
 */

import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import { createServer as createNetServer } from "node:net";
import {
  DENO,
  denoEnv,
  hasExecutable,
  proxiedGet,
  ROOT,
  spawn,
  startClientProcess,
  startProxyProcess,
  type TestProcess,
  waitUntil,
} from "../support.ts";
import { tempDir } from "../fixture.ts";

async function runClient(args: string[]) {
  const output = await new Deno.Command(DENO, {
    args: ["run", "--allow-all", "client/main.ts", ...args],
    cwd: ROOT,
    env: denoEnv(),
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: output.code, stderr: new TextDecoder().decode(output.stderr) };
}

async function listeningPort(client: TestProcess): Promise<number> {
  const match = await client.waitFor(
    /msg="Listening on" component=modules address=127\.0\.0\.1:(\d+) listener="modules http"/,
  );
  return Number(match[1]);
}

async function get(url: string, init: RequestInit = {}): Promise<{ status: number; text: string }> {
  const response = await fetch(url, init);
  return { status: response.status, text: await response.text() };
}

Deno.test("a bad module configuration at start-up exits 2 naming file, line and key", async () => {
  await using temp = await tempDir();
  const dir = temp.path;
  await Deno.writeTextFile(
    `${dir}/expexp.yaml`,
    "modules:\n  node:\n    method: http\n    http:\n      port: 9100\n      colour: blue\n",
  );
  let result = await runClient([`--config.file=${dir}/expexp.yaml`, "--proxy-url=http://x/"]);
  assert.equal(result.code, 2);
  assert.match(
    result.stderr,
    new RegExp(`${dir}/expexp\\.yaml:6: modules\\.node\\.http\\.colour: unknown key "colour"`),
  );

  await Deno.writeTextFile(
    `${dir}/expexp.yaml`,
    "modules:\n  node:\n    method: http\n    http:\n      port: abc\n",
  );
  result = await runClient([`--config.file=${dir}/expexp.yaml`, "--proxy-url=http://x/"]);
  assert.equal(result.code, 2);
  assert.match(
    result.stderr,
    /expexp\.yaml:5: modules\.node\.http\.port: expected an integer, got "abc"/,
  );

  result = await runClient([`--config.file=${dir}/missing.yaml`, "--proxy-url=http://x/"]);
  assert.equal(result.code, 2);
  assert.match(result.stderr, /missing\.yaml: cannot read file/);

  result = await runClient(["--web.tls.certmatch=x", "--proxy-url=http://x/"]);
  assert.equal(result.code, 2);
  assert.match(result.stderr, /--web\.tls\.certmatch needs --web\.tls\.verify/);

  result = await runClient(["--allow.net=10.0.0.0/99", "--web.listen-address=127.0.0.1:0"]);
  assert.equal(result.code, 2);
  assert.match(result.stderr, /--allow\.net: Cannot parse network "10\.0\.0\.0\/99"/);
});

Deno.test({
  name: "SIGHUP and POST /-/reload reload modules; an invalid file keeps the old ones",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    await using temp = await tempDir();
    const dir = temp.path;
    const file = `${dir}/expexp.yaml`;
    const module = (name: string) =>
      `modules:\n  ${name}:\n    method: exec\n    exec:\n      command: /bin/echo\n      args: ["${name} 1"]\n`;
    await Deno.writeTextFile(file, module("first"));
    await using client = startClientProcess([
      `--config.file=${file}`,
      "--web.listen-address=127.0.0.1:0",
      "--web.enable-lifecycle",
    ]);
    const port = await listeningPort(client);
    const base = `http://127.0.0.1:${port}`;
    assert.equal((await get(`${base}/proxy?module=first`)).text, "first 1\n");

    await Deno.writeTextFile(file, module("second"));
    client.kill("SIGHUP");
    await waitUntil(
      async () => (await get(`${base}/proxy?module=second`)).status === 200 || undefined,
      10_000,
      "the reloaded module",
    );
    assert.equal((await get(`${base}/proxy?module=first`)).status, 404);

    await Deno.writeTextFile(file, "modules:\n  third:\n    method: exec\n    exec: {}\n");
    client.kill("SIGHUP");
    await client.waitFor(
      /Cannot reload the module configuration; keeping the old one.*exec\.command/,
    );
    assert.equal((await get(`${base}/proxy?module=second`)).status, 200);
    assert.match(
      (await get(`${base}/metrics`)).text,
      /pushprox_client_config_last_reload_successful 0/,
    );

    await Deno.writeTextFile(file, module("fourth"));
    const reload = await get(`${base}/-/reload`, { method: "POST" });
    assert.equal(reload.status, 200);
    assert.equal((await get(`${base}/proxy?module=fourth`)).text, "fourth 1\n");
    assert.match(
      (await get(`${base}/metrics`)).text,
      /pushprox_client_config_last_reload_successful 1/,
    );
  },
});

// ---- the seed README's example, unchanged ------------------------------------------

/** exporter_exporter's README "Configuration" example, verbatim. */
const README_CONFIG = Deno.readTextFileSync(
  new URL("../../client/modules/testdata/expexp_readme.yaml", import.meta.url),
);

const README_PORTS = [9100, 3903, 4194, 19999];
const SCRIPT = "/tmp/myscript.sh";
const SCRIPT_TEXT =
  '#!/bin/sh\n# pushprox modules test\necho "# TYPE somescript_args gauge"\necho "somescript_args{a=\\"$1\\",b=\\"$2\\",thing=\\"$THING$THING2\\"} 1"\n';
const NODE_EXPORTER = "/usr/bin/prometheus-node-exporter";

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createNetServer();
    server.once("error", () => resolve(false));
    server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)));
  });
}

async function readmeBlocker(): Promise<string | null> {
  for (const port of README_PORTS) {
    if (!(await portFree(port))) return `port ${port} (fixed in the README example) is in use`;
  }
  try {
    const text = await Deno.readTextFile(SCRIPT);
    if (text !== SCRIPT_TEXT) return `${SCRIPT} exists and is not this test's`;
  } catch {
    // absent: the test writes it
  }
  return null;
}

Deno.test({
  name: "the seed README's example configuration works unchanged through the proxy and directly",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    const blocker = await readmeBlocker();
    if (blocker !== null) {
      console.warn(`SKIPPED README example: ${blocker}`);
      return;
    }
    const dir = await Deno.makeTempDir();
    const processes: TestProcess[] = [];
    const servers: Server[] = [];
    const seen: Record<string, Record<string, string | string[] | undefined>> = {};
    try {
      await Deno.writeTextFile(`${dir}/expexp.yaml`, README_CONFIG);
      await Deno.writeTextFile(SCRIPT, SCRIPT_TEXT);
      await Deno.chmod(SCRIPT, 0o755);

      // node: Debian's node_exporter when installed, else a stand-in.
      const realNode = hasExecutable(NODE_EXPORTER);
      if (realNode) {
        const node = spawn(NODE_EXPORTER, [
          "--web.listen-address=127.0.0.1:9100",
          "--collector.disable-defaults",
          "--collector.loadavg",
        ]);
        processes.push(node);
        await node.waitFor(/Listening on/);
      }
      const backends: [number, string, string][] = [
        [3903, "mtail", "# TYPE mtail_lines counter\nmtail_lines_total 7\n"],
        [4194, "cadvisor", "cadvisor says: not verified {\n"],
        [19999, "netdata", "# TYPE netdata_cpu gauge\nnetdata_cpu 3\n"],
        ...(realNode ? [] : [[9100, "node", "# TYPE node_load1 gauge\nnode_load1 0.1\n"]] as [
          number,
          string,
          string,
        ][]),
      ];
      for (const [port, name, body] of backends) {
        const server = createServer((req, res) => {
          seen[name] = { ...req.headers, url: req.url };
          res.writeHead(200, { "content-type": "text/plain; version=0.0.4" }).end(body);
        });
        await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
        servers.push(server);
      }

      const proxy = await startProxyProcess();
      processes.push(proxy.process);
      const client = startClientProcess([
        `--proxy-url=${proxy.url}/`,
        "--fqdn=node.example",
        `--config.file=${dir}/expexp.yaml`,
        "--web.listen-address=127.0.0.1:0",
      ]);
      processes.push(client);
      const port = await listeningPort(client);
      await client.waitFor(/Registered with the proxy/);

      const ways: [string, (module: string) => Promise<{ status: number; text: string }>][] = [
        ["through the proxy", async (module) => {
          const r = await proxiedGet(proxy.port, `http://node.example:9999/proxy?module=${module}`);
          return { status: r.status, text: new TextDecoder().decode(r.body) };
        }],
        ["directly", (module) => get(`http://127.0.0.1:${port}/proxy?module=${module}`)],
      ];
      for (const [way, scrape] of ways) {
        await t.step(way, async () => {
          const node = await scrape("node");
          assert.equal(node.status, 200, node.text);
          assert.match(node.text, /^node_load1 /m);
          const mtail = await scrape("mtail");
          assert.equal(mtail.text, "# TYPE mtail_lines counter\nmtail_lines_total 7\n");
          assert.equal(seen["mtail"]!["foo"], "bar");
          const cadvisor = await scrape("cadvisor");
          assert.equal(cadvisor.status, 200, "verify: false lets anything through");
          assert.equal(cadvisor.text, "cadvisor says: not verified {\n");
          const netdata = await scrape("netdata");
          assert.equal(netdata.status, 200, netdata.text);
          assert.equal(seen["netdata"]!["url"], "/api/v1/allmetrics?format=prometheus");
          const script = await scrape("somescript");
          assert.equal(script.status, 200, script.text);
          assert.match(script.text, /somescript_args\{a="myarg1",b="myarg2",thing="12"\} 1/);
        });
      }
    } finally {
      await Promise.all(processes.reverse().map((p) => p.stop()));
      for (const server of servers) {
        server.closeAllConnections();
        await new Promise((resolve) => server.close(resolve));
      }
      await Deno.remove(SCRIPT).catch(() => {});
      await Deno.remove(dir, { recursive: true });
    }
  },
});

// ---- bounded memory -----------------------------------------------------------------

function peakRssKiB(pid: number): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  return Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? NaN);
}

Deno.test({
  name: "verifying 8 concurrent 20 MB scrapes keeps the client's memory bounded",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const line = (i: number) => `big_metric{instance="host-${i}",label="${"x".repeat(40)}"} ${i}\n`;
    const parts: string[] = ["# TYPE big_metric gauge\n"];
    let size = parts[0]!.length;
    const targetMiB = Number(Deno.env.get("PUSHPROX_TEST_BODY_MIB") ?? 20);
    for (let i = 0; size < targetMiB * 1024 * 1024; i++) {
      const l = line(i);
      parts.push(l);
      size += l.length;
    }
    const body = new TextEncoder().encode(parts.join(""));
    const server = createServer((_req, res) => {
      res.writeHead(200, { "content-type": "text/plain; version=0.0.4" });
      let offset = 0;
      const more = () => {
        while (offset < body.length) {
          const chunk = body.subarray(offset, offset + 64 * 1024);
          offset += chunk.length;
          if (!res.write(chunk)) return void res.once("drain", more);
        }
        res.end();
      };
      more();
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const backendPort = (server.address() as { port: number }).port;
    const dir = await Deno.makeTempDir();
    await Deno.writeTextFile(
      `${dir}/expexp.yaml`,
      `modules:\n  big:\n    method: http\n    http: {address: 127.0.0.1, port: ${backendPort}}\n`,
    );
    const client = startClientProcess([
      `--config.file=${dir}/expexp.yaml`,
      "--web.listen-address=127.0.0.1:0",
    ]);
    try {
      const port = await listeningPort(client);
      const url = `http://127.0.0.1:${port}/proxy?module=big`;
      await (await fetch(url)).arrayBuffer(); // warm up
      const before = peakRssKiB(client.pid);
      const started = performance.now();
      const sizes = await Promise.all(
        Array.from({ length: 8 }, async () => {
          const response = await fetch(url);
          assert.equal(response.status, 200);
          let bytes = 0;
          for await (const chunk of response.body!) bytes += chunk.byteLength;
          return bytes;
        }),
      );
      const seconds = (performance.now() - started) / 1000;
      const after = peakRssKiB(client.pid);
      for (const bytes of sizes) assert.equal(bytes, body.length);
      const growthMiB = (after - before) / 1024;
      console.log(
        `8 × ${(body.length / 1048576).toFixed(1)} MiB verified scrapes: peak RSS ${
          (before / 1024).toFixed(0)
        } → ${(after / 1024).toFixed(0)} MiB (+${growthMiB.toFixed(0)} MiB), ${
          seconds.toFixed(1)
        } s`,
      );
      // Buffering the bodies, as exporter_exporter does, would need 160 MiB and more.
      assert.ok(growthMiB < 100, `peak RSS grew by ${growthMiB.toFixed(0)} MiB`);
    } finally {
      await client.stop();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
      await Deno.remove(dir, { recursive: true });
    }
  },
});
