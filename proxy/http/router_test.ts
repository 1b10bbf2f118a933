/**
 * The route table and the request pipeline without sockets: which route a
 * request takes, who must authenticate, how a refusal is answered and which
 * handler serves it, on the node:http edge (IncomingMessage/ServerResponse
 * without a connection) and on the native front door (a fake exchange).
 */

import assert from "node:assert/strict";
import { IncomingMessage, ServerResponse } from "node:http";
import { Socket } from "node:net";
import { Code } from "@connectrpc/connect";
import { createNullLogger } from "../../lib/logger.ts";
import type { Authenticator, AuthRequest, AuthResult, Role } from "../auth/auth.ts";
import { defaultAuthConfig } from "../auth/auth_config.ts";
import { CONTENT_TYPE, POLL_PATH, PUSH_PATH } from "../connect/fast_client_service.ts";
import { createProxyMetrics } from "../core/metrics.ts";
import type { NativeExchange } from "./native_exchange.ts";
import { type Call, createPipeline, type RouteHandler } from "./pipeline.ts";
import { createRequestAuth } from "./request_context.ts";
import type { RequestHead } from "../../lib/request_head.ts";
import {
  createRouteTable,
  matchRoute,
  nativeRouteOf,
  type RouteName,
  type RouteRequest,
  targetPath,
} from "./router.ts";
import { closing } from "../../tests/fixture.ts";

function request(
  method: string,
  target: string,
  headers: Record<string, string> = {},
  httpVersionMajor = 1,
): RouteRequest {
  return {
    method,
    target,
    path: target.startsWith("/") ? targetPath(target) : target,
    httpVersionMajor,
    header: (name) => headers[name],
  };
}

const FAST = { "content-type": CONTENT_TYPE };

Deno.test("route table: every route, its role and how a refusal is answered", () => {
  const table = createRouteTable({ legacy: true, fastPath: true });
  const cases: [RouteRequest, RouteName, Role | null, string][] = [
    [request("GET", "http://node1:9100/metrics"), "scrape", "scraper", "edge"],
    [request("POST", "http://node1:9100/metrics"), "scrape", "scraper", "edge"],
    [request("GET", "https://node1:9100/metrics"), "scrape", "scraper", "edge"],
    [request("POST", POLL_PATH, FAST), "client_fast", "client", "protocol"],
    [request("POST", `${PUSH_PATH}?x=1`, FAST), "client_fast", "client", "protocol"],
    // HTTP/2 (the gRPC port), JSON and compressed calls go to connect-es.
    [request("POST", POLL_PATH, FAST, 2), "client_connect", "client", "protocol"],
    [
      request("POST", POLL_PATH, { "content-type": "application/connect+json" }),
      "client_connect",
      "client",
      "protocol",
    ],
    [
      request("POST", PUSH_PATH, { ...FAST, "connect-content-encoding": "gzip" }),
      "client_connect",
      "client",
      "protocol",
    ],
    [request("GET", POLL_PATH, FAST), "client_connect", "client", "protocol"],
    [
      request("POST", "/pushprox.v1.RegistryService/ListClients"),
      "reader_connect",
      "reader",
      "protocol",
    ],
    [request("POST", "/pushprox.v1.Nothing/X"), "reader_connect", "reader", "protocol"],
    [request("POST", "/poll"), "legacy", "client", "handler"],
    [request("POST", "/push?x"), "legacy", "client", "handler"],
    [request("GET", "/clients"), "clients", "reader", "edge"],
    [request("DELETE", "/clients"), "clients", "reader", "edge"],
    [request("HEAD", "/metrics?x"), "metrics", "reader", "edge"],
    [request("GET", "/"), "status_page", "reader", "edge"],
    [request("GET", "/-/healthy"), "health", null, "edge"],
    [request("GET", "/-/ready"), "health", null, "edge"],
    [request("GET", "/nowhere"), "not_found", null, "edge"],
    [request("GET", "/clients/"), "not_found", null, "edge"],
  ];
  for (const [req, name, role, refusal] of cases) {
    const route = matchRoute(table, req);
    const what = `${req.method} ${req.target}`;
    assert.equal(route.name, name, what);
    assert.equal(route.role, role, what);
    assert.equal(route.refusal, refusal, what);
  }
});

Deno.test("route table: legacy off still asks clients to authenticate on /poll and /push", () => {
  const table = createRouteTable({ legacy: false, fastPath: false });
  for (const path of ["/poll", "/push"]) {
    const route = matchRoute(table, request("POST", path));
    assert.equal(route.name, "legacy_off");
    assert.equal(route.role, "client");
    assert.equal(route.refusal, "edge");
    assert.equal(route.meter(request("POST", path)), path);
  }
  // Without the fast path, Poll goes to connect-es.
  assert.equal(matchRoute(table, request("POST", POLL_PATH, FAST)).name, "client_connect");
});

Deno.test("route table: counted paths are fixed, never the request's own", () => {
  const table = createRouteTable({ legacy: true, fastPath: true });
  const meter = (req: RouteRequest) => matchRoute(table, req).meter(req);
  assert.equal(meter(request("GET", "/clients?x=1")), "/clients");
  assert.equal(meter(request("GET", "/-/ready")), "/-/ready");
  assert.equal(meter(request("GET", "/nowhere")), null);
  assert.equal(meter(request("GET", "http://a/b")), null);
  assert.equal(meter(request("POST", POLL_PATH, FAST)), null);
});

function head(method: string, target: string, fields: [string, string][]): RequestHead {
  const headers = new Map<string, string[]>();
  for (const [name, value] of fields) {
    headers.set(name, [...(headers.get(name) ?? []), value]);
  }
  return { method, target, rawHeaders: fields.flat(), headers, length: 0 };
}

Deno.test("nativeRouteOf: scrapes and fast-path calls with a plain framing only", () => {
  const table = createRouteTable({ legacy: true, fastPath: true });
  const native = (h: RequestHead) => nativeRouteOf(table, h)?.name ?? null;
  const host: [string, string] = ["host", "proxy"];
  const fast: [string, string] = ["content-type", CONTENT_TYPE];
  assert.equal(native(head("GET", "http://node1:9100/metrics", [])), "scrape");
  assert.equal(native(head("HEAD", "HTTP://node1/metrics", [["content-length", "0"]])), "scrape");
  assert.equal(
    native(head("GET", "https://node1/metrics", [])),
    null,
    "node answers other schemes",
  );
  assert.equal(native(head("POST", "http://node1/metrics", [])), null);
  assert.equal(native(head("GET", "http://node1/", [["content-length", "3"]])), null);
  assert.equal(native(head("GET", "http://node1/", [["expect", "100-continue"]])), null);
  assert.equal(
    native(head("POST", POLL_PATH, [host, fast, ["content-length", "5"]])),
    "client_fast",
  );
  assert.equal(
    native(head("POST", PUSH_PATH, [host, fast, ["transfer-encoding", "chunked"]])),
    "client_fast",
  );
  assert.equal(native(head("POST", POLL_PATH, [host, fast, fast, ["content-length", "5"]])), null);
  assert.equal(native(head("POST", POLL_PATH, [fast, ["content-length", "5"]])), null, "no Host");
  assert.equal(native(head("POST", `${POLL_PATH}?x`, [host, fast, ["content-length", "5"]])), null);
  assert.equal(native(head("POST", POLL_PATH, [host, fast])), null, "no framing");
  assert.equal(native(head("GET", "/clients", [host])), "clients");
  assert.equal(native(head("POST", "/poll", [host, ["content-length", "5"]])), null);
  const slow = createRouteTable({ legacy: true, fastPath: false });
  assert.equal(
    nativeRouteOf(slow, head("POST", POLL_PATH, [host, fast, ["content-length", "5"]])),
    null,
  );
});

Deno.test("nativeRouteOf: the proxy's own plain endpoints, with one Host and a plain framing", () => {
  const table = createRouteTable({ legacy: false, fastPath: true });
  const native = (h: RequestHead) => nativeRouteOf(table, h)?.name ?? null;
  const host: [string, string] = ["host", "proxy"];
  for (const method of ["GET", "HEAD", "POST", "DELETE"]) {
    assert.equal(native(head(method, "/clients", [host])), "clients");
    assert.equal(native(head(method, "/metrics?x=1", [host])), "metrics");
    assert.equal(native(head(method, "/-/healthy", [host])), "health");
    assert.equal(native(head(method, "/-/ready", [host])), "health");
    assert.equal(native(head(method, "/nothing/here", [host])), "not_found");
  }
  assert.equal(native(head("POST", "/metrics", [host, ["content-length", "3"]])), "metrics");
  assert.equal(
    native(head("POST", "/-/ready", [host, ["transfer-encoding", "chunked"]])),
    "health",
  );
  // What node:http decides (or answers 400 to) stays node's.
  assert.equal(native(head("GET", "/clients", [])), null, "no Host");
  assert.equal(native(head("GET", "/clients", [host, host])), null, "two Hosts");
  assert.equal(native(head("POST", "/metrics", [host, ["content-length", "x"]])), null);
  assert.equal(
    native(head("POST", "/metrics", [host, ["content-length", "1"], ["content-length", "1"]])),
    null,
  );
  assert.equal(
    native(head("POST", "/metrics", [host, ["transfer-encoding", "gzip, chunked"]])),
    null,
  );
  assert.equal(
    native(head("POST", "/metrics", [host, ["transfer-encoding", "chunked"], [
      "content-length",
      "1",
    ]])),
    null,
  );
  assert.equal(native(head("POST", "/metrics", [host, ["expect", "100-continue"]])), null);
  assert.equal(native(head("GET", "/-/healthy", [host, ["upgrade", "websocket"]])), null);
  // The status page, Connect, and legacy paths stay node's.
  assert.equal(native(head("GET", "/", [host])), null);
  assert.equal(native(head("POST", "/pushprox.v1.RegistryService/ListClients", [host])), null);
  assert.equal(native(head("GET", "/poll", [host])), null);
});

/** An authenticator that knows one credential, "Basic ok", in every role. */
function fakeAuth(): Authenticator & { calls: Role[] } {
  const calls: Role[] = [];
  return {
    calls,
    config: defaultAuthConfig(new Map([["user", "hash"]])),
    authenticate(role: Role, req: AuthRequest): Promise<AuthResult> {
      calls.push(role);
      const credential = role === "scraper" ? req.proxyAuthorization : req.authorization;
      return Promise.resolve(
        credential === "Basic ok"
          ? {
            ok: true,
            principal: { credential: "ok", name: "user", fqdnPatterns: null, fqdnNames: null },
          }
          : { ok: false, kind: credential === undefined ? "missing" : "invalid", reason: "no" },
      );
    },
  } as unknown as Authenticator & { calls: Role[] };
}

function pipeline(options: { legacy: boolean }) {
  const auth = fakeAuth();
  const metrics = createProxyMetrics({
    clientCount: () => 0,
    scrapesInFlight: () => 0,
    defaultMetrics: false,
  });
  const logger = createNullLogger();
  const requestAuth = createRequestAuth({ auth, metrics, logger });
  const served: Call[] = [];
  const serve: RouteHandler = (call) => {
    served.push(call);
    call.node?.res.writeHead(200).end("served\n");
  };
  const handlers = Object.fromEntries(
    (
      [
        "scrape",
        "client_fast",
        "client_connect",
        "reader_connect",
        "legacy",
        "legacy_off",
        "clients",
        "metrics",
        "status_page",
        "health",
        "not_found",
      ] as const
    ).map((name) => [name, serve]),
  ) as Record<RouteName, RouteHandler>;
  const table = createRouteTable({ legacy: options.legacy, fastPath: true });
  const pipe = createPipeline({
    table,
    handlers,
    requestAuth,
    metrics,
    logger,
    bodyIdleTimeoutMs: 0,
  });
  return { auth, metrics, requestAuth, served, pipe, table };
}

interface Answer {
  status: number;
  headers: Record<string, unknown>;
  body: string;
}

/** Serves one node:http request without a connection; resolves with the answer. */
function nodeCall(
  pipe: ReturnType<typeof createPipeline>,
  method: string,
  target: string,
  headers: Record<string, string> = {},
): Promise<Answer> {
  const req = new IncomingMessage(new Socket());
  req.method = method;
  req.url = target;
  req.headers = { host: "proxy", ...headers };
  req.rawHeaders = Object.entries(req.headers).flatMap(([k, v]) => [k, String(v)]);
  req.httpVersionMajor = 1;
  req.httpVersionMinor = 1;
  req.push(null);
  const res = new ServerResponse(req);
  const answer: Answer = { status: 0, headers: {}, body: "" };
  return new Promise((resolve) => {
    const writeHead = res.writeHead.bind(res) as (s: number, h?: Record<string, unknown>) => void;
    res.writeHead = ((status: number, fields?: Record<string, unknown>) => {
      answer.status = status;
      answer.headers = { ...fields };
      writeHead(status, fields);
      return res;
    }) as typeof res.writeHead;
    const end = res.end.bind(res) as (chunk?: unknown) => void;
    res.end = ((chunk?: unknown) => {
      answer.body = typeof chunk === "string" ? chunk : "";
      end(chunk);
      answer.status ||= res.statusCode;
      resolve(answer);
      return res;
    }) as typeof res.end;
    pipe.handle(req, res);
  });
}

/** A native exchange's answer, from a fake exchange. */
function nativeCall(
  pipe: ReturnType<typeof createPipeline>,
  method: string,
  target: string,
  headers: Record<string, string>,
): { done: Promise<void>; answer: Answer } {
  const answer: Answer = { status: 0, headers: {}, body: "" };
  const fields = { host: "proxy", ...headers };
  const exchange = {
    method,
    target,
    httpVersionMajor: 1,
    rawHeaders: Object.entries(fields).flat(),
    header: (name: string) => (fields as Record<string, string>)[name],
    remoteAddress: "127.0.0.1",
    remotePort: 40000,
    peer: null,
    bodyEnded: true,
    headersSent: false,
    destroyed: false,
    respond(status: number, pairs: [string, string][]) {
      answer.status = status;
      answer.headers = Object.fromEntries(pairs);
    },
    end(body?: string) {
      answer.body = body ?? "";
    },
    abort() {},
  } as unknown as NativeExchange;
  return { done: pipe.serveNative(exchange), answer };
}

Deno.test("pipeline: absolute-form without credentials is refused with 407 on both edges", async () => {
  const { pipe, served, metrics } = pipeline({ legacy: true });
  const node = await nodeCall(pipe, "GET", "http://node1:9100/metrics");
  assert.equal(node.status, 407);
  const native = nativeCall(pipe, "GET", "http://node1:9100/metrics", {});
  await native.done;
  assert.equal(native.answer.status, 407);
  assert.equal(native.answer.headers["proxy-authenticate"], 'Basic realm="pushprox"');
  assert.match(native.answer.body, /^Cannot serve scrape: /);
  assert.equal(served.length, 0);
  const counted = (await metrics.proxiedRequests.get()).values.find((v) => v.labels.code === "407");
  assert.equal(counted?.value, 2);
});

Deno.test("pipeline: absolute-form with credentials is served as a scrape, authenticated once", async () => {
  const { pipe, served, auth } = pipeline({ legacy: true });
  const native = nativeCall(pipe, "GET", "http://node1:9100/metrics", {
    "proxy-authorization": "Basic ok",
  });
  await native.done;
  assert.equal(served.length, 1);
  assert.equal(served[0]!.route.name, "scrape");
  assert.equal(served[0]!.node, null);
  assert.equal(served[0]!.context.result?.ok, true);
  assert.deepEqual(auth.calls, ["scraper"]);
});

Deno.test("pipeline: Poll on each edge reaches its handler, refused in its own protocol", async () => {
  const { pipe, served, requestAuth } = pipeline({ legacy: true });
  // Native front door: the fast path, with the context's failed result.
  const native = nativeCall(pipe, "POST", POLL_PATH, { ...FAST, "content-length": "5" });
  await native.done;
  assert.equal(native.answer.status, 0, "the handler answers, not the edge");
  assert.equal(served[0]!.route.name, "client_fast");
  const error = requestAuth.connectError("client", served[0]!.context.result);
  assert.equal(error?.code, Code.Unauthenticated);
  // node:http with a JSON body: connect-es, whose interceptor reads the same context.
  await nodeCall(pipe, "POST", POLL_PATH, {
    "content-type": "application/connect+json",
    authorization: "Basic ok",
  });
  assert.equal(served[1]!.route.name, "client_connect");
  assert.equal(served[1]!.context.result?.ok, true);
  assert.equal(pipe.contextOf(served[1]!.node!.req), served[1]!.context);
  assert.equal(requestAuth.connectError("client", served[1]!.context.result), null);
});

Deno.test("pipeline: legacy on authorizes in its handler; off, refused at the edge", async () => {
  const on = pipeline({ legacy: true });
  await nodeCall(on.pipe, "POST", "/poll");
  assert.equal(on.served[0]!.route.name, "legacy");
  assert.deepEqual(on.auth.calls, [], "the legacy handler authenticates per fqdn, when it asks");
  assert.equal((await on.served[0]!.context.authenticate()).ok, false);
  assert.deepEqual(on.auth.calls, ["client"]);
  await on.served[0]!.context.authenticate();
  assert.deepEqual(on.auth.calls, ["client"], "once per request");

  const off = pipeline({ legacy: false });
  const refused = await nodeCall(off.pipe, "POST", "/poll");
  assert.equal(refused.status, 401);
  assert.match(refused.body, /^Cannot serve \/poll: /);
  assert.equal(off.served.length, 0);
  await nodeCall(off.pipe, "POST", "/push", { authorization: "Basic ok" });
  assert.equal(off.served[0]!.route.name, "legacy_off");
  const counted = await off.metrics.httpRequests.get();
  assert.equal(
    counted.values.find((v) => v.labels.path === "/poll" && v.labels.code === "401")?.value,
    1,
  );
});

Deno.test("pipeline: readers refused with 401, counted once per route; open routes not authenticated", async () => {
  const { pipe, served, auth, metrics } = pipeline({ legacy: true });
  const refused = await nodeCall(pipe, "HEAD", "/clients");
  assert.equal(refused.status, 401);
  assert.equal(refused.headers["www-authenticate"], 'Basic realm="pushprox"');
  await nodeCall(pipe, "GET", "/metrics", { authorization: "Basic ok" });
  assert.equal(served[0]!.route.name, "metrics");
  await nodeCall(pipe, "GET", "/-/healthy");
  await nodeCall(pipe, "GET", "/nowhere");
  assert.deepEqual(served.map((call) => call.route.name), ["metrics", "health", "not_found"]);
  assert.deepEqual(auth.calls, ["reader", "reader"]);
  const counted = (await metrics.httpRequests.get()).values
    .filter((v) => v.value > 0)
    .map((v) => `${v.labels.path} ${v.labels.code}`)
    .sort();
  assert.deepEqual(counted, ["/-/healthy 200", "/clients 401", "/metrics 200"]);
});

Deno.test("createProxy: the real handlers of reader and open routes, HEAD, 405 and 404", async () => {
  const { createProxy } = await import("./server.ts");
  await using proxy = closing(createProxy({ logger: createNullLogger(), defaultMetrics: false }));
  const pipe = { handle: proxy.handle } as ReturnType<typeof createPipeline>;
  const asHead = await nodeCall(pipe, "HEAD", "/clients");
  assert.equal(asHead.status, 200);
  const wrong = await nodeCall(pipe, "DELETE", "/metrics");
  assert.equal(wrong.status, 405);
  assert.match(wrong.body, /^Method DELETE is not allowed on \/metrics/);
  const missing = await nodeCall(pipe, "GET", "/nowhere?x=1");
  assert.equal(missing.status, 404);
  assert.match(missing.body, /^No such endpoint: \/nowhere\. /);
  const healthy = await nodeCall(pipe, "GET", "/-/healthy");
  assert.equal(healthy.status, 200);
  const counted = (await proxy.metrics.httpRequests.get()).values
    .filter((v) => v.value > 0)
    .map((v) => `${v.labels.path} ${v.labels.code}`)
    .sort();
  assert.deepEqual(counted, ["/-/healthy 200", "/clients 200", "/metrics 405"]);
  assert.notEqual(proxy.nativeRoute(head("GET", "http://node1/metrics", [])), null);
  assert.notEqual(proxy.nativeRoute(head("GET", "/clients", [["host", "proxy"]])), null);
  assert.equal(proxy.nativeRoute(head("GET", "/", [["host", "proxy"]])), null);
});
