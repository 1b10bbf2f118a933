/**
 * Relayed bytes are exact under hostile-but-valid fragmentation (issue #11's
 * fast paths: in-place dechunking and `nextNow` in lib/http1_body.ts, joined
 * `body_chunk` messages in proxy/connect/connect_stream.ts, framing written
 * in front of owned pieces in proxy/http/native_exchange.ts and on the
 * client). The real proxy (and, in the second test, the real client) run as
 * processes; bodies are random (binary, with framing-like byte runs), from a
 * fixed seed (`RELAY_SEED` overrides it), many scrapes on the same
 * keep-alive connections so buffers are reused between scrapes.
 *
 * 1. A raw-socket client (Poll, then Push on the fast Connect path) answers
 *    every scrape with a random body: Content-Length in the head or not,
 *    `body_chunk` messages of 1 byte .. 70 KiB, the Push request chunked with
 *    boundaries independent of the envelopes' (or Content-Length), written
 *    in random slices with small pauses.
 * 2. The real client scrapes a Deno.serve target answering random bodies,
 *    chunked in random-size views with small delays or with Content-Length,
 *    sometimes gzip-encoded (passed through compressed, byte-identical).
 * 3. The real client scrapes a raw-socket target whose framing varies as
 *    HTTP/1.1 allows (chunk sizes in either case with leading zeros, chunk
 *    extensions, trailers, close-delimited bodies), written in random slices
 *    with small pauses so that the client's reads split anywhere.
 *
 * Raw-socket scrapers (three at a time, one reading slowly, every 13th
 * scrape asking `Connection: close`) decode the proxy's own framing and check
 * that it is Content-Length exactly when the client declared a length.
 *
 * For local runs: RELAY_SEED, RELAY_SCRAPES (120; the real-client tests take
 * half), RELAY_SCRAPERS (3), RELAY_MAX_KIB (300, the largest body).
 */

import assert from "node:assert/strict";
import { type AddressInfo, connect, createServer, type Socket } from "node:net";
import { gzipSync } from "node:zlib";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import {
  PollRequestSchema,
  PollResponseSchema,
  PushRequestSchema,
  PushResponseSchema,
} from "../../gen/pushprox/v1/pushprox_pb.ts";
import { concatBytes } from "../../lib/bytes.ts";
import { seededRandom } from "../../lib/testing/random.ts";
import { envelope } from "../adversarial/harness.ts";
import { startClientProcess, startProxyProcess } from "../support.ts";

const SEED = Number(Deno.env.get("RELAY_SEED") ?? 20261202);
/** Scrapes per test, spread over the scraper connections. */
const SCRAPES = Number(Deno.env.get("RELAY_SCRAPES") ?? 120);
/** Scrapes at a time, each on its keep-alive connection. */
const SCRAPERS = Number(Deno.env.get("RELAY_SCRAPERS") ?? 3);
/** Largest body. */
const MAX_KIB = Number(Deno.env.get("RELAY_MAX_KIB") ?? 300);
/** Longest wait for any one read. */
const READ_TIMEOUT_MS = 20_000;
const FQDN = "relay-fqdn";

const encoder = new TextEncoder();
const decoder = new TextDecoder("latin1");

/** A whole number in [low, high]. */
function between(next: () => number, low: number, high: number): number {
  return low + Math.floor(next() * (high - low + 1));
}

/** Sizes from 1 byte to `max`, most small or middling, some near `max`. */
function pieceSize(next: () => number, max: number): number {
  const roll = next();
  const size = roll < 0.3
    ? between(next, 1, 16)
    : roll < 0.6
    ? between(next, 17, 4096)
    : roll < 0.85
    ? between(next, 4097, Math.max(4097, max >> 1))
    : between(next, Math.max(1, max - 2048), max);
  return Math.min(max, size);
}

/**
 * One of `options` as the largest piece size, but none that would cut
 * `total` bytes into more than about 1500 pieces (bounded time).
 */
function pickMax(next: () => number, options: number[], total: number): number {
  const max = options[between(next, 0, options.length - 1)]!;
  return total / max <= 1500 ? max : options.find((m) => total / m <= 1500) ?? max;
}

/** Text framing and envelope look-alikes sprinkled into binary bodies. */
const DECOYS = ["\r\n", "0\r\n\r\n", "\r\n\r\n", "ffff\r\n", "\0\0\0\0\x05", "HTTP/1.1 200 OK\r\n"]
  .map((s) => encoder.encode(s));

/** A random body of 0 .. ~300 KiB: binary bytes, decoys, sometimes text. */
function randomBody(next: () => number): Uint8Array<ArrayBuffer> {
  const roll = next();
  const size = roll < 0.1
    ? between(next, 0, 2)
    : roll < 0.35
    ? between(next, 3, 1024)
    : roll < 0.75
    ? between(next, 1025, 70 * 1024)
    : between(next, 70 * 1024, MAX_KIB * 1024);
  const body = new Uint8Array(size);
  let state = Math.floor(next() * 0xffffffff) | 1;
  const text = next() < 0.3;
  for (let i = 0; i < size; i++) {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    body[i] = text ? 32 + ((state >>> 0) % 95) : state & 0xff;
  }
  const decoys = Math.floor(size / 4096);
  for (let i = 0; i < decoys; i++) {
    const decoy = DECOYS[between(next, 0, DECOYS.length - 1)]!;
    const at = between(next, 0, size - decoy.length);
    if (at >= 0) body.set(decoy, at);
  }
  return body;
}

/** Resolves after `ms`. */
function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A raw connection read as a byte stream: heads, lines, exact counts. */
class Wire {
  readonly socket: Socket;
  #buf = new Uint8Array(0);
  #at = 0;
  #wake: (() => void) | null = null;
  #ended = false;
  #slow: (() => number) | null = null;
  readonly name: string;

  constructor(socket: Socket, name: string) {
    this.socket = socket;
    this.name = name;
    socket.setNoDelay(true);
    socket.on("data", (chunk: Uint8Array) => {
      const rest = this.#buf.subarray(this.#at);
      const joined = new Uint8Array(rest.byteLength + chunk.byteLength);
      joined.set(rest);
      joined.set(chunk, rest.byteLength);
      this.#buf = joined;
      this.#at = 0;
      this.#wake?.();
      // A slow reader: the sender's writes back up behind it now and then.
      if (this.#slow !== null && this.#slow() < 0.2) {
        socket.pause();
        setTimeout(() => socket.resume(), 1 + Math.floor(this.#slow() * 20));
      }
    });
    socket.on("close", () => {
      this.#ended = true;
      this.#wake?.();
    });
    socket.on("error", () => {});
  }

  static open(port: number, name: string): Promise<Wire> {
    return new Promise((resolve, reject) => {
      const socket = connect(port, "127.0.0.1");
      socket.once("connect", () => resolve(new Wire(socket, name)));
      socket.once("error", reject);
    });
  }

  /** Reads slowly from now on: pauses of 1-20 ms after a fifth of the reads. */
  slowly(next: () => number): this {
    this.#slow = next;
    return this;
  }

  get buffered(): number {
    return this.#buf.byteLength - this.#at;
  }

  async #fill(what: string): Promise<void> {
    if (this.#ended) throw new Error(`${this.name}: closed while reading ${what}`);
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      await new Promise<void>((resolve, reject) => {
        this.#wake = resolve;
        timer = setTimeout(
          () =>
            reject(new Error(`${this.name}: nothing for ${READ_TIMEOUT_MS} ms reading ${what}`)),
          READ_TIMEOUT_MS,
        );
      });
    } finally {
      this.#wake = null;
      clearTimeout(timer);
    }
  }

  /** Bytes up to (and without) `delimiter`, consumed with it. */
  async until(delimiter: string, what: string): Promise<string> {
    const d = encoder.encode(delimiter);
    for (;;) {
      const view = this.#buf.subarray(this.#at);
      outer: for (let i = 0; i + d.length <= view.length; i++) {
        for (let j = 0; j < d.length; j++) if (view[i + j] !== d[j]) continue outer;
        this.#at += i + d.length;
        return decoder.decode(view.subarray(0, i));
      }
      await this.#fill(what);
    }
  }

  /** Exactly `n` bytes (copied). */
  async take(n: number, what: string): Promise<Uint8Array> {
    while (this.buffered < n) await this.#fill(what);
    const out = this.#buf.slice(this.#at, this.#at + n);
    this.#at += n;
    return out;
  }

  /** A response head: status and lower-cased fields. */
  async head(what: string): Promise<{ status: number; fields: Map<string, string>; text: string }> {
    const text = await this.until("\r\n\r\n", `${what} head`);
    const lines = text.split("\r\n");
    const status = Number(/^HTTP\/1\.1 (\d{3}) /.exec(lines[0]!)?.[1] ?? 0);
    const fields = new Map<string, string>();
    for (const line of lines.slice(1)) {
      const colon = line.indexOf(":");
      const name = line.slice(0, colon).trim().toLowerCase();
      if (fields.has(name)) throw new Error(`${what}: field ${name} twice:\n${text}`);
      fields.set(name, line.slice(colon + 1).trim());
    }
    return { status, fields, text };
  }

  /** One chunk of a chunked body, null at its end (trailers consumed). */
  async chunk(what: string): Promise<Uint8Array | null> {
    const line = await this.until("\r\n", `${what} chunk size`);
    if (!/^[0-9a-f]+$/i.test(line)) {
      throw new Error(`${what}: bad chunk size line ${JSON.stringify(line)}`);
    }
    const size = parseInt(line, 16);
    if (size === 0) {
      const trailer = await this.until("\r\n", `${what} last chunk`);
      if (trailer !== "") throw new Error(`${what}: trailer ${JSON.stringify(trailer)}`);
      return null;
    }
    const data = await this.take(size, `${what} chunk data`);
    const crlf = await this.take(2, `${what} chunk end`);
    if (crlf[0] !== 13 || crlf[1] !== 10) {
      throw new Error(`${what}: chunk of ${size} not followed by CRLF but ${crlf}`);
    }
    return data;
  }

  /** A body framed by Content-Length or chunked. */
  async body(fields: Map<string, string>, what: string): Promise<Uint8Array> {
    const length = fields.get("content-length");
    const chunked = /chunked/i.test(fields.get("transfer-encoding") ?? "");
    if (length !== undefined && chunked) throw new Error(`${what}: Content-Length and chunked`);
    if (length !== undefined) return await this.take(Number(length), `${what} body`);
    if (!chunked) throw new Error(`${what}: neither Content-Length nor chunked`);
    const parts: Uint8Array[] = [];
    for (;;) {
      const data = await this.chunk(what);
      if (data === null) return concatBytes(parts);
      parts.push(data);
    }
  }

  /** Waits until the peer closes, with nothing more sent. */
  async closed(what: string): Promise<void> {
    while (!this.#ended) await this.#fill(`${what}: the close`);
    if (this.buffered > 0) throw new Error(`${what}: ${this.buffered} bytes after the answer`);
  }

  /** Writes and waits until the socket took the bytes. */
  write(bytes: Uint8Array): Promise<void> {
    return new Promise((resolve, reject) =>
      this.socket.write(bytes, (error) => error ? reject(error) : resolve())
    );
  }

  close(): void {
    this.socket.destroy();
  }
}

/** The envelopes of a whole body. */
function envelopes(body: Uint8Array): { flags: number; payload: Uint8Array }[] {
  const out: { flags: number; payload: Uint8Array }[] = [];
  let at = 0;
  while (at < body.byteLength) {
    const length = new DataView(body.buffer, body.byteOffset + at + 1, 4).getUint32(0);
    out.push({ flags: body[at]!, payload: body.subarray(at + 5, at + 5 + length) });
    at += 5 + length;
  }
  return out;
}

/** One scrape as Prometheus sends it, on a keep-alive connection; its body and framing. */
async function scrape(
  wire: Wire,
  url: string,
  what: string,
  close = false,
): Promise<{ status: number; fields: Map<string, string>; body: Uint8Array }> {
  const host = new URL(url).host;
  await wire.write(
    encoder.encode(
      `GET ${url} HTTP/1.1\r\nHost: ${host}\r\nAccept-Encoding: gzip\r\n` +
        `User-Agent: Prometheus/3.0.0\r\nX-Prometheus-Scrape-Timeout-Seconds: 30\r\n` +
        (close ? "Connection: close\r\n\r\n" : "\r\n"),
    ),
  );
  const head = await wire.head(what);
  const body = await wire.body(head.fields, what);
  if (close) {
    assert.equal(head.fields.get("connection"), "close", `${what}: Connection: close answered`);
    await wire.closed(what);
  }
  return { status: head.status, fields: head.fields, body };
}

/** Whether the scrape of body `n` asks to close its connection (then a new one is opened). */
function closing(n: number): boolean {
  return n % 13 === 6;
}

/** A scraper's keep-alive connection; the second scraper's reads slowly. */
async function openScraper(port: number, k: number, wires: Wire[]): Promise<Wire> {
  const wire = await Wire.open(port, `scraper ${k}`);
  if (k === 1) wire.slowly(seededRandom(SEED + k));
  wires.push(wire);
  return wire;
}

/** The first index where two byte arrays differ, -1 when equal. */
function firstDifference(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.byteLength, b.byteLength);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return a.byteLength === b.byteLength ? -1 : n;
}

function assertSameBytes(got: Uint8Array, want: Uint8Array, what: string): void {
  const at = firstDifference(got, want);
  if (at < 0) return;
  const show = (b: Uint8Array) =>
    JSON.stringify(decoder.decode(b.subarray(Math.max(0, at - 16), at + 24)));
  assert.fail(
    `${what}: got ${got.byteLength} bytes, want ${want.byteLength}; first difference at ${at}: ` +
      `got ${show(got)}, want ${show(want)}`,
  );
}

/** What the raw client does with one scrape. */
interface PushPlan {
  declareLength: boolean;
  /** Sizes of the body_chunk messages. */
  messages: number[];
  /** HTTP chunk sizes of the Push request, or null for Content-Length. */
  httpChunks: number[] | null;
  /** Seeds the size lines' spelling (case, leading zeros, extensions) and trailers. */
  lineSeed: number;
  /** Sizes of the socket writes. */
  slices: number[];
  /** Pause (ms) after each slice, 0 for none. */
  pauses: number[];
}

function planPush(next: () => number, body: Uint8Array): PushPlan {
  const declareLength = next() < 0.5;
  const messages: number[] = [];
  const maxMessage = pickMax(next, [1, 7, 512, 16 * 1024, 70 * 1024], body.byteLength);
  for (let left = body.byteLength; left > 0;) {
    const size = Math.min(left, pieceSize(next, maxMessage));
    messages.push(size);
    left -= size;
  }
  // Now and then an empty message between others.
  if (next() < 0.1) messages.splice(between(next, 0, messages.length), 0, 0);
  let httpChunks: number[] | null = null;
  if (next() < 0.7) {
    // Cycled over the framed request, whose size is known only then.
    const maxChunk = pickMax(next, [3, 100, 8 * 1024, 100 * 1024], body.byteLength);
    httpChunks = Array.from({ length: 512 }, () => pieceSize(next, maxChunk));
  }
  const slices: number[] = [];
  const pauses: number[] = [];
  const maxSlice = pickMax(next, [1, 64, 4096, 64 * 1024], body.byteLength);
  // Cycled over the request's bytes.
  for (let i = 0; i < 512; i++) {
    slices.push(pieceSize(next, maxSlice));
    pauses.push(next() < 0.08 ? between(next, 0, 3) : -1);
  }
  const lineSeed = Math.floor(next() * 0xffffffff);
  return { declareLength, messages, httpChunks, lineSeed, slices, pauses };
}

/** The Push request's bytes, following `plan`. */
function pushBytes(
  body: Uint8Array,
  plan: PushPlan,
  scrapeId: string,
  sessionId: string,
): Uint8Array {
  const headers = [{ name: "Content-Type", value: "application/octet-stream" }];
  if (plan.declareLength) headers.push({ name: "Content-Length", value: String(body.byteLength) });
  const parts: Uint8Array[] = [
    envelope(
      0,
      toBinary(
        PushRequestSchema,
        create(PushRequestSchema, {
          message: {
            case: "head",
            value: { scrapeId, sessionId, status: 200, headers, error: "" },
          },
        }),
      ),
    ),
  ];
  let at = 0;
  for (const size of plan.messages) {
    parts.push(envelope(
      0,
      toBinary(
        PushRequestSchema,
        create(PushRequestSchema, {
          message: { case: "bodyChunk", value: body.subarray(at, at + size) },
        }),
      ),
    ));
    at += size;
  }
  const payload = concatBytes(parts);
  let head = "POST /pushprox.v1.ClientService/Push HTTP/1.1\r\nHost: 127.0.0.1\r\n" +
    "Content-Type: application/connect+proto\r\nConnect-Protocol-Version: 1\r\n";
  if (plan.httpChunks === null) {
    return concatBytes([
      encoder.encode(`${head}Content-Length: ${payload.byteLength}\r\n\r\n`),
      payload,
    ]);
  }
  head += "Transfer-Encoding: chunked\r\n\r\n";
  const framed: Uint8Array[] = [encoder.encode(head)];
  const lines = seededRandom(plan.lineSeed);
  for (let from = 0, i = 0; from < payload.byteLength; i++) {
    const size = Math.min(plan.httpChunks[i % plan.httpChunks.length]!, payload.byteLength - from);
    framed.push(
      chunkSizeLine(lines, size),
      payload.subarray(from, from + size),
      encoder.encode("\r\n"),
    );
    from += size;
  }
  framed.push(chunkSizeLine(lines, 0));
  if (lines() < 0.3) framed.push(encoder.encode("X-Trailer: 1\r\n"));
  framed.push(encoder.encode("\r\n"));
  return concatBytes(framed);
}

const EXTENSIONS = ["", "", "", ";a=b", ';name="x y"', "; q", ";" + "e".repeat(40)];

/** A chunk size line as HTTP/1.1 allows it: either case, leading zeros, extensions. */
function chunkSizeLine(next: () => number, size: number): Uint8Array {
  let hex = size.toString(16);
  if (next() < 0.3) hex = hex.toUpperCase();
  if (next() < 0.2) hex = "0".repeat(between(next, 1, 9)) + hex;
  return encoder.encode(`${hex}${EXTENSIONS[between(next, 0, EXTENSIONS.length - 1)]}\r\n`);
}

/** A plan in a few words, for failure messages. */
function describe(plan: PushPlan, body: Uint8Array): string {
  const max = (sizes: number[]) => sizes.reduce((a, b) => Math.max(a, b), 0);
  return `${body.byteLength} bytes, length ${plan.declareLength ? "declared" : "not declared"}, ` +
    `${plan.messages.length} messages <= ${max(plan.messages)}, ` +
    (plan.httpChunks === null ? "Content-Length" : `HTTP chunks <= ${max(plan.httpChunks)}`) +
    `, slices <= ${max(plan.slices)}`;
}

/** Writes `bytes` in the plan's slices and pauses. */
async function writeSliced(wire: Wire, bytes: Uint8Array, plan: PushPlan): Promise<void> {
  let at = 0;
  for (let i = 0; at < bytes.byteLength; i++) {
    const size = plan.slices[i % plan.slices.length]!;
    const pause = plan.pauses[i % plan.pauses.length]!;
    await wire.write(bytes.subarray(at, at + size));
    at += size;
    if (pause >= 0) await sleep(pause);
  }
}

/** A raw Poll stream: resolves the session id, then calls `onScrape` per scrape. */
async function rawPoll(
  port: number,
  onScrape: (id: string, url: string) => void,
): Promise<{ sessionId: string; wire: Wire; done: Promise<void> }> {
  const wire = await Wire.open(port, "poll");
  const request = envelope(
    0,
    toBinary(PollRequestSchema, create(PollRequestSchema, { fqdn: FQDN })),
  );
  await wire.write(concatBytes([
    encoder.encode(
      `POST /pushprox.v1.ClientService/Poll HTTP/1.1\r\nHost: 127.0.0.1\r\n` +
        `Content-Type: application/connect+proto\r\nConnect-Protocol-Version: 1\r\n` +
        `Content-Length: ${request.byteLength}\r\n\r\n`,
    ),
    request,
  ]));
  const head = await wire.head("poll");
  assert.equal(head.status, 200, head.text);
  const registered = Promise.withResolvers<string>();
  const done = (async () => {
    let pending: Uint8Array = new Uint8Array(0);
    for (;;) {
      const data = await wire.chunk("poll");
      if (data === null) return;
      pending = concatBytes([pending, data]);
      while (pending.byteLength >= 5) {
        const length = new DataView(pending.buffer, pending.byteOffset + 1, 4).getUint32(0);
        if (pending.byteLength < 5 + length) break;
        const flags = pending[0]!;
        const payload = pending.subarray(5, 5 + length);
        pending = pending.slice(5 + length);
        if (flags !== 0) throw new Error(`poll ended: ${decoder.decode(payload)}`);
        const message = fromBinary(PollResponseSchema, payload).message;
        if (message.case === "registered") registered.resolve(message.value.sessionId);
        else if (message.case === "scrape") onScrape(message.value.id, message.value.url);
      }
    }
  })();
  done.catch((error) => registered.reject(error));
  return { sessionId: await registered.promise, wire, done };
}

/** A queue the Push workers take scrapes from. */
class Queue<T> {
  #items: T[] = [];
  #waiters: ((item: T | null) => void)[] = [];
  #closed = false;
  push(item: T): void {
    const waiter = this.#waiters.shift();
    if (waiter) waiter(item);
    else this.#items.push(item);
  }
  take(): Promise<T | null> {
    if (this.#items.length > 0) return Promise.resolve(this.#items.shift()!);
    if (this.#closed) return Promise.resolve(null);
    return new Promise((resolve) => this.#waiters.push(resolve));
  }
  close(): void {
    this.#closed = true;
    for (const waiter of this.#waiters.splice(0)) waiter(null);
  }
}

/** Index of the body a scrape URL asks for. */
function indexOf(url: string): number {
  return Number(new URL(url).searchParams.get("n"));
}

/** Checks one scrape's answer: status, framing, bytes. */
function checkAnswer(
  answer: { status: number; fields: Map<string, string>; body: Uint8Array },
  want: Uint8Array,
  declaredLength: boolean,
  what: string,
): void {
  assert.equal(
    answer.status,
    200,
    `${what}: status (body ${decoder.decode(answer.body.subarray(0, 300))})`,
  );
  const length = answer.fields.get("content-length");
  if (declaredLength) {
    assert.equal(length, String(want.byteLength), `${what}: Content-Length of a declared length`);
    assert.equal(
      answer.fields.get("transfer-encoding"),
      undefined,
      `${what}: chunked with a length`,
    );
  } else {
    assert.equal(length, undefined, `${what}: Content-Length without a declared length`);
    assert.equal(answer.fields.get("transfer-encoding"), "chunked", `${what}: not chunked`);
  }
  assertSameBytes(answer.body, want, what);
}

Deno.test({
  name:
    `relayed bytes are exact: a raw client pushes random bodies in random fragments (seed ${SEED})`,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const next = seededRandom(SEED);
    const bodies = Array.from({ length: SCRAPES }, () => randomBody(next));
    const plans = bodies.map((body, n) => planPush(seededRandom(SEED * 7919 + n), body));
    const proxy = await startProxyProcess([]);
    const wires: Wire[] = [];
    const queue = new Queue<{ id: string; url: string }>();
    try {
      const poll = await rawPoll(proxy.port, (id, url) => queue.push({ id, url }));
      wires.push(poll.wire);
      let pushed = 0;
      const pusher = async (k: number) => {
        const wire = await Wire.open(proxy.port, `push ${k}`);
        wires.push(wire);
        for (;;) {
          const job = await queue.take();
          if (job === null) return;
          const n = indexOf(job.url);
          const body = bodies[n]!;
          const plan = plans[n]!;
          const bytes = pushBytes(body, plan, job.id, poll.sessionId);
          await writeSliced(wire, bytes, plan);
          const what = `push of scrape ${n} (${describe(plan, body)})`;
          const head = await wire.head(what);
          const answer = await wire.body(head.fields, what);
          assert.equal(head.status, 200, `${what}: ${head.text}\n${decoder.decode(answer)}`);
          const parts = envelopes(answer);
          const end = parts.find((p) => (p.flags & 2) !== 0);
          assert.ok(end, `${what}: no end of stream`);
          assert.equal(decoder.decode(end.payload), "{}", `${what}: ended with an error`);
          const message = parts.find((p) => p.flags === 0);
          assert.ok(message, `${what}: no PushResponse`);
          assert.equal(
            fromBinary(PushResponseSchema, message.payload).bytesRelayed,
            BigInt(body.byteLength),
            `${what}: bytes_relayed`,
          );
          pushed++;
        }
      };
      const scraper = async (k: number, indexes: number[]) => {
        let wire = await openScraper(proxy.port, k, wires);
        for (const n of indexes) {
          const what = `scrape ${n} (${describe(plans[n]!, bodies[n]!)})`;
          const answer = await scrape(wire, `http://${FQDN}:9100/metrics?n=${n}`, what, closing(n));
          checkAnswer(answer, bodies[n]!, plans[n]!.declareLength, what);
          if (closing(n)) wire = await openScraper(proxy.port, k, wires);
        }
      };
      const indexes = bodies.map((_, n) => n);
      const pushers = Array.from({ length: SCRAPERS + 1 }, (_, k) => pusher(k));
      // A failed scrape closes the wires under the pushers: reported once, by Promise.all.
      for (const p of pushers) p.catch(() => {});
      const scrapers = Promise.all([
        ...Array.from(
          { length: SCRAPERS },
          (_, k) => scraper(k, indexes.filter((n) => n % SCRAPERS === k)),
        ),
      ]).finally(() => queue.close());
      await Promise.all([scrapers, ...pushers]);
      assert.equal(pushed, SCRAPES);
      const total = bodies.reduce((sum, body) => sum + body.byteLength, 0);
      console.log(
        `${SCRAPES} scrapes, ${(total / 1024 / 1024).toFixed(1)} MiB relayed exactly, ` +
          `${plans.filter((p) => p.declareLength).length} with a declared length, ` +
          `${plans.filter((p) => p.httpChunks !== null).length} pushed chunked`,
      );
    } catch (error) {
      console.error(`proxy:\n${proxy.process.output().slice(-4000)}`);
      throw error;
    } finally {
      queue.close();
      for (const wire of wires) wire.close();
      await proxy.process.stop();
    }
  },
});

/** How the target answers one scrape. */
interface TargetPlan {
  /** The bytes it sends (gzip-compressed when `gzip`). */
  sent: Uint8Array<ArrayBuffer>;
  gzip: boolean;
  /** Views enqueued one by one (chunked), or null for Content-Length. */
  views: number[] | null;
  /** Pause (ms) after each view, -1 for none. */
  pauses: number[];
}

/**
 * Starts the real proxy and client, waits for the client to register, and
 * runs `scrapes` through them; their output is printed when it fails.
 */
async function throughRealClient(
  scrapes: (proxyPort: number, wires: Wire[]) => Promise<void>,
): Promise<void> {
  const proxy = await startProxyProcess([]);
  const client = startClientProcess([`--proxy-url=${proxy.url}`, "--fqdn=localhost"]);
  const wires: Wire[] = [];
  try {
    await client.waitFor(/Registered with the proxy/, 30_000);
    await scrapes(proxy.port, wires);
  } catch (error) {
    console.error(
      `client:\n${client.output().slice(-4000)}\nproxy:\n${proxy.process.output().slice(-4000)}`,
    );
    throw error;
  } finally {
    for (const wire of wires) wire.close();
    await client.stop();
    await proxy.process.stop();
  }
}

/** Logs what a test relayed: scrapes, MiB, gzipped ones and `more`. */
function logRelayed(plans: { sent: Uint8Array; gzip: boolean }[], more: string): void {
  const total = plans.reduce((sum, plan) => sum + plan.sent.byteLength, 0);
  console.log(
    `${plans.length} scrapes, ${(total / 1024 / 1024).toFixed(1)} MiB relayed exactly, ` +
      `${plans.filter((p) => p.gzip).length} gzipped, ${more}`,
  );
}
/**
 * Scrapes every body through the proxy, `SCRAPERS` kept-alive connections at
 * a time (each takes every `SCRAPERS`-th body), and checks each answer's
 * bytes, framing (`sized`: Content-Length expected) and Content-Encoding.
 */
async function scrapeAll<P extends { sent: Uint8Array; gzip: boolean }>(
  proxyPort: number,
  targetPort: number,
  plans: readonly P[],
  wires: Wire[],
  expect: (n: number, plan: P) => { what: string; sized: boolean },
): Promise<void> {
  const scraper = async (k: number, indexes: number[]) => {
    let wire = await openScraper(proxyPort, k, wires);
    for (const n of indexes) {
      const plan = plans[n]!;
      const { what, sized } = expect(n, plan);
      const url = `http://localhost:${targetPort}/metrics?n=${n}`;
      const answer = await scrape(wire, url, what, closing(n));
      checkAnswer(answer, plan.sent, sized, what);
      assert.equal(
        answer.fields.get("content-encoding"),
        plan.gzip ? "gzip" : undefined,
        `${what}: Content-Encoding`,
      );
      if (closing(n)) wire = await openScraper(proxyPort, k, wires);
    }
  };
  const indexes = plans.map((_, n) => n);
  await Promise.all(
    Array.from(
      { length: SCRAPERS },
      (_, k) => scraper(k, indexes.filter((n) => n % SCRAPERS === k)),
    ),
  );
}

function planTarget(next: () => number, body: Uint8Array<ArrayBuffer>): TargetPlan {
  const gzip = next() < 0.25;
  const sent: Uint8Array<ArrayBuffer> = gzip
    ? Uint8Array.from(gzipSync(body, { level: between(next, 1, 9) }))
    : body;
  let views: number[] | null = null;
  const pauses: number[] = [];
  if (next() < 0.6) {
    views = [];
    const maxView = pickMax(next, [1, 100, 8 * 1024, 70 * 1024], sent.byteLength);
    for (let left = sent.byteLength; left > 0;) {
      const size = Math.min(left, pieceSize(next, maxView));
      views.push(size);
      pauses.push(next() < (maxView === 1 ? 0.002 : 0.1) ? between(next, 0, 3) : -1);
      left -= size;
    }
    // Now and then an empty view between others.
    if (next() < 0.1) views.splice(between(next, 0, views.length), 0, 0);
  }
  return { sent, gzip, views, pauses };
}

/** A target answer for `plan`, as Deno.serve sends it. */
function targetResponse(plan: TargetPlan): Response {
  const headers: Record<string, string> = { "content-type": "application/octet-stream" };
  if (plan.gzip) headers["content-encoding"] = "gzip";
  if (plan.views === null) return new Response(plan.sent, { headers });
  const views = plan.views;
  let i = 0;
  let at = 0;
  return new Response(
    new ReadableStream<Uint8Array>({
      async pull(controller) {
        if (i >= views.length) return controller.close();
        const size = views[i]!;
        const pause = plan.pauses[i] ?? -1;
        i++;
        // A view of the whole, as exporters hand out slices of one buffer.
        controller.enqueue(plan.sent.subarray(at, at + size));
        at += size;
        if (pause >= 0) await sleep(pause);
      },
    }),
    { headers },
  );
}

Deno.test({
  name:
    `relayed bytes are exact: the real client relays random target bodies, chunked, sized and gzipped (seed ${SEED})`,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const count = Math.max(2, Math.floor(SCRAPES / 2));
    const next = seededRandom(SEED + 1);
    const bodies = Array.from({ length: count }, () => randomBody(next));
    const plans = bodies.map((body, n) => planTarget(seededRandom(SEED * 104729 + n), body));
    const stop = new AbortController();
    let served = 0;
    const target = Deno.serve(
      { hostname: "127.0.0.1", port: 0, signal: stop.signal, onListen() {} },
      (request) => {
        served++;
        const n = indexOf(request.url);
        if (!plans[n]) return new Response("no such body\n", { status: 404 });
        return targetResponse(plans[n]);
      },
    );
    try {
      await throughRealClient((proxyPort, wires) =>
        scrapeAll(proxyPort, target.addr.port, plans, wires, (n, plan) => ({
          what: `scrape ${n} (${bodies[n]!.byteLength} bytes, ${
            plan.gzip ? `gzip to ${plan.sent.byteLength}` : "identity"
          }, ${
            plan.views === null
              ? "Content-Length"
              : `${plan.views.length} views <= ${Math.max(0, ...plan.views)}`
          })`,
          sized: plan.views === null,
        }))
      );
      assert.equal(served, count);
      logRelayed(plans, `${plans.filter((p) => p.views !== null).length} chunked by the target`);
    } finally {
      stop.abort();
      await target.finished;
    }
  },
});

/** How the raw target answers one scrape. */
interface RawPlan {
  sent: Uint8Array<ArrayBuffer>;
  gzip: boolean;
  framing: "length" | "chunked" | "close";
  /** The response's bytes after its head. */
  framed: Uint8Array;
  slices: number[];
  pauses: number[];
}

function planRaw(next: () => number, body: Uint8Array<ArrayBuffer>): RawPlan {
  const gzip = next() < 0.25;
  const sent: Uint8Array<ArrayBuffer> = gzip ? Uint8Array.from(gzipSync(body)) : body;
  const roll = next();
  const framing = roll < 0.3 ? "length" : roll < 0.85 ? "chunked" : "close";
  let framed: Uint8Array = sent;
  if (framing === "chunked") {
    const parts: Uint8Array[] = [];
    const maxChunk = pickMax(next, [1, 50, 8 * 1024, 70 * 1024], sent.byteLength);
    const sizeLine = (size: number) => chunkSizeLine(next, size);
    for (let at = 0; at < sent.byteLength;) {
      const size = Math.min(sent.byteLength - at, pieceSize(next, maxChunk));
      parts.push(sizeLine(size), sent.subarray(at, at + size), encoder.encode("\r\n"));
      at += size;
    }
    parts.push(sizeLine(0));
    if (next() < 0.3) parts.push(encoder.encode("X-Trailer: 1\r\nX-Other: two words\r\n"));
    parts.push(encoder.encode("\r\n"));
    framed = concatBytes(parts);
  }
  const maxSlice = pickMax(next, [1, 7, 1024, 64 * 1024], framed.byteLength);
  const slices: number[] = [];
  const pauses: number[] = [];
  for (let i = 0; i < 512; i++) {
    slices.push(pieceSize(next, maxSlice));
    pauses.push(next() < (maxSlice === 1 ? 0.005 : 0.08) ? between(next, 0, 3) : -1);
  }
  return { sent, gzip, framing, framed, slices, pauses };
}

/**
 * A raw HTTP/1.1 target: reads request heads on each connection (keep-alive)
 * and answers with `plans[n]`, written in its slices and pauses.
 */
async function startRawTarget(
  plans: RawPlan[],
): Promise<{ port: number; served: () => number; close(): Promise<void> }> {
  let served = 0;
  const wires = new Set<Wire>();
  const server = createServer((socket) => {
    const wire = new Wire(socket, "target");
    wires.add(wire);
    socket.on("close", () => wires.delete(wire));
    (async () => {
      for (;;) {
        const head = await wire.until("\r\n\r\n", "request head");
        const path = head.split(" ")[1] ?? "/";
        const plan = plans[indexOf(`http://x${path}`)];
        served++;
        if (plan === undefined) {
          await wire.write(encoder.encode("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"));
          continue;
        }
        // Spellings vary with the body's size: an HTTP/1.0 answer ends with
        // the connection, field names and values in other cases.
        const odd = plan.sent.byteLength % 3 === 0;
        let text = `HTTP/1.${odd && plan.framing === "close" ? 0 : 1} 200 OK\r\n` +
          "Content-Type: application/octet-stream\r\n";
        if (plan.gzip) text += "Content-Encoding: gzip\r\n";
        text += plan.framing === "length"
          ? `${odd ? "content-length:" : "Content-Length:"} ${plan.sent.byteLength}\r\n`
          : plan.framing === "chunked"
          ? (odd ? "transfer-encoding:Chunked\r\n" : "Transfer-Encoding: chunked\r\n")
          : "Connection: close\r\n";
        const bytes = concatBytes([encoder.encode(text + "\r\n"), plan.framed]);
        let at = 0;
        for (let i = 0; at < bytes.byteLength; i++) {
          const size = plan.slices[i % plan.slices.length]!;
          await wire.write(bytes.subarray(at, at + size));
          at += size;
          const pause = plan.pauses[i % plan.pauses.length]!;
          if (pause >= 0) await sleep(pause);
        }
        if (plan.framing === "close") {
          socket.end();
          return;
        }
      }
    })().catch(() => socket.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as AddressInfo).port,
    served: () => served,
    async close() {
      for (const wire of wires) wire.close();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

Deno.test({
  name:
    `relayed bytes are exact: the real client relays a raw target's framing split anywhere (seed ${SEED})`,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const count = Math.max(2, Math.floor(SCRAPES / 2));
    const next = seededRandom(SEED + 2);
    const bodies = Array.from({ length: count }, () => randomBody(next));
    const plans = bodies.map((body, n) => planRaw(seededRandom(SEED * 15485863 + n), body));
    const target = await startRawTarget(plans);
    try {
      await throughRealClient((proxyPort, wires) =>
        scrapeAll(proxyPort, target.port, plans, wires, (n, plan) => ({
          what: `scrape ${n} (${bodies[n]!.byteLength} bytes, ${
            plan.gzip ? `gzip to ${plan.sent.byteLength}` : "identity"
          }, ${plan.framing}, slices <= ${Math.max(...plan.slices)})`,
          sized: plan.framing === "length",
        }))
      );
      assert.equal(target.served(), count);
      const framings = ["length", "chunked", "close"].map((f) =>
        `${plans.filter((p) => p.framing === f).length} ${f}`
      );
      logRelayed(plans, framings.join(", "));
    } finally {
      await target.close();
    }
  },
});
