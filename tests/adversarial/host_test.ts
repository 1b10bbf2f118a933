/**
 * Issue #10 item 1: requests without a usable authority (no Host, an empty
 * one, or one a URL parser reads differently) against every kind of path,
 * over raw sockets to the running proxy. Each gets 400; the proxy lives.
 */

import assert from "node:assert/strict";
import { concat, envelope, pollRequest, rawExchange, startAdversary, statuses } from "./harness.ts";
import { stopping } from "../fixture.ts";

/** Host header lines (HTTP/1.1) and the HTTP/1.0 request without one. */
const HOSTS: { version: string; host: string | null }[] = [
  { version: "HTTP/1.0", host: null },
  ...["", "[", "%", "#", "?", "\\", "a:b:c", "x:abc", ":80", "1.2.3.4.5", "[::1", "0x7f.1", "a b"]
    .map((host) => ({ version: "HTTP/1.1", host })),
];

interface PathKind {
  method: string;
  path: string;
  contentType?: string;
  body: Uint8Array;
}

const text = (s: string) => new TextEncoder().encode(s);
const PATHS: PathKind[] = [
  {
    method: "POST",
    path: "/pushprox.v1.RegistryService/ListClients",
    contentType: "application/json",
    body: text("{}"),
  },
  {
    method: "POST",
    path: "/pushprox.v1.RegistryService/ListClients",
    contentType: "application/proto",
    body: new Uint8Array(),
  },
  {
    method: "POST",
    path: "/pushprox.v1.RegistryService/ListClients",
    contentType: "application/grpc-web+proto",
    body: envelope(0, new Uint8Array()),
  },
  {
    method: "POST",
    path: "/pushprox.v1.ClientService/Poll",
    contentType: "application/connect+json",
    body: envelope(0, text('{"fqdn":"hosttest"}')),
  },
  {
    method: "POST",
    path: "/pushprox.v1.ClientService/Poll",
    contentType: "application/connect+proto",
    body: envelope(0, pollRequest("hosttest")),
  },
  {
    method: "POST",
    path: "/pushprox.v1.ClientService/Poll",
    contentType: "application/grpc-web+proto",
    body: envelope(0, pollRequest("hosttest")),
  },
  {
    method: "POST",
    path: "/pushprox.v1.ClientService/Push",
    contentType: "application/connect+json",
    body: envelope(0, text('{"head":{"scrapeId":"x"}}')),
  },
  {
    method: "POST",
    path: "/pushprox.v1.ClientService/Push",
    contentType: "application/connect+proto",
    body: new Uint8Array(),
  },
  { method: "POST", path: "/poll", body: text("hosttest") },
  { method: "POST", path: "/push", body: text("HTTP/1.1 200 OK\r\nId: 1\r\n\r\n") },
  { method: "GET", path: "/clients", body: new Uint8Array() },
  { method: "GET", path: "/metrics", body: new Uint8Array() },
  { method: "GET", path: "/-/healthy", body: new Uint8Array() },
  { method: "GET", path: "/", body: new Uint8Array() },
  { method: "GET", path: "/nowhere", body: new Uint8Array() },
];

function request(kind: PathKind, version: string, host: string | null): Uint8Array {
  const head = `${kind.method} ${kind.path} ${version}\r\n` +
    (host === null ? "" : `Host: ${host}\r\n`) +
    (kind.contentType
      ? `Content-Type: ${kind.contentType}\r\nConnect-Protocol-Version: 1\r\n`
      : "") +
    `Content-Length: ${kind.body.length}\r\n\r\n`;
  return concat(head, kind.body);
}

Deno.test({
  name: "adversarial: a request without a usable Host gets 400 on every path and the proxy lives",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using stack = stopping(await startAdversary());
    const wrong: string[] = [];
    const cases = PATHS.flatMap((kind) => HOSTS.map((h) => ({ kind, ...h })));
    for (let i = 0; i < cases.length; i += 20) {
      await Promise.all(
        cases.slice(i, i + 20).map(async ({ kind, version, host }) => {
          const { answer } = await rawExchange(stack.port, request(kind, version, host), {
            timeoutMs: 5_000,
          });
          const got = statuses(answer);
          if (got[0] !== 400) {
            wrong.push(
              `${version} Host ${JSON.stringify(host)} ${kind.path} (${kind.contentType ?? "-"}): ${
                got[0] ?? (answer.slice(0, 80) || "no answer")
              }`,
            );
          }
        }),
      );
    }
    console.log(
      `host variants: ${cases.length} requests (${HOSTS.length} hosts x ${PATHS.length} paths)`,
    );
    await stack.checkAfter("host variants");
    assert.deepEqual(wrong, [], "every request without a usable Host gets 400");
    assert.ok(await stack.metric("pushprox_proxy_bad_requests_total", 'reason="authority"') > 0);
  },
});

Deno.test({
  name: "adversarial: an absolute-form request target with an unusable authority gets 400",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using stack = stopping(await startAdversary());
    const wrong: string[] = [];
    for (
      const authority of ["[", "%zz", "a:b:c", "x:abc", "1.2.3.4.5", "[::1", "0x7f.1", ":80"]
    ) {
      const { answer } = await rawExchange(
        stack.port,
        text(`GET http://${authority}/metrics HTTP/1.1\r\nHost: ${authority}\r\n\r\n`),
        { timeoutMs: 5_000 },
      );
      if (statuses(answer)[0] !== 400) wrong.push(`${authority}: ${answer.slice(0, 60)}`);
    }
    await stack.checkAfter("absolute-form authorities");
    assert.deepEqual(wrong, []);
  },
});
