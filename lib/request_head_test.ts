import assert from "node:assert/strict";
import {
  type HeadScan,
  readRequestHead,
  RequestHeadCache,
  scanRequestHead,
} from "./request_head.ts";
import { ByteReader } from "./http1.ts";
import { LazyTimer } from "./lazy_timer.ts";
import { seededRandom as random } from "./testing/random.ts";

const bytes = (text: string) => new TextEncoder().encode(text);

Deno.test("scanRequestHead() parses a plain head, names as received and lower-cased", () => {
  const text =
    "GET http://node1:9100/metrics HTTP/1.1\r\nHost: node1:9100\r\nAccept: text/plain\r\nX-A: 1\r\nx-a:  2 \r\n\r\nrest";
  const scan = scanRequestHead(bytes(text), 16384);
  assert.equal(scan.kind, "head");
  if (scan.kind !== "head") return;
  assert.equal(scan.head.method, "GET");
  assert.equal(scan.head.target, "http://node1:9100/metrics");
  assert.equal(scan.head.length, text.length - 4);
  assert.deepEqual(scan.head.rawHeaders, [
    "Host",
    "node1:9100",
    "Accept",
    "text/plain",
    "X-A",
    "1",
    "x-a",
    "2",
  ]);
  assert.deepEqual(scan.head.headers.get("x-a"), ["1", "2"]);
});

Deno.test("scanRequestHead() waits for the rest of a plain head", () => {
  for (
    const part of [
      "",
      "G",
      "GET",
      "GET ",
      "GET http://a:1/m",
      "GET http://a:1/m HTTP/1.",
      "GET http://a:1/m HTTP/1.1\r",
      "GET http://a:1/m HTTP/1.1\r\nHost: a",
      "GET http://a:1/m HTTP/1.1\r\nHost: a:1\r\n\r",
    ]
  ) {
    assert.equal(scanRequestHead(bytes(part), 16384).kind, "incomplete", JSON.stringify(part));
  }
});

Deno.test("scanRequestHead() leaves anything unusual to node:http", () => {
  for (
    const text of [
      "\x16\x03\x01\x02\x00",
      "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
      "get /clients HTTP/1.1\r\nHost: x\r\n\r\n",
      "GET /clients HTTP/1.0\r\nHost: x\r\n\r\n",
      "GET /clients  HTTP/1.1\r\nHost: x\r\n\r\n",
      "GET /clients HTTP/1.1\nHost: x\r\n\r\n",
      "GET /clients HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n",
      "GET /clients HTTP/1.1\r\nHost : x\r\n\r\n",
      "GET /clients HTTP/1.1\r\nNoColon\r\n\r\n",
      "GET /clients HTTP/1.1\r\nX: a\nb\r\n\r\n",
      "GET /clients HTTP/1.1\r\nX: \x00\r\n\r\n",
      "GET /clients HTTP/1.1\r\nX: caf\xe9\r\n\r\n",
      "GET /cl\x7fients HTTP/1.1\r\n",
      "\r\nGET /clients HTTP/1.1\r\n\r\n",
      "GET http://a:1/m HTTX",
    ]
  ) {
    const raw = new Uint8Array([...text].map((c) => c.charCodeAt(0)));
    assert.equal(scanRequestHead(raw, 16384).kind, "unusual", JSON.stringify(text));
  }
  // Larger than the limit, complete or not.
  const big = `GET /clients HTTP/1.1\r\nX-Big: ${"a".repeat(5000)}\r\n\r\n`;
  assert.equal(scanRequestHead(bytes(big), 4096).kind, "unusual");
  assert.equal(scanRequestHead(bytes(big.slice(0, 4200)), 4096).kind, "unusual");
});

// The scanner before issue #11 (regular expressions over the decoded head),
// kept as the reference the fast one must agree with on every input.
const TOKEN_REGEXP = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const REQUEST_LINE_REGEXP = /^([A-Z]+) ([\x21-\x7e]+) HTTP\/1\.1$/;
/** A request line as far as it has arrived. */
const REQUEST_LINE_PREFIX_REGEXP = /^[A-Z]*(?: [\x21-\x7e]*(?: H?T?T?P?\/?1?\.?1?)?)?$/;
const DECODER = new TextDecoder();

/**
 * Looks at the bytes a connection sent so far for one request head.
 *
 * @param bytes The bytes received, from the start of the request.
 * @param maxHeaderBytes Heads larger than this are unusual (node:http answers 431).
 * @returns The head, "incomplete" when more bytes may complete a plain head,
 *   or "unusual" for anything the native edge leaves to node:http.
 */
function referenceScan(bytes: Uint8Array, maxHeaderBytes: number): HeadScan {
  const end = referenceHeadEnd(bytes);
  const limit = end < 0 ? bytes.byteLength : end;
  for (let i = 0; i < limit; i++) {
    const byte = bytes[i]!;
    // Visible ASCII, space, tab, CR, LF; no NUL, controls or obs-text.
    if (byte > 0x7e || (byte < 0x20 && byte !== 0x09 && byte !== 0x0d && byte !== 0x0a)) {
      return { kind: "unusual" };
    }
  }
  if (end < 0) {
    if (bytes.byteLength > maxHeaderBytes) return { kind: "unusual" };
    const lineEnd = bytes.indexOf(0x0a);
    const line = DECODER.decode(bytes.subarray(0, lineEnd < 0 ? bytes.byteLength : lineEnd));
    if (lineEnd >= 0) {
      return line.endsWith("\r") && REQUEST_LINE_REGEXP.test(line.slice(0, -1))
        ? { kind: "incomplete" }
        : { kind: "unusual" };
    }
    return REQUEST_LINE_PREFIX_REGEXP.test(line.replace(/\r$/, ""))
      ? { kind: "incomplete" }
      : { kind: "unusual" };
  }
  const length = end + 4;
  if (length > maxHeaderBytes) return { kind: "unusual" };
  const lines = DECODER.decode(bytes.subarray(0, end)).split("\r\n");
  const match = REQUEST_LINE_REGEXP.exec(lines[0]!);
  if (match === null) return { kind: "unusual" };
  const rawHeaders: string[] = [];
  const headers = new Map<string, string[]>();
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    // Bare LFs, obs-fold, missing colons, space before the colon: node's call.
    if (line.includes("\n") || line.includes("\r")) return { kind: "unusual" };
    const colon = line.indexOf(":");
    if (colon <= 0) return { kind: "unusual" };
    const name = line.slice(0, colon);
    if (!TOKEN_REGEXP.test(name)) return { kind: "unusual" };
    const value = line.slice(colon + 1).replace(/^[ \t]+|[ \t]+$/g, "");
    rawHeaders.push(name, value);
    const lower = name.toLowerCase();
    const list = headers.get(lower);
    if (list === undefined) headers.set(lower, [value]);
    else list.push(value);
  }
  return {
    kind: "head",
    head: { method: match[1]!, target: match[2]!, rawHeaders, headers, length },
  };
}

/** Index of the CRLF CRLF that ends a head, or -1. */
function referenceHeadEnd(bytes: Uint8Array): number {
  for (
    let i = bytes.indexOf(0x0d);
    i >= 0 && i + 3 < bytes.byteLength;
    i = bytes.indexOf(0x0d, i + 1)
  ) {
    if (bytes[i + 1] === 0x0a && bytes[i + 2] === 0x0d && bytes[i + 3] === 0x0a) return i;
  }
  return -1;
}

/** A scan as plain data, for deepEqual. */
function plain(scan: HeadScan): unknown {
  return scan.kind === "head" ? { ...scan.head, headers: [...scan.head.headers] } : scan;
}

Deno.test("scanRequestHead() agrees with the regular-expression scanner on mutated heads", () => {
  const heads = [
    "GET http://node1:9100/metrics HTTP/1.1\r\nHost: node1:9100\r\nAccept: text/plain;version=0.0.4\r\nAccept-Encoding: gzip\r\nUser-Agent: Prometheus/2.42.0\r\nX-Prometheus-Scrape-Timeout-Seconds: 10\r\n\r\n",
    "POST /pushprox.v1.ClientService/Push HTTP/1.1\r\nhost: 127.0.0.1:8080\r\ncontent-type: application/connect+proto\r\nconnect-protocol-version: 1\r\ntransfer-encoding: chunked\r\nauthorization: Bearer abc\r\n\r\n1\r\nx\r\n",
    "GET / HTTP/1.1\r\n\r\n",
    "GET /-/healthy HTTP/1.1\r\nX:\r\nY: \t a b \t\r\nZ::\r\n\r\n",
  ];
  // Bytes a mutation inserts or writes: the ones the grammar cares about, and others.
  const specials = [0x0d, 0x0a, 0x20, 0x09, 0x3a, 0x00, 0x7f, 0x80, 0xe9, 0xff, 0x41, 0x61, 0x2f];
  const next = random(11);
  const pick = (n: number) => Math.floor(next() * n);
  for (let round = 0; round < 20_000; round++) {
    const base = [...bytes(heads[pick(heads.length)]!)];
    for (let m = pick(4); m >= 0; m--) {
      const at = pick(base.length + 1);
      const byte = next() < 0.7 ? specials[pick(specials.length)]! : pick(256);
      const what = pick(3);
      if (what === 0) base.splice(at, 0, byte);
      else if (what === 1) base.splice(at, 1);
      else base[Math.min(at, base.length - 1)] = byte;
    }
    // Also every prefix length now and then: partial heads.
    const cut = next() < 0.2 ? pick(base.length + 1) : base.length;
    const input = new Uint8Array(base.slice(0, cut));
    const max = next() < 0.1 ? pick(300) : 16384;
    assert.deepEqual(
      plain(scanRequestHead(input, max)),
      plain(referenceScan(input, max)),
      JSON.stringify(String.fromCharCode(...input)),
    );
  }
});

/** A reader over scripted reads: each entry is bytes, null (end) or a wait that never ends. */
function scriptedReader(reads: (string | null | "hang")[]): ByteReader {
  const encoder = new TextEncoder();
  return new ByteReader((buffer) => {
    const next = reads.shift();
    if (next === undefined || next === null) return Promise.resolve(null);
    if (next === "hang") return new Promise(() => {});
    const bytes = encoder.encode(next);
    buffer.set(bytes);
    return Promise.resolve(bytes.byteLength);
  }, 4096);
}

const LIMITS = { headersTimeoutMs: 50, idleTimeoutMs: 50, maxHeaderBytes: 8192 };

Deno.test("readRequestHead() names each way a wait for a head ends", async () => {
  const timer = new LazyTimer();
  try {
    const split = await readRequestHead(
      scriptedReader(["GET /m HTTP/1.1\r\nHo", "st: a\r\n\r\n"]),
      true,
      timer,
      LIMITS,
    );
    assert.equal(split.kind, "head");
    assert.equal(split.kind === "head" && split.head.target, "/m");
    assert.equal(
      (await readRequestHead(scriptedReader([null]), true, timer, LIMITS)).kind,
      "closed",
    );
    assert.equal(
      (await readRequestHead(scriptedReader(["GET /m HT", null]), true, timer, LIMITS)).kind,
      "unusual",
    );
    assert.equal(
      (await readRequestHead(scriptedReader(["GET /m HT", "hang"]), true, timer, LIMITS)).kind,
      "timeout",
    );
    // A kept-alive connection that sends nothing is idle, not late.
    assert.equal(
      (await readRequestHead(scriptedReader(["hang"]), false, timer, LIMITS)).kind,
      "idle",
    );
    assert.equal(
      (await readRequestHead(scriptedReader(["GET /m HTTP/1.0\r\n\r\n"]), true, timer, LIMITS))
        .kind,
      "unusual",
    );
  } finally {
    timer.close();
  }
});

Deno.test("readRequestHead() with closeIdle closes an idle connection instead of racing", async () => {
  const timer = new LazyTimer();
  try {
    // The close ends the pending read, as closing a connection does.
    let end: ((n: number | null) => void) | null = null;
    let closes = 0;
    const idle = new ByteReader(() => new Promise((resolve) => (end = resolve)), 4096);
    const closeIdle = () => {
      closes++;
      end?.(null);
    };
    const outcome = await readRequestHead(idle, false, timer, LIMITS, undefined, closeIdle);
    assert.deepEqual([outcome.kind, closes, timer.waiting], ["closed", 1, false]);
    // Bytes in time: the wait is cleared, nothing closed.
    const busy = scriptedReader(["GET /m HTTP/1.1\r\n\r\n"]);
    const head = await readRequestHead(busy, false, timer, LIMITS, undefined, closeIdle);
    assert.deepEqual([head.kind, closes, timer.waiting], ["head", 1, false]);
  } finally {
    timer.close();
  }
});

const SCRAPE =
  "GET http://node1:9100/metrics HTTP/1.1\r\nHost: node1:9100\r\nAccept: text/plain\r\nX-Prometheus-Scrape-Timeout-Seconds: 10\r\n\r\n";

Deno.test("RequestHeadCache reuses the parse of the same head bytes, frozen", () => {
  const cache = new RequestHeadCache();
  const first = cache.scan(bytes(SCRAPE + "body"), 16384);
  assert.equal(first.kind, "head");
  // Other bytes after the head (a body, a next request) do not matter.
  const again = cache.scan(bytes(SCRAPE + "other"), 16384);
  assert.equal(again.kind === "head" && again.head, first.kind === "head" && first.head);
  assert.equal(cache.scan(bytes(SCRAPE), 16384), again);
  if (again.kind !== "head") return;
  assert.ok(Object.isFrozen(again.head));
  assert.ok(Object.isFrozen(again.head.rawHeaders));
  assert.ok(Object.isFrozen(again.head.headers.get("host")));
  assert.throws(() => (again.head.rawHeaders as string[]).push("x", "y"));
  // Forgotten: parsed again (equal, not the same).
  cache.forget();
  const fresh = cache.scan(bytes(SCRAPE), 16384);
  assert.notEqual(fresh.kind === "head" && fresh.head, again.head);
  assert.deepEqual(fresh, again);
});

Deno.test("RequestHeadCache parses again when any one byte of the head differs", () => {
  const cache = new RequestHeadCache();
  const known = cache.scan(bytes(SCRAPE), 16384);
  const gen = random(11);
  for (let n = 0; n < 300; n++) {
    const changed = bytes(SCRAPE);
    const at = Math.floor(gen() * changed.byteLength);
    changed[at] = changed[at]! ^ (1 + Math.floor(gen() * 255));
    const scan = cache.scan(changed, 16384);
    // Exactly what a scan without the cache finds (the changed head, or unusual, or incomplete).
    assert.deepEqual(scan, scanRequestHead(changed, 16384), `byte ${at}`);
    if (scan.kind === "head") {
      assert.notEqual(scan.head, known.kind === "head" && known.head);
    }
    // Back to the known bytes: equal to the first parse.
    assert.deepEqual(cache.scan(bytes(SCRAPE), 16384), known);
  }
  // A shorter buffer (the head cut short) is incomplete, as without the cache.
  cache.scan(bytes(SCRAPE), 16384);
  assert.equal(cache.scan(bytes(SCRAPE.slice(0, -2)), 16384).kind, "incomplete");
});

Deno.test("RequestHeadCache keeps no head larger than its bound nor past the size cap", () => {
  const big = `GET /m HTTP/1.1\r\nHost: a\r\nX-Big: ${"b".repeat(5000)}\r\n\r\n`;
  const cache = new RequestHeadCache(4096);
  const first = cache.scan(bytes(big), 16384);
  const second = cache.scan(bytes(big), 16384);
  assert.equal(first.kind, "head");
  assert.notEqual(second.kind === "head" && second.head, first.kind === "head" && first.head);
  assert.ok(!Object.isFrozen(first.kind === "head" && first.head));
  // A known head is still refused under a smaller cap.
  const small = new RequestHeadCache();
  assert.equal(small.scan(bytes(SCRAPE), 16384).kind, "head");
  assert.equal(small.scan(bytes(SCRAPE), 64).kind, "unusual");
});

Deno.test("readRequestHead() with a cache returns the known head for the same bytes", async () => {
  const timer = new LazyTimer();
  const cache = new RequestHeadCache();
  try {
    const a = await readRequestHead(scriptedReader([SCRAPE]), true, timer, LIMITS, cache);
    const b = await readRequestHead(scriptedReader([SCRAPE]), true, timer, LIMITS, cache);
    assert.equal(a.kind, "head");
    assert.equal(b, a);
  } finally {
    timer.close();
  }
});
