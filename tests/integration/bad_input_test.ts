/**
 * Bad input on every surface of the proxy: each gets a clear status and
 * message, nothing crashes, nothing is left behind, and the proxy keeps
 * serving.
 */

import assert from "node:assert/strict";
import { connect } from "node:net";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { ClientService } from "../../gen/pushprox/v1/pushprox_pb.ts";
import { proxiedGet, waitUntil } from "../support.ts";
import { type Stack, startStack } from "../stack.ts";

const TEXT = "up 1\n";

/** Sends raw bytes to the proxy and returns what it answers. */
function rawRequest(port: number, request: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1");
    let answer = "";
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => answer += chunk);
    socket.on("end", () => resolve(answer));
    socket.on("error", reject);
    socket.write(request);
    setTimeout(() => socket.end(), 500);
  });
}

async function* pushOf(head: { scrapeId: string; sessionId: string; status: number }) {
  yield { message: { case: "head" as const, value: { ...head, headers: [], error: "" } } };
  yield { message: { case: "bodyChunk" as const, value: new TextEncoder().encode("x 1\n") } };
}

function connectClient(stack: Stack) {
  return createClient(
    ClientService,
    createConnectTransport({ baseUrl: stack.proxyUrl, httpVersion: "1.1", useBinaryFormat: true }),
  );
}

async function stillServing(stack: Stack): Promise<void> {
  const response = await fetch(`${stack.proxyUrl}/clients`);
  assert.equal(response.status, 200);
  await response.body?.cancel();
}

Deno.test("malformed request targets get 400 with a reason", async () => {
  await using stack = await startStack((_req, res) => res.end(TEXT));
  const answer = await rawRequest(
    stack.proxyPort,
    "GET http://[bad/metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
  );
  assert.match(answer, /^HTTP\/1\.1 400/);
  assert.match(answer, /Malformed request target/);
  const ftp = await rawRequest(
    stack.proxyPort,
    "GET ftp://host/metrics HTTP/1.1\r\nHost: host\r\nConnection: close\r\n\r\n",
  );
  assert.match(ftp, /^HTTP\/1\.1 400/);
  assert.match(ftp, /only absolute http:\/\/ URLs/);
  await stillServing(stack);
});

Deno.test("CONNECT and non-GET scrapes are refused with the reason", async () => {
  await using stack = await startStack((_req, res) => res.end(TEXT));
  const answer = await rawRequest(
    stack.proxyPort,
    "CONNECT localhost:443 HTTP/1.1\r\nHost: localhost:443\r\n\r\n",
  );
  assert.match(answer, /^HTTP\/1\.1 501/);
  assert.match(answer, /_scheme/);
  const post = await rawRequest(
    stack.proxyPort,
    "POST http://localhost:9100/metrics HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
  );
  assert.match(post, /^HTTP\/1\.1 405/);
  await stillServing(stack);
});

Deno.test("origin-form requests to unknown paths get 404 naming the path", async () => {
  await using stack = await startStack((_req, res) => res.end(TEXT));
  const response = await fetch(`${stack.proxyUrl}/no/such/thing`);
  assert.equal(response.status, 404);
  assert.match(await response.text(), /No such endpoint: \/no\/such\/thing/);
  const post = await fetch(`${stack.proxyUrl}/clients`, { method: "POST", body: "x" });
  assert.equal(post.status, 405);
  await post.body?.cancel();
});

Deno.test("garbage timeout headers get 400 naming the header", async () => {
  await using stack = await startStack((_req, res) => res.end(TEXT));
  await stack.startClient();
  for (const bad of ["soon", "-3", "0", "1e999"]) {
    const response = await proxiedGet(stack.proxyPort, stack.targetUrl(), {
      "x-prometheus-scrape-timeout-seconds": bad,
    });
    assert.equal(response.status, 400, bad);
    assert.match(new TextDecoder().decode(response.body), /x-prometheus-scrape-timeout-seconds/);
  }
  assert.equal(stack.proxy.coordinator.scrapesInFlight, 0);
});

Deno.test("pushes for unknown ids, foreign sessions or without a head are refused", async () => {
  await using stack = await startStack((_req, res) => res.end(TEXT));
  const client = connectClient(stack);
  const unknown = await client.push(pushOf({ scrapeId: "guessed", sessionId: "s", status: 200 }))
    .catch((e) => e);
  assert.ok(unknown instanceof ConnectError);
  assert.equal(unknown.code, Code.NotFound);
  assert.match(unknown.rawMessage, /No scrape "guessed" is waiting/);

  const noHead = await client.push((async function* () {
    yield { message: { case: "bodyChunk" as const, value: new Uint8Array([1]) } };
  })()).catch((e) => e);
  assert.equal(noHead.code, Code.InvalidArgument);

  // A head is checked once the push is known to answer a scrape (see
  // tests/integration/push_head_test.ts); this one answers none.
  const badStatus = await client.push(pushOf({ scrapeId: "x", sessionId: "s", status: 42 }))
    .catch((e) => e);
  assert.equal(badStatus.code, Code.NotFound);

  // A real scrape waiting for client A; B tries to answer it.
  await stack.startClient({ fqdn: "localhost" });
  const session = stack.proxy.coordinator.register({
    fqdn: "intruder",
    labels: {},
    version: "",
    modules: [],
    protocol: "connect",
  });
  const scrape = proxiedGet(stack.proxyPort, stack.targetUrl());
  const foreign = await client.push(
    pushOf({ scrapeId: "any", sessionId: session.id, status: 200 }),
  )
    .catch((e) => e);
  assert.equal(foreign.code, Code.NotFound);
  assert.equal((await scrape).status, 200, "the real scrape is not disturbed");
  session.close();
  const errors = await stack.proxy.metrics.pushErrors.get();
  assert.ok(errors.values.some((v) => v.labels.reason === "invalid" && v.value >= 1));
  await stillServing(stack);
});

Deno.test("a second push for a scrape being relayed is FailedPrecondition, counted as duplicate_push", async () => {
  const stack = await startStack((_req, res) => res.end(TEXT));
  const http = await import("node:http");
  let release = () => {};
  const stalled = new Promise<void>((resolve) => release = resolve);
  try {
    const client = connectClient(stack);
    const session = stack.proxy.coordinator.register({
      fqdn: "dup",
      labels: {},
      version: "",
      modules: [],
      protocol: "connect",
    }, { credential: "anonymous" }); // what an open proxy's pushes carry
    // Prometheus' side: resolves once the answer's head reached it.
    let body = "";
    let ended: Promise<void> = Promise.resolve();
    const answered = new Promise<number>((resolve, reject) => {
      http.request({
        host: "127.0.0.1",
        port: stack.proxyPort,
        path: "http://dup:9100/metrics",
        headers: { host: "dup:9100" },
        agent: false,
      }, (response) => {
        response.setEncoding("utf8");
        response.on("data", (chunk: string) => body += chunk);
        ended = new Promise((done) => response.on("end", done));
        resolve(response.statusCode ?? 0);
      }).on("error", reject).end();
    });
    const task = await session.next(AbortSignal.timeout(5_000));
    assert.ok(task !== null);
    const head = { scrapeId: task.id, sessionId: session.id, status: 200 };
    const first = client.push((async function* () {
      yield { message: { case: "head" as const, value: { ...head, headers: [], error: "" } } };
      yield { message: { case: "bodyChunk" as const, value: new TextEncoder().encode("up 1\n") } };
      await stalled;
    })());
    assert.equal(await answered, 200);
    const second = await client.push(pushOf(head)).catch((e) => e);
    assert.ok(second instanceof ConnectError);
    assert.equal(second.code, Code.FailedPrecondition);
    assert.match(second.rawMessage, /already answered/);
    release();
    await first;
    await ended;
    assert.equal(body, "up 1\n", "the first push is relayed undisturbed");
    const errors = await stack.proxy.metrics.pushErrors.get();
    const count = (reason: string) =>
      errors.values.find((v) => v.labels.reason === reason)?.value ?? 0;
    assert.equal(count("duplicate_push"), 1);
    assert.equal(count("unknown_scrape"), 0, "not counted as an unknown scrape");
    session.close();
  } finally {
    release();
    await stack.close();
  }
});

Deno.test("invalid registrations are refused with InvalidArgument", async () => {
  await using stack = await startStack((_req, res) => res.end(TEXT));
  const client = connectClient(stack);
  for (const fqdn of ["", "a/b", "evil\nhost", "host:80"]) {
    const error = await (async () => {
      for await (const _ of client.poll({ fqdn })) { /* must not register */ }
    })().catch((e) => e);
    assert.ok(error instanceof ConnectError, JSON.stringify(fqdn));
    assert.equal(error.code, Code.InvalidArgument);
    assert.match(error.rawMessage, /Cannot register/);
  }
  const badLabel = await (async () => {
    for await (const _ of client.poll({ fqdn: "ok", labels: { "bad-name": "x" } })) { /* no */ }
  })().catch((e) => e);
  assert.equal(badLabel.code, Code.InvalidArgument);
  assert.equal(stack.proxy.coordinator.clientCount, 0);
});

Deno.test("oversized and truncated Connect messages are refused", async () => {
  await using stack = await startStack((_req, res) => res.end(TEXT), {
    maxMessageBytes: 64 * 1024,
  });
  const client = connectClient(stack);
  const oversized = await client.push((async function* () {
    yield {
      message: {
        case: "head" as const,
        value: { scrapeId: "x", sessionId: "y", status: 200, headers: [], error: "" },
      },
    };
    yield { message: { case: "bodyChunk" as const, value: new Uint8Array(200 * 1024) } };
  })()).catch((e) => e);
  assert.ok(oversized instanceof ConnectError);
  // The head is checked first (unknown scrape) or the size limit trips.
  assert.ok([Code.ResourceExhausted, Code.NotFound].includes(oversized.code), oversized.message);

  const big = await (async () => {
    for await (
      const _ of client.poll({ fqdn: "x".repeat(100), labels: { a: "b".repeat(70_000) } })
    ) {
      /* must not register */
    }
  })().catch((e) => e);
  assert.equal(big.code, Code.ResourceExhausted);

  // A Connect streaming request whose envelope promises more than it sends.
  const truncated = new Uint8Array([0, 0, 0, 0, 100, 1, 2, 3]);
  const response = await fetch(`${stack.proxyUrl}/pushprox.v1.ClientService/Push`, {
    method: "POST",
    headers: { "content-type": "application/connect+proto", "connect-protocol-version": "1" },
    body: truncated,
  });
  const text = await response.text();
  assert.match(text, /"code":"(invalid_argument|internal|unknown|aborted)"/, text);
  assert.equal(stack.proxy.coordinator.clientCount, 0);
  await stillServing(stack);
});

Deno.test("a client that disconnects mid-push breaks only that scrape", async () => {
  await using stack = await startStack((_req, res) => res.end(TEXT));
  const client = connectClient(stack);
  const controller = new AbortController();
  let sessionId = "";
  const polling = (async () => {
    for await (const message of client.poll({ fqdn: "midpush" }, { signal: controller.signal })) {
      if (message.message.case === "registered") sessionId = message.message.value.sessionId;
      if (message.message.case === "scrape") {
        const id = message.message.value.id;
        // Push a head and one chunk, then vanish.
        client.push(
          (async function* () {
            yield {
              message: {
                case: "head" as const,
                value: { scrapeId: id, sessionId, status: 200, headers: [], error: "" },
              },
            };
            yield {
              message: {
                case: "bodyChunk" as const,
                value: new TextEncoder().encode("partial "),
              },
            };
            await new Promise((resolve) => setTimeout(resolve, 100));
            controller.abort();
            throw new Error("client crashed");
          })(),
          { signal: controller.signal },
        ).catch(() => {});
      }
    }
  })().catch(() => {});
  await waitUntil(
    () => stack.proxy.coordinator.clientCount === 1 || undefined,
    3000,
    "registration",
  );
  const result = await proxiedGet(stack.proxyPort, "http://midpush:9100/metrics").then(
    (r) => `status ${r.status}`,
    (e) => `error ${e.message}`,
  );
  // Prometheus must not take a partial body for a complete one.
  assert.match(result, /^error/, result);
  await polling;
  await waitUntil(
    () => stack.proxy.coordinator.scrapesInFlight === 0 || undefined,
    3000,
    "cleanup",
  );
  await stillServing(stack);
});
