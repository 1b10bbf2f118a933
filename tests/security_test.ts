/**
 * Attacks on the proxy, each refused: wrong, missing and expired credentials
 * for every role, fqdn hijacks, foreign and guessed pushes, certificates for
 * the wrong name, Proxy-Authorization leaking, oversized headers and bodies,
 * slow-loris requests on every listener; and TLS with certificate rotation.
 */

import assert from "node:assert/strict";
import { connect as netConnect } from "node:net";
import { createServer, type IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";
import bcrypt from "bcryptjs";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { RegistryService } from "../gen/pushprox/v1/pushprox_pb.ts";
import { sha256Hex } from "../lib/basic_auth.ts";
import { startAgent } from "../client/agent.ts";
import { createTestCa, OPENSSL_MISSING, type TestCa } from "./certs.ts";
import { connectClient, counter, fakeClient, send, startSecureProxy } from "./secure_stack.ts";
import { startProxyProcess, waitUntil } from "./support.ts";
import { testLogger } from "./stack.ts";

if (OPENSSL_MISSING !== null) console.warn(`SKIPPED TLS security tests: ${OPENSSL_MISSING}`);

const TOKEN_A = "token-a-0123456789abcdef";
const TOKEN_B = "token-b-0123456789abcdef";
const TOKEN_OLD = "token-old-0123456789abcdef";
const READER_TOKEN = "reader-0123456789abcdef";
const PROM_HASH = bcrypt.hashSync("prom-secret", 4);
const GRAFANA_HASH = bcrypt.hashSync("grafana-secret", 4);
const basic = (user: string, pass: string) => "Basic " + btoa(`${user}:${pass}`);

const USERS = `basic_auth_users:
  prometheus: "${PROM_HASH}"
  grafana: "${GRAFANA_HASH}"
`;
const AUTH = `
clients:
  certificates: true
  tokens:
    - name: a
      sha256: ${sha256Hex(TOKEN_A)}
      fqdns: [node-a, "shared-*"]
    - name: b
      sha256: ${sha256Hex(TOKEN_B)}
      fqdns: ["**"]
    - name: old
      sha256: ${sha256Hex(TOKEN_OLD)}
      fqdns: ["**"]
      expires: 2020-01-01T00:00:00Z
scrapers:
  basic_auth_users: [prometheus]
  certificates: [prometheus]
readers:
  basic_auth_users: [grafana, prometheus]
  tokens:
    - sha256: ${sha256Hex(READER_TOKEN)}
`;

async function codeOf(promise: Promise<unknown>): Promise<Code | string> {
  try {
    await promise;
    return "ok";
  } catch (error) {
    return error instanceof ConnectError ? error.code : String(error);
  }
}

/** A target that records the headers it was sent. */
async function recordingTarget(): Promise<
  { port: number; seen: IncomingMessage["headers"][]; close(): Promise<void> }
> {
  const seen: IncomingMessage["headers"][] = [];
  const server = createServer((req, res) => {
    seen.push(req.headers);
    res.end("up 1\n");
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as AddressInfo).port,
    seen,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

Deno.test("client tokens: wrong, missing and expired are refused; an fqdn outside the token's patterns too", async () => {
  const proxy = await startSecureProxy({ web: USERS, auth: AUTH });
  try {
    const poll = (token: string | undefined, fqdn: string) =>
      fakeClient(connectClient(proxy.url, token ? { token } : {}), fqdn).registered;
    assert.equal(await codeOf(poll(undefined, "node-a")), Code.Unauthenticated);
    assert.equal(await codeOf(poll("wrong-token-0123456789", "node-a")), Code.Unauthenticated);
    assert.equal(await codeOf(poll(TOKEN_OLD, "node-a")), Code.Unauthenticated);
    assert.equal(await codeOf(poll(TOKEN_A, "node-b")), Code.PermissionDenied);
    // A reader's credentials are not a client's (for clients, a basic-auth
    // password is taken as a token).
    const reader = fakeClient(
      connectClient(proxy.url, { authorization: basic("grafana", "grafana-secret") }),
      "node-a",
    );
    assert.equal(await codeOf(reader.registered), Code.Unauthenticated);
    assert.equal(proxy.proxy.coordinator.clientCount, 0);
    assert.ok(
      await counter(proxy.proxy, "pushprox_proxy_auth_failures_total", {
        role: "client",
        reason: "expired",
      }) >= 1,
    );
    assert.ok(
      await counter(proxy.proxy, "pushprox_proxy_auth_failures_total", {
        role: "client",
        reason: "missing",
      }) >= 1,
    );

    const ok = fakeClient(connectClient(proxy.url, { token: TOKEN_A }), "node-a");
    await ok.registered;
    ok.stop();
  } finally {
    await proxy.close();
  }
});

Deno.test("fqdn hijack with another valid token is refused and logged; the same token replaces", async () => {
  const proxy = await startSecureProxy({ web: USERS, auth: AUTH });
  const target = await recordingTarget();
  try {
    const owner = fakeClient(connectClient(proxy.url, { token: TOKEN_A }), "shared-1", "owner 1\n");
    await owner.registered;
    // Token b may register any fqdn, but not one held by another credential.
    const thief = fakeClient(connectClient(proxy.url, { token: TOKEN_B }), "shared-1", "thief 1\n");
    assert.equal(await codeOf(thief.registered), Code.PermissionDenied);
    const scrape = await send(proxy, "http://shared-1:9100/metrics", {
      headers: { "proxy-authorization": basic("prometheus", "prom-secret") },
    });
    assert.equal(scrape.body, "owner 1\n", "scrapes still reach the owner");
    // The owner restarting with the same token takes over its own stream.
    const again = fakeClient(connectClient(proxy.url, { token: TOKEN_A }), "shared-1", "owner 2\n");
    await again.registered;
    const second = await send(proxy, "http://shared-1:9100/metrics", {
      headers: { "proxy-authorization": basic("prometheus", "prom-secret") },
    });
    assert.equal(second.body, "owner 2\n");
    owner.stop();
    again.stop();
  } finally {
    await target.close();
    await proxy.close();
  }
});

Deno.test("pushes with guessed ids, for another client's scrape, or with another credential are refused", async () => {
  const proxy = await startSecureProxy({ web: USERS, auth: AUTH });
  try {
    const a = connectClient(proxy.url, { token: TOKEN_A });
    const b = connectClient(proxy.url, { token: TOKEN_B });
    // Client a receives a scrape and does not answer it; b tries to.
    const controller = new AbortController();
    let sessionA = "";
    const scrapeIds = Promise.withResolvers<string>();
    (async () => {
      for await (const m of a.poll({ fqdn: "node-a" }, { signal: controller.signal })) {
        if (m.message.case === "registered") sessionA = m.message.value.sessionId;
        if (m.message.case === "scrape") scrapeIds.resolve(m.message.value.id);
      }
    })().catch(() => {});
    const bStream = fakeClient(b, "node-b");
    await bStream.registered;
    await waitUntil(() => sessionA || undefined, 5_000, "a registered");
    const scrape = send(proxy, "http://node-a:9100/metrics", {
      headers: {
        "proxy-authorization": basic("prometheus", "prom-secret"),
        "x-prometheus-scrape-timeout-seconds": "3",
      },
    });
    const id = await scrapeIds.promise;
    const push = (client: typeof a, scrapeId: string, sessionId: string) =>
      client.push((async function* () {
        yield {
          message: {
            case: "head" as const,
            value: { scrapeId, sessionId, status: 200, headers: [], error: "" },
          },
        };
        yield {
          message: { case: "bodyChunk" as const, value: new TextEncoder().encode("forged 1\n") },
        };
      })());
    assert.equal(await codeOf(push(b, crypto.randomUUID(), crypto.randomUUID())), Code.NotFound);
    assert.equal(await codeOf(push(b, id, "guessed-session")), Code.PermissionDenied);
    // Even with a's (leaked) session id, b's credential is not a's.
    assert.equal(await codeOf(push(b, id, sessionA)), Code.PermissionDenied);
    // Unauthenticated pushes never reach the coordinator.
    assert.equal(await codeOf(push(connectClient(proxy.url), id, sessionA)), Code.Unauthenticated);
    assert.equal(await codeOf(push(a, id, sessionA)), "ok");
    assert.equal((await scrape).body, "forged 1\n".replace("forged", "forged"), "a's own answer");
    controller.abort();
    bStream.stop();
  } finally {
    await proxy.close();
  }
});

Deno.test("scrapers need Proxy-Authorization; it never reaches the client or the target", async () => {
  const proxy = await startSecureProxy({ web: USERS, auth: AUTH });
  const target = await recordingTarget();
  try {
    const agent = await startAgent({
      proxyUrl: proxy.url,
      fqdn: "localhost",
      logger: testLogger(),
      metricsAddress: null,
      defaultMetrics: false,
      retryInitialMs: 50,
      retryMaxMs: 200,
      proxyAuthorization: () => `Bearer ${TOKEN_B}`,
    });
    try {
      await waitUntil(() => proxy.proxy.coordinator.clientCount === 1 || undefined, 5_000, "agent");
      const url = `http://localhost:${target.port}/metrics`;
      const missing = await send(proxy, url);
      assert.equal(missing.status, 407);
      assert.match(String(missing.headers["proxy-authenticate"]), /^Basic/);
      assert.match(missing.body, /scraper credentials required/);
      const wrong = await send(proxy, url, {
        headers: { "proxy-authorization": basic("prometheus", "nope") },
      });
      assert.equal(wrong.status, 407);
      // Issue 10: one answer for every refused scraper credential (a
      // reader's valid password, an unknown user), so that it does not tell
      // which users exist or what role they have.
      const otherRole = await send(proxy, url, {
        headers: { "proxy-authorization": basic("grafana", "grafana-secret") },
      });
      assert.equal(otherRole.status, 407);
      const unknown = await send(proxy, url, {
        headers: { "proxy-authorization": basic("nobody", "nope") },
      });
      assert.equal(unknown.status, 407);
      assert.equal(otherRole.body, wrong.body);
      assert.equal(unknown.body, wrong.body);
      assert.equal(missing.body, wrong.body);
      // The target's own Authorization is not the proxy's credential.
      const targetAuth = await send(proxy, url, {
        headers: { authorization: basic("prometheus", "prom-secret") },
      });
      assert.equal(targetAuth.status, 407);
      assert.equal(target.seen.length, 0, "refused scrapes never reach the target");

      const ok = await send(proxy, url, {
        headers: {
          "proxy-authorization": basic("prometheus", "prom-secret"),
          authorization: "Bearer for-the-target",
        },
      });
      assert.equal(ok.status, 200);
      assert.equal(ok.body, "up 1\n");
      assert.equal(target.seen.length, 1);
      assert.equal(target.seen[0]!["proxy-authorization"], undefined, "consumed by the proxy");
      assert.equal(target.seen[0]!["authorization"], "Bearer for-the-target");
      assert.equal(
        await counter(proxy.proxy, "pushprox_proxy_auth_failures_total", {
          role: "scraper",
          reason: "forbidden",
        }),
        1,
      );
    } finally {
      await agent.stop();
    }
  } finally {
    await target.close();
    await proxy.close();
  }
});

Deno.test("readers: /clients, /metrics and ListClients need reader credentials", async () => {
  const proxy = await startSecureProxy({ web: USERS, auth: AUTH });
  try {
    for (const path of ["/clients", "/metrics"]) {
      const none = await send(proxy, path);
      assert.equal(none.status, 401, path);
      assert.match(String(none.headers["www-authenticate"]), /^Basic/);
      assert.equal(
        (await send(proxy, path, { headers: { authorization: basic("grafana", "x") } })).status,
        401,
      );
      assert.equal(
        (await send(proxy, path, { headers: { authorization: `Bearer ${TOKEN_A}` } })).status,
        401,
      );
      assert.equal(
        (await send(proxy, path, {
          headers: { authorization: basic("grafana", "grafana-secret") },
        })).status,
        200,
      );
      assert.equal(
        (await send(proxy, path, { headers: { authorization: `Bearer ${READER_TOKEN}` } })).status,
        200,
      );
    }
    // Health checks stay open.
    const registry = (authorization?: string) =>
      createClient(
        RegistryService,
        createConnectTransport({
          baseUrl: proxy.url,
          httpVersion: "1.1",
          interceptors: authorization
            ? [(next) => (req) => {
              req.header.set("authorization", authorization);
              return next(req);
            }]
            : [],
        }),
      );
    assert.equal(await codeOf(registry().listClients({})), Code.Unauthenticated);
    assert.equal(await codeOf(registry(`Bearer ${TOKEN_A}`).listClients({})), Code.Unauthenticated);
    assert.equal(await codeOf(registry(`Bearer ${READER_TOKEN}`).listClients({})), "ok");
  } finally {
    await proxy.close();
  }
});

// Issue 10 item 7: any non-scraper user name got 403 "may not act as
// scraper" while the scraper with a wrong password got 407: user enumeration.
Deno.test("issue 10: every refused scraper credential gets the same 407, every refused reader credential the same 401", async () => {
  const proxy = await startSecureProxy({ web: USERS, auth: AUTH });
  try {
    const credentials = [
      undefined,
      basic("prometheus", "wrong"),
      basic("grafana", "wrong"),
      basic("nobody", "wrong"),
      basic("grafana", "grafana-secret"), // valid, but a reader's
      basic("prometheus", "prom-secret"), // valid, but for the other header or role
      `Bearer ${TOKEN_A}`,
      "Digest nonsense",
    ];
    const scraper = new Set<string>();
    for (const value of credentials.filter((c) => c !== basic("prometheus", "prom-secret"))) {
      const answer = await send(proxy, "http://node-a:9100/metrics", {
        headers: value ? { "proxy-authorization": value } : {},
      });
      scraper.add(`${answer.status} ${answer.body}`);
    }
    assert.equal(scraper.size, 1, [...scraper].join(" | "));
    assert.match([...scraper][0]!, /^407 /);
    const reader = new Set<string>();
    const connect = new Set<string>();
    for (const value of credentials.filter((c) => c !== basic("grafana", "grafana-secret"))) {
      const readerValue = value === basic("prometheus", "prom-secret")
        ? basic("prometheus", "other")
        : value;
      const answer = await send(proxy, "/clients", {
        headers: readerValue ? { authorization: readerValue } : {},
      });
      reader.add(`${answer.status} ${answer.body}`);
      const client = createClient(
        RegistryService,
        createConnectTransport({
          baseUrl: proxy.url,
          httpVersion: "1.1",
          interceptors: readerValue
            ? [(next) => (req) => {
              req.header.set("authorization", readerValue);
              return next(req);
            }]
            : [],
        }),
      );
      const error = await client.listClients({}).then(() => null, (e) => e);
      connect.add(error instanceof ConnectError ? `${Code[error.code]} ${error.rawMessage}` : "ok");
    }
    assert.equal(reader.size, 1, [...reader].join(" | "));
    assert.match([...reader][0]!, /^401 /);
    assert.equal(connect.size, 1, [...connect].join(" | "));
    assert.match([...connect][0]!, /^Unauthenticated /);
  } finally {
    await proxy.close();
  }
});

Deno.test("without auth configuration the proxy is open and says so loudly at start-up", async () => {
  const { process, url } = await startProxyProcess();
  try {
    await process.waitFor(
      /level=warn msg="Authentication is OFF for clients: anyone who reaches the proxy can register any fqdn/,
    );
    await process.waitFor(/level=warn msg="Serving plain HTTP/);
    const response = await fetch(`${url}/clients`);
    assert.equal(response.status, 200);
    await response.body?.cancel();
  } finally {
    await process.stop();
  }
});

Deno.test("bad --web.config.file and --auth.config.file stop the proxy with the reason", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/web.yml`, "tls_server_config:\n  cert_file: x\n");
    await Deno.writeTextFile(`${dir}/auth.yml`, "clients: {open: true}\n");
    const run = async (args: string[]) => {
      const output = await new Deno.Command(Deno.execPath(), {
        args: ["run", "--allow-all", "proxy/main.ts", "--web.listen-address=127.0.0.1:0", ...args],
        cwd: new URL("..", import.meta.url).pathname,
        stdout: "piped",
        stderr: "piped",
      }).output();
      return { code: output.code, stderr: new TextDecoder().decode(output.stderr) };
    };
    const web = await run([`--web.config.file=${dir}/web.yml`]);
    assert.equal(web.code, 2);
    assert.match(
      web.stderr,
      /web\.yml:\d \(tls_server_config\): cert_file and key_file are both required/,
    );
    const auth = await run([`--auth.config.file=${dir}/auth.yml`]);
    assert.equal(auth.code, 2);
    assert.match(auth.stderr, /"scrapers" is missing/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("limits: clients, scrapes per client and in all, body and header size, each with a metric", async () => {
  const big = "x".repeat(64 * 1024);
  const proxy = await startSecureProxy({
    proxy: {
      maxClients: 2,
      maxScrapesPerClient: 1,
      maxScrapes: 2,
      maxScrapeBodyBytes: 16 * 1024,
      registrationTimeoutMs: 1,
    },
    maxHeaderBytes: 4096,
  });
  try {
    const client = connectClient(proxy.url);
    const a = fakeClient(client, "big", big);
    await a.registered;
    const b = fakeClient(client, "b");
    await b.registered;
    assert.equal(await codeOf(fakeClient(client, "c").registered), Code.ResourceExhausted);
    assert.equal(
      await counter(proxy.proxy, "pushprox_proxy_limit_hits_total", { limit: "clients" }),
      1,
    );

    // The body limit aborts the relay.
    const oversized = await send(proxy, "http://big:9100/metrics").then(
      (r) => `status ${r.status} ${r.body.length}`,
      (e) => `error ${e.message}`,
    );
    assert.doesNotMatch(oversized, new RegExp(`status 200 ${big.length}`), oversized);
    await waitUntil(
      async () =>
        await counter(proxy.proxy, "pushprox_proxy_limit_hits_total", {
            limit: "scrape_body_bytes",
          }) === 1 ||
        undefined,
      3_000,
      "body limit metric",
    );

    // A client that never answers holds its scrapes; b makes room for it.
    b.stop();
    await waitUntil(
      () => proxy.proxy.coordinator.listClients().length === 1 || undefined,
      3_000,
      "b gone",
    );
    const silent = connectClient(proxy.url);
    const controller = new AbortController();
    (async () => {
      for await (
        const _ of silent.poll({ fqdn: "slow" }, { signal: controller.signal })
      ) { /* hold */ }
    })().catch(() => {});
    await waitUntil(
      () => proxy.proxy.coordinator.listClients().some((c) => c.fqdn === "slow") || undefined,
      3_000,
      "slow registered",
    );
    const held = send(proxy, "http://slow:9100/metrics", {
      headers: { "x-prometheus-scrape-timeout-seconds": "2" },
    });
    await waitUntil(
      () => proxy.proxy.coordinator.scrapesInFlight === 1 || undefined,
      2_000,
      "held",
    );
    const perClient = await send(proxy, "http://slow:9100/metrics");
    assert.equal(perClient.status, 429);
    assert.match(perClient.body, /already has 1 scrapes in flight/);
    assert.equal(
      await counter(proxy.proxy, "pushprox_proxy_limit_hits_total", {
        limit: "scrapes_per_client",
      }),
      1,
    );
    controller.abort();
    assert.equal((await held).status >= 500, true);

    // Oversized request headers: 431 from the listener itself.
    const answer = await rawExchange(
      proxy.port,
      `GET /clients HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(8000)}\r\n\r\n`,
    );
    assert.match(answer, /^HTTP\/1\.1 431/);
    assert.equal(
      await counter(proxy.proxy, "pushprox_proxy_limit_hits_total", { limit: "header_bytes" }),
      1,
    );
    a.stop();
  } finally {
    await proxy.close();
  }
});

function rawExchange(port: number, request: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = netConnect(port, "127.0.0.1");
    let answer = "";
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => answer += chunk);
    socket.on("close", () => resolve(answer));
    socket.on("error", reject);
    socket.write(request);
    setTimeout(() => socket.destroy(), 3_000);
  });
}

/**
 * Sends request headers one byte every `intervalMs` and reports how long the
 * server kept the connection open.
 */
function slowLoris(
  connectSocket: () => import("node:net").Socket,
  intervalMs: number,
  giveUpMs: number,
): Promise<{ closedAfterMs: number; answer: string }> {
  return new Promise((resolve) => {
    const started = Date.now();
    const socket = connectSocket();
    const text = "GET /metrics HTTP/1.1\r\nHost: x\r\n" + "X-Slow: " + "a".repeat(1000);
    let i = 0;
    let answer = "";
    const timer = setInterval(() => {
      if (!socket.destroyed && socket.writable) socket.write(text[i++ % text.length]!);
    }, intervalMs);
    const giveUp = setTimeout(() => socket.destroy(), giveUpMs);
    socket.on("data", (chunk) => answer += String(chunk));
    socket.on("error", () => {});
    socket.on("close", () => {
      clearInterval(timer);
      clearTimeout(giveUp);
      resolve({ closedAfterMs: Date.now() - started, answer });
    });
  });
}

Deno.test("slow-loris: headers sent byte by byte are cut off on the proxy (http) and the client's metrics port", async () => {
  const proxy = await startSecureProxy({ headersTimeoutMs: 1_000 });
  const target = await recordingTarget();
  const agent = await startAgent({
    proxyUrl: proxy.url,
    fqdn: "localhost",
    logger: testLogger(),
    metricsAddress: { hostname: "127.0.0.1", port: 0 },
    defaultMetrics: false,
  });
  try {
    const onProxy = await slowLoris(() => netConnect(proxy.port, "127.0.0.1"), 50, 8_000);
    assert.ok(onProxy.closedAfterMs < 3_000, `proxy kept a slow client ${onProxy.closedAfterMs}ms`);
    assert.match(onProxy.answer, /^HTTP\/1\.1 408/);
    assert.ok(
      await counter(proxy.proxy, "pushprox_proxy_limit_hits_total", { limit: "header_timeout" }) >=
        1,
    );
    // The client's metrics listener allows 10s for headers.
    const port = agent.metricsAddress!.port;
    const onClient = await slowLoris(() => netConnect(port, "127.0.0.1"), 100, 20_000);
    assert.ok(
      onClient.closedAfterMs < 13_000,
      `client kept a slow client ${onClient.closedAfterMs}ms`,
    );
    // Both still serve.
    assert.equal((await send(proxy, "/clients")).status, 200);
  } finally {
    await agent.stop();
    await target.close();
    await proxy.close();
  }
});

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
      const proxy = await startSecureProxy({
        dir,
        web: `tls_server_config:
  cert_file: server.pem
  key_file: server.key
http_server_config:
  headers:
    Strict-Transport-Security: max-age=31536000
`,
        headersTimeoutMs: 1_000,
      });
      try {
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
        await proxy.close();
      }
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
    const dir = await Deno.makeTempDir();
    try {
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
      const proxy = await startSecureProxy({
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
      });
      try {
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
      } finally {
        await proxy.close();
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("upstream (legacy) clients authenticate with the token as basic-auth password", async () => {
  const proxy = await startSecureProxy({ web: USERS, auth: AUTH });
  try {
    const poll = (authorization: string | null, fqdn: string) =>
      new Promise<number>((resolve, reject) => {
        const socket = netConnect(proxy.port, "127.0.0.1");
        let answer = "";
        socket.setEncoding("utf8");
        socket.on("data", (chunk: string) => {
          answer += chunk;
          const match = /^HTTP\/1\.1 (\d+)/.exec(answer);
          if (match) {
            socket.destroy();
            resolve(Number(match[1]));
          }
        });
        socket.on("error", reject);
        socket.write(
          `POST /poll HTTP/1.1\r\nHost: x\r\nContent-Length: ${fqdn.length}\r\n${
            authorization ? `Authorization: ${authorization}\r\n` : ""
          }\r\n${fqdn}`,
        );
        setTimeout(() => {
          socket.destroy();
          resolve(0); // held: accepted and waiting for a scrape
        }, 1_000);
      });
    assert.equal(await poll(null, "node-a"), 403);
    assert.equal(await poll(basic("pushprox", "wrong-token-0123456789"), "node-a"), 403);
    assert.equal(await poll(basic("pushprox", TOKEN_A), "node-b"), 403);
    assert.equal(
      await poll(basic("pushprox", TOKEN_A), "node-a"),
      0,
      "held like any accepted poll",
    );
  } finally {
    await proxy.close();
  }
});

Deno.test({
  name:
    "client: --target.tls.* verifies targets apart from the proxy's TLS; --allow-port and --use-localhost apply through the proxy",
  ignore: OPENSSL_MISSING !== null,
  async fn() {
    const dir = await Deno.makeTempDir();
    try {
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
        const agent = await start({ ca: targetCa.cert }, { ca: proxyCa.cert });
        try {
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
          await agent.stop();
        }
      } finally {
        target.closeAllConnections();
        await new Promise((resolve) => target.close(resolve));
        await proxy.close();
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("a revoked token ends its stream at the next heartbeat; a new token takes over", async () => {
  const proxy = await startSecureProxy({
    web: USERS,
    auth: AUTH,
    proxy: { heartbeatIntervalMs: 100 },
  });
  try {
    const stream = fakeClient(connectClient(proxy.url, { token: TOKEN_A }), "node-a");
    await stream.registered;
    const { parseAuthConfig } = await import("../proxy/auth.ts");
    const { parseWebConfig } = await import("../lib/web_config.ts");
    const users = parseWebConfig(USERS, "web.yml").basicAuthUsers;
    // Rotation: the new token is added, the old one removed (a reload does this).
    const rotated = AUTH.replace(sha256Hex(TOKEN_A), sha256Hex("token-a2-0123456789abcdef"));
    proxy.proxy.auth.update(parseAuthConfig(rotated, "auth.yml", users), users);
    assert.equal(await codeOf(stream.done), Code.PermissionDenied);
    await waitUntil(
      () => proxy.proxy.coordinator.listClients().every((c) => !c.connected) || undefined,
      2_000,
      "stream closed",
    );
    const renewed = fakeClient(
      connectClient(proxy.url, { token: "token-a2-0123456789abcdef" }),
      "node-a",
    );
    await renewed.registered;
    renewed.stop();
  } finally {
    await proxy.close();
  }
});

Deno.test("idle keep-alive connections are closed after the idle timeout", async () => {
  const { createProxy, serveProxy } = await import("../proxy/server.ts");
  const proxy = createProxy({ logger: testLogger(), defaultMetrics: false });
  const stop = new AbortController();
  const serving = await serveProxy(proxy, {
    hostname: "127.0.0.1",
    port: 0,
    signal: stop.signal,
    idleTimeoutMs: 500,
  });
  try {
    const started = Date.now();
    const answer = await rawExchange(
      serving.address.port,
      "GET /clients HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n",
    );
    assert.match(answer, /^HTTP\/1\.1 200/);
    const idle = Date.now() - started;
    assert.ok(idle >= 400 && idle < 2_900, `idle connection closed after ${idle}ms`);
  } finally {
    stop.abort();
    await serving.finished;
  }
});
