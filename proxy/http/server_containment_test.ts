import assert from "node:assert/strict";
import { connect } from "node:net";
import { createLogger } from "../../lib/logger.ts";
import { type Authenticator, createAuthenticator, defaultAuthConfig } from "../auth/auth.ts";
import { createProxy, DRAIN_MAX_MS, serveProxy } from "./server.ts";

/** Sends raw bytes; resolves with the answer when the proxy closes the connection. */
function raw(port: number, request: string, limitMs = DRAIN_MAX_MS + 5_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1");
    let answer = "";
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`still open after ${limitMs} ms; got ${JSON.stringify(answer)}`));
    }, limitMs);
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => answer += chunk);
    socket.on("error", () => {});
    socket.on("close", () => {
      clearTimeout(timer);
      resolve(answer);
    });
    socket.write(request);
  });
}

async function withProxy(
  run: (port: number, proxy: ReturnType<typeof createProxy>, logs: string[]) => Promise<void>,
  auth?: Authenticator,
): Promise<void> {
  const logs: string[] = [];
  const proxy = createProxy({
    logger: createLogger({ write: (line) => logs.push(line) }),
    defaultMetrics: false,
    bodyIdleTimeoutMs: 1_000,
    ...(auth ? { auth } : {}),
  });
  const stop = new AbortController();
  const serving = await serveProxy(proxy, { hostname: "127.0.0.1", port: 0, signal: stop.signal });
  try {
    await run(serving.address.port, proxy, logs);
  } finally {
    stop.abort();
    await serving.finished;
  }
}

async function counted(proxy: ReturnType<typeof createProxy>): Promise<number> {
  return (await proxy.metrics.handlerErrors.get()).values[0]?.value ?? 0;
}

Deno.test("a handler that throws: 500, connection closed, counted and logged", async () => {
  await withProxy(async (port, proxy, logs) => {
    proxy.coordinator.listClients = () => {
      throw new Error("injected");
    };
    const answer = await raw(port, "GET /clients HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert.match(answer, /^HTTP\/1\.1 500 /);
    assert.match(answer, /connection: close/i);
    assert.equal(await counted(proxy), 1);
    assert.ok(logs.some((line) => /level=error msg="Request handler failed".*injected/.test(line)));
  });
});

Deno.test("a handler's rejected promise (authentication): 500, closed, counted", async () => {
  const auth = createAuthenticator(defaultAuthConfig(new Map()), { users: new Map() });
  auth.authenticate = () => Promise.reject(new Error("injected"));
  await withProxy(async (port, proxy) => {
    const answer = await raw(port, "GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert.match(answer, /^HTTP\/1\.1 500 /);
    assert.equal(await counted(proxy), 1);
  }, auth);
});

Deno.test("no usable Host: 400 naming the problem, before routing", async () => {
  await withProxy(async (port, proxy) => {
    proxy.coordinator.listClients = () => {
      throw new Error("must not be reached");
    };
    const answer = await raw(port, "GET /clients HTTP/1.0\r\n\r\n");
    assert.match(answer, /^HTTP\/1\.1 400 /);
    assert.match(answer, /Bad Request: the request has no Host/);
    assert.equal(await counted(proxy), 0);
  });
});

Deno.test("a body still arriving after the answer is drained a little, then closed", async () => {
  await withProxy(async (port, proxy) => {
    const started = performance.now();
    // 404 at once; the declared megabyte never comes.
    const answer = await raw(
      port,
      "POST /nowhere HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1000000\r\n\r\nabc",
    );
    assert.match(answer, /^HTTP\/1\.1 404 /);
    assert.ok(performance.now() - started >= DRAIN_MAX_MS - 500);
    const hits = await proxy.metrics.limitHits.get();
    assert.equal(hits.values.find((v) => v.labels.limit === "body_drain")?.value, 1);
  });
});

Deno.test("a body that does not arrive within the body idle timeout: 408 and closed", async () => {
  await withProxy(async (port, proxy) => {
    // A Connect call waits for its whole body; one byte of ten comes.
    const slow = await raw(
      port,
      "POST /pushprox.v1.RegistryService/ListClients HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 10\r\n\r\n{",
    );
    assert.match(slow, /^HTTP\/1\.1 408 /);
    assert.match(slow, /--web\.body-idle-timeout=1s/);
    const hits = await proxy.metrics.limitHits.get();
    assert.equal(hits.values.find((v) => v.labels.limit === "body_idle_timeout")?.value, 1);
  });
});
