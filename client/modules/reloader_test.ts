import assert from "node:assert/strict";
import { Registry } from "prom-client";
import { createNullLogger } from "../../lib/logger.ts";
import { parseConfig } from "./config.ts";
import { createModuleEngine, prepareConfig } from "./engine.ts";
import { createModuleMetrics } from "./metrics.ts";
import { createConfigReloader } from "./reloader.ts";

Deno.test("reload() swaps a valid configuration in and keeps the old one on errors", async () => {
  const registry = new Registry();
  const metrics = createModuleMetrics(registry);
  const first = parseConfig("modules:\n  a:\n    method: file\n    file: {path: /x}\n", "c.yaml");
  const engine = createModuleEngine({
    config: await prepareConfig(first),
    metrics,
    logger: createNullLogger(),
  });
  let text = "modules:\n  b:\n    method: file\n    file: {path: /y}\n";
  const seen: string[][] = [];
  const reloader = createConfigReloader({
    load: () => Promise.resolve(parseConfig(text, "c.yaml")),
    engine,
    metrics,
    logger: createNullLogger(),
    onReload: (config) => seen.push([...config.modules.keys()]),
    now: () => 1_700_000_000_500,
  });
  reloader.markLoaded();

  let result = await reloader.reload();
  assert.deepEqual(result, { ok: true, modules: ["b"] });
  assert.deepEqual([...engine.config.modules.keys()], ["b"]);
  assert.deepEqual(seen, [["b"]]);
  assert.match(await registry.metrics(), /pushprox_client_config_last_reload_successful 1/);
  assert.match(
    await registry.metrics(),
    /pushprox_client_config_last_reload_success_timestamp_seconds 1700000000/,
  );

  text = "modules:\n  c:\n    method: file\n    file: {path: /z}\n    colour: red\n";
  result = await reloader.reload();
  assert.equal(result.ok, false);
  assert.match(!result.ok ? result.error : "", /^c\.yaml:5: modules\.c\.colour: unknown key/);
  assert.deepEqual([...engine.config.modules.keys()], ["b"], "the old configuration stays");
  assert.match(await registry.metrics(), /pushprox_client_config_last_reload_successful 0/);
  assert.equal(seen.length, 1);
});

Deno.test("reload() fails when a backend TLS file is missing", async () => {
  const registry = new Registry();
  const metrics = createModuleMetrics(registry);
  const engine = createModuleEngine({
    config: await prepareConfig(parseConfig("modules: {}\n", "c.yaml")),
    metrics,
    logger: createNullLogger(),
  });
  const reloader = createConfigReloader({
    load: () =>
      Promise.resolve(
        parseConfig(
          "modules:\n  s:\n    method: http\n    http:\n      scheme: https\n      port: 1\n      tls_root_ca_file: /no/such/ca.pem\n",
          "c.yaml",
        ),
      ),
    engine,
    metrics,
    logger: createNullLogger(),
  });
  const result = await reloader.reload();
  assert.equal(result.ok, false);
  assert.match(
    !result.ok ? result.error : "",
    /modules\.s\.http\.tls_root_ca_file: cannot read \/no\/such\/ca\.pem/,
  );
});
