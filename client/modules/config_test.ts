import assert from "node:assert/strict";
import {
  ConfigError,
  type ConfigFs,
  type HttpModuleConfig,
  loadConfig,
  loadConfigDirs,
  type ModuleConfig,
  moduleNameProblem,
  parseConfig,
  parseGoDuration,
  parseModuleConfig,
} from "./config.ts";

/**
 * The example configuration of the exporter_exporter README, verbatim
 * (including the whitespace-only line after cadvisor).
 */
const README_EXAMPLE = Deno.readTextFileSync(
  new URL("./testdata/expexp_readme.yaml", import.meta.url),
);

function http(module: ModuleConfig | undefined): HttpModuleConfig {
  assert.ok(module !== undefined && module.method === "http");
  return module;
}

function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${error}`);
    return error;
  }
  assert.fail("expected a ConfigError");
}

async function configErrorAsync(fn: () => Promise<unknown>): Promise<ConfigError> {
  try {
    await fn();
  } catch (error) {
    assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${error}`);
    return error;
  }
  assert.fail("expected a ConfigError");
}

const DEFAULT_TLS = {
  insecureSkipVerify: false,
  clientCertificate: undefined,
  rootCaFile: undefined,
  caCertFile: undefined,
  trustedCaFiles: [],
  serverName: undefined,
};

Deno.test("parseConfig() reads the README example verbatim", () => {
  assert.ok(README_EXAMPLE.includes("       port: 4194\n  \n  netdata:"));
  const config = parseConfig(README_EXAMPLE, "expexp.yaml");
  assert.deepEqual([...config.modules.keys()], [
    "node",
    "mtail",
    "cadvisor",
    "netdata",
    "somescript",
  ]);
  assert.equal(config.defaultModule, undefined);

  assert.deepEqual(config.modules.get("node"), {
    name: "node",
    timeoutMs: undefined,
    source: { file: "expexp.yaml", line: 2 },
    method: "http",
    http: {
      scheme: "http",
      address: "localhost",
      port: 9100,
      path: "/metrics",
      query: [],
      url: "http://localhost:9100/metrics",
      headers: [],
      host: undefined,
      basicAuth: undefined,
      verify: true,
      tls: DEFAULT_TLS,
    },
  });
  const mtail = http(config.modules.get("mtail"));
  assert.deepEqual(mtail.http.headers, [["foo", "bar"]]);
  assert.equal(mtail.http.port, 3903);
  assert.equal(mtail.http.verify, true);

  const cadvisor = http(config.modules.get("cadvisor"));
  assert.equal(cadvisor.http.port, 4194);
  assert.equal(cadvisor.http.verify, false);

  const netdata = http(config.modules.get("netdata"));
  assert.equal(netdata.http.path, "/api/v1/allmetrics");
  assert.deepEqual(netdata.http.query, [["format", "prometheus"]]);
  assert.equal(
    netdata.http.url,
    "http://localhost:19999/api/v1/allmetrics?format=prometheus",
  );

  assert.deepEqual(config.modules.get("somescript"), {
    name: "somescript",
    timeoutMs: 1000,
    source: { file: "expexp.yaml", line: 26 },
    method: "exec",
    exec: {
      command: "/tmp/myscript.sh",
      args: ["myarg1", "myarg2"],
      env: { THING: "1", THING2: "2" },
    },
  });

  assert.equal(config.warnings.length, 2);
  assert.match(
    config.warnings[0]!,
    /^expexp\.yaml:15: modules\.cadvisor\.verify: "verify" belongs under "http:" .* read as http\.verify: false$/,
  );
  assert.match(
    config.warnings[1]!,
    /^expexp\.yaml:34: modules\.somescript\.exec\.env: a non-empty env replaces the whole environment .*PATH/,
  );
});

Deno.test("parseConfig() reads every http key with its upstream meaning", () => {
  const config = parseConfig(
    `modules:
  secure:
    method: http
    timeout: 1m30s
    http:
      port: 8443
      address: "::1"
      scheme: HTTPS
      path: /probe?module=icmp&target=a+b
      verify: no
      headers:
        X-Scope: team-a
        host: exporter.internal
        Accept: text/plain
      basic_auth_username: user
      basic_auth_password: secret
      tls_insecure_skip_verify: true
      tls_cert_file: /etc/client.pem
      tls_key_file: /etc/client.key
      tls_ca_cert_file: /etc/ca.pem
      tls_root_ca_file: /etc/root.pem
      server_name: exporter.internal
defaultModule: secure
global: {}
`,
    "expexp.yaml",
  );
  assert.equal(config.defaultModule, "secure");
  const module = http(config.modules.get("secure"));
  assert.equal(module.timeoutMs, 90_000);
  assert.deepEqual(module.http, {
    scheme: "https",
    address: "::1",
    port: 8443,
    path: "/probe",
    query: [["module", "icmp"], ["target", "a b"]],
    url: "https://[::1]:8443/probe?module=icmp&target=a+b",
    headers: [["X-Scope", "team-a"], ["Accept", "text/plain"]],
    host: "exporter.internal",
    basicAuth: { username: "user", password: "secret" },
    verify: false,
    tls: {
      insecureSkipVerify: true,
      clientCertificate: { certFile: "/etc/client.pem", keyFile: "/etc/client.key" },
      rootCaFile: "/etc/root.pem",
      caCertFile: "/etc/ca.pem",
      trustedCaFiles: ["/etc/root.pem", "/etc/ca.pem"],
      serverName: "exporter.internal",
    },
  });
  assert.deepEqual(config.warnings, [
    "expexp.yaml:20: modules.secure.http.tls_ca_cert_file: exporter_exporter loaded this file but never used it to verify the backend (it only set ClientCAs); here it is trusted as a backend CA in addition to the system roots, like tls_root_ca_file",
  ]);
});

Deno.test("parseConfig() reads exec and file modules", () => {
  const config = parseConfig(
    `modules:
  script:
    method: exec
    exec:
      command: ./collect.sh
      args: [--fast, 42, true]
  inherit:
    method: exec
    exec: {command: /bin/true, env: {}}
  withpath:
    method: exec
    exec: {command: /bin/true, env: {PATH: /usr/bin, N: 5}}
  textfile:
    method: file
    timeout: 0
    file:
      path: /var/lib/metrics.prom
`,
    "expexp.yaml",
  );
  assert.deepEqual(config.modules.get("script"), {
    name: "script",
    timeoutMs: undefined,
    source: { file: "expexp.yaml", line: 2 },
    method: "exec",
    exec: { command: "./collect.sh", args: ["--fast", "42", "true"], env: undefined },
  });
  const inherit = config.modules.get("inherit");
  assert.ok(inherit?.method === "exec");
  assert.equal(inherit.exec.env, undefined);
  const withPath = config.modules.get("withpath");
  assert.ok(withPath?.method === "exec");
  assert.deepEqual(withPath.exec.env, { PATH: "/usr/bin", N: "5" });
  assert.deepEqual(config.modules.get("textfile"), {
    name: "textfile",
    timeoutMs: undefined,
    source: { file: "expexp.yaml", line: 13 },
    method: "file",
    file: { path: "/var/lib/metrics.prom" },
  });
  assert.deepEqual(config.warnings, []);
});

Deno.test("parseConfig() accepts an empty file and empty modules", () => {
  for (const text of ["", "\n", "modules:\n", "modules: {}\n", "# comment\n"]) {
    const config = parseConfig(text, "expexp.yaml");
    assert.equal(config.modules.size, 0);
  }
});

Deno.test("parseConfig() resolves anchors, aliases and merge keys", () => {
  const config = parseConfig(
    `modules:
  a: &base
    method: http
    http: &backend
      port: 9100
      headers: {x: y}
  b:
    <<: *base
    timeout: 2s
  c:
    method: http
    http:
      <<: *backend
      port: 9101
  d: *base
`,
    "expexp.yaml",
  );
  const b = http(config.modules.get("b"));
  assert.equal(b.http.port, 9100);
  assert.equal(b.timeoutMs, 2000);
  const c = http(config.modules.get("c"));
  assert.equal(c.http.port, 9101);
  assert.deepEqual(c.http.headers, [["x", "y"]]);
  assert.equal(http(config.modules.get("d")).http.port, 9100);
});

Deno.test("parseConfig() warns about kept upstream traps", () => {
  const config = parseConfig(
    `modules:
  a:
    method: http
    exec: {command: /bin/echo}
    http:
      port: 1
      path: probe
      verify: yes
      basic_auth_username: only-user
      tls_cert_file: /only/cert.pem
      headers: {Host: example.com}
  f:
    method: file
    file: {path: /x.prom, mode: 0644}
global:
  something: 1
`,
    "expexp.yaml",
  );
  const a = http(config.modules.get("a"));
  assert.equal(a.http.path, "/probe");
  assert.equal(a.http.verify, true);
  assert.equal(a.http.basicAuth, undefined);
  assert.equal(a.http.tls.clientCertificate, undefined);
  assert.equal(a.http.host, "example.com");
  assert.deepEqual(a.http.headers, []);
  assert.deepEqual(config.warnings, [
    "expexp.yaml:4: modules.a.exec: ignored because the module method is http",
    'expexp.yaml:7: modules.a.http.path: "probe" does not start with "/"; using "/probe" (exporter_exporter sent it as an invalid request line)',
    'expexp.yaml:11: modules.a.http.headers.Host: overrides the Host header here; exporter_exporter only did so for the lowercase spelling "host" and ignored "Host"',
    "expexp.yaml:9: modules.a.http.basic_auth_username: ignored: basic auth is only sent when both basic_auth_username and basic_auth_password are set",
    "expexp.yaml:10: modules.a.http.tls_cert_file: ignored: a client certificate is only used when both tls_cert_file and tls_key_file are set",
    "expexp.yaml:10: modules.a.http.tls_cert_file: has no effect with scheme http",
    'expexp.yaml:14: modules.f.file.mode: unknown key "mode" in file (known keys: path); ignored, as exporter_exporter does',
    "expexp.yaml:15: global: ignored (exporter_exporter has no global settings)",
  ]);
});

const ERRORS: [string, string][] = [
  [
    "modules:\n  node:\n    method: http\n    http:\n      port: abc\n",
    'expexp.yaml:5: modules.node.http.port: expected an integer, got "abc"',
  ],
  [
    "modules:\n  node:\n    method: http\n    http:\n      port: '9100'\n",
    'expexp.yaml:5: modules.node.http.port: expected an integer, got "9100"',
  ],
  [
    "modules:\n  node:\n    method: http\n    http:\n      address: x\n",
    "expexp.yaml:4: modules.node.http.port: must be a non-zero port",
  ],
  [
    "modules:\n  node:\n    method: http\n    http: {port: 0}\n",
    "expexp.yaml:4: modules.node.http.port: must be a non-zero port",
  ],
  [
    "modules:\n  node:\n    method: http\n    http: {port: 70000}\n",
    "expexp.yaml:4: modules.node.http.port: must be between 1 and 65535, got 70000",
  ],
  [
    "modules:\n  node:\n    method: http\n",
    "expexp.yaml:2: modules.node.http: missing; an http module needs at least http.port",
  ],
  [
    "modules: {}\nfoo: 1\n",
    'expexp.yaml:2: foo: unknown key "foo" in the top level (known keys: modules, defaultModule, global)',
  ],
  [
    "modules:\n  node:\n    method: http\n    port: 9100\n",
    'expexp.yaml:4: modules.node.port: unknown key "port" in a module (known keys: method, timeout, http, exec, file)',
  ],
  [
    "modules:\n  node:\n    method: http\n    http:\n      port: 9100\n      max_idle_connections: 5\n",
    'expexp.yaml:6: modules.node.http.max_idle_connections: unknown key "max_idle_connections" in http',
  ],
  [
    "modules:\n  s:\n    method: exec\n    exec:\n      command: x\n      cwd: /tmp\n",
    'expexp.yaml:6: modules.s.exec.cwd: unknown key "cwd" in exec (known keys: command, args, env)',
  ],
  [
    "modules:\n  node:\n    http: {port: 1}\n",
    "expexp.yaml:2: modules.node.method: missing; expected http, exec or file",
  ],
  [
    "modules:\n  node:\n    method: https\n",
    'expexp.yaml:3: modules.node.method: unknown module method "https"; expected http, exec or file',
  ],
  [
    "modules:\n  node:\n",
    'expexp.yaml:2: modules.node: module has no configuration (expected "method")',
  ],
  [
    "modules:\n  node:\n    method: exec\n    timeout: 5\n    exec: {command: x}\n",
    'expexp.yaml:4: modules.node.timeout: expected a duration such as "5s" or "1m30s", got 5',
  ],
  [
    "modules:\n  node:\n    method: exec\n    timeout: 5 seconds\n    exec: {command: x}\n",
    'expexp.yaml:4: modules.node.timeout: expected a duration such as "5s" or "1m30s", got "5 seconds"',
  ],
  [
    "modules:\n  node:\n    method: exec\n    timeout: -1s\n    exec: {command: x}\n",
    'expexp.yaml:4: modules.node.timeout: must not be negative, got "-1s"',
  ],
  [
    "modules:\n  node:\n    method: http\n    http: {port: 1, verify: maybe}\n",
    'expexp.yaml:4: modules.node.http.verify: expected true or false, got "maybe"',
  ],
  [
    "modules:\n  node:\n    method: http\n    http: {port: 1, verify: 'yes'}\n",
    'expexp.yaml:4: modules.node.http.verify: expected true or false, got "yes"',
  ],
  [
    "modules:\n  node:\n    method: http\n    http: {port: 1, scheme: ftp}\n",
    'expexp.yaml:4: modules.node.http.scheme: expected http or https, got "ftp"',
  ],
  [
    "modules:\n  node:\n    method: http\n    http: {port: 1, address: 'a b'}\n",
    'expexp.yaml:4: modules.node.http.address: expected a host name or IP address, got "a b"',
  ],
  [
    "modules:\n  node:\n    method: http\n    http: {port: 1, path: 'http://other/metrics'}\n",
    'expexp.yaml:4: modules.node.http.path: expected a path such as /metrics, got the URL "http://other/metrics"',
  ],
  [
    "modules:\n  node:\n    method: http\n    http: {port: 1, path: '/a%zz'}\n",
    'expexp.yaml:4: modules.node.http.path: invalid %-escape in "/a%zz"',
  ],
  [
    "modules:\n  node:\n    method: http\n    http:\n      port: 1\n      headers:\n        - foo\n",
    "expexp.yaml:7: modules.node.http.headers: expected a mapping, got a list",
  ],
  [
    "modules:\n  node:\n    method: http\n    http:\n      port: 1\n      headers:\n        bad header: x\n",
    'expexp.yaml:7: modules.node.http.headers["bad header"]: invalid header name "bad header"',
  ],
  [
    'modules:\n  node:\n    method: http\n    http:\n      port: 1\n      headers:\n        x: "a\\r\\nb"\n',
    "expexp.yaml:7: modules.node.http.headers.x: header value contains CR, LF or NUL",
  ],
  [
    "modules:\n  node:\n    method: http\n    http:\n      port: 1\n      headers: {host: a, HOST: b}\n",
    "expexp.yaml:6: modules.node.http.headers.HOST: conflicts with modules.node.http.headers.host: only one Host header can be set",
  ],
  [
    "modules:\n  node:\n    method: http\n    http: {port: 1, tls_cert_file: ''}\n",
    "expexp.yaml:4: modules.node.http.tls_cert_file: must not be empty",
  ],
  [
    "modules:\n  node:\n    method: http\n    http: {port: 1, headers: {a: [1]}}\n",
    "expexp.yaml:4: modules.node.http.headers.a: expected a string, got a list",
  ],
  [
    "modules:\n  s:\n    method: exec\n    exec:\n      command: x\n      args: --fast\n",
    'expexp.yaml:6: modules.s.exec.args: expected a list, got "--fast"',
  ],
  [
    "modules:\n  s:\n    method: exec\n    exec:\n      command: x\n      args: [a, {b: c}]\n",
    "expexp.yaml:6: modules.s.exec.args[1]: expected a string, got a mapping",
  ],
  [
    "modules:\n  s:\n    method: exec\n    exec:\n      command: x\n      env: {A=B: c}\n",
    'expexp.yaml:6: modules.s.exec.env["A=B"]: invalid environment variable name "A=B"',
  ],
  [
    "modules:\n  s:\n    method: exec\n    exec:\n      args: [a]\n",
    "expexp.yaml:4: modules.s.exec.command: missing; an exec module needs a command",
  ],
  [
    "modules:\n  s:\n    method: exec\n",
    "expexp.yaml:2: modules.s.exec: missing; an exec module needs exec.command",
  ],
  [
    "modules:\n  f:\n    method: file\n    file: {}\n",
    "expexp.yaml:4: modules.f.file.path: missing; a file module needs a path",
  ],
  [
    "modules:\n  a/b:\n    method: file\n    file: {path: x}\n",
    'expexp.yaml:2: modules["a/b"]: module name "a/b" contains a path separator',
  ],
  [
    "modules:\n  ..:\n    method: file\n    file: {path: x}\n",
    'expexp.yaml:2: modules[".."]: module name ".." contains a relative path',
  ],
  [
    'modules:\n  "a\\tb":\n    method: file\n    file: {path: x}\n',
    'expexp.yaml:2: modules["a\\tb"]: module name "a\\tb" contains a control character',
  ],
  [
    "modules:\n  a:\n    method: http\n    verify: false\n    http: {port: 1, verify: true}\n",
    "expexp.yaml:4: modules.a.verify: conflicts with modules.a.http.verify",
  ],
  [
    "modules:\n  a:\n    method: http\n    http: {port: 1}\n  a:\n    method: http\n    http: {port: 2}\n",
    "expexp.yaml:5: invalid YAML: Map keys must be unique",
  ],
  [
    "modules:\n  a: [1\n",
    "expexp.yaml:3: invalid YAML: Flow sequence in block collection",
  ],
  ["modules:\n  - a\n", "expexp.yaml:2: modules: expected a mapping, got a list"],
  ["- modules\n", "expexp.yaml:1: expected a mapping, got a list"],
  [
    "modules: {}\n---\nmodules: {}\n",
    "expexp.yaml:2: invalid YAML: Source contains multiple documents",
  ],
  [
    "modules:\n  a:\n    method: http\n    http: {port: 1}\ndefaultModule: [a]\n",
    "expexp.yaml:5: defaultModule: expected a string, got a list",
  ],
  [
    "modules:\n  a:\n    method: exec\n    exec: {command: x}\n    http: {port: abc}\n",
    'expexp.yaml:5: modules.a.http.port: expected an integer, got "abc"',
  ],
];

Deno.test("parseConfig() rejects invalid configuration with file, line and key path", () => {
  for (const [text, message] of ERRORS) {
    const error = configError(() => parseConfig(text, "expexp.yaml"));
    assert.ok(
      error.message.startsWith(message),
      `${JSON.stringify(text)}\n got: ${error.message}\nwant: ${message}`,
    );
    assert.equal(error.name, "ConfigError");
    assert.equal(error.file, "expexp.yaml");
    assert.equal(typeof error.line, "number");
  }
});

Deno.test("ConfigError exposes its parts", () => {
  const error = configError(() =>
    parseConfig(
      "modules:\n  node:\n    method: http\n    http:\n      port: abc\n",
      "expexp.yaml",
    )
  );
  assert.equal(error.file, "expexp.yaml");
  assert.equal(error.line, 5);
  assert.equal(error.keyPath, "modules.node.http.port");
  assert.equal(error.reason, 'expected an integer, got "abc"');
});

Deno.test("parseModuleConfig() reads a --config.dirs module file", () => {
  const { module, warnings } = parseModuleConfig(
    "method: http\nhttp:\n   port: 9100\n",
    "expexp.d/node.yaml",
    "node",
  );
  assert.equal(http(module).http.url, "http://localhost:9100/metrics");
  assert.deepEqual(module.source, { file: "expexp.d/node.yaml", line: 1 });
  assert.deepEqual(warnings, []);
  const error = configError(() =>
    parseModuleConfig("method: http\nhttp:\n   port: x\n", "expexp.d/node.yaml", "node")
  );
  assert.equal(
    error.message,
    'expexp.d/node.yaml:3: http.port: expected an integer, got "x"',
  );
  assert.equal(
    configError(() => parseModuleConfig("", "d/x.yaml", "x")).message,
    'd/x.yaml:1: module has no configuration (expected "method")',
  );
});

Deno.test("parseGoDuration() follows time.ParseDuration", () => {
  const cases: [string, number | undefined][] = [
    ["0", 0],
    ["-0", 0],
    ["1s", 1000],
    ["1.5s", 1500],
    [".5s", 500],
    ["5.s", 5000],
    ["300ms", 300],
    ["1m30s", 90_000],
    ["2h45m", 9_900_000],
    ["1h0m0.5s", 3_600_500],
    ["250us", 0.25],
    ["250\\u00b5s", 0.25],
    ["250\\u03bcs", 0.25],
    ["100ns", 0.0001],
    ["-1s", -1000],
    ["+2s", 2000],
    ["", undefined],
    ["5", undefined],
    ["s", undefined],
    [".s", undefined],
    ["1d", undefined],
    [" 1s", undefined],
    ["1s ", undefined],
    ["1 s", undefined],
    ["3000000h", undefined],
  ];
  for (const [text, expected] of cases) {
    const input = JSON.parse(`"${text}"`) as string;
    assert.equal(parseGoDuration(input), expected, text);
  }
});

Deno.test("moduleNameProblem() accepts ordinary names only", () => {
  for (const name of ["node", "node_exporter", "a.b", "blackbox-icmp", "ünï", "x y"]) {
    assert.equal(moduleNameProblem(name), undefined, name);
  }
  for (const name of ["", "/", "a/b", "a\\\\b", "..", "a..b", ".", "a\\u0000", "a\\u007f"]) {
    const input = JSON.parse(`"${name}"`) as string;
    assert.notEqual(moduleNameProblem(input), undefined, name);
  }
});

// ---- directories ------------------------------------------------------------

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "expexp_config_test_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("loadConfigDirs() loads one module per yml/yaml file", async () => {
  await withTempDir(async (dir) => {
    const d1 = `${dir}/expexp.d`;
    const d2 = `${dir}/more.d/`;
    await Deno.mkdir(d1);
    await Deno.mkdir(d2);
    await Deno.mkdir(`${d1}/sub.yaml`);
    await Deno.writeTextFile(`${d1}/node.yaml`, "method: http\nhttp:\n   port: 9100\n");
    await Deno.writeTextFile(`${d1}/mtail.yml`, "method: http\nhttp:\n   port: 3903\n");
    await Deno.writeTextFile(`${d1}/README.txt`, "not yaml");
    await Deno.writeTextFile(`${d1}/node.yaml.bak`, "not yaml");
    await Deno.writeTextFile(`${d2}/a.b.yaml`, "method: file\nfile: {path: /x}\n");
    const { modules, warnings, defaultModule } = await loadConfigDirs([d1, d2]);
    assert.deepEqual([...modules.keys()], ["mtail", "node", "a.b"]);
    assert.equal(http(modules.get("node")).http.port, 9100);
    assert.deepEqual(modules.get("node")?.source, {
      file: `${d1}/node.yaml`,
      line: 1,
    });
    assert.equal(modules.get("a.b")?.method, "file");
    assert.equal(defaultModule, undefined);
    assert.deepEqual(warnings, [
      `${d1}/README.txt: skipping non-yaml file`,
      `${d1}/node.yaml.bak: skipping non-yaml file`,
      `${d1}/sub.yaml: skipping non-yaml file`,
    ]);
  });
});

Deno.test("loadConfigDirs() applies --config.skip-dirs to missing directories only", async () => {
  await withTempDir(async (dir) => {
    const missing = `${dir}/missing.d`;
    const skipped = await loadConfigDirs([missing], { skipDirs: true });
    assert.equal(skipped.modules.size, 0);
    assert.deepEqual(skipped.warnings, [
      `${missing}: skipping non-existent config.dirs entry (--config.skip-dirs)`,
    ]);
    const error = await configErrorAsync(() => loadConfigDirs([missing]));
    assert.equal(error.file, missing);
    assert.match(error.message, /^.*missing\.d: cannot read directory: /);
    // A file where a directory is expected is not "missing".
    await Deno.writeTextFile(`${dir}/file.d`, "");
    await configErrorAsync(() => loadConfigDirs([`${dir}/file.d`], { skipDirs: true }));
  });
});

Deno.test("loadConfigDirs() rejects duplicates, bad names and bad files", async () => {
  await withTempDir(async (dir) => {
    await Deno.mkdir(`${dir}/a`);
    await Deno.mkdir(`${dir}/b`);
    await Deno.writeTextFile(`${dir}/a/node.yaml`, "method: file\nfile: {path: /x}\n");
    await Deno.writeTextFile(`${dir}/b/node.yml`, "method: file\nfile: {path: /y}\n");
    const duplicate = await configErrorAsync(() => loadConfigDirs([`${dir}/a`, `${dir}/b`]));
    assert.equal(
      duplicate.message,
      `${dir}/b/node.yml: module "node" is already defined at ${dir}/a/node.yaml:1`,
    );

    await Deno.mkdir(`${dir}/c`);
    await Deno.writeTextFile(`${dir}/c/.yaml`, "method: file\nfile: {path: /x}\n");
    const empty = await configErrorAsync(() => loadConfigDirs([`${dir}/c`]));
    assert.equal(empty.message, `${dir}/c/.yaml: module name must not be empty`);

    await Deno.mkdir(`${dir}/d`);
    await Deno.writeTextFile(`${dir}/d/bad.yaml`, "method: http\nhttp:\n  port: nope\n");
    const bad = await configErrorAsync(() => loadConfigDirs([`${dir}/d`]));
    assert.equal(
      bad.message,
      `${dir}/d/bad.yaml:3: http.port: expected an integer, got "nope"`,
    );
  });
});

Deno.test("loadConfig() combines --config.file and --config.dirs like upstream", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/expexp.yaml`, README_EXAMPLE + "defaultModule: node\n");
    await Deno.mkdir(`${dir}/expexp.d`);
    await Deno.writeTextFile(`${dir}/expexp.d/extra.yaml`, "method: http\nhttp:\n   port: 9200\n");
    const config = await loadConfig({
      file: `${dir}/expexp.yaml`,
      dirs: [`${dir}/expexp.d`],
    });
    assert.deepEqual([...config.modules.keys()], [
      "node",
      "mtail",
      "cadvisor",
      "netdata",
      "somescript",
      "extra",
    ]);
    assert.equal(config.defaultModule, "node");
    assert.equal(config.warnings.length, 2);

    await Deno.writeTextFile(`${dir}/expexp.d/node.yaml`, "method: http\nhttp:\n   port: 1\n");
    const duplicate = await configErrorAsync(() =>
      loadConfig({ file: `${dir}/expexp.yaml`, dirs: [`${dir}/expexp.d`] })
    );
    assert.equal(
      duplicate.message,
      `${dir}/expexp.d/node.yaml: module "node" is already defined at ${dir}/expexp.yaml:2`,
    );

    const onlyDirs = await loadConfig({ file: "", dirs: [`${dir}/expexp.d`] });
    assert.deepEqual([...onlyDirs.modules.keys()], ["extra", "node"]);

    const missing = await configErrorAsync(() => loadConfig({ file: `${dir}/nope.yaml` }));
    assert.match(missing.message, /nope\.yaml: cannot read file: /);
  });
});

Deno.test("loadConfig() warns about no modules and an unknown defaultModule", async () => {
  const files: Record<string, string> = {
    "expexp.yaml": "modules: {}\ndefaultModule: node\n",
  };
  const fs: ConfigFs = {
    readTextFile(path) {
      const text = files[path];
      return text === undefined
        ? Promise.reject(new Deno.errors.NotFound(path))
        : Promise.resolve(text);
    },
    readDir(path) {
      const missing = Object.assign(new Error(`no such directory ${path}`), {
        code: "ENOENT",
      });
      return {
        [Symbol.asyncIterator]: () => ({ next: () => Promise.reject(missing) }),
      };
    },
  };
  const config = await loadConfig({
    file: "expexp.yaml",
    dirs: ["expexp.d"],
    skipDirs: true,
    fs,
  });
  assert.equal(config.modules.size, 0);
  assert.deepEqual(config.warnings, [
    "expexp.d: skipping non-existent config.dirs entry (--config.skip-dirs)",
    "no modules loaded from any config file",
    'expexp.yaml: defaultModule: "node" is not a defined module; requests without ?module= will get 404',
  ]);
});
