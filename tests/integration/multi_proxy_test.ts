/**
 * Several proxies from one client, in process: a name that resolves to
 * several addresses gets one stream per address (and loses one when an
 * address disappears); HTTP_PROXY tunnels the client's connections with
 * CONNECT; the API answers plain gRPC on --grpc.listen-address.
 */

import assert from "node:assert/strict";
import { createServer as createHttpServer, type Server } from "node:http";
import { type AddressInfo, connect } from "node:net";
import { startAgent } from "../../client/agent/agent.ts";
import { createProxy, type Proxy, serveProxy } from "../../proxy/http/server.ts";
import { serveGrpc } from "../../proxy/connect/grpc_server.ts";
import { parseWebConfig } from "../../lib/web_config.ts";
import { createTlsListener } from "../../lib/tls_server.ts";
import { createTestCa, OPENSSL_MISSING } from "../certs.ts";
import { bufCurlListClients, proxiedGet, waitUntil } from "../support.ts";
import { testLogger } from "../stack.ts";
import { closing, stopping, tempDir } from "../fixture.ts";

async function listen(server: Server, host = "127.0.0.1", port = 0): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => resolve());
  });
  return (server.address() as AddressInfo).port;
}

async function close(server: Server): Promise<void> {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
}

interface RunningProxy {
  proxy: Proxy;
  port: number;
  stop(): Promise<void>;
}

async function startProxy(hostname: string, port = 0): Promise<RunningProxy> {
  const proxy = createProxy({ logger: testLogger(), defaultMetrics: false });
  const stop = new AbortController();
  const serving = await serveProxy(proxy, { hostname, port, signal: stop.signal });
  return {
    proxy,
    port: serving.address.port,
    async stop() {
      stop.abort();
      await serving.finished;
    },
  };
}

function connectedAt(proxy: Proxy, fqdn: string): boolean {
  return proxy.coordinator.listClients().some((c) => c.fqdn === fqdn && c.connected);
}

Deno.test({
  name: "a proxy name with several addresses gets a stream per address, re-resolved",
  sanitizeResources: false,
  async fn() {
    const target = createHttpServer((_req, res) => res.end("up 1\n"));
    const targetPort = await listen(target);
    const one = await startProxy("127.0.0.1");
    const two = await startProxy("127.0.0.2", one.port);
    let addresses = ["127.0.0.1", "127.0.0.2"];
    const lookups: string[] = [];
    const agent = await startAgent({
      proxyUrl: `http://proxies.test:${one.port}/`,
      fqdn: "localhost",
      logger: testLogger(),
      metricsAddress: null,
      defaultMetrics: false,
      retryInitialMs: 50,
      retryMaxMs: 200,
      resolveIntervalMs: 200,
      resolve: (host) => {
        lookups.push(host);
        return Promise.resolve(addresses);
      },
      env: {},
    });
    try {
      // A proxy lists the client when it registers the stream, before the
      // client has read the "registered" answer and counts it: wait for both.
      await waitUntil(
        () =>
          connectedAt(one.proxy, "localhost") && connectedAt(two.proxy, "localhost") &&
            agent.connectedProxies === 2 || undefined,
        5_000,
        "a stream to each address, seen by both proxies and by the client",
      );
      assert.equal(lookups[0], "proxies.test");
      assert.equal(agent.connectedProxies, 2);
      const listed = two.proxy.coordinator.listClients()[0]!;
      assert.deepEqual(listed.proxies, [
        `http://proxies.test:${one.port} (127.0.0.1)`,
        `http://proxies.test:${one.port} (127.0.0.2)`,
      ]);
      for (const port of [one.port, two.port]) {
        const response = await proxiedGet(port, `http://localhost:${targetPort}/metrics`);
        assert.equal(response.status, 200);
        assert.equal(new TextDecoder().decode(response.body), "up 1\n");
      }
      // One address disappears: its stream stops, the other stays.
      addresses = ["127.0.0.1"];
      // The proxy sees the stream end when the client cancels it; the client
      // counts it gone when its poller has finished: wait for both.
      await waitUntil(
        () => !connectedAt(two.proxy, "localhost") && agent.connectedProxies === 1 || undefined,
        5_000,
        "the stream to the vanished address to stop, at the proxy and in the client",
      );
      assert.ok(connectedAt(one.proxy, "localhost"));
      assert.equal(agent.connectedProxies, 1);
    } finally {
      await agent.stop();
      await Promise.all([one.stop(), two.stop(), close(target)]);
    }
  },
});

/** A minimal HTTP CONNECT proxy that records what it tunnels. */
async function startTunnel(): Promise<{ port: number; seen: string[]; server: Server }> {
  const seen: string[] = [];
  const server = createHttpServer((_req, res) => res.writeHead(405).end());
  server.on("connect", (req, socket, head) => {
    seen.push(`${req.url} ${req.headers["proxy-authorization"] ?? ""}`.trim());
    const [host, port] = (req.url ?? "").split(":");
    const upstream = connect(Number(port), host!, () => {
      socket.write("HTTP/1.1 200 Connection Established\r\n\r\n");
      upstream.write(head);
      upstream.pipe(socket);
      socket.pipe(upstream);
    });
    upstream.on("error", () => socket.destroy());
    socket.on("error", () => upstream.destroy());
  });
  const port = await listen(server);
  return { port, seen, server };
}

Deno.test({
  name: "HTTP_PROXY tunnels the client's streams and pushes with CONNECT; NO_PROXY bypasses it",
  sanitizeResources: false,
  async fn() {
    const target = createHttpServer((_req, res) => res.end("up 1\n"));
    const targetPort = await listen(target);
    const proxy = await startProxy("127.0.0.1");
    const tunnel = await startTunnel();
    const start = (env: Record<string, string>) =>
      startAgent({
        proxyUrl: `http://127.0.0.1:${proxy.port}/`,
        fqdn: "localhost",
        logger: testLogger(),
        metricsAddress: null,
        defaultMetrics: false,
        retryInitialMs: 50,
        retryMaxMs: 200,
        env,
      });
    let agent = await start({ HTTP_PROXY: `http://user:pw@127.0.0.1:${tunnel.port}` });
    try {
      await waitUntil(() => connectedAt(proxy.proxy, "localhost") || undefined, 5_000, "register");
      const response = await proxiedGet(proxy.port, `http://localhost:${targetPort}/metrics`);
      assert.equal(response.status, 200);
      assert.ok(tunnel.seen.length >= 1, "the stream went through the tunnel");
      assert.equal(tunnel.seen[0], `127.0.0.1:${proxy.port} Basic ${btoa("user:pw")}`);
      await agent.stop();
      await waitUntil(() => !connectedAt(proxy.proxy, "localhost") || undefined, 5_000, "leave");

      tunnel.seen.length = 0;
      agent = await start({ HTTP_PROXY: `http://127.0.0.1:${tunnel.port}`, NO_PROXY: "127.0.0.1" });
      await waitUntil(() => connectedAt(proxy.proxy, "localhost") || undefined, 5_000, "register");
      assert.equal((await proxiedGet(proxy.port, `http://localhost:${targetPort}/`)).status, 200);
      assert.deepEqual(tunnel.seen, []);
    } finally {
      await agent.stop();
      await Promise.all([proxy.stop(), close(tunnel.server), close(target)]);
    }
  },
});

Deno.test({
  name: "--grpc.listen-address answers plain gRPC (buf curl --protocol grpc)",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const proxy = await startProxy("127.0.0.1");
    const stop = new AbortController();
    const grpc = await serveGrpc(proxy.proxy, {
      hostname: "127.0.0.1",
      port: 0,
      signal: stop.signal,
    });
    const agent = await startAgent({
      proxyUrl: `http://127.0.0.1:${proxy.port}/`,
      fqdn: "localhost",
      labels: { zone: "eu" },
      logger: testLogger(),
      metricsAddress: null,
      defaultMetrics: false,
      env: {},
    });
    try {
      await waitUntil(() => connectedAt(proxy.proxy, "localhost") || undefined, 5_000, "register");
      const body = await bufCurlListClients(`http://127.0.0.1:${grpc.address.port}`, [
        "--protocol",
        "grpc",
        "--http2-prior-knowledge",
      ]);
      assert.equal(body.clients![0]!.fqdn, "localhost");
      assert.deepEqual(body.clients![0]!.labels, { zone: "eu" });
      // Anything else on that port is a clear 404.
      const other = await fetch(`http://127.0.0.1:${grpc.address.port}/clients`).catch((e) => e);
      assert.ok(other instanceof Error || other.status === 404);
      if (!(other instanceof Error)) await other.body?.cancel();
    } finally {
      await agent.stop();
      stop.abort();
      await grpc.finished;
      await proxy.stop();
    }
  },
});

Deno.test({
  name: "--grpc.listen-address serves TLS (h2 via ALPN) when the web config has tls_server_config",
  ignore: OPENSSL_MISSING !== null,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "pushprox-grpc-tls-" });
    const proxy = await startProxy("127.0.0.1");
    const stop = new AbortController();
    try {
      const ca = await createTestCa(dir);
      const server = await ca.issue("server", {
        cn: "localhost",
        sans: ["DNS:localhost", "IP:127.0.0.1"],
        usage: "server",
      });
      const web = parseWebConfig(
        `tls_server_config:\n  cert_file: ${server.certFile}\n  key_file: ${server.keyFile}\n`,
        `${dir}/web.yml`,
      );
      const tls = await createTlsListener(web.tls!, { reloadIntervalMs: 60_000 });
      const grpc = await serveGrpc(proxy.proxy, {
        hostname: "127.0.0.1",
        port: 0,
        signal: stop.signal,
        tls,
      });
      const body = await bufCurlListClients(`https://localhost:${grpc.address.port}`, [
        "--protocol",
        "grpc",
        "--cacert",
        ca.certFile,
      ]);
      assert.deepEqual(body.clients ?? [], []);
      stop.abort();
      await grpc.finished;
    } finally {
      stop.abort();
      await proxy.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "a pinned https endpoint keeps the proxy's name for SNI and certificate checks",
  ignore: OPENSSL_MISSING !== null,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using temp = await tempDir({ prefix: "pushprox-pinned-tls-" });
    const dir = temp.path;
    const ca = await createTestCa(dir);
    // Valid for the name only: connecting by address and checking the
    // certificate against 127.0.0.1 would fail.
    await ca.issue("server", { cn: "proxies.test", sans: ["DNS:proxies.test"], usage: "server" });
    const { startSecureProxy } = await import("../secure_stack.ts");
    await using proxy = closing(
      await startSecureProxy({
        dir,
        web: "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n",
      }),
    );
    await using agent = stopping(
      await startAgent({
        proxyUrl: `https://proxies.test:${proxy.port}/`,
        fqdn: "localhost",
        logger: testLogger(),
        metricsAddress: null,
        defaultMetrics: false,
        retryInitialMs: 50,
        retryMaxMs: 200,
        proxyTls: { ca: ca.cert },
        resolve: () => Promise.resolve(["127.0.0.1"]),
        env: {},
      }),
    );
    await waitUntil(
      () => connectedAt(proxy.proxy, "localhost") || undefined,
      5_000,
      "the client to register over TLS",
    );
    assert.deepEqual(agent.endpoints(), [`https://proxies.test:${proxy.port} (127.0.0.1)`]);
  },
});
