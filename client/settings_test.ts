import assert from "node:assert/strict";
import { FlagError, parseFlags } from "../lib/flags.ts";
import { flagsFor } from "./compat.ts";
import { CLIENT_FLAGS, readTlsFiles, toAgentOptions } from "./settings.ts";
import { tempDir } from "../tests/fixture.ts";

const settings = (...args: string[]) => toAgentOptions(parseFlags(CLIENT_FLAGS, args));

Deno.test("toAgentOptions() gives the documented defaults", () => {
  assert.deepEqual(settings("--proxy-url=http://proxy:8080/"), {
    proxyUrls: ["http://proxy:8080/"],
    fqdn: undefined,
    labels: {},
    metricsAddress: { hostname: "", port: 9369 },
    tlsFiles: {},
    resolveIntervalMs: 30_000,
    retryInitialMs: 1_000,
    retryMaxMs: 5_000,
    log: { level: "info", format: "logfmt" },
  });
});

Deno.test("toAgentOptions() reads every proxy, label, the fqdn, TLS paths and log flags", () => {
  const s = settings(
    "--proxy-url=http://a:8080/",
    "--proxy-url=https://b/",
    "--label=zone=eu",
    "--label=rack=a=b",
    "--fqdn=node1.example.com",
    "--metrics-addr=",
    "--tls.cacert=ca.pem",
    "--tls.cert=c.pem",
    "--tls.key=k.pem",
    "--proxy.retry.max-wait=1m",
    "--log.json",
  );
  assert.deepEqual(s.proxyUrls, ["http://a:8080/", "https://b/"]);
  assert.deepEqual(s.labels, { zone: "eu", rack: "a=b" });
  assert.equal(s.fqdn, "node1.example.com");
  assert.equal(s.metricsAddress, null);
  assert.deepEqual(s.tlsFiles, { ca: "ca.pem", cert: "c.pem", key: "k.pem" });
  assert.equal(s.retryMaxMs, 60_000);
  assert.deepEqual(s.log, { level: "info", format: "json" });
});

Deno.test("toAgentOptions() names the flag that is wrong", () => {
  const cases: [string[], RegExp][] = [
    [[], /^--proxy-url is required \(or --web\.listen-address/],
    [["--proxy-url=http://p/", "--label=bad"], /^--label "bad": expected NAME=VALUE$/],
    [["--proxy-url=http://p/", "--label=__x=1"], /^--label: label name "__x" .*not starting/],
    [["--proxy-url=http://p/", "--fqdn=bad host"], /^--fqdn: fqdn "bad host"/],
    [["--proxy-url=http://p/", "--tls.cert=c.pem"], /^--tls\.cert and --tls\.key go together$/],
  ];
  for (const [args, message] of cases) {
    assert.throws(() => settings(...args), (error: Error) => {
      assert.ok(error instanceof FlagError, args.join(" "));
      assert.match(error.message, message);
      return true;
    });
  }
  assert.throws(() => settings("--proxy-url=ftp://p/"), {
    name: "TypeError",
    message: 'Cannot use --proxy-url "ftp://p/": the scheme must be http or https',
  });
  assert.throws(() => settings("--proxy-url=http://p/", "--metrics-addr=x"), SyntaxError);
});

Deno.test("toAgentOptions() needs no --proxy-url with a direct listener (exporter_exporter)", () => {
  assert.deepEqual(settings("--web.listen-address=:9999").proxyUrls, []);
  const expexp = toAgentOptions(parseFlags(flagsFor("exporter_exporter", CLIENT_FLAGS), []));
  assert.deepEqual(expexp.proxyUrls, []);
  assert.equal(expexp.metricsAddress, null);
  assert.equal(expexp.log.level, "warn");
});

Deno.test("readTlsFiles() reads the files and names the flag of one it cannot read", async () => {
  await using temp = await tempDir();
  const dir = temp.path;
  await Deno.writeTextFile(`${dir}/ca.pem`, "CA");
  assert.deepEqual(await readTlsFiles({ ca: `${dir}/ca.pem` }), { ca: "CA" });
  assert.deepEqual(await readTlsFiles({}), {});
  await assert.rejects(
    readTlsFiles({ ca: `${dir}/ca.pem`, cert: `${dir}/missing.pem`, key: `${dir}/k.pem` }),
    (error: Error) => {
      assert.ok(error instanceof FlagError);
      assert.match(
        error.message,
        new RegExp(`^--tls\\.cert: cannot read ${dir}/missing\\.pem: `),
      );
      return true;
    },
  );
});
