/**
 * TLS: the proxy's certificate from the web config and its rotation,
 * client certificates that must name the fqdn, and the client's separate
 * TLS settings for targets.
 */

import assert from "node:assert/strict";
import { connect as netConnect } from "node:net";
import type { AddressInfo } from "node:net";
import { Code } from "@connectrpc/connect";
import { startAgent } from "../../client/agent/agent.ts";
import { createTestCa, OPENSSL_MISSING, type TestCa } from "../certs.ts";
import { connectClient, fakeClient, send, startSecureProxy } from "../secure_stack.ts";
import { waitUntil } from "../support.ts";
import { testLogger } from "../stack.ts";
import { codeOf } from "./security_support.ts";
import { closing, stopping, tempDir } from "../fixture.ts";

if (OPENSSL_MISSING !== null) console.warn(`SKIPPED TLS security tests: ${OPENSSL_MISSING}`);

Deno.test({
  name:
    "TLS: https from the web config, a rotated certificate is served without restart, slow handshakes are cut",
  ignore: OPENSSL_MISSING !== null,
  async fn() {
    const dir = await Deno.makeTempDir();
    try {
      const ca = await createTestCa(dir);
      const first = await ca.issue("server1", {
        cn: "localhost",
        sans: ["DNS:localhost", "IP:127.0.0.1"],
        usage: "server",
      });
      const second = await ca.issue("server2", {
        cn: "localhost",
        sans: ["DNS:localhost", "IP:127.0.0.1"],
        usage: "server",
      });
      await Deno.copyFile(first.certFile, `${dir}/server.pem`);
      await Deno.copyFile(first.keyFile, `${dir}/server.key`);
      await using proxy = closing(
        await startSecureProxy({
          dir,
          web: `tls_server_config:
  cert_file: server.pem
  key_file: server.key
http_server_config:
  headers:
    Strict-Transport-Security: max-age=31536000
`,
          headersTimeoutMs: 1_000,
        }),
      );
      const before = await send(proxy, "/clients", { tls: { ca: ca.cert } });
      assert.equal(before.status, 200);
      assert.equal(before.headers["strict-transport-security"], "max-age=31536000");
      const serialOf = async (pem: string) => {
        const { X509Certificate } = await import("node:crypto");
        return new X509Certificate(pem).serialNumber;
      };
      assert.equal(before.serial, await serialOf(first.cert));
      // Plain HTTP on the TLS port does not get through.
      const plain = await fetch(`http://127.0.0.1:${proxy.port}/clients`).then(
        (r) => r.status,
        () => "refused",
      );
      assert.notEqual(plain, 200);

      await Deno.copyFile(second.keyFile, `${dir}/server.key`);
      await Deno.copyFile(second.certFile, `${dir}/server.pem`);
      // Normally found within --web.config.reload-interval; checked now here.
      assert.equal(await proxy.reloadTls(), true);
      const after = await send(proxy, "/clients", { tls: { ca: ca.cert } });
      assert.equal(after.serial, await serialOf(second.cert), "the new certificate is served");

      // A TLS connection that never finishes its handshake is closed.
      const started = Date.now();
      await new Promise<void>((resolve) => {
        const socket = netConnect(proxy.port, "127.0.0.1");
        socket.on("error", () => {});
        socket.on("close", () => resolve());
        setTimeout(() => socket.destroy(), 10_000);
      });
      assert.ok(
        Date.now() - started < 4_000,
        `silent TLS connection kept ${Date.now() - started}ms`,
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "mTLS clients: the certificate must name the fqdn; wrong name, other CA, expired and missing certificates are refused",
  ignore: OPENSSL_MISSING !== null,
  async fn() {
    await using temp = await tempDir();
    const dir = temp.path;
    const ca: TestCa = await createTestCa(dir, "ca");
    const other = await createTestCa(dir, "otherca");
    await ca.issue("server", {
      cn: "localhost",
      sans: ["DNS:localhost", "IP:127.0.0.1"],
      usage: "server",
    });
    const node1 = await ca.issue("node1", {
      cn: "node1.example.com",
      sans: ["DNS:node1.example.com"],
      usage: "client",
    });
    const ipNode = await ca.issue("ipnode", {
      cn: "ipnode",
      sans: ["IP:10.1.2.3"],
      usage: "client",
    });
    const foreign = await other.issue("foreign", { cn: "node1.example.com", usage: "client" });
    const expired = await ca.issue("expired", {
      cn: "node1.example.com",
      usage: "client",
      expired: true,
    });
    const prom = await ca.issue("prom", { cn: "prometheus", usage: "client" });
    await using proxy = closing(
      await startSecureProxy({
        dir,
        web: `tls_server_config:
  cert_file: server.pem
  key_file: server.key
  client_auth_type: RequireAndVerifyClientCert
  client_ca_file: ca.pem
`,
        auth: `clients: {certificates: true}
scrapers: {certificates: [prometheus]}
readers: {certificates: [prometheus]}
`,
      }),
    );
    const client = (pair?: { cert: string; key: string }) =>
      connectClient(proxy.url, {
        tls: { ca: ca.cert, ...(pair ? { cert: pair.cert, key: pair.key } : {}) },
      });
    const wrongName = fakeClient(client(node1), "node2.example.com");
    assert.equal(await codeOf(wrongName.registered), Code.PermissionDenied);
    for (const pair of [undefined, foreign, expired]) {
      const refused = await codeOf(fakeClient(client(pair), "node1.example.com").registered);
      assert.notEqual(refused, "ok");
      assert.notEqual(refused, Code.PermissionDenied, "refused at the handshake, not later");
    }
    const ip = fakeClient(client(ipNode), "10.1.2.3");
    await ip.registered;
    const good = fakeClient(client(node1), "node1.example.com");
    await good.registered;
    // Prometheus with its client certificate scrapes; a client's certificate cannot.
    const asPrometheus = await send(proxy, "http://node1.example.com:9100/metrics", {
      tls: { ca: ca.cert, cert: prom.cert, key: prom.key },
    });
    assert.equal(asPrometheus.status, 200);
    assert.equal(asPrometheus.body, "up 1\n");
    const asClient = await send(proxy, "http://node1.example.com:9100/metrics", {
      tls: { ca: ca.cert, cert: node1.cert, key: node1.key },
    });
    assert.equal(asClient.status, 407, "one answer for every refused scraper credential");
    const list = await send(proxy, "/clients", {
      tls: { ca: ca.cert, cert: prom.cert, key: prom.key },
    });
    assert.deepEqual(JSON.parse(list.body).map((g: { targets: string[] }) => g.targets[0]), [
      "10.1.2.3",
      "node1.example.com",
    ]);
    good.stop();
    ip.stop();
  },
});

Deno.test({
  name:
    "client: --target.tls.* verifies targets apart from the proxy's TLS; --allow-port and --use-localhost apply through the proxy",
  ignore: OPENSSL_MISSING !== null,
  async fn() {
    await using temp = await tempDir();
    const dir = temp.path;
    const proxyCa = await createTestCa(dir, "proxyca");
    const targetCa = await createTestCa(dir, "targetca");
    await proxyCa.issue("proxy", {
      cn: "localhost",
      sans: ["DNS:localhost", "IP:127.0.0.1"],
      usage: "server",
    });
    const targetCert = await targetCa.issue("target", {
      cn: "localhost",
      sans: ["DNS:localhost", "IP:127.0.0.1"],
      usage: "server",
    });
    const proxy = await startSecureProxy({
      dir,
      web: "tls_server_config:\n  cert_file: proxy.pem\n  key_file: proxy.key\n",
    });
    const { createServer: createHttpsServer } = await import("node:https");
    const hosts: string[] = [];
    const target = createHttpsServer(
      { cert: targetCert.cert, key: targetCert.key },
      (req, res) => {
        hosts.push(req.headers.host ?? "");
        res.end("secure 1\n");
      },
    );
    await new Promise<void>((resolve) => target.listen(0, "127.0.0.1", resolve));
    const targetPort = (target.address() as AddressInfo).port;
    const start = (targetTls: { ca?: string }, proxyTls: { ca?: string }) =>
      startAgent({
        proxyUrl: proxy.url,
        fqdn: "localhost",
        logger: testLogger(),
        metricsAddress: null,
        defaultMetrics: false,
        retryInitialMs: 50,
        retryMaxMs: 200,
        proxyTls,
        targetTls,
        scrapePolicy: { allowPorts: [targetPort], allowPaths: null, useLocalhost: true },
      });
    try {
      // The target's CA is not the proxy's: with only --tls.cacert the client cannot even connect.
      const wrong = await start({ ca: proxyCa.cert }, { ca: targetCa.cert });
      await new Promise((resolve) => setTimeout(resolve, 500));
      assert.equal(
        proxy.proxy.coordinator.clientCount,
        0,
        "the proxy's CA is --tls.cacert, not --target.tls.ca",
      );
      await wrong.stop();
      await using _agent = stopping(await start({ ca: targetCa.cert }, { ca: proxyCa.cert }));
      await waitUntil(
        () => proxy.proxy.coordinator.clientCount === 1 || undefined,
        5_000,
        "agent",
      );
      const ok = await send(proxy, `http://localhost:${targetPort}/metrics?_scheme=https`, {
        tls: { ca: proxyCa.cert },
      });
      assert.equal(ok.status, 200, ok.body);
      assert.equal(ok.body, "secure 1\n");
      assert.deepEqual(hosts, [`localhost:${targetPort}`], "use-localhost keeps the Host");
      const otherPort = await send(proxy, "http://localhost:22/metrics", {
        tls: { ca: proxyCa.cert },
      });
      assert.equal(otherPort.status, 403);
      assert.match(otherPort.body, /permissions to scrape port 22/);
      const noPort = await send(proxy, "http://localhost/metrics", {
        tls: { ca: proxyCa.cert },
      });
      assert.equal(noPort.status, 403);
      assert.match(noPort.body, /port 80 \(the default port of http\)/);
    } finally {
      target.closeAllConnections();
      await new Promise((resolve) => target.close(resolve));
      await proxy.close();
    }
  },
});
