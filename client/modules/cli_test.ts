import assert from "node:assert/strict";
import { parseFlags } from "../../lib/flags.ts";
import { parseConfig } from "./config.ts";
import { announcedModules, goStyleFlags, MODULE_FLAGS, readModuleSettings } from "./cli.ts";

Deno.test("goStyleFlags() turns exporter_exporter's single-dash flags into double-dash ones", () => {
  assert.deepEqual(
    goStyleFlags([
      "-web.listen-address=:9999",
      "-web.tls.verify",
      "-config.skip-dirs",
      "-h",
      "--log.level=debug",
      "-allow.net",
      "10.0.0.0/8",
    ]),
    [
      "--web.listen-address=:9999",
      "--web.tls.verify",
      "--config.skip-dirs",
      "-h",
      "--log.level=debug",
      "--allow.net",
      "10.0.0.0/8",
    ],
  );
});

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
  const settings = await read([]);
  assert.equal(settings.configured, false);
  assert.equal(settings.initial.config.modules.size, 0);
  assert.equal(settings.verifyMaxBytes, 268435456);
});
