// Unit tests of the scrape handler without sockets: an in-memory Exchange
// against a real coordinator whose clock is fake. Deadlines are real
// timers at the edge (the exchange's timer, else setTimeout), so the
// deadline tests wait ~100 ms.
import assert from "node:assert/strict";
import { type ClientIdentity, type Coordinator, createCoordinator } from "../core/coordinator.ts";
import { createProxyMetrics } from "../core/metrics.ts";
import { createNullLogger } from "../../lib/logger.ts";
import type { Exchange, HeaderPair } from "../../lib/http_exchange.ts";
import type { HeaderField } from "../../lib/headers.ts";
import { LazyTimer } from "../../lib/lazy_timer.ts";
import { createScrapeHandler } from "./scrape_handler.ts";

const NOW = 1_000_000;

/** An Exchange kept in memory; `hold` makes each write wait until `release()`. */
class MemoryExchange implements Exchange {
  readonly httpVersionMajor = 1;
  readonly remoteAddress = "127.0.0.1";
  readonly remotePort = 40000;
  readonly peer = null;
  readonly bodyEnded = true;
  headersSent = false;
  destroyed = false;
  readonly gone = new AbortController();
  /** The connection's timer, as the native edge gives one; null as node:http. */
  timer: LazyTimer | null = null;
  status = 0;
  headers: HeaderPair[] = [];
  readonly chunks: Uint8Array[] = [];
  ended = false;
  aborted = false;
  hold = false;
  #pending: (() => void)[] = [];

  constructor(
    readonly method: string,
    readonly target: string,
    readonly rawHeaders: readonly string[] = [],
  ) {}

  get signal(): AbortSignal {
    return this.gone.signal;
  }
  header(name: string): string | undefined {
    for (let i = 0; i < this.rawHeaders.length; i += 2) {
      if (this.rawHeaders[i]!.toLowerCase() === name) return this.rawHeaders[i + 1];
    }
    return undefined;
  }
  async *body(): AsyncIterable<Uint8Array> {}
  discardBody(): void {}
  respond(status: number, headers: readonly HeaderPair[]): void {
    assert.ok(!this.headersSent, "respond() called twice");
    this.status = status;
    this.headers = [...headers];
    this.headersSent = true;
  }
  write(chunk: Uint8Array): Promise<void> {
    assert.ok(this.headersSent, "write() before respond()");
    this.chunks.push(chunk);
    if (!this.hold) return Promise.resolve();
    return new Promise((resolve) => this.#pending.push(resolve));
  }
  /** Lets the writes waiting so far complete; returns how many there were. */
  release(): number {
    const waiting = this.#pending.splice(0);
    for (const resolve of waiting) resolve();
    return waiting.length;
  }
  get waitingWrites(): number {
    return this.#pending.length;
  }
  end(body?: string | Uint8Array): void {
    if (body !== undefined) {
      this.chunks.push(typeof body === "string" ? new TextEncoder().encode(body) : body);
    }
    this.ended = true;
  }
  abort(): void {
    this.aborted = true;
    this.destroyed = true;
    this.release();
  }
  text(): string {
    return new TextDecoder().decode(concat(this.chunks));
  }
  headerValue(name: string): string | undefined {
    return this.headers.find(([n]) => n.toLowerCase() === name)?.[1];
  }
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}

function identity(fqdn: string): ClientIdentity {
  return { fqdn, labels: {}, version: "test", modules: [], protocol: "connect" };
}

function setup(options: { maxTimeoutMs?: number; maxBodyBytes?: number } = {}) {
  const clock = { t: NOW };
  let n = 0;
  const coordinator: Coordinator = createCoordinator({
    registrationTimeoutMs: 60_000,
    now: () => clock.t,
    newId: () => `id-${++n}`,
  });
  const metrics = createProxyMetrics({
    clientCount: () => coordinator.clientCount,
    scrapesInFlight: () => coordinator.scrapesInFlight,
    defaultMetrics: false,
  });
  const handle = createScrapeHandler({
    coordinator,
    logger: createNullLogger(),
    metrics,
    defaultTimeoutMs: 10_000,
    maxTimeoutMs: options.maxTimeoutMs ?? 30_000,
    now: () => clock.t,
    maxBodyBytes: options.maxBodyBytes ?? 0,
  });
  return { coordinator, clock, handle };
}

const encode = (text: string) => new TextEncoder().encode(text);

function head(
  taskId: string,
  sessionId: string,
  status: number,
  headers: HeaderField[] = [],
) {
  return { scrapeId: taskId, sessionId, status, headers, error: "" };
}

Deno.test("scrape handler: streams the client's chunks with back-pressure", async () => {
  const { coordinator, handle } = setup();
  const session = coordinator.register(identity("node1"));
  const ex = new MemoryExchange("GET", "http://node1:9100/metrics");
  ex.hold = true;
  const handled = handle(ex);
  const task = await session.next(new AbortController().signal);
  assert.ok(task);
  assert.equal(task.url, "http://node1:9100/metrics");
  let pulled = 0;
  async function* body(): AsyncGenerator<Uint8Array> {
    for (const part of ["a 1\n", "b 2\n", "c 3\n"]) {
      pulled++;
      yield encode(part);
    }
  }
  const pushed = coordinator.acceptPush(
    head(task.id, session.id, 200, [{ name: "Content-Type", value: "text/plain" }]),
    body(),
  );
  // The first write waits: the next chunk is not pulled meanwhile.
  while (ex.waitingWrites === 0) await new Promise((r) => setTimeout(r, 1));
  assert.equal(ex.status, 200);
  assert.equal(ex.headerValue("content-type"), "text/plain");
  assert.equal(pulled, 1);
  await new Promise((r) => setTimeout(r, 10));
  assert.equal(pulled, 1, "a chunk was pulled before the previous write drained");
  ex.hold = false;
  ex.release();
  await handled;
  await pushed;
  assert.equal(pulled, 3);
  assert.equal(ex.text(), "a 1\nb 2\nc 3\n");
  assert.ok(ex.ended && !ex.aborted);
  assert.equal(coordinator.scrapesInFlight, 0);
});

Deno.test("scrape handler: an unknown client is 404 naming it", async () => {
  const { handle } = setup();
  const ex = new MemoryExchange("GET", "http://nobody:9100/metrics");
  await handle(ex);
  assert.equal(ex.status, 404);
  assert.match(ex.text(), /nobody/);
  assert.ok(ex.ended);
});

Deno.test("scrape handler: the timeout header is parsed and clamped", async () => {
  const { coordinator, handle } = setup({ maxTimeoutMs: 30_000 });
  const session = coordinator.register(identity("node1"));
  // (A value seen again is not parsed again: the same timeout for it.)
  const values = [
    ["4.5", 4_500],
    ["4.5", 4_500],
    ["120", 30_000],
    ["4.5", 4_500],
    [null, 10_000],
    ["4.5", 4_500],
  ] as const;
  for (const [value, expected] of values) {
    const raw = value === null ? [] : ["X-Prometheus-Scrape-Timeout-Seconds", value];
    const ex = new MemoryExchange("GET", "http://node1:9100/metrics", raw);
    const handled = handle(ex);
    const task = await session.next(new AbortController().signal);
    assert.ok(task);
    // The coordinator's clock stands still, so the time left is the timeout.
    assert.equal(task.timeoutMs, expected, `header ${value}`);
    await coordinator.acceptPush(head(task.id, session.id, 200), (async function* () {})())
      .catch(() => {});
    await handled;
    assert.equal(ex.status, 200);
  }
  const bad = new MemoryExchange("GET", "http://node1:9100/metrics", [
    "X-Prometheus-Scrape-Timeout-Seconds",
    "soon",
  ]);
  await handle(bad);
  assert.equal(bad.status, 400);
  assert.match(bad.text(), /soon/);
});

Deno.test("scrape handler: a reused (frozen) head's forwarded fields are worked out once", async () => {
  const { coordinator, handle } = setup();
  const session = coordinator.register(identity("node1"));
  const fields = [
    "Host",
    "node1:9100",
    "Accept",
    "text/plain",
    "Connection",
    "keep-alive, X-Hop",
    "X-Hop",
    "1",
    "X-Kept",
    "2",
  ];
  const frozen = Object.freeze([...fields]);
  const seen: (readonly HeaderField[])[] = [];
  for (const raw of [frozen, frozen, [...fields], frozen]) {
    const ex = new MemoryExchange("GET", "http://node1:9100/metrics", raw);
    const handled = handle(ex);
    const task = await session.next(new AbortController().signal);
    assert.ok(task);
    seen.push(task.headers);
    await coordinator.acceptPush(head(task.id, session.id, 200), (async function* () {})())
      .catch(() => {});
    await handled;
    assert.equal(ex.status, 200);
  }
  // (Host, Connection and the fields it names are not forwarded.)
  const expected = [
    { name: "accept", value: "text/plain" },
    { name: "x-kept", value: "2" },
  ];
  for (const headers of seen) assert.deepEqual(headers, expected);
  assert.equal(seen[1], seen[0], "the same head's fields again");
  assert.equal(seen[3], seen[0]);
  assert.ok(Object.isFrozen(seen[0]) && Object.isFrozen(seen[0]![0]));
  assert.notEqual(seen[2], seen[0], "a head that is not frozen is worked out each time");
  assert.ok(!Object.isFrozen(seen[2]));
});

Deno.test("scrape handler: a deadline before the client answers is 504", async () => {
  const { coordinator, handle } = setup();
  coordinator.register(identity("node1"));
  const ex = new MemoryExchange("GET", "http://node1:9100/metrics", [
    "X-Prometheus-Scrape-Timeout-Seconds",
    "0.1",
  ]);
  await handle(ex);
  assert.equal(ex.status, 504);
  assert.match(ex.text(), /did not answer within/);
  assert.equal(coordinator.scrapesInFlight, 0);
});

Deno.test("scrape handler: the deadline on the connection's timer; a busy timer is left alone", async () => {
  const { coordinator, handle } = setup();
  coordinator.register(identity("node1"));
  const ex = new MemoryExchange("GET", "http://node1:9100/metrics", [
    "X-Prometheus-Scrape-Timeout-Seconds",
    "0.1",
  ]);
  ex.timer = new LazyTimer();
  try {
    await handle(ex);
    assert.equal(ex.status, 504);
    assert.match(ex.text(), /did not answer within/);
    assert.equal(coordinator.scrapesInFlight, 0);
    assert.ok(!ex.timer.waiting, "the scrape's wait is cleared");
    // A timer already waiting (another deadline of the connection) keeps its wait.
    const other = new MemoryExchange("GET", "http://node1:9100/metrics", [
      "X-Prometheus-Scrape-Timeout-Seconds",
      "0.1",
    ]);
    other.timer = ex.timer;
    let fired = false;
    other.timer.set(60_000, () => fired = true);
    await handle(other);
    assert.equal(other.status, 504);
    assert.ok(other.timer.waiting && !fired, "the other wait is still set");
  } finally {
    ex.timer.close();
  }
});

Deno.test("scrape handler: a deadline while the body arrives cuts the response", async () => {
  const { coordinator, handle } = setup();
  const session = coordinator.register(identity("node1"));
  const ex = new MemoryExchange("GET", "http://node1:9100/metrics", [
    "X-Prometheus-Scrape-Timeout-Seconds",
    "0.1",
  ]);
  const handled = handle(ex);
  const task = await session.next(new AbortController().signal);
  assert.ok(task);
  const stalled = Promise.withResolvers<void>();
  async function* body(): AsyncGenerator<Uint8Array> {
    yield encode("a 1\n");
    await stalled.promise; // the rest never comes before the deadline
  }
  const pushed = coordinator.acceptPush(head(task.id, session.id, 200), body());
  await handled;
  stalled.resolve();
  const error = await pushed.then(() => null, (e: Error) => e);
  assert.ok(error, "the push should fail with the timeout");
  assert.match(error.message, /deadline .* passed while relaying the body/);
  assert.equal(ex.status, 200);
  assert.equal(ex.text(), "a 1\n");
  assert.ok(ex.aborted && !ex.ended);
  assert.equal(coordinator.scrapesInFlight, 0);
});

Deno.test("scrape handler: --scrape.max-body-bytes refuses declared and streamed bodies", async () => {
  const { coordinator, handle } = setup({ maxBodyBytes: 8 });
  const session = coordinator.register(identity("node1"));

  // Declared too long: 502 before any byte, with the reason.
  const declared = new MemoryExchange("GET", "http://node1:9100/metrics");
  let handled = handle(declared);
  let task = await session.next(new AbortController().signal);
  assert.ok(task);
  let pushed = coordinator.acceptPush(
    head(task.id, session.id, 200, [{ name: "Content-Length", value: "100" }]),
    (async function* () {
      yield encode("x".repeat(100));
    })(),
  );
  await handled;
  assert.match((await pushed.then(() => null, (e: Error) => e))!.message, /exceeds/);
  assert.equal(declared.status, 502);
  assert.match(declared.text(), /100 bytes exceeds --scrape.max-body-bytes=8/);

  // Streamed past the limit: the response is cut.
  const streamed = new MemoryExchange("GET", "http://node1:9100/metrics");
  handled = handle(streamed);
  task = await session.next(new AbortController().signal);
  assert.ok(task);
  pushed = coordinator.acceptPush(
    head(task.id, session.id, 200),
    (async function* () {
      yield encode("a 1\n");
      yield encode("b 2\nc 3\n");
    })(),
  );
  await handled;
  assert.match((await pushed.then(() => null, (e: Error) => e))!.message, /max-body-bytes=8/);
  assert.equal(streamed.status, 200);
  assert.ok(streamed.aborted && !streamed.ended);
  assert.equal(coordinator.scrapesInFlight, 0);
});

Deno.test("scrape handler: a 1xx status from the client is 502", async () => {
  const { coordinator, handle } = setup();
  const session = coordinator.register(identity("node1"));
  const ex = new MemoryExchange("GET", "http://node1:9100/metrics");
  const handled = handle(ex);
  const task = await session.next(new AbortController().signal);
  assert.ok(task);
  const pushed = coordinator.acceptPush(head(task.id, session.id, 101), (async function* () {})());
  await assert.rejects(pushed, /not a final HTTP status/);
  await handled;
  assert.equal(ex.status, 502);
  assert.match(ex.text(), /status 101 is not a final HTTP status/);
});

Deno.test("scrape handler: a gzip body passes through with its headers", async () => {
  const { coordinator, handle } = setup();
  const session = coordinator.register(identity("node1"));
  const ex = new MemoryExchange("GET", "http://node1:9100/metrics", [
    "Accept-Encoding",
    "gzip",
  ]);
  const handled = handle(ex);
  const task = await session.next(new AbortController().signal);
  assert.ok(task);
  assert.ok(
    task.headers.some((h) => h.name.toLowerCase() === "accept-encoding" && h.value === "gzip"),
    "Accept-Encoding reaches the client",
  );
  const gz = new Uint8Array(
    await new Response(
      new Blob([encode("a 1\n")]).stream().pipeThrough(new CompressionStream("gzip")),
    ).arrayBuffer(),
  );
  await coordinator.acceptPush(
    head(task.id, session.id, 200, [
      { name: "Content-Encoding", value: "gzip" },
      { name: "Content-Type", value: "text/plain; version=0.0.4" },
      { name: "Content-Length", value: String(gz.byteLength) },
    ]),
    (async function* () {
      yield gz;
    })(),
  );
  await handled;
  assert.equal(ex.status, 200);
  assert.equal(ex.headerValue("content-encoding"), "gzip");
  assert.equal(ex.headerValue("content-type"), "text/plain; version=0.0.4");
  assert.equal(ex.headerValue("content-length"), String(gz.byteLength));
  assert.deepEqual(concat(ex.chunks), gz);
});

Deno.test("scrape handler: a target seen before is answered as the first time; refused ones each time", async () => {
  const { coordinator, handle } = setup();
  const session = coordinator.register(identity("node1"));
  const long = `http://NODE1:9100/${"m".repeat(300)}?a=1`;
  for (const target of ["http://NODE1:9100/metrics?x=1", long]) {
    // Twice each: the second from the parsed targets kept (the long one is never kept).
    for (let round = 0; round < 2; round++) {
      const ex = new MemoryExchange("GET", target);
      const handled = handle(ex);
      const task = await session.next(new AbortController().signal);
      assert.equal(task?.url, target.replace("NODE1", "node1"));
      const pushed = coordinator.acceptPush(
        head(task!.id, session.id, 200),
        (async function* () {
          yield encode("up 1\n");
        })(),
      );
      await handled;
      await pushed;
      assert.equal(ex.status, 200);
      assert.equal(ex.text(), "up 1\n");
    }
  }
  for (const target of ["http://user:pw@node1:9100/metrics", "https://node1/metrics", "http://["]) {
    for (let round = 0; round < 2; round++) {
      const ex = new MemoryExchange("GET", target);
      await handle(ex);
      assert.equal(ex.status, 400, target);
    }
  }
});
