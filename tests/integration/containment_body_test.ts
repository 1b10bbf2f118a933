/**
 * Containment of request bodies and streams at the proxy's edge (issue #10
 * item 5): trickling bodies, pushes answered or aborted early, silent gRPC
 * connections, and the long Poll streams and pushes that must outlive the
 * body idle timeout. Raw sockets against the running proxy process.
 */

import assert from "node:assert/strict";
import { connect as connectH2 } from "node:http2";
import { connect } from "node:net";
import { create, toBinary } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { ClientService, PushRequestSchema } from "../../gen/pushprox/v1/pushprox_pb.ts";
import { encodeEnvelope } from "../../proxy/connect/connect_stream.ts";
import { freePort, proxiedGet } from "../support.ts";
import { exchange, metric, stillServing, withProxy } from "./containment_support.ts";

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
