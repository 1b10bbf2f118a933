/**
 * Drop-in check against the real thing: Debian's exporter_exporter (0.4) and
 * the client's direct listener, started with the same configuration file
 * and the same (Go-style, single-dash) flags, answer Prometheus' requests
 * the same way. Where they differ on purpose the test says so.
 */

import assert from "node:assert/strict";
import { createServer } from "node:http";
import { createServer as createNetServer } from "node:net";
import { parseConfig } from "../../client/modules/config.ts";
import {
  DENO,
  denoEnv,
  freePort,
  hasExecutable,
  ROOT,
  spawn,
  startClientProcess,
  type TestProcess,
} from "../support.ts";

const EXPEXP = "/usr/bin/prometheus-exporter-exporter";
const missing = !hasExecutable(EXPEXP);
if (missing) {
  console.warn(
    `SKIPPED exporter_exporter comparison: ${EXPEXP} not installed (apt-get install prometheus-exporter-exporter)`,
  );
}

async function get(url: string, headers: Record<string, string> = {}) {
  const response = await fetch(url, { headers });
  return {
    status: response.status,
    text: await response.text(),
    type: response.headers.get("content-type"),
  };
}

Deno.test({
  name:
    "the direct listener answers like Debian's exporter_exporter 0.4 with the same config and flags",
  ignore: missing,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const backend = createServer((req, res) => {
      const url = new URL(req.url!, "http://x");
      if (url.pathname === "/garbage") {
        res.writeHead(200, { "content-type": "text/plain" }).end("<html>oops</html>\n");
        return;
      }
      res.writeHead(200, { "content-type": "text/plain; version=0.0.4" }).end(
        `# TYPE seen gauge\nseen{query="${url.search}",foo="${req.headers["foo"] ?? ""}"} 1\n`,
      );
    });
    await new Promise<void>((resolve) => backend.listen(0, "127.0.0.1", resolve));
    const backendPort = (backend.address() as { port: number }).port;
    const dir = await Deno.makeTempDir();
    const processes: TestProcess[] = [];
    try {
      await Deno.writeTextFile(
        `${dir}/expexp.yaml`,
        `modules:
  node:
    method: http
    http:
      address: 127.0.0.1
      port: ${backendPort}
      headers:
        foo: bar
  blackbox:
    method: http
    http:
      address: 127.0.0.1
      port: ${backendPort}
      path: /probe
  garbage:
    method: http
    http:
      address: 127.0.0.1
      port: ${backendPort}
      path: /garbage
  script:
    method: exec
    exec:
      command: /bin/echo
      args: ["script_ok 1"]
`,
      );
      const theirPort = await freePort();
      const theirs = spawn(EXPEXP, [
        `-config.file=${dir}/expexp.yaml`,
        `-web.listen-address=127.0.0.1:${theirPort}`,
        "-log.level=info",
      ]);
      processes.push(theirs);
      // Single-dash Go-style flags, as in /etc/default/prometheus-exporter-exporter.
      const ours = startClientProcess([
        `-config.file=${dir}/expexp.yaml`,
        "-web.listen-address=127.0.0.1:0",
      ]);
      processes.push(ours);
      const match = await ours.waitFor(/address=127\.0\.0\.1:(\d+) listener="modules http"/);
      const ourPort = Number(match[1]);
      const theirBase = `http://127.0.0.1:${theirPort}`;
      const ourBase = `http://127.0.0.1:${ourPort}`;
      for (let i = 0; i < 50; i++) {
        try {
          await get(`${theirBase}/metrics`);
          break;
        } catch {
          await new Promise((r) => setTimeout(r, 100));
        }
      }

      for (
        const path of [
          "/proxy?module=node",
          "/proxy?module=blackbox&module=icmp&target=example.com",
          "/proxy?module=node&extra=1&extra=2",
        ]
      ) {
        const [a, b] = await Promise.all([get(theirBase + path), get(ourBase + path)]);
        assert.equal(b.status, a.status, path);
        assert.equal(b.text, a.text, path);
      }
      // exec output: both 200 with the same samples (exporter_exporter re-encodes).
      const [a, b] = await Promise.all([
        get(`${theirBase}/proxy?module=script`),
        get(`${ourBase}/proxy?module=script`),
      ]);
      assert.equal(a.status, 200);
      assert.equal(b.status, 200);
      assert.match(a.text, /^script_ok 1$/m);
      assert.match(b.text, /^script_ok 1$/m);

      for (const path of ["/proxy?module=nope", "/proxy", "/proxy?module="]) {
        const [x, y] = await Promise.all([get(theirBase + path), get(ourBase + path)]);
        assert.equal(y.status, x.status, path);
      }
      // The module list: same names in JSON.
      const [theirList, ourList] = await Promise.all([
        get(`${theirBase}/`, { accept: "application/json" }),
        get(`${ourBase}/`, { accept: "application/json" }),
      ]);
      // The module list: exporter_exporter's JSON field for field, secrets redacted.
      const theirJson = JSON.parse(theirList.text);
      for (const module of Object.values(theirJson) as Record<string, Record<string, unknown>>[]) {
        const { HTTP: http, Exec: exec } = module as {
          HTTP: { Headers: Record<string, string> | null };
          Exec: { Args: string[] | null; Env: Record<string, string> | null };
        };
        for (const name of Object.keys(http.Headers ?? {})) http.Headers![name] = "<secret>";
        if (exec.Args) exec.Args = exec.Args.map(() => "<secret>");
        for (const name of Object.keys(exec.Env ?? {})) exec.Env![name] = "<secret>";
      }
      assert.deepEqual(JSON.parse(ourList.text), theirJson);
      // On purpose: a verification failure is 502 with the reason here, 500 with a fixed text there.
      const [theirBad, ourBad] = await Promise.all([
        get(`${theirBase}/proxy?module=garbage`),
        get(`${ourBase}/proxy?module=garbage`),
      ]);
      assert.equal(theirBad.status, 500);
      assert.equal(ourBad.status, 502);
      assert.match(ourBad.text, /failed verification: line 1/);
    } finally {
      await Promise.all(processes.map((p) => p.stop()));
      backend.closeAllConnections();
      await new Promise((resolve) => backend.close(resolve));
      await Deno.remove(dir, { recursive: true });
    }
  },
});

// ---- started as Debian's unit starts exporter_exporter ------------------------------

/** Debian's unit: `ExecStart=/usr/bin/prometheus-exporter-exporter $ARGS`. */
const DEBIAN_UNIT = "/lib/systemd/system/prometheus-exporter-exporter.service";
const DEBIAN_CONFIG = "/etc/prometheus/exporter-exporter.yml";
const README_CONFIG = new URL("../../client/modules/testdata/expexp_readme.yaml", import.meta.url);
/** The same script as tests/e2e/modules_cli_test.ts writes (same bytes, so either may own it). */
const SCRIPT = "/tmp/myscript.sh";
const SCRIPT_TEXT =
  '#!/bin/sh\n# pushprox modules test\necho "# TYPE somescript_args gauge"\necho "somescript_args{a=\\"$1\\",b=\\"$2\\",thing=\\"$THING$THING2\\"} 1"\n';

/**
 * Starts the client the way a renamed bundle or binary starts: a main module
 * named `prometheus-exporter-exporter`, the unit's `$ARGS` split on spaces
 * as systemd splits an unquoted variable.
 */
async function startAsDebianUnit(dir: string, args: string): Promise<TestProcess> {
  const launcher = `${dir}/prometheus-exporter-exporter.ts`;
  await Deno.writeTextFile(
    launcher,
    `import { main } from ${
      JSON.stringify(new URL("../../client/main.ts", import.meta.url).href)
    };\n` +
      "Deno.exit(await main(Deno.args));\n",
  );
  return spawn(DENO, [
    "run",
    "--allow-all",
    `--config=${ROOT}deno.json`,
    launcher,
    ...args.split(/\s+/).filter((arg) => arg !== ""),
  ], { env: denoEnv() });
}

async function waitForHttp(url: string, process: TestProcess): Promise<void> {
  for (let i = 0; i < 150; i++) {
    try {
      const response = await fetch(url);
      await response.body?.cancel();
      return;
    } catch {
      const exited = await Promise.race([
        process.status.then(() => true),
        new Promise<false>((resolve) => setTimeout(() => resolve(false), 100)),
      ]);
      if (exited) throw new Error(`exited before listening:\n${process.output()}`);
    }
  }
  throw new Error(`not listening:\n${process.output()}`);
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createNetServer();
    server.once("error", () => resolve(false));
    server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)));
  });
}

Deno.test({
  name: "started as Debian's unit starts exporter_exporter, with no flags but a loopback address",
  ignore: !hasExecutable(DENO),
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    let debianConfig: string;
    try {
      debianConfig = await Deno.readTextFile(DEBIAN_CONFIG);
      await Deno.stat(DEBIAN_UNIT);
    } catch {
      console.warn(`SKIPPED Debian-unit start: ${DEBIAN_CONFIG} or ${DEBIAN_UNIT} missing`);
      return;
    }
    const dir = await Deno.makeTempDir();
    let process: TestProcess | undefined;
    try {
      const port = await freePort();
      // deploy/'s stand-in for /usr/bin/prometheus-exporter-exporter, run as the
      // unit runs it: ARGS="" in /etc/default/prometheus-exporter-exporter;
      // only a loopback address is added.
      process = spawn(`${ROOT}deploy/exporter_exporter/prometheus-exporter-exporter`, [
        `-web.listen-address=127.0.0.1:${port}`,
      ], {
        env: {
          ...denoEnv(),
          PUSHPROX_DENO: DENO,
          PUSHPROX_CLIENT: `${ROOT}client/main.ts`,
        },
      });
      await waitForHttp(`http://127.0.0.1:${port}/-/healthy`, process);
      const listing = await fetch(`http://127.0.0.1:${port}/`, {
        headers: { accept: "application/json" },
      });
      const expected = [...parseConfig(debianConfig, DEBIAN_CONFIG).modules.keys()].sort();
      assert.deepEqual(Object.keys(await listing.json()).sort(), expected);
      // exporter_exporter's default level is warn: no info lines.
      assert.doesNotMatch(process.output(), /level=info/);
    } finally {
      await process?.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "started as Debian's unit with the seed README's example config, modules are scraped",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    if (!(await portFree(9100))) {
      console.warn("SKIPPED README example as Debian's unit: port 9100 (fixed in it) is in use");
      return;
    }
    try {
      if ((await Deno.readTextFile(SCRIPT)) !== SCRIPT_TEXT) {
        console.warn(`SKIPPED README example as Debian's unit: ${SCRIPT} is not this test's`);
        return;
      }
    } catch {
      // absent: written below
    }
    const dir = await Deno.makeTempDir();
    const node = createServer((_req, res) => {
      res.writeHead(200, { "content-type": "text/plain; version=0.0.4" })
        .end("# TYPE node_load1 gauge\nnode_load1 0.25\n");
    });
    let process: TestProcess | undefined;
    try {
      await new Promise<void>((resolve) => node.listen(9100, "127.0.0.1", resolve));
      await Deno.writeTextFile(SCRIPT, SCRIPT_TEXT);
      await Deno.chmod(SCRIPT, 0o755);
      await Deno.copyFile(README_CONFIG, `${dir}/exporter-exporter.yml`);
      const port = await freePort();
      process = await startAsDebianUnit(
        dir,
        `-config.file=${dir}/exporter-exporter.yml -web.listen-address=127.0.0.1:${port}`,
      );
      const base = `http://127.0.0.1:${port}`;
      await waitForHttp(`${base}/-/healthy`, process);
      const nodeAnswer = await get(`${base}/proxy?module=node`);
      assert.equal(nodeAnswer.status, 200);
      assert.equal(nodeAnswer.text, "# TYPE node_load1 gauge\nnode_load1 0.25\n");
      const script = await get(`${base}/proxy?module=somescript`);
      assert.equal(script.status, 200);
      assert.match(script.text, /somescript_args\{a="myarg1",b="myarg2",thing="12"\} 1/);
      const listing = JSON.parse((await get(`${base}/`, { accept: "application/json" })).text);
      assert.deepEqual(Object.keys(listing).sort(), [
        "cadvisor",
        "mtail",
        "netdata",
        "node",
        "somescript",
      ]);
      assert.equal(listing.mtail.HTTP.Headers.foo, "<secret>");
    } finally {
      await process?.stop();
      node.closeAllConnections();
      await new Promise((resolve) => node.close(resolve));
      await Deno.remove(dir, { recursive: true });
    }
  },
});
