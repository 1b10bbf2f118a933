import assert from "node:assert/strict";
import { parseFlags } from "../lib/flags.ts";
import { clientMode, flagsFor } from "./compat.ts";
import { CLIENT_FLAGS } from "./settings.ts";
import { readModuleSettings, wantsDirectListener } from "./modules/cli.ts";
import { tempDir } from "../tests/fixture.ts";

Deno.test("clientMode() picks exporter_exporter from the program's name or --compat", () => {
  const deno = "/usr/bin/deno";
  for (
    const names of [
      ["/usr/bin/exporter_exporter"],
      ["/usr/bin/prometheus-exporter-exporter"],
      ["C:\\Program Files\\exporter_exporter.exe"],
      [deno, "/opt/pushprox/exporter_exporter.js"],
    ]
  ) assert.equal(clientMode([], names), "exporter_exporter", names.join(" "));
  assert.equal(clientMode([], [deno, "/src/client/main.ts"]), "pushprox-client");
  assert.equal(clientMode([], ["/usr/bin/pushprox-client"]), "pushprox-client");
  assert.equal(clientMode(["--compat=exporter_exporter"], [deno]), "exporter_exporter");
  assert.equal(clientMode(["-compat", "exporter_exporter"], [deno]), "exporter_exporter");
  assert.equal(
    clientMode(["--compat=pushprox-client"], ["/usr/bin/exporter_exporter"]),
    "pushprox-client",
  );
});

Deno.test("no flags under the name exporter_exporter give exporter_exporter's (Debian's) defaults", () => {
  const mode = clientMode([], ["/usr/bin/prometheus-exporter-exporter"]);
  const flags = parseFlags(flagsFor(mode, CLIENT_FLAGS), []);
  assert.equal(flags["config.file"], "/etc/prometheus/exporter-exporter.yml");
  assert.equal(flags["web.listen-address"], ":9999");
  assert.deepEqual(flags["proxy-url"], [], "no proxy");
  assert.equal(flags["metrics-addr"], "", "own metrics only on the listener's /metrics");
  assert.equal(flags["log.level"], "warn");
  assert.equal(flags["web.proxy-path"], "/proxy");
  assert.equal(flags["web.telemetry-path"], "/metrics");
  assert.equal(flags["web.tls.cert"], "cert.pem");
  assert.equal(flags["web.tls.key"], "key.pem");
  assert.equal(flags["web.tls.ca"], "ca.pem");
  assert.equal(wantsDirectListener(flags), true);
  // As pushprox-client nothing changes.
  const plain = parseFlags(flagsFor("pushprox-client", CLIENT_FLAGS), []);
  assert.equal(plain["config.file"], undefined);
  assert.equal(plain["web.listen-address"], undefined);
  assert.equal(plain["metrics-addr"], ":9369");
  assert.equal(plain["log.level"], "info");
});

Deno.test("every flag of exporter_exporter 0.4 is accepted, with one dash or two", async () => {
  await using temp = await tempDir();
  const dir = temp.path;
  await Deno.writeTextFile(`${dir}/token`, "secret-token\n");
  await Deno.writeTextFile(`${dir}/expexp.yml`, "modules: {}\n");
  await Deno.mkdir(`${dir}/conf.d`);
  const specs = flagsFor("exporter_exporter", CLIENT_FLAGS);
  // Debian's /etc/default/prometheus-exporter-exporter lists these.
  const line = [
    "-allow.net=10.0.0.0/8",
    `-config.dirs=${dir}/conf.d`,
    `-config.file=${dir}/expexp.yml`,
    "-config.skip-dirs",
    "-log.json",
    "-log.level=warning",
    `-web.bearer.token-file=${dir}/token`,
    "-web.listen-address=127.0.0.1:0",
    "-web.proxy-path=/proxy",
    "-web.telemetry-path=/metrics",
    "-web.tls.ca=ca.pem",
    "-web.tls.cert=cert.pem",
    "-web.tls.key=key.pem",
    "-web.tls.listen-address=127.0.0.1:0",
    "-web.tls.verify",
    "-web.tls.certmatch=^scraper$",
  ];
  for (const dashes of ["", "-"]) {
    const flags = parseFlags(specs, line.map((arg) => dashes + arg));
    assert.equal(flags["log.json"], true);
    assert.equal(flags["log.level"], "warn");
    assert.equal(flags["config.skip-dirs"], true);
    const settings = await readModuleSettings(flags);
    assert.equal(settings.bearerToken, "secret-token");
    assert.deepEqual(settings.allowNets, ["10.0.0.0/8"]);
  }
  for (const level of ["debug", "info", "warn", "warning", "error", "fatal", "panic"]) {
    parseFlags(specs, [`-log.level=${level}`]);
  }
  for (const args of [["-version"], ["--version"], ["-help"], ["-h"], ["--help"]]) {
    const flags = parseFlags(specs, args);
    assert.ok(flags.version || flags.help, args[0]);
  }
});
