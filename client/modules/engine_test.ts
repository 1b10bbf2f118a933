import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { gunzipSync, gzipSync } from "node:zlib";
import { Registry } from "prom-client";
import { createLogger, createNullLogger } from "../../lib/logger.ts";
import { parseConfig } from "./config.ts";
import { createModuleEngine, type ModuleEngine, prepareConfig } from "./engine.ts";
import { createModuleMetrics, type ModuleMetrics } from "./metrics.ts";

const VALID = "# HELP up Whether up.\n# TYPE up gauge\nup 1\n";

interface Backend {
  port: number;
  requests: IncomingMessage[];
  close(): Promise<void>;
}

async function startBackend(
  handler: (req: IncomingMessage, res: ServerResponse) => void,
): Promise<Backend> {
  const requests: IncomingMessage[] = [];
  const server: Server = createServer((req, res) => {
    requests.push(req);
    handler(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as AddressInfo).port,
    requests,
    async close() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

interface Harness {
  engine: ModuleEngine;
  metrics: ModuleMetrics;
  registry: Registry;
}

async function engineFor(yaml: string, options: { windowBytes?: number } = {}): Promise<Harness> {
  const registry = new Registry();
  const metrics = createModuleMetrics(registry);
  const engine = createModuleEngine({
    config: await prepareConfig(parseConfig(yaml, "expexp.yaml")),
    metrics,
    logger: createNullLogger(),
    execMaxOutputBytes: 1024 * 1024,
    ...options,
  });
  return { engine, metrics, registry };
}

interface Served {
  status: number;
  headers: Map<string, string>;
  error: string;
  bytes: Uint8Array;
  text: string;
  /** Set when the body failed after the status. */
  thrown?: Error;
}

async function serve(
  engine: ModuleEngine,
  query: string,
  headers: Record<string, string> = {},
  signal: AbortSignal = AbortSignal.timeout(10_000),
): Promise<Served> {
  const response = await engine.serve({
    query: new URLSearchParams(query),
    headers: Object.entries(headers).map(([name, value]) => ({ name, value })),
  }, signal);
  const chunks: Uint8Array[] = [];
  let thrown: Error | undefined;
  if (response.body) {
    try {
      for await (const chunk of response.body) chunks.push(chunk);
    } catch (error) {
      thrown = error as Error;
    }
  }
  const bytes = new Uint8Array(Buffer.concat(chunks));
  return {
    status: response.status,
    headers: new Map(response.headers.map((h) => [h.name, h.value])),
    error: response.error,
    bytes,
    text: new TextDecoder().decode(bytes),
    ...(thrown ? { thrown } : {}),
  };
}

async function count(
  metric: { get(): Promise<{ values: { labels: object; value: number }[] }> },
  module: string,
): Promise<number> {
  const { values } = await metric.get();
  return values.find((v) => (v.labels as { module?: string }).module === module)?.value ?? 0;
}

// ---- resolution ---------------------------------------------------------------

Deno.test("serve() answers 404 naming an unknown module, 400 for a missing or path-like name", async () => {
  const { engine, metrics } = await engineFor(
    "modules:\n  node:\n    method: http\n    http:\n      port: 9\n",
  );
  let served = await serve(engine, "module=nope");
  assert.equal(served.status, 404);
  assert.match(served.error, /unknown module "nope"/);
  assert.equal(await count(metrics.errors, "unknown"), 1);

  served = await serve(engine, "target=x");
  assert.equal(served.status, 400);
  assert.match(served.error, /missing module parameter.*modules: node/);

  for (const name of ["../etc/passwd", "a/b", "a\\b", ".."]) {
    served = await serve(engine, `module=${encodeURIComponent(name)}`);
    assert.equal(served.status, 400, name);
  }
  // An empty name names no module: 404, as exporter_exporter answers.
  assert.equal((await serve(engine, "module=")).status, 404);
});

Deno.test("serve() uses defaultModule when no module is named", async () => {
  const backend = await startBackend((_req, res) => res.end(VALID));
  try {
    const { engine } = await engineFor(
      `defaultModule: node\nmodules:\n  node:\n    method: http\n    http:\n      port: ${backend.port}\n`,
    );
    const served = await serve(engine, "");
    assert.equal(served.status, 200);
    assert.equal(served.text, VALID);
  } finally {
    await backend.close();
  }
});

// ---- http -----------------------------------------------------------------------

Deno.test("http module: query, headers, host override and basic auth reach the backend", async () => {
  const backend = await startBackend((_req, res) => {
    res.writeHead(200, { "content-type": "text/plain; version=0.0.4" }).end(VALID);
  });
  try {
    const { engine } = await engineFor(`
modules:
  blackbox:
    method: http
    timeout: 30s
    http:
      address: 127.0.0.1
      port: ${backend.port}
      path: /probe?debug=false
      headers:
        foo: bar
        host: exporter.internal
      basic_auth_username: user
      basic_auth_password: secret
`);
    const served = await serve(
      engine,
      "module=blackbox&module=icmp&target=example.com&args=x",
      {
        Authorization: "Bearer front-door",
        Accept: "text/plain",
        "X-Prometheus-Scrape-Timeout-Seconds": "10",
        Foo: "incoming",
      },
    );
    assert.equal(served.status, 200, served.error);
    assert.equal(served.text, VALID);
    const req = backend.requests[0]!;
    assert.equal(req.url, "/probe?module=icmp&target=example.com&args=x&debug=false");
    assert.equal(req.headers.host, "exporter.internal");
    assert.equal(req.headers.foo, "bar");
    assert.equal(req.headers.accept, "text/plain");
    assert.equal(
      req.headers.authorization,
      `Basic ${Buffer.from("user:secret").toString("base64")}`,
    );
    assert.equal(req.headers["x-prometheus-scrape-timeout-seconds"], "10");
  } finally {
    await backend.close();
  }
});

Deno.test("http module: the front door's Authorization is not passed to the backend", async () => {
  const backend = await startBackend((_req, res) => res.end(VALID));
  try {
    const { engine } = await engineFor(
      `modules:\n  node:\n    method: http\n    http:\n      port: ${backend.port}\n      address: 127.0.0.1\n`,
    );
    await serve(engine, "module=node", { Authorization: "Bearer front-door" });
    assert.equal(backend.requests[0]!.headers.authorization, undefined);
  } finally {
    await backend.close();
  }
});

Deno.test("http module: gzip bodies pass through byte for byte and are verified", async () => {
  const big = VALID + Array.from({ length: 20000 }, (_, i) => `m_total{i="${i}"} ${i}\n`).join("");
  const body = "# TYPE m_total counter\n" + big.replace(VALID, "");
  const zipped = gzipSync(VALID + body);
  const backend = await startBackend((_req, res) => {
    res.writeHead(200, { "content-encoding": "gzip", "content-type": "text/plain" }).end(zipped);
  });
  try {
    const { engine } = await engineFor(
      `modules:\n  node:\n    method: http\n    http:\n      port: ${backend.port}\n      address: 127.0.0.1\n`,
      { windowBytes: 1024 },
    );
    const served = await serve(engine, "module=node", { "Accept-Encoding": "gzip" });
    assert.equal(served.status, 200, served.error);
    assert.equal(served.thrown, undefined);
    assert.equal(served.headers.get("content-encoding"), "gzip");
    assert.deepEqual(served.bytes, new Uint8Array(zipped));
    assert.equal(gunzipSync(served.bytes).toString(), VALID + body);
  } finally {
    await backend.close();
  }
});

Deno.test("http module: OpenMetrics with info and unknown types passes verification", async () => {
  const om = '# TYPE build info\nbuild_info{version="1"} 1\n# TYPE thing unknown\nthing 3\n# EOF\n';
  const backend = await startBackend((_req, res) => {
    res.writeHead(200, {
      "content-type": "application/openmetrics-text; version=1.0.0; charset=utf-8",
    }).end(om);
  });
  try {
    const { engine } = await engineFor(
      `modules:\n  app:\n    method: http\n    http:\n      port: ${backend.port}\n      address: 127.0.0.1\n`,
    );
    const served = await serve(engine, "module=app");
    assert.equal(served.status, 200, served.error);
    assert.equal(served.text, om);
  } finally {
    await backend.close();
  }
});

Deno.test("http module: garbage gets 502 with the reason and counts as malformed", async () => {
  const backend = await startBackend((_req, res) => {
    res.writeHead(200, { "content-type": "text/html" }).end("<html><body>oops</body></html>\n");
  });
  try {
    const { engine, metrics } = await engineFor(
      `modules:\n  app:\n    method: http\n    http:\n      port: ${backend.port}\n      address: 127.0.0.1\n`,
    );
    const served = await serve(engine, "module=app");
    assert.equal(served.status, 502);
    assert.match(served.error, /module app: the backend's answer failed verification: line 1/);
    assert.equal(await count(metrics.malformed, "app"), 1);
    assert.equal(await count(metrics.errors, "app"), 1);
  } finally {
    await backend.close();
  }
});

Deno.test("http module: verify: false and non-200 answers pass through unchecked", async () => {
  const backend = await startBackend((req, res) => {
    if (req.url?.startsWith("/missing")) res.writeHead(404).end("not here");
    else res.end("garbage{");
  });
  try {
    const { engine } = await engineFor(`
modules:
  raw:
    method: http
    http:
      port: ${backend.port}
      address: 127.0.0.1
      verify: false
  missing:
    method: http
    http:
      port: ${backend.port}
      address: 127.0.0.1
      path: /missing
`);
    let served = await serve(engine, "module=raw");
    assert.equal(served.status, 200);
    assert.equal(served.text, "garbage{");
    served = await serve(engine, "module=missing");
    assert.equal(served.status, 404);
    assert.equal(served.text, "not here");
  } finally {
    await backend.close();
  }
});

Deno.test("http module: invalid content after the window aborts the body and counts", async () => {
  const lines = Array.from({ length: 50000 }, (_, i) => `m{i="${i}"} ${i}\n`).join("");
  const backend = await startBackend((_req, res) => {
    res.write(lines.slice(0, 100000));
    setTimeout(() => res.end(lines.slice(100000) + "not a metric line at all\n"), 50);
  });
  try {
    const { engine, metrics } = await engineFor(
      `modules:\n  app:\n    method: http\n    http:\n      port: ${backend.port}\n      address: 127.0.0.1\n`,
      { windowBytes: 1024 },
    );
    const served = await serve(engine, "module=app");
    assert.equal(served.status, 200);
    assert.ok(served.thrown, "the body failed");
    assert.match(served.thrown!.message, /line 50001/);
    assert.ok(served.bytes.byteLength < lines.length, "the invalid end was not passed on");
    assert.equal(await count(metrics.malformed, "app"), 1);
  } finally {
    await backend.close();
  }
});

Deno.test("http module: a backend that closes mid-body gets 502, or an aborted body after the window", async () => {
  const backend = await startBackend((req, res) => {
    res.writeHead(200, { "content-length": "1000000" });
    res.write(req.url!.includes("big") ? "m 1\n".repeat(100000) : "m 1\n");
    setTimeout(() => res.socket?.destroy(), 20);
  });
  try {
    const { engine } = await engineFor(
      `
modules:
  small:
    method: http
    http: {address: 127.0.0.1, port: ${backend.port}}
  big:
    method: http
    http: {address: 127.0.0.1, port: ${backend.port}, path: /big}
`,
      { windowBytes: 1024 },
    );
    let served = await serve(engine, "module=small");
    assert.equal(served.status, 502);
    assert.match(served.error, /module small: the backend closed the connection mid-body/);
    served = await serve(engine, "module=big");
    assert.equal(served.status, 200);
    assert.match(served.thrown?.message ?? "", /closed the connection mid-body/);
  } finally {
    await backend.close();
  }
});

Deno.test("http module: an unreachable backend gets 502 naming it", async () => {
  const backend = await startBackend(() => {});
  const port = backend.port;
  await backend.close();
  const { engine } = await engineFor(
    `modules:\n  node:\n    method: http\n    http:\n      port: ${port}\n      address: 127.0.0.1\n`,
  );
  const served = await serve(engine, "module=node");
  assert.equal(served.status, 502);
  assert.match(served.error, new RegExp(`backend http://127.0.0.1:${port}/metrics did not answer`));
});

Deno.test("http module: the lower of module timeout and scrape timeout gives 504", async () => {
  const backend = await startBackend(() => {/* never answers */});
  try {
    const { engine, metrics } = await engineFor(
      `modules:\n  slow:\n    method: http\n    timeout: 10s\n    http:\n      port: ${backend.port}\n      address: 127.0.0.1\n`,
    );
    const started = Date.now();
    const served = await serve(engine, "module=slow", {
      "X-Prometheus-Scrape-Timeout-Seconds": "0.3",
    });
    const took = Date.now() - started;
    assert.equal(served.status, 504);
    assert.match(served.error, /no complete answer within 300ms/);
    assert.ok(took < 3000, `took ${took}ms`);
    assert.equal(await count(metrics.timeouts, "slow"), 1);
  } finally {
    await backend.close();
  }
});

Deno.test("serve() refuses a malformed scrape timeout header", async () => {
  const { engine } = await engineFor(
    "modules:\n  n:\n    method: http\n    http:\n      port: 9\n",
  );
  const served = await serve(engine, "module=n", { "X-Prometheus-Scrape-Timeout-Seconds": "soon" });
  assert.equal(served.status, 400);
  assert.match(served.error, /X-Prometheus-Scrape-Timeout-Seconds/i);
});

// ---- exec -----------------------------------------------------------------------

async function script(dir: string, name: string, text: string): Promise<string> {
  const path = `${dir}/${name}`;
  await Deno.writeTextFile(path, `#!/bin/sh\n${text}\n`);
  await Deno.chmod(path, 0o755);
  return path;
}

Deno.test("exec module: output, configured args then args= values, exact env, gzip", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = await script(
      dir,
      "args.sh",
      'echo "# TYPE args gauge"; i=0; for a in "$@"; do i=$((i+1)); echo "args{n=\\"$i\\",v=\\"$a\\"} 1"; done; if /usr/bin/env | /bin/grep -q ^PATH=; then echo env_path 1; else echo env_path 0; fi; echo "env_thing{v=\\"$THING\\"} 1"',
    );
    const { engine, metrics } = await engineFor(`
modules:
  script:
    method: exec
    exec:
      command: ${path}
      args: [one, two]
      env:
        THING: "1"
`);
    const served = await serve(engine, "module=script&args=three&args=four%20five");
    assert.equal(served.status, 200, served.error);
    assert.match(served.headers.get("content-type")!, /^text\/plain; version=0\.0\.4/);
    assert.match(
      served.text,
      /args\{n="1",v="one"\} 1\nargs\{n="2",v="two"\} 1\nargs\{n="3",v="three"\} 1\nargs\{n="4",v="four five"\} 1/,
    );
    assert.match(served.text, /env_thing\{v="1"\}/);
    // exporter_exporter's semantics: a non-empty env is the whole environment.
    assert.match(served.text, /^env_path 0$/m);
    assert.equal(await count(metrics.commandStarts, "script"), 1);

    const zipped = await serve(engine, "module=script", { "Accept-Encoding": "gzip" });
    assert.equal(zipped.headers.get("content-encoding"), "gzip");
    assert.match(gunzipSync(zipped.bytes).toString(), /args\{n="1",v="one"\}/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("exec module: a successful command's stderr is logged, bounded and rate-limited", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = await script(
      dir,
      "noisy.sh",
      'echo "deprecated option used" >&2; head -c 5000 /dev/zero | tr "\\0" x >&2; echo "# TYPE ok gauge"; echo "ok 1"',
    );
    const lines: string[] = [];
    let clock = 0;
    const engine = createModuleEngine({
      config: await prepareConfig(parseConfig(
        `modules:\n  noisy:\n    method: exec\n    exec:\n      command: ${path}\n`,
        "expexp.yaml",
      )),
      metrics: createModuleMetrics(new Registry()),
      logger: createLogger({ level: "warn", format: "json", write: (line) => lines.push(line) }),
      stderrLogIntervalMs: 10_000,
      now: () => clock,
    });
    for (const at of [0, 1_000, 2_000, 12_000]) {
      clock = at;
      const served = await serve(engine, "module=noisy");
      assert.equal(served.status, 200, served.error);
    }
    const records = lines.map((line) => JSON.parse(line));
    assert.equal(records.length, 2, "one line per 10 s per module");
    assert.equal(records[0].msg, "Command wrote to stderr");
    assert.equal(records[0].module, "noisy");
    assert.match(records[0].stderr, /x{100}$/);
    assert.ok(records[0].stderr.length <= 2048, "bounded");
    assert.equal(records[1].skipped, 2);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

function processGone(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    // Field 3 is the state; a zombie (Z) is dead, only not yet reaped.
    return /^\d+ \(.*\) [ZX]/.test(stat);
  } catch {
    return true;
  }
}

Deno.test({
  name: "exec module: a hanging command gets 504 and its whole process group is killed",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const dir = await Deno.makeTempDir();
    try {
      const path = await script(
        dir,
        "hang.sh",
        `sleep 300 & echo $! > ${dir}/grandchild.pid; wait`,
      );
      const { engine, metrics } = await engineFor(
        `modules:\n  hang:\n    method: exec\n    timeout: 500ms\n    exec:\n      command: ${path}\n`,
      );
      const started = Date.now();
      const served = await serve(engine, "module=hang");
      assert.equal(served.status, 504);
      assert.match(served.error, /module hang: no complete answer within 500ms/);
      assert.ok(Date.now() - started < 3000);
      const grandchild = Number(await Deno.readTextFile(`${dir}/grandchild.pid`));
      assert.ok(grandchild > 0);
      for (let i = 0; i < 20 && !processGone(grandchild); i++) {
        await new Promise((r) => setTimeout(r, 50));
      }
      assert.ok(processGone(grandchild), `grandchild ${grandchild} still runs`);
      assert.equal(await count(metrics.timeouts, "hang"), 1);
      assert.equal(await count(metrics.commandFails, "hang"), 1);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("exec module: endless output is cut at --exec.max-output-bytes with 502", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = await script(dir, "yes.sh", "exec yes 'm 1'");
    const { engine, metrics } = await engineFor(
      `modules:\n  flood:\n    method: exec\n    timeout: 20s\n    exec:\n      command: ${path}\n`,
    );
    const before = Deno.memoryUsage().rss;
    const served = await serve(engine, "module=flood");
    assert.equal(served.status, 502);
    assert.match(
      served.error,
      /command output exceeded 1048576 bytes \(--exec\.max-output-bytes\)/,
    );
    assert.ok(Deno.memoryUsage().rss - before < 64 * 1024 * 1024);
    assert.equal(await count(metrics.commandFails, "flood"), 1);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("exec module: a non-zero exit gets 502 with the status and stderr", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = await script(dir, "fail.sh", "echo 'm 1'; echo 'disk on fire' >&2; exit 3");
    const { engine } = await engineFor(
      `modules:\n  fail:\n    method: exec\n    exec:\n      command: ${path}\n`,
    );
    const served = await serve(engine, "module=fail");
    assert.equal(served.status, 502);
    assert.match(served.error, /module fail: command exited with status 3; stderr: "disk on fire"/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("exec module: invalid output gets 502; a missing command gets 502", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = await script(dir, "bad.sh", "echo 'this is not metrics'");
    const { engine, metrics } = await engineFor(`
modules:
  bad:
    method: exec
    exec: {command: ${path}}
  missing:
    method: exec
    exec: {command: no-such-command-anywhere}
`);
    let served = await serve(engine, "module=bad");
    assert.equal(served.status, 502);
    assert.match(served.error, /command output is not valid Prometheus text format: line 1/);
    assert.equal(await count(metrics.malformed, "bad"), 1);
    served = await serve(engine, "module=missing");
    assert.equal(served.status, 502);
    assert.match(served.error, /command "no-such-command-anywhere" not found in PATH/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("exec module: a bare command name is found in the client's PATH", async () => {
  const { engine } = await engineFor(
    `modules:\n  echo:\n    method: exec\n    exec:\n      command: echo\n      args: ["m 1"]\n      env: {A: b}\n`,
  );
  const served = await serve(engine, "module=echo");
  assert.equal(served.status, 200, served.error);
  assert.equal(served.text, "m 1\n");
});

// ---- file -----------------------------------------------------------------------

Deno.test("file module: serves the file and its mtime gauge; a vanished file gets 502", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/cron.prom`;
    await Deno.writeTextFile(path, "# TYPE backup_ok gauge\nbackup_ok 1");
    const { engine, metrics } = await engineFor(
      `modules:\n  cron:\n    method: file\n    file:\n      path: ${path}\n`,
    );
    let served = await serve(engine, "module=cron");
    assert.equal(served.status, 200, served.error);
    const mtime = (await Deno.stat(path)).mtime!.getTime() / 1000;
    assert.equal(
      served.text,
      `# TYPE backup_ok gauge\nbackup_ok 1\n# HELP expexp_file_mtime_timestamp Time of modification of parsed file\n# TYPE expexp_file_mtime_timestamp gauge\nexpexp_file_mtime_timestamp{module="cron",path="${path}"} ${mtime}\n`,
    );

    await Deno.writeTextFile(path, "<html>\n");
    served = await serve(engine, "module=cron");
    assert.equal(served.status, 502);
    assert.match(served.error, /failed verification: line 1/);

    await Deno.remove(path);
    served = await serve(engine, "module=cron");
    assert.equal(served.status, 502);
    assert.match(served.error, new RegExp(`module cron: cannot read ${path}: No such file`));
    assert.equal(await count(metrics.fileFails, "cron"), 1);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name: "file module: a FIFO nobody writes to gets 504 at the deadline",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const dir = await Deno.makeTempDir();
    const path = `${dir}/pipe`;
    try {
      const made = await new Deno.Command("mkfifo", { args: [path] }).output();
      assert.ok(made.success);
      const { engine, metrics } = await engineFor(
        `modules:\n  pipe:\n    method: file\n    timeout: 300ms\n    file:\n      path: ${path}\n`,
      );
      const started = Date.now();
      const served = await serve(engine, "module=pipe");
      assert.equal(served.status, 504);
      assert.match(served.error, /module pipe: no complete answer within 300ms/);
      assert.ok(Date.now() - started < 3000);
      assert.equal(await count(metrics.timeouts, "pipe"), 1);
    } finally {
      // Unblock the open still waiting for a writer.
      const writer = await Deno.open(path, { write: true });
      writer.close();
      await new Promise((r) => setTimeout(r, 100));
      await Deno.remove(dir, { recursive: true });
    }
  },
});

// ---- reload -----------------------------------------------------------------------

Deno.test("replace() serves new requests from the new configuration", async () => {
  const { engine } = await engineFor(
    "modules:\n  a:\n    method: http\n    http:\n      port: 9\n",
  );
  assert.equal((await serve(engine, "module=b")).status, 404);
  engine.replace(
    await prepareConfig(
      parseConfig(
        "modules:\n  b:\n    method: exec\n    exec: {command: echo, args: [m 1]}\n",
        "x",
      ),
    ),
  );
  assert.equal((await serve(engine, "module=b")).status, 200);
  assert.equal((await serve(engine, "module=a")).status, 404);
});
