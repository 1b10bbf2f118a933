/**
 * The exporter server's TLS listeners: client certificates with
 * --web.tls.certmatch, and --web.config.file TLS with basic auth.
 */

import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import https from "node:https";
import bcrypt from "bcryptjs";
import { createAllowList, parseCidr } from "../../lib/cidr.ts";
import { parseWebConfig } from "../../lib/web_config.ts";
import { createTestCa, OPENSSL_MISSING, type TestCa } from "../../tests/certs.ts";
import { get, withServer } from "./exporter_server_testing.ts";

let ca: TestCa | null = null;

let certDir = "";

async function certificates(): Promise<TestCa> {
  if (ca) return ca;
  certDir = await Deno.makeTempDir({ prefix: "expexp-certs-" });
  ca = await createTestCa(certDir);
  return ca;
}

Deno.test({
  name: "exporter server: TLS listener with client certificates and --web.tls.certmatch",
  ignore: OPENSSL_MISSING !== null,
  async fn() {
    const authority = await certificates();
    const server = await authority.issue("server", {
      cn: "localhost",
      sans: ["DNS:localhost", "IP:127.0.0.1"],
      usage: "server",
    });
    const prometheus = await authority.issue("prometheus", {
      cn: "prometheus",
      sans: ["DNS:prometheus.example"],
      usage: "client",
    });
    const intruder = await authority.issue("intruder", { cn: "intruder", usage: "client" });
    const foreignCa = await createTestCa(certDir, "foreign");
    const foreign = await foreignCa.issue("foreign-client", { cn: "prometheus", usage: "client" });
    const tlsFlags = {
      certFile: server.certFile,
      keyFile: server.keyFile,
      caFile: authority.certFile,
      verify: true,
      certMatch: /^prometheus(\.example)?$/,
    };
    await withServer(
      { address: null, tlsAddress: { hostname: "127.0.0.1", port: 0 }, tls: tlsFlags },
      async (listener) => {
        const port = listener.tlsAddress!.port;
        const as = (pair: { cert: string; key: string } | null): https.RequestOptions => ({
          ca: authority.cert,
          servername: "localhost",
          ...(pair ? { cert: pair.cert, key: pair.key } : {}),
        });
        const ok = await get(port, "/proxy?module=cron", { tls: as(prometheus) });
        assert.equal(ok.status, 200);
        assert.match(ok.text, /up 1/);

        const wrongName = await get(port, "/proxy?module=cron", { tls: as(intruder) });
        assert.equal(wrongName.status, 403);
        assert.match(
          wrongName.text,
          /client certificate \(intruder\) does not match --web\.tls\.certmatch/,
        );

        await assert.rejects(get(port, "/proxy?module=cron", { tls: as(null) }));
        await assert.rejects(get(port, "/proxy?module=cron", { tls: as(foreign) }));
      },
    );
  },
});

Deno.test({
  name: "exporter server: --web.config.file TLS and basic_auth_users on --web.listen-address",
  ignore: OPENSSL_MISSING !== null,
  async fn() {
    const authority = await certificates();
    const server = await authority.issue("server-web", {
      cn: "localhost",
      sans: ["DNS:localhost", "IP:127.0.0.1"],
      usage: "server",
    });
    const web = parseWebConfig(
      `tls_server_config:\n  cert_file: ${server.certFile}\n  key_file: ${server.keyFile}\nbasic_auth_users:\n  prometheus: ${
        bcrypt.hashSync("pw", 4)
      }\n`,
      `${certDir}/web.yml`,
    );
    await withServer({ webConfig: web }, async (listener) => {
      const port = listener.address!.port;
      const tls = { ca: authority.cert, servername: "localhost" };
      const anonymous = await get(port, "/proxy?module=cron", { tls });
      assert.equal(anonymous.status, 401);
      assert.match(String(anonymous.headers["www-authenticate"]), /^Basic/);
      const auth = `Basic ${Buffer.from("prometheus:pw").toString("base64")}`;
      const ok = await get(port, "/proxy?module=cron", { tls, headers: { authorization: auth } });
      assert.equal(ok.status, 200);
      // Plain HTTP to a TLS port: Go's readable 400, not TLS alert bytes.
      const plain = await get(port, "/");
      assert.equal(plain.status, 400);
      assert.equal(plain.text, "Client sent an HTTP request to an HTTPS server.\n");
      // The TLS connections carry the scraper's address, not the loopback hop's.
      const allowList = createAllowList([parseCidr("10.0.0.0/8")]);
      await withServer({ webConfig: web, allowList }, async (fenced) => {
        const refused = await get(fenced.address!.port, "/", {
          tls,
          headers: { authorization: auth },
        });
        assert.equal(refused.status, 403);
        assert.match(refused.text, /127\.0\.0\.1 is not in --allow\.net/);
      });
    });
  },
});

Deno.test({
  name: "exporter server: certificate cleanup",
  ignore: OPENSSL_MISSING !== null,
  async fn() {
    if (certDir) await Deno.remove(certDir, { recursive: true });
  },
});
