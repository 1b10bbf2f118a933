/**
 * The client's native poll and push paths (client/transport/native_poll.ts,
 * client/transport/native_push.ts) and native scrapes (client/scrape/native_scrape.ts), and
 * the proxy's native front door (proxy/http/native_edge.ts), give
 * byte-identical answers at the proxy's edge to the connect-es paths,
 * node:http scrapes and node:http at the proxy's port, read over raw sockets:
 * text, binary and chunked bodies, gzip passed through compressed,
 * target errors, unreachable targets and scrape deadlines (before and during
 * the body).
 */

import assert from "node:assert/strict";
import { gzipSync } from "node:zlib";
import { connect } from "node:net";
import { type Stack, startStack, type TargetHandler } from "../stack.ts";
import { waitUntil } from "../support.ts";

const TEXT = 'node_cpu_seconds_total{cpu="0",mode="idle"} 12345.67\n'.repeat(1100);
const BINARY = new Uint8Array(300 * 1024).map((_, i) => (i * 7 + (i >> 8)) & 0xff);
const LARGE = new Uint8Array(3 * 1024 * 1024 + 17).map((_, i) => (i * 13) & 0xff);
const GZIPPED = new Uint8Array(gzipSync(new TextEncoder().encode(TEXT)));

const target: TargetHandler = (req, res) => {
  switch (req.url) {
    case "/text":
      res.writeHead(200, { "content-type": "text/plain", "content-length": String(TEXT.length) });
      return void res.end(TEXT);
    case "/binary": {
      // Chunked, written in uneven pieces.
      res.writeHead(200, { "content-type": "application/octet-stream" });
      for (let at = 0; at < BINARY.length; at += 7001) res.write(BINARY.subarray(at, at + 7001));
      return void res.end();
    }
    case "/large":
      res.writeHead(200, { "content-length": String(LARGE.length) });
      return void res.end(LARGE);
    case "/gzip":
      res.writeHead(200, {
        "content-type": "text/plain",
        "content-encoding": "gzip",
        "content-length": String(GZIPPED.length),
      });
      return void res.end(GZIPPED);
    case "/error":
      res.writeHead(500, { "content-type": "text/plain" });
      return void res.end("the exporter failed\n");
    case "/empty":
      res.writeHead(204);
      return void res.end();
    case "/hang":
      return; // never answers: the scrape deadline ends it
    case "/stall":
      res.writeHead(200, { "content-type": "text/plain", "content-length": "100000" });
      res.write("a".repeat(1000)); // then nothing: the deadline ends it mid-body
      return;
    default:
      res.writeHead(404);
      res.end("not found\n");
  }
};

interface Answer {
  statusLine: string;
  headers: string[];
  body: Uint8Array;
}

/** One scrape as Prometheus sends it, over a raw socket, `Connection: close`. */
function rawScrape(port: number, url: string, timeoutSeconds: number): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1");
    const chunks: Uint8Array[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no complete answer to ${url} within 15s`));
    }, 15_000);
    socket.on("connect", () => {
      socket.write(
        `GET ${url} HTTP/1.1\r\nHost: ${new URL(url).host}\r\nAccept-Encoding: gzip\r\n` +
          `X-Prometheus-Scrape-Timeout-Seconds: ${timeoutSeconds}\r\nConnection: close\r\n\r\n`,
      );
    });
    socket.on("data", (chunk: Uint8Array) => chunks.push(chunk));
    socket.on("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
    socket.on("close", () => {
      clearTimeout(timer);
      const all = new Uint8Array(chunks.reduce((n, c) => n + c.byteLength, 0));
      let at = 0;
      for (const c of chunks) {
        all.set(c, at);
        at += c.byteLength;
      }
      let end = -1;
      for (let i = 0; i + 3 < all.length; i++) {
        if (all[i] === 13 && all[i + 1] === 10 && all[i + 2] === 13 && all[i + 3] === 10) {
          end = i;
          break;
        }
      }
      if (end < 0) return reject(new Error(`no header block from ${url}`));
      const lines = new TextDecoder("latin1").decode(all.subarray(0, end)).split("\r\n");
      const chunked = lines.some((l) => /^transfer-encoding:\s*chunked$/i.test(l));
      resolve({
        statusLine: lines[0]!,
        // The Date changes between runs; everything else must match.
        headers: lines.slice(1).filter((l) => !/^date:/i.test(l)),
        // Chunk boundaries follow the pushed messages; the content must match.
        body: chunked ? dechunk(all.subarray(end + 4)) : all.subarray(end + 4),
      });
    });
  });
}

/** The content of a chunked body; a truncated one keeps what arrived, plus a marker. */
function dechunk(bytes: Uint8Array): Uint8Array {
  const parts: number[] = [];
  let at = 0;
  for (;;) {
    let lf = bytes.indexOf(10, at);
    if (lf < 0) break;
    const size = parseInt(new TextDecoder().decode(bytes.subarray(at, lf)), 16);
    if (!(size > 0)) return new Uint8Array(parts);
    const data = bytes.subarray(lf + 1, lf + 1 + size);
    for (const b of data) parts.push(b);
    if (data.byteLength < size) break;
    at = lf + 1 + size + 2;
    lf = 0;
  }
  return new Uint8Array([...parts, ...new TextEncoder().encode("<truncated>")]);
}

interface Run {
  answers: Answer[];
  /** Native dials to the proxy and to the target. */
  dials: number;
  targetDials: number;
  /** The stack's target port, named in error bodies. */
  targetPort: number;
}

/** A body with its stack's target port replaced, to compare across stacks. */
function portless(run: Run, body: Uint8Array): string {
  return new TextDecoder("latin1").decode(body).replaceAll(`:${run.targetPort}/`, ":PORT/");
}

const PATHS: [string, number][] = [
  ["/text", 5],
  ["/binary", 5],
  ["/large", 10],
  ["/gzip", 5],
  ["/error", 5],
  ["/empty", 5],
  ["/missing", 5],
  ["/hang", 1],
  ["/stall", 1],
];

async function answers(
  stack: Stack,
  nativePush: boolean,
  nativeScrape: boolean,
  nativePoll = nativePush,
): Promise<Run> {
  // Counts the native path's dials to the proxy, to prove which path ran.
  const realConnect = Deno.connect;
  let dials = 0;
  let targetDials = 0;
  Deno.connect = ((options: Deno.ConnectOptions) => {
    if (options.port === stack.proxyPort) dials++;
    if (options.port === stack.targetPort) targetDials++;
    return realConnect(options);
  }) as typeof Deno.connect;
  try {
    const agent = await stack.startClient({ nativePush, nativeScrape, nativePoll });
    const out: Answer[] = [];
    for (const [path, timeout] of PATHS) {
      out.push(await rawScrape(stack.proxyPort, stack.targetUrl(path), timeout));
    }
    // A port nothing listens on: the client's error, relayed the same way.
    out.push(await rawScrape(stack.proxyPort, "http://localhost:1/metrics", 5));
    await agent.stop();
    await waitUntil(
      () => !stack.proxy.coordinator.listClients().some((c) => c.connected) || undefined,
      5_000,
      "the client to leave",
    );
    return { answers: out, dials, targetDials, targetPort: stack.targetPort };
  } finally {
    Deno.connect = realConnect;
  }
}

Deno.test({
  name:
    "native poll, push and scrape paths give byte-identical answers to connect-es and node:http",
  sanitizeOps: true,
  sanitizeResources: true,
  async fn() {
    // The baseline: node:http at the proxy's port, connect-es push, node:http scrapes.
    const nodeStack = await startStack(target, { nativeEdge: false });
    let old: Run;
    try {
      old = await answers(nodeStack, false, false);
    } finally {
      await nodeStack.close();
    }
    const stack = await startStack(target);
    // Counts the scrapes and pushes the proxy's native front door served itself.
    let nativeScrapes = 0;
    let nativePushes = 0;
    let nativePolls = 0;
    const route = stack.proxy.nativeRoute.bind(stack.proxy);
    // (Counted per request served: a connection routes a head sent again once.)
    stack.proxy.nativeRoute = (head) => {
      const handler = route(head);
      if (handler === null) return null;
      return (exchange) => {
        if (exchange.target.startsWith("http://")) nativeScrapes++;
        else if (exchange.target.endsWith("/Poll")) nativePolls++;
        else nativePushes++;
        return handler(exchange);
      };
    };
    let nativePoll: Run, nativePush: Run, nativeBoth: Run, nativeEdgeOnly: Run;
    try {
      nativeEdgeOnly = await answers(stack, false, false);
      nativePoll = await answers(stack, false, false, true);
      nativePush = await answers(stack, true, false, false);
      nativeBoth = await answers(stack, true, true);
    } finally {
      await stack.close();
    }
    assert.equal(nativeScrapes, 4 * (PATHS.length + 1), "the native edge must serve every scrape");
    assert.ok(nativePushes >= 2 * PATHS.length, `native edge pushes: ${nativePushes}`);
    assert.ok(nativePolls >= 3, `native edge polls: ${nativePolls}`);
    assert.equal(old.dials + old.targetDials, 0, "the old path must not dial natively");
    // One native dial: the Poll stream's; pushes go through connect-es.
    assert.equal(nativePoll.dials, 1, "native poll must dial the proxy once");
    assert.equal(
      nativePush.targetDials + nativePoll.targetDials,
      0,
      "node:http towards the target",
    );
    assert.ok(nativePush.dials >= 1, "native push must dial the proxy");
    assert.ok(nativeBoth.targetDials >= 1, "native scrape must dial the target");
    // Keep-alive: far fewer connections than scrapes.
    assert.ok(nativeBoth.dials < PATHS.length, `native push dials ${nativeBoth.dials}`);
    for (const run of [nativeEdgeOnly, nativePoll, nativePush, nativeBoth]) {
      for (let i = 0; i < run.answers.length; i++) {
        const name = PATHS[i]?.[0] ?? "unreachable";
        const a = old.answers[i]!;
        const b = run.answers[i]!;
        assert.equal(b.statusLine, a.statusLine, name);
        assert.deepEqual(b.headers, a.headers, name);
        if (name === "unreachable") continue; // the socket error's wording differs
        assert.ok(
          portless(run, b.body) === portless(old, a.body),
          `${name}: bodies differ: ${new TextDecoder().decode(a.body.subarray(0, 200))} / ${
            new TextDecoder().decode(b.body.subarray(0, 200))
          }`,
        );
      }
    }
    const byPath = (p: string) => nativeBoth.answers[PATHS.findIndex(([x]) => x === p)]!;
    assert.match(byPath("/text").statusLine, / 200 /);
    assert.equal(new TextDecoder().decode(byPath("/text").body), TEXT);
    assert.deepEqual(byPath("/binary").body, BINARY);
    assert.deepEqual(byPath("/large").body, LARGE);
    assert.deepEqual(byPath("/gzip").body, GZIPPED);
    assert.ok(byPath("/gzip").headers.some((h) => /^content-encoding: gzip$/i.test(h)));
    assert.match(byPath("/error").statusLine, / 500 /);
    assert.match(byPath("/hang").statusLine, / 50[24] /);
    const unreachable = nativeBoth.answers[PATHS.length]!;
    assert.match(unreachable.statusLine, / 502 /);
    assert.match(new TextDecoder().decode(unreachable.body), /target did not answer/);
  },
});
