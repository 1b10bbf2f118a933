import assert from "node:assert/strict";
import { parseConfig } from "./config.ts";
import { effectiveTimeoutMs, resolveModuleRequest } from "./request.ts";
import { parseScrapeTimeout } from "../../lib/scrape_timeout.ts";

const { modules } = parseConfig(
  "modules:\n  node:\n    method: http\n    http:\n      port: 9100\n  script:\n    method: exec\n    exec:\n      command: /bin/true\n",
  "expexp.yaml",
);

Deno.test("resolveModuleRequest() strips only the first module value (exporter_exporter #23, #61)", () => {
  const resolved = resolveModuleRequest(
    new URLSearchParams("target=a&module=node&module=icmp&args=1&args=2"),
    modules,
  );
  assert.ok(resolved.ok);
  assert.equal(resolved.module.name, "node");
  assert.deepEqual(resolved.backendQuery, [["target", "a"], ["module", "icmp"], ["args", "1"], [
    "args",
    "2",
  ]]);
  assert.deepEqual(resolved.args, ["1", "2"]);
});

Deno.test("resolveModuleRequest() rejects missing, unknown and path-like names", () => {
  assert.deepEqual(resolveModuleRequest(new URLSearchParams(""), modules), {
    ok: false,
    status: 400,
    message: "missing module parameter: use /proxy?module=NAME (modules: node, script)",
  });
  assert.deepEqual(resolveModuleRequest(new URLSearchParams("module=mysql"), modules), {
    ok: false,
    status: 404,
    message: 'unknown module "mysql"',
  });
  // An empty name is an unknown module, as exporter_exporter answers.
  const empty = resolveModuleRequest(new URLSearchParams("module="), modules);
  assert.equal(empty.ok ? 0 : empty.status, 404);
  for (const name of ["../x", "a/b", "c\\d", "x\u0000", "x".repeat(300)]) {
    const resolved = resolveModuleRequest(new URLSearchParams({ module: name }), modules);
    assert.equal(resolved.ok ? 0 : resolved.status, 400, JSON.stringify(name));
  }
});

Deno.test("resolveModuleRequest() falls back to defaultModule", () => {
  const resolved = resolveModuleRequest(new URLSearchParams("target=x"), modules, "script");
  assert.ok(resolved.ok && resolved.module.name === "script");
  const unknown = resolveModuleRequest(new URLSearchParams(""), modules, "gone");
  assert.ok(!unknown.ok && unknown.status === 404);
});

Deno.test("parseScrapeTimeout() and effectiveTimeoutMs()", () => {
  assert.equal(parseScrapeTimeout(null), undefined);
  assert.equal(parseScrapeTimeout("9.5"), 9500);
  assert.throws(() => parseScrapeTimeout("-1"), RangeError);
  assert.throws(() => parseScrapeTimeout("10s"), RangeError);
  // One grammar with the proxy (lib/scrape_timeout.ts): Go's decimal floats.
  assert.equal(parseScrapeTimeout("1e1"), 10_000);
  assert.equal(parseScrapeTimeout(".5"), 500);
  assert.equal(parseScrapeTimeout("5."), 5_000);
  assert.equal(effectiveTimeoutMs(undefined, undefined), undefined);
  assert.equal(effectiveTimeoutMs(1000, undefined), 1000);
  assert.equal(effectiveTimeoutMs(undefined, 9500), 9500);
  assert.equal(effectiveTimeoutMs(1000, 9500), 1000);
  assert.equal(effectiveTimeoutMs(20000, 9500), 9500);
});
