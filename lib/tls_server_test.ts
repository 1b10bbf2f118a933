import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import https from "node:https";
import { connect } from "node:net";
import { createTestCa, OPENSSL_MISSING } from "../tests/certs.ts";
import { listenTlsFront, PLAIN_HTTP_ANSWER } from "./tls_server.ts";

Deno.test({
  name: "listenTlsFront() answers plain HTTP with Go's 400 and passes TLS on with the real peer",
  ignore: OPENSSL_MISSING !== null,
  async fn() {
    const dir = await Deno.makeTempDir();
    const server = https.createServer({}, (req, res) => {
      res.end(`${req.socket.remoteAddress} ${req.socket.remotePort}`);
    });
    let front;
    try {
      const ca = await createTestCa(dir);
      const leaf = await ca.issue("server", {
        cn: "localhost",
        sans: ["IP:127.0.0.1"],
        usage: "server",
      });
      server.setSecureContext({ cert: leaf.cert, key: leaf.key });
      front = await listenTlsFront(server, { hostname: "127.0.0.1", port: 0 });
      const port = front.address.port;

      const plain = await new Promise<string>((resolve) => {
        const socket = connect(port, "127.0.0.1");
        let text = "";
        socket.on("data", (chunk: Buffer) => text += chunk.toString("latin1"));
        socket.on("close", () => resolve(text));
        socket.write("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
      });
      assert.equal(plain, PLAIN_HTTP_ANSWER);
      assert.match(plain, /^HTTP\/1\.0 400 Bad Request\r\n/);

      const { body, localPort } = await new Promise<{ body: string; localPort: number }>(
        (resolve, reject) => {
          const req = https.get({
            host: "127.0.0.1",
            port,
            path: "/",
            ca: ca.cert,
            agent: false,
          }, (res) => {
            const chunks: Buffer[] = [];
            res.on("data", (c: Buffer) => chunks.push(c));
            res.on("end", () =>
              resolve({
                body: Buffer.concat(chunks).toString(),
                localPort: req.socket!.localPort!,
              }));
          });
          req.on("error", reject);
        },
      );
      assert.equal(body, `127.0.0.1 ${localPort}`, "the scraper's port, not the loopback hop's");
    } finally {
      front?.close();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
      await Deno.remove(dir, { recursive: true });
    }
  },
});
