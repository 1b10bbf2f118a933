/**
 * Containment at the proxy's edge (issue #10 items 1 and 2), tested as a
 * peer would: raw sockets against the running proxy process. Each
 * reproduction of the issue is a named test; after each, the proxy must
 * still answer `/-/healthy` and a scrape-path request. Request bodies and
 * streams: containment_body_test.ts.
 */

import assert from "node:assert/strict";
import { connect as connectH2 } from "node:http2";
import { connect } from "node:net";
import { connect as connectTls } from "node:tls";
import { RAISE_FOR_TEST_ENV } from "../../lib/last_resort.ts";
import { createTestCa, OPENSSL_MISSING } from "../certs.ts";
import { startSecureProxy } from "../secure_stack.ts";
import { denoEnv, freePort, startClientProcess, startProxyProcess, waitUntil } from "../support.ts";
import { exchange, metric, stillServing, withProxy } from "./containment_support.ts";
import { closing, tempDir } from "../fixture.ts";

const BAD_HOSTS = ["", "[", "%", "#", "?", "\\", "a:b:c", "x:abc", ":80", "1.2.3.4.5"];

Deno.test("issue 10 item 1: Connect requests without a usable Host get 400; the proxy survives", async () => {
  await withProxy([], async ({ url, port }) => {
    const requests: [string, string][] = [
      [
        "HTTP/1.0 ListClients, no Host",
        "POST /pushprox.v1.RegistryService/ListClients HTTP/1.0\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
      ],
    ];
    const calls = [
      ["/pushprox.v1.RegistryService/ListClients", "application/json", "{}"],
      ["/pushprox.v1.ClientService/Poll", "application/connect+json", "\0\0\0\0\x02{}"],
      ["/pushprox.v1.ClientService/Push", "application/grpc-web+proto", "\0\0\0\0\0"],
    ];
    for (const host of BAD_HOSTS) {
      for (const [path, type, body] of calls) {
        requests.push([
          `${path} Host ${JSON.stringify(host)}`,
          `POST ${path} HTTP/1.1\r\nHost: ${host}\r\nContent-Type: ${type}\r\nContent-Length: ${
            body!.length
          }\r\nConnection: close\r\n\r\n${body}`,
        ]);
      }
    }
    requests.push([
      "two Host headers",
      "GET /clients HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n",
    ]);
    for (const [name, request] of requests) {
      const { answer } = await exchange(port, request, { limitMs: 5_000 });
      assert.match(answer, /^HTTP\/1\.1 400 /, `${name}: ${answer.slice(0, 200)}`);
    }
    const { answer } = await exchange(port, requests[0]![1], { limitMs: 5_000 });
    assert.match(answer, /Bad Request: the request has no Host/);
    assert.ok(
      (await metric(url, /^pushprox_proxy_bad_requests_total\{reason="authority"\} (\d+)/m)) > 0,
    );
    await stillServing(url, port);
  });
});

Deno.test({
  name: "issue 10 item 1: over TLS with auth, a bad Host gets 400 before any credential is checked",
  ignore: OPENSSL_MISSING !== null,
  async fn() {
    await using temp = await tempDir();
    const dir = temp.path;
    const ca = await createTestCa(dir);
    const server = await ca.issue("server", {
      cn: "localhost",
      sans: ["DNS:localhost", "IP:127.0.0.1"],
      usage: "server",
    });
    await using proxy = closing(
      await startSecureProxy({
        dir,
        web: `tls_server_config:\n  cert_file: ${server.certFile}\n  key_file: ${server.keyFile}\n`,
        auth: `clients:\n  tokens:\n    - sha256: ${"ab".repeat(32)}\n      fqdns: ["**"]\n` +
          "scrapers:\n  certificates: [prometheus]\n" +
          `readers:\n  tokens:\n    - sha256: ${"ef".repeat(32)}\n`,
      }),
    );
    for (const host of ["", "[", "a:b:c", "1.2.3.4.5"]) {
      const answer = await new Promise<string>((resolve, reject) => {
        const socket = connectTls({
          host: "127.0.0.1",
          port: proxy.port,
          servername: "localhost",
          ca: ca.cert,
        }, () =>
          socket.write(
            `POST /pushprox.v1.RegistryService/ListClients HTTP/1.1\r\nHost: ${host}\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}`,
          ));
        let text = "";
        socket.setEncoding("utf8");
        socket.on("data", (chunk: string) => text += chunk);
        socket.on("end", () => resolve(text));
        socket.on("error", reject);
      });
      assert.match(answer, /^HTTP\/1\.1 400 /, JSON.stringify(host));
      assert.match(answer, /Bad Request: the /);
    }
    assert.equal(
      (await proxy.proxy.metrics.authFailures.get()).values.reduce((n, v) => n + v.value, 0),
      0,
      "no credential was checked",
    );
  },
});

Deno.test("issue 10 item 1: absolute-form scrapes with a bad authority get 400", async () => {
  await withProxy([], async ({ url, port }) => {
    for (const authority of ["[", "%", "a:b:c", "x:abc", ":80", "1.2.3.4.5", "1.2.3"]) {
      const { answer } = await exchange(
        port,
        `GET http://${authority}/metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`,
        { limitMs: 5_000 },
      );
      assert.match(answer, /^HTTP\/1\.1 400 /, authority);
      assert.match(answer, /Malformed request target/, authority);
    }
    await stillServing(url, port);
  });
});

Deno.test("issue 10 item 1: gRPC port: a bad :authority gets 400 and the listener survives", async () => {
  const grpcPort = await freePort();
  await withProxy([`--grpc.listen-address=127.0.0.1:${grpcPort}`], async ({ url, port }) => {
    await new Promise<void>((resolve) => setTimeout(resolve, 200));
    const session = connectH2(`http://127.0.0.1:${grpcPort}`);
    session.on("error", () => {});
    try {
      for (const authority of ["a:b:c", "[", "1.2.3.4.5", "x:abc"]) {
        const status = await new Promise<number>((resolve, reject) => {
          const stream = session.request({
            ":method": "POST",
            ":path": "/pushprox.v1.RegistryService/ListClients",
            ":authority": authority,
            "content-type": "application/json",
          });
          stream.on("response", (headers) => resolve(Number(headers[":status"])));
          stream.on("error", reject);
          stream.resume();
          stream.end("{}");
        });
        assert.equal(status, 400, authority);
      }
    } finally {
      session.close();
    }
    await stillServing(url, port);
  });
});

Deno.test("issue 10 item 2: a CONNECT whose sender resets or closes without reading the 501", async () => {
  await withProxy([], async ({ url, port }) => {
    const connectRequest = "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n";
    for (let i = 0; i < 20; i++) {
      await new Promise<void>((resolve) => {
        const socket = connect(port, "127.0.0.1", () => {
          socket.write(connectRequest);
          // Gone before the answer: a plain close.
          if (i % 2 === 1) socket.end();
        });
        socket.on("error", () => resolve());
        socket.on("close", () => resolve());
        // The answer came: a reset instead of reading it (curl -x giving up does this).
        socket.once("data", () => socket.resetAndDestroy());
      });
    }
    await new Promise((resolve) => setTimeout(resolve, 500));
    await stillServing(url, port);
  });
});

for (const kind of ["rejection", "error"]) {
  Deno.test(`an uncaught ${kind} is logged and counted, and the proxy keeps serving`, async () => {
    const proxy = await startProxyProcess([], {
      env: { ...denoEnv(), [RAISE_FOR_TEST_ENV]: kind },
    });
    try {
      await proxy.process.waitFor(/level=error msg="Uncaught (promise rejection|error)/);
      await stillServing(proxy.url, proxy.port);
      assert.equal(
        await metric(proxy.url, /^pushprox_proxy_uncaught_errors_total (\d+)/m),
        1,
      );
    } finally {
      await proxy.process.stop();
    }
  });
}

Deno.test("an uncaught rejection in the client is logged and counted, and it keeps serving", async () => {
  const proxy = await startProxyProcess();
  const client = startClientProcess([
    `--proxy-url=${proxy.url}`,
    "--fqdn=survivor.example",
  ], { env: { ...denoEnv(), [RAISE_FOR_TEST_ENV]: "rejection" } });
  try {
    await client.waitFor(/level=error msg="Uncaught promise rejection/);
    const match = await client.waitFor(
      /msg="Listening on" address=127\.0\.0\.1:(\d+) listener=metrics/,
    );
    await waitUntil(
      async () => {
        const clients = await (await fetch(`${proxy.url}/clients`)).json();
        return JSON.stringify(clients).includes("survivor.example") ? true : undefined;
      },
      15_000,
      "the client to register",
    );
    const text = await (await fetch(`http://127.0.0.1:${match[1]}/metrics`)).text();
    assert.match(text, /^pushprox_client_uncaught_errors_total 1$/m);
    await stillServing(proxy.url, proxy.port);
  } finally {
    await client.stop();
    await proxy.process.stop();
  }
});
