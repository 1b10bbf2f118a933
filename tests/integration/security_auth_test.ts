/**
 * Attacks on the proxy's authentication, each refused: wrong, missing and
 * expired credentials for every role, fqdn hijacks, foreign and guessed
 * pushes, Proxy-Authorization leaking, and configurations that cannot be
 * read. TLS: security_tls_test.ts; limits: security_limits_test.ts.
 */

import assert from "node:assert/strict";
import { connect as netConnect } from "node:net";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { RegistryService } from "../../gen/pushprox/v1/pushprox_pb.ts";
import { sha256Hex } from "../../lib/basic_auth.ts";
import { startAgent } from "../../client/agent/agent.ts";
import { connectClient, counter, fakeClient, send, startSecureProxy } from "../secure_stack.ts";
import { startProxyProcess, waitUntil } from "../support.ts";
import { testLogger } from "../stack.ts";
import {
  AUTH,
  basic,
  codeOf,
  READER_TOKEN,
  recordingTarget,
  TOKEN_A,
  TOKEN_B,
  TOKEN_OLD,
  USERS,
} from "./security_support.ts";
import { closing, stopping, tempDir } from "../fixture.ts";

Deno.test("client tokens: wrong, missing and expired are refused; an fqdn outside the token's patterns too", async () => {
  await using proxy = closing(await startSecureProxy({ web: USERS, auth: AUTH }));
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
});

Deno.test("fqdn hijack with another valid token is refused and logged; the same token replaces", async () => {
  await using proxy = closing(await startSecureProxy({ web: USERS, auth: AUTH }));
  await using _target = closing(await recordingTarget());
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
});

Deno.test("pushes with guessed ids, for another client's scrape, or with another credential are refused", async () => {
  await using proxy = closing(await startSecureProxy({ web: USERS, auth: AUTH }));
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
});

Deno.test("scrapers need Proxy-Authorization; it never reaches the client or the target", async () => {
  await using proxy = closing(await startSecureProxy({ web: USERS, auth: AUTH }));
  await using target = closing(await recordingTarget());
  await using _agent = stopping(
    await startAgent({
      proxyUrl: proxy.url,
      fqdn: "localhost",
      logger: testLogger(),
      metricsAddress: null,
      defaultMetrics: false,
      retryInitialMs: 50,
      retryMaxMs: 200,
      proxyAuthorization: () => `Bearer ${TOKEN_B}`,
    }),
  );
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
});

Deno.test("readers: /clients, /metrics and ListClients need reader credentials", async () => {
  await using proxy = closing(await startSecureProxy({ web: USERS, auth: AUTH }));
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
});

// Issue 10 item 7: any non-scraper user name got 403 "may not act as
// scraper" while the scraper with a wrong password got 407: user enumeration.
Deno.test("issue 10: every refused scraper credential gets the same 407, every refused reader credential the same 401", async () => {
  await using proxy = closing(await startSecureProxy({ web: USERS, auth: AUTH }));
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
  await using temp = await tempDir();
  const dir = temp.path;
  await Deno.writeTextFile(`${dir}/web.yml`, "tls_server_config:\n  cert_file: x\n");
  await Deno.writeTextFile(`${dir}/auth.yml`, "clients: {open: true}\n");
  const run = async (args: string[]) => {
    const output = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-all", "proxy/main.ts", "--web.listen-address=127.0.0.1:0", ...args],
      cwd: new URL("../..", import.meta.url).pathname,
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
});

Deno.test("upstream (legacy) clients authenticate with the token as basic-auth password", async () => {
  await using proxy = closing(await startSecureProxy({ web: USERS, auth: AUTH }));
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
});

Deno.test("a revoked token ends its stream at the next heartbeat; a new token takes over", async () => {
  await using proxy = closing(
    await startSecureProxy({
      web: USERS,
      auth: AUTH,
      proxy: { heartbeatIntervalMs: 100 },
    }),
  );
  const stream = fakeClient(connectClient(proxy.url, { token: TOKEN_A }), "node-a");
  await stream.registered;
  const { parseAuthConfig } = await import("../../proxy/auth/auth.ts");
  const { parseWebConfig } = await import("../../lib/web_config.ts");
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
});
