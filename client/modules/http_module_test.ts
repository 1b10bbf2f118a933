import assert from "node:assert/strict";
import http from "node:http";
import { createServer, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import type { TLSSocket } from "node:tls";
import { Registry } from "prom-client";
import { createNullLogger } from "../../lib/logger.ts";
import { createTestCa, OPENSSL_MISSING } from "../../tests/certs.ts";
import { parseConfig } from "./config.ts";
import { createModuleEngine, prepareConfig } from "./engine.ts";
import { createModuleMetrics } from "./metrics.ts";

Deno.test({
  name: "http module: https backends with a private CA, server_name, client certificate, insecure",
  ignore: OPENSSL_MISSING !== null,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "expexp-backend-tls-" });
    let server: Server | undefined;
    try {
      const ca = await createTestCa(dir);
      // Only a DNS name: reaching 127.0.0.1 verifies only with server_name.
      const leaf = await ca.issue("backend", {
        cn: "backend.example",
        sans: ["DNS:backend.example"],
        usage: "server",
      });
      const client = await ca.issue("expexp", { cn: "expexp-client", usage: "client" });
      const peers: string[] = [];
      server = createServer({
        cert: leaf.cert,
        key: leaf.key,
        ca: ca.cert,
        requestCert: true,
        rejectUnauthorized: false,
      }, (req, res) => {
        const socket = req.socket as TLSSocket;
        peers.push(socket.authorized ? String(socket.getPeerCertificate().subject?.CN) : "-");
        res.writeHead(200, { "content-type": "text/plain; version=0.0.4" }).end("tls_ok 1\n");
      });
      await new Promise<void>((resolve) => server!.listen(0, "127.0.0.1", resolve));
      const port = (server.address() as AddressInfo).port;
      const module = (name: string, extra: string) =>
        `  ${name}:\n    method: http\n    http:\n      scheme: https\n      address: 127.0.0.1\n      port: ${port}\n${extra}`;
      const config = parseConfig(
        "modules:\n" +
          module(
            "good",
            `      tls_root_ca_file: ${ca.certFile}\n      server_name: backend.example\n      tls_cert_file: ${client.certFile}\n      tls_key_file: ${client.keyFile}\n`,
          ) +
          module("no_sni", `      tls_root_ca_file: ${ca.certFile}\n`) +
          module("unknown_ca", "      server_name: backend.example\n") +
          module("insecure", "      tls_insecure_skip_verify: true\n") +
          module(
            "ca_cert_file",
            `      tls_ca_cert_file: ${ca.certFile}\n      server_name: backend.example\n`,
          ),
        "expexp.yaml",
      );
      assert.ok(config.warnings.some((w) => w.includes("tls_ca_cert_file")));
      const engine = createModuleEngine({
        config: await prepareConfig(config),
        metrics: createModuleMetrics(new Registry()),
        logger: createNullLogger(),
      });
      const serve = async (name: string) => {
        const response = await engine.serve(
          { query: new URLSearchParams({ module: name }), headers: [] },
          AbortSignal.timeout(5000),
        );
        let text = "";
        for await (const chunk of response.body ?? []) text += new TextDecoder().decode(chunk);
        return { status: response.status, error: response.error, text };
      };

      const good = await serve("good");
      assert.equal(good.status, 200, good.error);
      assert.equal(good.text, "tls_ok 1\n");
      assert.equal(peers.at(-1), "expexp-client", "the client certificate was presented");

      const noSni = await serve("no_sni");
      assert.equal(noSni.status, 502);
      assert.match(
        noSni.error,
        /module no_sni: backend https:\/\/127\.0\.0\.1:\d+\/metrics did not answer/,
      );

      const unknownCa = await serve("unknown_ca");
      assert.equal(unknownCa.status, 502);

      assert.equal((await serve("insecure")).status, 200);
      // Upstream ignored tls_ca_cert_file for backends; here it is trusted.
      assert.equal((await serve("ca_cert_file")).status, 200);
    } finally {
      server?.closeAllConnections();
      await new Promise((resolve) => server ? server.close(resolve) : resolve(undefined));
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("http module: backend requests keep their connection open, name the backend as Host, and add X-Forwarded-For", async () => {
  const seen: http.IncomingHttpHeaders[] = [];
  let connections = 0;
  const server = http.createServer((req, res) => {
    seen.push(req.headers);
    res.writeHead(200, { "content-type": "text/plain; version=0.0.4" }).end("up 1\n");
  });
  server.on("connection", () => connections++);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  const engine = createModuleEngine({
    config: await prepareConfig(parseConfig(
      `modules:\n  node:\n    method: http\n    http:\n      address: 127.0.0.1\n      port: ${port}\n`,
      "expexp.yaml",
    )),
    metrics: createModuleMetrics(new Registry()),
    logger: createNullLogger(),
  });
  try {
    for (let i = 0; i < 3; i++) {
      const response = await engine.serve({
        query: new URLSearchParams("module=node"),
        headers: [{ name: "x-forwarded-for", value: "10.0.0.1" }],
        peer: "192.0.2.7",
      }, AbortSignal.timeout(5_000));
      assert.equal(response.status, 200);
      for await (const _ of response.body!) { /* drain */ }
    }
    assert.equal(connections, 1, "one kept-alive connection for three requests");
    assert.equal(seen[0]!.connection, "keep-alive");
    assert.equal(seen[0]!.host, `127.0.0.1:${port}`);
    assert.equal(seen[0]!["x-forwarded-for"], "10.0.0.1, 192.0.2.7");
  } finally {
    engine.close();
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
});
