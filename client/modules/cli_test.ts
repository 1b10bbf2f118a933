import assert from "node:assert/strict";
import { parseFlags } from "../../lib/flags.ts";
import { parseConfig } from "./config.ts";
import { announcedModules, MODULE_FLAGS, readModuleSettings } from "./cli.ts";

Deno.test("announcedModules() leaves out names the proxy would refuse", () => {
  const config = parseConfig(
    'modules:\n  node:\n    method: file\n    file: {path: /a}\n  "with space":\n    method: file\n    file: {path: /b}\n',
    "c.yaml",
  );
  assert.deepEqual(announcedModules(config), ["node"]);
});

Deno.test("readModuleSettings() checks flag combinations", async () => {
  const read = (args: string[]) => readModuleSettings(parseFlags(MODULE_FLAGS, args));
  await assert.rejects(read(["--web.tls.certmatch=x"]), /needs --web\.tls\.verify/);
  await assert.rejects(read(["--web.tls.verify"]), /need --web\.tls\.listen-address/);
  await assert.rejects(
    read(["--web.bearer.token=a", "--web.bearer.token-file=/x"]),
    /mutually exclusive/,
  );
  await assert.rejects(read(["--web.config.file=/x"]), /applies to --web\.listen-address/);
  await assert.rejects(read(["--allow.net=nope"]), /--allow\.net: Cannot parse network/);
  await assert.rejects(
    read(["--web.tls.certmatch=(", "--web.tls.verify", "--web.tls.listen-address=:0"]),
    /--web\.tls\.certmatch:/,
  );
  await assert.rejects(read(["-web.proxy-path=/metrics"]), /must differ/);
  await assert.rejects(read(["-web.telemetry-path=metrics"]), /must start with \//);
  await assert.rejects(read(["-web.proxy-path=/"]), /is taken/);
  const paths = await read(["-web.proxy-path=/p", "-web.telemetry-path=/m"]);
  assert.deepEqual([paths.proxyPath, paths.telemetryPath], ["/p", "/m"]);
  const settings = await read([]);
  assert.equal(settings.configured, false);
  assert.equal(settings.initial.config.modules.size, 0);
  assert.equal(settings.verifyMaxBytes, 268435456);
  assert.deepEqual([settings.proxyPath, settings.telemetryPath], ["/proxy", "/metrics"]);
});
