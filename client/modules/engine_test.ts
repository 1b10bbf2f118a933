/**
 * The module engine: choosing the module, the scrape timeout header, file
 * modules and reloading. http modules: engine_http_test.ts; exec modules:
 * engine_exec_test.ts.
 */

import assert from "node:assert/strict";
import { parseConfig } from "./config.ts";
import { prepareConfig } from "./engine.ts";
import { count, engineFor, serve, startBackend, VALID } from "./engine_testing.ts";
import { closing, tempDir } from "../../tests/fixture.ts";

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
  await using backend = closing(await startBackend((_req, res) => res.end(VALID)));
  const { engine } = await engineFor(
    `defaultModule: node\nmodules:\n  node:\n    method: http\n    http:\n      port: ${backend.port}\n`,
  );
  const served = await serve(engine, "");
  assert.equal(served.status, 200);
  assert.equal(served.text, VALID);
});

Deno.test("serve() refuses a malformed scrape timeout header", async () => {
  const { engine } = await engineFor(
    "modules:\n  n:\n    method: http\n    http:\n      port: 9\n",
  );
  const served = await serve(engine, "module=n", { "X-Prometheus-Scrape-Timeout-Seconds": "soon" });
  assert.equal(served.status, 400);
  assert.match(served.error, /X-Prometheus-Scrape-Timeout-Seconds/i);
});

// ---- file -----------------------------------------------------------------------

Deno.test("file module: serves the file and its mtime gauge; a vanished file gets 502", async () => {
  await using temp = await tempDir();
  const dir = temp.path;
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
