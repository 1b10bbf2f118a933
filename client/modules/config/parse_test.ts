import assert from "node:assert/strict";
import { parseConfig, parseModuleConfig } from "../config.ts";
import { configError, DEFAULT_TLS, http, README_EXAMPLE } from "./_testing.ts";

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
