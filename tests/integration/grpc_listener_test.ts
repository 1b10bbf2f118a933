/**
 * What README says about `--grpc.listen-address`, checked on the real
 * program: with `tls_server_config` in the web configuration the gRPC port
 * serves TLS (h2 via ALPN) with the main port's certificate and
 * client-certificate rules, and plain h2c is not answered there.
 */

import assert from "node:assert/strict";
import { connect as http2Connect } from "node:http2";
import { createTestCa, OPENSSL_MISSING } from "../certs.ts";
import { startProxyProcess, type TestProcess } from "../support.ts";

interface CallResult {
  status: number;
  grpcStatus: string | null;
  alpn: string | null;
}

/** One unary gRPC call to RegistryService/ListClients with an empty message. */
function grpcListClients(
  url: string,
  tls: { ca?: string; cert?: string; key?: string } = {},
): Promise<CallResult> {
  return new Promise((resolve, reject) => {
    const session = http2Connect(url, { ...tls, servername: "localhost" });
    const timer = setTimeout(() => {
      session.destroy();
      reject(new Error(`no answer from ${url} within 10s`));
    }, 10_000);
    const fail = (error: Error) => {
      clearTimeout(timer);
      session.destroy();
      reject(error);
    };
    session.on("error", fail);
    const stream = session.request({
      ":method": "POST",
      ":path": "/pushprox.v1.RegistryService/ListClients",
      "content-type": "application/grpc+proto",
      te: "trailers",
    });
    let status = 0;
    let grpcStatus: string | null = null;
    stream.on("response", (headers) => {
      status = Number(headers[":status"]);
      grpcStatus = (headers["grpc-status"] as string | undefined) ?? grpcStatus;
    });
    stream.on("trailers", (trailers) => {
      grpcStatus = (trailers["grpc-status"] as string | undefined) ?? grpcStatus;
    });
    stream.on("data", () => {});
    stream.on("error", fail);
    stream.on("end", () => {
      if (status === 0) return fail(new Error(`${url} ended the stream without a response`));
      clearTimeout(timer);
      const socket = session.socket as unknown as { alpnProtocol?: string | false } | undefined;
      const alpn = typeof socket?.alpnProtocol === "string" ? socket.alpnProtocol : null;
      session.close();
      resolve({ status, grpcStatus, alpn });
    });
    stream.end(new Uint8Array(5)); // one empty, uncompressed message
  });
}

Deno.test({
  name: "--grpc.listen-address serves TLS with the web config's certificate and client-CA rules",
  ignore: OPENSSL_MISSING !== null,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "pushprox-grpc-listener-" });
    let proxy: TestProcess | null = null;
    try {
      const ca = await createTestCa(dir);
      const server = await ca.issue("server", {
        cn: "localhost",
        sans: ["DNS:localhost", "IP:127.0.0.1"],
        usage: "server",
      });
      const client = await ca.issue("client", { cn: "reader", usage: "client" });
      await Deno.writeTextFile(
        `${dir}/web.yml`,
        [
          "tls_server_config:",
          `  cert_file: ${server.certFile}`,
          `  key_file: ${server.keyFile}`,
          "  client_auth_type: RequireAndVerifyClientCert",
          `  client_ca_file: ${ca.certFile}`,
          "",
        ].join("\n"),
      );
      const started = await startProxyProcess([
        `--web.config.file=${dir}/web.yml`,
        "--grpc.listen-address=127.0.0.1:0",
      ]);
      proxy = started.process;
      const match = await proxy.waitFor(
        /msg="Listening on" address=127\.0\.0\.1:(\d+) listener=grpc tls=true/,
      );
      const port = Number(match[1]);
      const pem = (path: string) => Deno.readTextFileSync(path);

      const ok = await grpcListClients(`https://127.0.0.1:${port}`, {
        ca: pem(ca.certFile),
        cert: pem(client.certFile),
        key: pem(client.keyFile),
      });
      assert.deepEqual(ok, { status: 200, grpcStatus: "0", alpn: "h2" });

      // The main port's client-certificate rule holds here too.
      await assert.rejects(grpcListClients(`https://127.0.0.1:${port}`, { ca: pem(ca.certFile) }));
      // And it is not h2c.
      await assert.rejects(grpcListClients(`http://127.0.0.1:${port}`));
    } finally {
      await proxy?.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
