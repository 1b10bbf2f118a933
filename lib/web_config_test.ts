import assert from "node:assert/strict";
import { ConfigError, parseWebConfig, RUNTIME_TLS12_SUITES } from "./web_config.ts";

const HASH = "$2y$10$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi";

Deno.test("parseWebConfig() reads exporter-toolkit's documented example", () => {
  const config = parseWebConfig(
    `
tls_server_config:
  cert_file: server.crt
  key_file: /etc/ssl/server.key
  client_auth_type: RequireAndVerifyClientCert
  client_ca_file: ca.crt
  min_version: TLS12
  max_version: TLS13
  prefer_server_cipher_suites: true
http_server_config:
  http2: true
  headers:
    Strict-Transport-Security: max-age=31536000
    X-Content-Type-Options: nosniff
basic_auth_users:
  prometheus: ${HASH}
`,
    "/etc/pushprox/web.yml",
  );
  assert.deepEqual(config.tls, {
    certFile: "/etc/pushprox/server.crt",
    keyFile: "/etc/ssl/server.key",
    clientAuthType: "RequireAndVerifyClientCert",
    clientCaFile: "/etc/pushprox/ca.crt",
    clientAllowedSans: [],
    minVersion: "TLSv1.2",
    maxVersion: "TLSv1.3",
  });
  assert.deepEqual(config.headers, {
    "strict-transport-security": "max-age=31536000",
    "x-content-type-options": "nosniff",
  });
  assert.equal(config.basicAuthUsers.get("prometheus"), HASH);
});

Deno.test("parseWebConfig() of an empty file is plain HTTP without users", () => {
  const config = parseWebConfig("", "web.yml");
  assert.equal(config.tls, null);
  assert.equal(config.basicAuthUsers.size, 0);
});

Deno.test("parseWebConfig() refuses bad input naming file, line and key", () => {
  const cases: [string, RegExp][] = [
    [
      "tls_server_config:\n  cert_file: a\n  kee_file: b\n",
      /web\.yml:3 \(tls_server_config\.kee_file\): unknown key "kee_file"/,
    ],
    ["tls_server_config:\n  cert_file: a\n", /cert_file and key_file are both required/],
    [
      "tls_server_config:\n  cert_file: a\n  key_file: b\n  client_auth_type: Sometimes\n",
      /web\.yml:4 .*"Sometimes" is not one of NoClientCert/,
    ],
    [
      "tls_server_config:\n  cert_file: a\n  key_file: b\n  client_auth_type: RequireAndVerifyClientCert\n",
      /needs client_ca_file/,
    ],
    [
      "tls_server_config:\n  cert_file: a\n  key_file: b\n  min_version: SSL3\n",
      /"SSL3" is not one of TLS10/,
    ],
    [
      "tls_server_config:\n  cert_file: a\n  key_file: b\n  max_version: TLS11\n",
      /below 1\.2 is not supported/,
    ],
    [
      "tls_server_config:\n  cert_file: a\n  key_file: b\n  cipher_suites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256]\n",
      /cipher_suites cannot be enforced by this runtime/,
    ],
    [
      "tls_server_config:\n  cert_file: a\n  key_file: b\n  cipher_suites: [TLS_FANCY]\n",
      /unknown cipher suite "TLS_FANCY"/,
    ],
    [
      "tls_server_config:\n  cert_file: a\n  key_file: b\n  curve_preferences: [X25519]\n",
      /curve_preferences cannot be enforced/,
    ],
    ["http_server_config:\n  headers:\n    Server: me\n", /header Server cannot be set/],
    ["http_server_config:\n  headers:\n    X-Frame-Options: allow\n", /deny or sameorigin/],
    [
      "basic_auth_users:\n  alice: plaintext\n",
      /web\.yml:2 \(basic_auth_users\.alice\): the password of alice must be a bcrypt hash/,
    ],
    ["basic_auth_users: [alice]\n", /basic_auth_users\): expected a mapping/],
    ["tls_server_config: [\n", /Cannot parse web config web\.yml:\d/],
    ["- a\n", /expected a mapping at the top level/],
    ["rate_limit:\n  interval: 1s\n", /unknown key "rate_limit"/],
  ];
  for (const [text, pattern] of cases) {
    assert.throws(() => parseWebConfig(text, "web.yml"), (e: Error) => {
      assert.ok(e instanceof ConfigError, e.message);
      assert.match(e.message, pattern);
      return true;
    }, text);
  }
});

Deno.test("parseWebConfig() accepts cipher_suites that restrict nothing, or with TLS 1.3 only", () => {
  const all = parseWebConfig(
    `tls_server_config:\n  cert_file: a\n  key_file: b\n  cipher_suites: [${
      RUNTIME_TLS12_SUITES.join(", ")
    }]\n`,
    "web.yml",
  );
  assert.equal(all.tls?.minVersion, "TLSv1.2");
  const tls13 = parseWebConfig(
    "tls_server_config:\n  cert_file: a\n  key_file: b\n  min_version: TLS13\n  cipher_suites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256]\n",
    "web.yml",
  );
  assert.equal(tls13.tls?.minVersion, "TLSv1.3");
});
