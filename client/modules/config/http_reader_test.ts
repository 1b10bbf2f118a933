import assert from "node:assert/strict";
import { parseConfig } from "../config.ts";
import { http } from "./_testing.ts";

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
