/**
 * What a client's push head says about the answer, checked at the proxy's
 * edge over raw sockets (the framing Prometheus sees is the point):
 *
 * - the target's Content-Length travels in the push head (Connect fast path,
 *   connect-es path and the legacy protocol), so a body declared larger than
 *   `--scrape.max-body-bytes` is refused with 502 before a byte is relayed,
 *   and a relayed body keeps its Content-Length (also when gzip-encoded);
 * - a pushed 1xx or out-of-range status is refused with 502 at once and
 *   counted, never relayed as the final answer.
 */

import assert from "node:assert/strict";
import { gzipSync } from "node:zlib";
import { connect } from "node:net";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { ClientService } from "../../gen/pushprox/v1/pushprox_pb.ts";
import { startLegacyClient } from "../legacy_client_double.ts";
import { type Stack, startStack, type TargetHandler } from "../stack.ts";
import { waitUntil } from "../support.ts";
import { stopping } from "../fixture.ts";

const BIG = 5000;
const LIMIT = 1000;
const SMALL = "up 1\n".repeat(20);
const GZIPPED = new Uint8Array(gzipSync(new TextEncoder().encode("node_load1 0.5\n".repeat(50))));

const target: TargetHandler = (req, res) => {
  if (req.url === "/big") {
    res.writeHead(200, { "content-type": "text/plain", "content-length": String(BIG) });
    res.end("a".repeat(BIG));
  } else if (req.url === "/gzip") {
    res.writeHead(200, {
      "content-type": "text/plain",
      "content-encoding": "gzip",
      "content-length": String(GZIPPED.byteLength),
    });
    res.end(GZIPPED);
  } else {
    res.writeHead(200, { "content-type": "text/plain", "content-length": String(SMALL.length) });
    res.end(SMALL);
  }
};

interface RawResponse {
  statusLine: string;
  /** Header fields, names lower-cased. */
  headers: [string, string][];
  /** Everything after the header block, as received until the proxy closed. */
  body: Uint8Array;
  /** Milliseconds from sending the request to the end of the response. */
  tookMs: number;
}

/** One scrape as Prometheus sends it, over a raw socket; `Connection: close`. */
function rawScrape(
  port: number,
  url: string,
  timeoutSeconds = 5,
  method = "GET",
): Promise<RawResponse> {
  const host = new URL(url).host;
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1");
    const chunks: Uint8Array[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no complete answer to ${url} within 10s`));
    }, 10_000);
    socket.on("connect", () => {
      socket.write(
        `${method} ${url} HTTP/1.1\r\nHost: ${host}\r\nAccept-Encoding: gzip\r\n` +
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
      const all = concat(chunks);
      const end = indexOfCrlfCrlf(all);
      if (end < 0) {
        if (all.byteLength > 0) {
          return reject(new Error(`no header block in ${JSON.stringify(latin1(all))}`));
        }
        // Closed without an answer.
        return resolve({ statusLine: "", headers: [], body: all, tookMs: 0 });
      }
      const lines = latin1(all.subarray(0, end)).split("\r\n");
      resolve({
        statusLine: lines[0]!,
        headers: lines.slice(1).map((line) => {
          const colon = line.indexOf(":");
          return [line.slice(0, colon).toLowerCase(), line.slice(colon + 1).trim()];
        }),
        body: all.subarray(end + 4),
        tookMs: performance.now() - started,
      });
    });
  });
}

function header(response: RawResponse, name: string): string | undefined {
  return response.headers.find(([n]) => n === name)?.[1];
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  const all = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let offset = 0;
  for (const part of parts) {
    all.set(part, offset);
    offset += part.byteLength;
  }
  return all;
}

function indexOfCrlfCrlf(bytes: Uint8Array): number {
  for (let i = 0; i + 3 < bytes.length; i++) {
    if (bytes[i] === 13 && bytes[i + 1] === 10 && bytes[i + 2] === 13 && bytes[i + 3] === 10) {
      return i;
    }
  }
  return -1;
}

function latin1(bytes: Uint8Array): string {
  let text = "";
  for (const byte of bytes) text += String.fromCharCode(byte);
  return text;
}

async function metric(stack: Stack, pattern: RegExp): Promise<number> {
  const text = await stack.proxy.metrics.registry.metrics();
  const match = pattern.exec(text);
  return match ? Number(match[1]) : 0;
}

/** Asserts the Content-Length behaviour against a stack whose client is registered as localhost. */
async function checkLengths(stack: Stack, port: number, checkHead = true): Promise<void> {
  const refused = await rawScrape(port, stack.targetUrl("/big"));
  assert.equal(refused.statusLine, "HTTP/1.1 502 Bad Gateway");
  const text = new TextDecoder().decode(refused.body);
  assert.match(text, new RegExp(`body of ${BIG} bytes exceeds --scrape.max-body-bytes=${LIMIT}`));
  assert.doesNotMatch(text, /aaaa/, "no byte of the body was relayed");
  assert.equal(
    await metric(stack, /pushprox_proxy_limit_hits_total\{limit="scrape_body_bytes"\} (\d+)/),
    1,
  );

  if (checkHead) {
    // HEAD: the length describes the body a GET would get; nothing is refused or relayed.
    const head = await rawScrape(port, stack.targetUrl("/big"), 5, "HEAD");
    assert.equal(head.statusLine, "HTTP/1.1 200 OK");
    assert.equal(header(head, "content-length"), String(BIG));
    assert.equal(head.body.byteLength, 0);
  }

  const small = await rawScrape(port, stack.targetUrl("/small"));
  assert.equal(small.statusLine, "HTTP/1.1 200 OK");
  assert.equal(header(small, "content-length"), String(SMALL.length));
  assert.equal(header(small, "transfer-encoding"), undefined);
  assert.equal(new TextDecoder().decode(small.body), SMALL);

  const gzip = await rawScrape(port, stack.targetUrl("/gzip"));
  assert.equal(gzip.statusLine, "HTTP/1.1 200 OK");
  assert.equal(header(gzip, "content-encoding"), "gzip");
  assert.equal(header(gzip, "content-length"), String(GZIPPED.byteLength));
  assert.equal(header(gzip, "transfer-encoding"), undefined);
  assert.deepEqual(gzip.body, GZIPPED);
}

for (const fast of [true, false]) {
  const path = fast ? "Connect fast path" : "connect-es path";
  Deno.test(`${path}: Content-Length reaches the proxy; a too-large declared body gets 502`, async () => {
    await using stack = await startStack(target, {
      maxScrapeBodyBytes: LIMIT,
      connectFastPath: fast,
    });
    await stack.startClient();
    await checkLengths(stack, stack.proxyPort);
  });
}

Deno.test("legacy protocol: Content-Length reaches Prometheus; a too-large declared body gets 502", async () => {
  await using stack = await startStack(target, { maxScrapeBodyBytes: LIMIT, legacyProtocol: true });
  await using _client = stopping(startLegacyClient({
    proxyUrl: stack.proxyUrl,
    fqdn: "localhost",
    retryInitialWaitMs: 50,
    retryMaxWaitMs: 200,
  }));
  await waitUntil(
    () => stack.proxy.coordinator.listClients().some((c) => c.connected) || undefined,
    5_000,
    "the legacy client to register",
  );
  // (HEAD is left out: the legacy double frames its answer to HEAD its own way.)
  await checkLengths(stack, stack.proxyPort, false);
});

/** Registers a hand-driven Connect client as `fqdn`; returns its session id. */
async function registerByHand(
  stack: Stack,
  fqdn: string,
  signal: AbortSignal,
): Promise<{ sessionId: string; scrapes: AsyncIterator<{ id: string }> }> {
  const client = createClient(
    ClientService,
    createConnectTransport({ baseUrl: stack.proxyUrl, httpVersion: "1.1", useBinaryFormat: true }),
  );
  const stream = client.poll({ fqdn }, { signal })[Symbol.asyncIterator]();
  const first = await stream.next();
  assert.equal(first.value?.message.case, "registered");
  const sessionId = (first.value!.message.value as { sessionId: string }).sessionId;
  const scrapes = {
    async next(): Promise<IteratorResult<{ id: string }>> {
      for (;;) {
        const next = await stream.next();
        if (next.done) return { done: true, value: undefined };
        if (next.value.message.case === "scrape") {
          return { done: false, value: { id: next.value.message.value.id } };
        }
      }
    },
  };
  return { sessionId, scrapes };
}

for (const fast of [true, false]) {
  const path = fast ? "Connect fast path" : "connect-es path";
  for (const status of [101, 100, 199, 600, 0]) {
    Deno.test(`${path}: a pushed status ${status} is refused with 502 at once and counted`, async () => {
      const stack = await startStack(target, { connectFastPath: fast });
      const stop = new AbortController();
      try {
        const fqdn = "hand.example";
        const { sessionId, scrapes } = await registerByHand(stack, fqdn, stop.signal);
        const scraping = rawScrape(stack.proxyPort, `http://${fqdn}:9100/metrics`, 30);
        const task = await scrapes.next();
        assert.equal(task.done, false);
        const client = createClient(
          ClientService,
          createConnectTransport({
            baseUrl: stack.proxyUrl,
            httpVersion: "1.1",
            useBinaryFormat: true,
          }),
        );
        const pushed = await client.push((async function* () {
          yield {
            message: {
              case: "head" as const,
              value: { scrapeId: task.value!.id, sessionId, status, headers: [], error: "" },
            },
          };
          yield { message: { case: "bodyChunk" as const, value: new TextEncoder().encode("x") } };
        })()).then(() => "ok", (error) => String(error));
        assert.match(pushed, /not a final HTTP status/);

        const response = await scraping;
        assert.equal(response.statusLine, "HTTP/1.1 502 Bad Gateway");
        assert.match(
          new TextDecoder().decode(response.body),
          new RegExp(`status ${status} is not a final HTTP status \\(200-599\\)`),
        );
        assert.ok(response.tookMs < 10_000, `answered after ${response.tookMs} ms`);
        assert.equal(
          await metric(stack, /pushprox_proxy_push_errors_total\{reason="invalid_status"\} (\d+)/),
          1,
        );
        assert.equal(stack.proxy.coordinator.scrapesInFlight, 0);
      } finally {
        stop.abort();
        await stack.close();
      }
    });
  }
}

Deno.test("legacy protocol: a pushed 101 is refused with 502 at once and counted", async () => {
  await using stack = await startStack(target, { legacyProtocol: true });
  const fqdn = "legacy.example";
  const polling = fetch(`${stack.proxyUrl}/poll`, {
    method: "POST",
    body: new TextEncoder().encode(fqdn),
  });
  await waitUntil(
    () => stack.proxy.coordinator.listClients().some((c) => c.connected) || undefined,
    5_000,
    "the legacy poll to register",
  );
  const scraping = rawScrape(stack.proxyPort, `http://${fqdn}:9100/metrics`, 30);
  const scrapeText = await (await polling).text();
  const id = /\r\nId: ([^\r]+)\r\n/.exec(scrapeText)?.[1];
  assert.ok(id, scrapeText);
  const pushed = await fetch(`${stack.proxyUrl}/push`, {
    method: "POST",
    body: new TextEncoder().encode(
      `HTTP/1.1 101 Switching Protocols\r\nId: ${id}\r\nUpgrade: h2c\r\n\r\n`,
    ),
  });
  assert.equal(pushed.status, 500);
  assert.match(await pushed.text(), /status 101 is not a final HTTP status/);

  const response = await scraping;
  assert.equal(response.statusLine, "HTTP/1.1 502 Bad Gateway");
  assert.match(new TextDecoder().decode(response.body), /status 101 is not a final HTTP status/);
  assert.ok(response.tookMs < 10_000, `answered after ${response.tookMs} ms`);
  assert.equal(
    await metric(stack, /pushprox_proxy_push_errors_total\{reason="invalid_status"\} (\d+)/),
    1,
  );
});

/** Registers by hand, waits for a scrape and pushes `head` fields and `body`; returns both ends. */
async function pushByHand(
  fast: boolean,
  headers: { name: string; value: string }[],
  body: Uint8Array,
): Promise<{ response: RawResponse; pushed: string; stack: Stack }> {
  const stack = await startStack(target, { connectFastPath: fast });
  const stop = new AbortController();
  try {
    const fqdn = "hand.example";
    const { sessionId, scrapes } = await registerByHand(stack, fqdn, stop.signal);
    const scraping = rawScrape(stack.proxyPort, `http://${fqdn}:9100/metrics`, 30);
    const task = await scrapes.next();
    const client = createClient(
      ClientService,
      createConnectTransport({
        baseUrl: stack.proxyUrl,
        httpVersion: "1.1",
        useBinaryFormat: true,
      }),
    );
    const pushed = await client.push((async function* () {
      yield {
        message: {
          case: "head" as const,
          value: { scrapeId: task.value!.id, sessionId, status: 200, headers, error: "" },
        },
      };
      yield { message: { case: "bodyChunk" as const, value: body } };
    })()).then(() => "ok", (error) => String(error));
    return { response: await scraping, pushed, stack };
  } finally {
    stop.abort();
    await stack.close();
  }
}

for (const fast of [true, false]) {
  const path = fast ? "Connect fast path" : "connect-es path";
  Deno.test(`${path}: conflicting Content-Length values are refused with 502`, async () => {
    const { response, pushed, stack } = await pushByHand(fast, [
      { name: "content-length", value: "3" },
      { name: "content-length", value: "4" },
    ], new TextEncoder().encode("abc"));
    assert.equal(response.statusLine, "HTTP/1.1 502 Bad Gateway");
    assert.match(new TextDecoder().decode(response.body), /conflicting Content-Length/);
    assert.match(pushed, /conflicting Content-Length/);
    assert.equal(
      await metric(stack, /pushprox_proxy_push_errors_total\{reason="invalid"\} (\d+)/),
      1,
    );
  });

  for (const [declared, sent] of [[10, 20], [10, 5]] as const) {
    Deno.test(`${path}: a body of ${sent} bytes declared as ${declared} is cut, never misframed`, async () => {
      const { response } = await pushByHand(
        fast,
        [{ name: "content-length", value: String(declared) }],
        new Uint8Array(sent).fill(0x62),
      );
      // The connection ends before the declared length is complete (or
      // before the head, when nothing was written yet): a reader framing by
      // Content-Length sees a truncated answer, never a different one.
      if (response.statusLine !== "") {
        assert.equal(response.statusLine, "HTTP/1.1 200 OK");
        assert.equal(header(response, "content-length"), String(declared));
      }
      assert.ok(response.body.byteLength < declared, `${response.body.byteLength} bytes`);
    });
  }
}
