/**
 * Drop-in check against the real thing: Debian's exporter_exporter (0.4) and
 * the client's direct listener, started with the same configuration file
 * and the same (Go-style, single-dash) flags, answer Prometheus' requests
 * the same way. Where they differ on purpose the test says so.
 */

import assert from "node:assert/strict";
import { createServer } from "node:http";
import { freePort, hasExecutable, spawn, startClientProcess, type TestProcess } from "./support.ts";

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

      for (const path of ["/proxy?module=nope", "/proxy"]) {
        const [x, y] = await Promise.all([get(theirBase + path), get(ourBase + path)]);
        assert.equal(y.status, x.status, path);
      }
      // The module list: same names in JSON.
      const [theirList, ourList] = await Promise.all([
        get(`${theirBase}/`, { accept: "application/json" }),
        get(`${ourBase}/`, { accept: "application/json" }),
      ]);
      assert.deepEqual(
        Object.keys(JSON.parse(ourList.text)).sort(),
        Object.keys(JSON.parse(theirList.text)).sort(),
      );
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
