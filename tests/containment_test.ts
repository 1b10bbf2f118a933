/**
 * Containment at the proxy's edge (issue #10 items 1, 2 and 5), tested as a
 * peer would: raw sockets against the running proxy process. Each
 * reproduction of the issue is a named test; after each, the proxy must
 * still answer `/-/healthy` and a scrape-path request.
 */

import assert from "node:assert/strict";
import { connect as connectH2 } from "node:http2";
import { connect } from "node:net";
import { connect as connectTls } from "node:tls";
import { create, toBinary } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { ClientService, PushRequestSchema } from "../gen/pushprox/v1/pushprox_pb.ts";
import { encodeEnvelope } from "../proxy/connect_stream.ts";
import { RAISE_FOR_TEST_ENV } from "../lib/last_resort.ts";
import { createTestCa, OPENSSL_MISSING } from "./certs.ts";
import { startSecureProxy } from "./secure_stack.ts";
import {
  denoEnv,
  freePort,
  proxiedGet,
  startClientProcess,
  startProxyProcess,
  type TestProcess,
  waitUntil,
} from "./support.ts";

/** What a raw connection got: the answer's bytes and when the proxy closed it. */
interface Exchange {
  answer: string;
  /** Milliseconds from the first write to the proxy's close; null if still open at the limit. */
  closedAfterMs: number | null;
}

/**
 * Writes `head`, then `trickle` one byte every `trickleEveryMs`, and reads
 * until the proxy closes the connection or `limitMs` passes.
 */
function exchange(
  port: number,
  head: string | Uint8Array,
  options: { limitMs: number; trickleEveryMs?: number; then?: Uint8Array } = { limitMs: 5_000 },
): Promise<Exchange> {
  return new Promise((resolve) => {
    const socket = connect(port, "127.0.0.1");
    const started = performance.now();
    let answer = "";
    let ticker: ReturnType<typeof setInterval> | undefined;
    const done = (closed: boolean) => {
      clearTimeout(limit);
      clearInterval(ticker);
      socket.destroy();
      resolve({ answer, closedAfterMs: closed ? performance.now() - started : null });
    };
    const limit = setTimeout(() => done(false), options.limitMs);
    socket.setEncoding("latin1");
    socket.on("data", (chunk: string) => answer += chunk);
    socket.on("error", () => {});
    socket.on("close", () => done(true));
    socket.write(head);
    if (options.then) socket.write(options.then);
    if (options.trickleEveryMs) {
      ticker = setInterval(() => {
        if (!socket.destroyed) socket.write("x");
      }, options.trickleEveryMs);
    }
  });
}

async function metric(url: string, pattern: RegExp): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const match = text.match(pattern);
  return match ? Number(match[1]) : NaN;
}

/** The proxy is alive: `/-/healthy` answers 200 and a scrape for an unknown client 404. */
async function stillServing(url: string, port: number): Promise<void> {
  const healthy = await fetch(`${url}/-/healthy`, { signal: AbortSignal.timeout(5_000) });
  assert.equal(healthy.status, 200);
  await healthy.body?.cancel();
  const scrape = await proxiedGet(port, "http://nobody.example:9100/metrics");
  assert.equal(scrape.status, 404);
  assert.match(new TextDecoder().decode(scrape.body), /Cannot scrape/);
}

async function withProxy(
  args: string[],
  run: (proxy: { url: string; port: number; process: TestProcess }) => Promise<void>,
  env: Record<string, string> = {},
): Promise<void> {
  const proxy = await startProxyProcess(args, { env: { ...denoEnv(), ...env } });
  try {
    await run(proxy);
    assert.doesNotMatch(proxy.process.output(), /Uncaught|error: /);
  } finally {
    await proxy.process.stop();
  }
}

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
    const dir = await Deno.makeTempDir();
    const ca = await createTestCa(dir);
    const server = await ca.issue("server", {
      cn: "localhost",
      sans: ["DNS:localhost", "IP:127.0.0.1"],
      usage: "server",
    });
    const proxy = await startSecureProxy({
      dir,
      web: `tls_server_config:\n  cert_file: ${server.certFile}\n  key_file: ${server.keyFile}\n`,
      auth: `clients:\n  tokens:\n    - sha256: ${"ab".repeat(32)}\n      fqdns: ["**"]\n` +
        "scrapers:\n  certificates: [prometheus]\n" +
        `readers:\n  tokens:\n    - sha256: ${"ef".repeat(32)}\n`,
    });
    try {
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
    } finally {
      await proxy.close();
      await Deno.remove(dir, { recursive: true });
    }
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

function pushHead(scrapeId: string, sessionId: string, status = 200): Uint8Array {
  return encodeEnvelope(
    0,
    toBinary(
      PushRequestSchema,
      create(PushRequestSchema, {
        message: {
          case: "head",
          value: { scrapeId, sessionId, status, headers: [], error: "" },
        },
      }),
    ),
  );
}

function pushChunk(bytes: Uint8Array): Uint8Array {
  return encodeEnvelope(
    0,
    toBinary(
      PushRequestSchema,
      create(PushRequestSchema, { message: { case: "bodyChunk", value: bytes } }),
    ),
  );
}

const PUSH_HEAD =
  "POST /pushprox.v1.ClientService/Push HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/connect+proto\r\nContent-Length: 10000000\r\n\r\n";

Deno.test("issue 10 item 5: a request body trickling a byte at a time is cut by --web.body-idle-timeout", async () => {
  await withProxy(["--web.body-idle-timeout=2s"], async ({ url, port }) => {
    // The Push declares one 800-byte message, whose bytes then trickle in.
    const heads: Record<string, string> = {
      "fast-path Push": PUSH_HEAD + "\0\0\0\x03\x20",
      "connect-es ListClients":
        "POST /pushprox.v1.RegistryService/ListClients HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n",
      "legacy /push": "POST /push HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000\r\n\r\n",
    };
    for (const [name, head] of Object.entries(heads)) {
      const { answer, closedAfterMs } = await exchange(port, head, {
        limitMs: 20_000,
        trickleEveryMs: 300,
      });
      assert.ok(closedAfterMs !== null, `${name}: still open after 20 s`);
      assert.ok(closedAfterMs >= 1_500, `${name}: closed after ${closedAfterMs} ms`);
      assert.match(answer, /^HTTP\/1\.1 408 /, `${name}: ${answer.slice(0, 300)}`);
      assert.match(answer, /--web\.body-idle-timeout=2s/, name);
    }
    assert.ok(
      (await metric(url, /^pushprox_proxy_limit_hits_total\{limit="body_idle_timeout"\} (\d+)/m)) >=
        3,
    );
    await stillServing(url, port);
  });
});

Deno.test("issue 10 item 5: a Push answered before its request body ends is closed", async () => {
  await withProxy([], async ({ url, port }) => {
    // An unknown scrape: answered at once, while the declared 10 MB never come.
    const fast = await exchange(port, PUSH_HEAD, {
      limitMs: 20_000,
      then: pushHead("no-such-scrape", "no-such-session"),
    });
    assert.match(fast.answer, /^HTTP\/1\.1 200 /);
    assert.match(fast.answer, /not_found/);
    assert.ok(fast.closedAfterMs !== null, "fast-path Push still open after 20 s");
    // The same through connect-es (JSON).
    const json = '{"head":{"scrapeId":"no-such-scrape","sessionId":"x","status":200}}';
    const viaConnectEs = await exchange(
      port,
      "POST /pushprox.v1.ClientService/Push HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/connect+json\r\nContent-Length: 10000000\r\n\r\n",
      { limitMs: 20_000, then: encodeEnvelope(0, new TextEncoder().encode(json)) },
    );
    assert.match(viaConnectEs.answer, /^HTTP\/1\.1 200 /);
    assert.match(viaConnectEs.answer, /not_found/);
    assert.ok(viaConnectEs.closedAfterMs !== null, "connect-es Push still open after 20 s");
    const legacy = await exchange(
      port,
      "POST /push HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 10000000\r\n\r\nHTTP/1.1 200 OK\r\nId: nope\r\nContent-Length: 9000000\r\n\r\n",
      { limitMs: 20_000 },
    );
    assert.match(legacy.answer, /^HTTP\/1\.1 500 /);
    assert.ok(legacy.closedAfterMs !== null, "legacy Push still open after 20 s");
    assert.ok(
      (await metric(url, /^pushprox_proxy_limit_hits_total\{limit="body_drain"\} (\d+)/m)) >= 3,
    );
    await stillServing(url, port);
  });
});

Deno.test("issue 10 item 5: a relay aborted by --scrape.max-body-bytes closes its Push", async () => {
  await withProxy(["--scrape.max-body-bytes=1000"], async ({ url, port }) => {
    const transport = createConnectTransport({
      baseUrl: url,
      httpVersion: "1.1",
      useBinaryFormat: true,
    });
    const stop = new AbortController();
    const stream = createClient(ClientService, transport).poll(
      { fqdn: "big.example" },
      { signal: stop.signal },
    )[Symbol.asyncIterator]();
    try {
      const registered = await stream.next();
      assert.equal(registered.value?.message.case, "registered");
      const sessionId = registered.value.message.value.sessionId;
      const scrape = proxiedGet(port, "http://big.example:9100/metrics").catch((error) => error);
      let task;
      do task = await stream.next(); while (task.value?.message.case !== "scrape");
      const push = await exchange(port, PUSH_HEAD, {
        limitMs: 20_000,
        then: new Uint8Array([
          ...pushHead(task.value.message.value.id, sessionId),
          ...pushChunk(new Uint8Array(4000)),
        ]),
      });
      assert.ok(push.closedAfterMs !== null, "the aborted Push is still open after 20 s");
      const result = await scrape;
      assert.ok(
        result instanceof Error || result.status === 502 || result.body.byteLength < 4000,
        "Prometheus got the whole body",
      );
      assert.ok(
        (await metric(
          url,
          /^pushprox_proxy_limit_hits_total\{limit="scrape_body_bytes"\} (\d+)/m,
        )) >= 1,
      );
    } finally {
      stop.abort();
      await stream.return?.(undefined).catch(() => {});
    }
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

Deno.test("gRPC port: silent connections, idle sessions and trickling streams are closed", async () => {
  const grpcPort = await freePort();
  await withProxy([
    `--grpc.listen-address=127.0.0.1:${grpcPort}`,
    "--web.read-header-timeout=1s",
    "--web.idle-timeout=2s",
    "--web.body-idle-timeout=2s",
  ], async ({ url, port }) => {
    await new Promise<void>((resolve) => setTimeout(resolve, 200));
    // A connection that never sends a request.
    const silent = await exchange(grpcPort, "", { limitMs: 15_000 });
    assert.ok(silent.closedAfterMs !== null, "silent gRPC connection still open after 15 s");
    // A session whose one call ended, then nothing.
    const session = connectH2(`http://127.0.0.1:${grpcPort}`);
    session.on("error", () => {});
    const sessionClosed = new Promise<number>((resolve) => {
      const started = performance.now();
      session.once("close", () => resolve(performance.now() - started));
    });
    const call = (body: string | null) =>
      new Promise<number>((resolve) => {
        const stream = session.request({
          ":method": "POST",
          ":path": "/pushprox.v1.RegistryService/ListClients",
          "content-type": "application/json",
        });
        let status = 0;
        stream.on("response", (headers) => status = Number(headers[":status"]));
        stream.on("error", () => {});
        stream.on("close", () => resolve(status));
        stream.resume();
        if (body !== null) return void stream.end(body);
        // A body trickling in, one byte at a time.
        const ticker = setInterval(() => stream.write(" "), 300);
        stream.once("close", () => clearInterval(ticker));
      });
    assert.equal(await call("{}"), 200);
    const trickled = await Promise.race([
      call(null),
      new Promise<string>((resolve) => setTimeout(() => resolve("still open"), 15_000)),
    ]);
    assert.equal(trickled, 408);
    const idleMs = await Promise.race([
      sessionClosed,
      new Promise<string>((resolve) => setTimeout(() => resolve("still open"), 15_000)),
    ]);
    assert.equal(typeof idleMs, "number", "idle gRPC session still open after 15 s");
    session.destroy();
    assert.ok(
      (await metric(url, /^pushprox_proxy_limit_hits_total\{limit="header_timeout"\} (\d+)/m)) >= 1,
    );
    await stillServing(url, port);
  });
});

Deno.test("long Poll streams and slow pushes matched to a scrape outlive --web.body-idle-timeout", async () => {
  await withProxy([
    "--web.body-idle-timeout=1s",
    "--poll.heartbeat-interval=500ms",
  ], async ({ url, port }) => {
    const stop = new AbortController();
    const polls = [true, false].map((binary) =>
      createClient(
        ClientService,
        createConnectTransport({ baseUrl: url, httpVersion: "1.1", useBinaryFormat: binary }),
      ).poll({ fqdn: binary ? "slow.example" : "json.example" }, { signal: stop.signal })[
        Symbol.asyncIterator
      ]()
    );
    try {
      const [binary, json] = polls as [typeof polls[0], typeof polls[0]];
      const registered = await binary.next();
      assert.equal(registered.value?.message.case, "registered");
      assert.equal((await json.next()).value?.message.case, "registered");
      const sessionId = registered.value.message.value.sessionId;
      const scrape = proxiedGet(port, "http://slow.example:9100/metrics", {
        "x-prometheus-scrape-timeout-seconds": "20",
      });
      let task;
      do task = await binary.next(); while (task.value?.message.case !== "scrape");
      // The answer trickles in over 3 s, three times the body idle timeout.
      const socket = connect(port, "127.0.0.1");
      socket.on("error", () => {});
      const body = new Uint8Array(6);
      const message = new Uint8Array([
        ...pushHead(task.value.message.value.id, sessionId),
        ...pushChunk(body),
      ]);
      socket.write(
        `POST /pushprox.v1.ClientService/Push HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/connect+proto\r\nContent-Length: ${
          message.byteLength + 5 * pushChunk(body).byteLength
        }\r\n\r\n`,
      );
      socket.write(message);
      for (let i = 0; i < 5; i++) {
        await new Promise((resolve) => setTimeout(resolve, 600));
        socket.write(pushChunk(body));
      }
      const result = await scrape;
      socket.destroy();
      assert.equal(result.status, 200);
      assert.equal(result.body.byteLength, 36);
      // Both Poll streams are still alive, 3 s later: heartbeats keep coming.
      for (const poll of [binary, json]) {
        let next;
        do next = await poll.next(); while (next.value?.message.case === "scrape");
        assert.equal(next.value?.message.case, "heartbeat");
      }
      assert.equal(
        await metric(url, /^pushprox_proxy_limit_hits_total\{limit="body_idle_timeout"\} (\d+)/m),
        0,
      );
    } finally {
      stop.abort();
      for (const poll of polls) await poll.return?.(undefined).catch(() => {});
    }
    await stillServing(url, port);
  });
});
