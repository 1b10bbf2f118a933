import assert from "node:assert/strict";
import { request as httpRequest } from "node:http";
import { create, toBinary } from "@bufbuild/protobuf";
import {
  type CallOptions,
  Code,
  ConnectError,
  createClient,
  createContextKey,
} from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { endStreamFromJson } from "@connectrpc/connect/protocol-connect";
import {
  ClientService,
  PollRequestSchema,
  type PushRequest,
  PushRequestSchema,
} from "../../gen/pushprox/v1/pushprox_pb.ts";
import { sha256Hex } from "../../lib/basic_auth.ts";
import { createNullLogger } from "../../lib/logger.ts";
import { createAuthenticator, parseAuthConfig } from "../auth/auth.ts";
import { encodeEnvelope } from "./connect_stream.ts";
import { CallValues } from "./fast_client_service.ts";
import { createProxy, serveProxy } from "../http/server.ts";

const NODE1 = "node1-token-0123456789abcdef";
const ANY = "any-token-0123456789abcdef";
const CONFIG = `
clients:
  tokens:
    - name: node1
      sha256: ${sha256Hex(NODE1)}
      fqdns: [node1.example.com]
    - name: any
      sha256: ${sha256Hex(ANY)}
      fqdns: ["**"]
scrapers:
  open: true
readers:
  open: true
`;

async function withProxy<T>(
  fast: boolean,
  fn: (
    port: number,
    proxy: ReturnType<typeof createProxy>,
  ) => Promise<T>,
): Promise<T> {
  const users = new Map<string, string>();
  const auth = createAuthenticator(parseAuthConfig(CONFIG, "auth.yml", users), { users });
  const proxy = createProxy({
    logger: createNullLogger(),
    heartbeatIntervalMs: 100,
    auth,
    maxClients: 3,
    maxMessageBytes: 4096,
    defaultMetrics: false,
    connectFastPath: fast,
  });
  const stop = new AbortController();
  const served = await serveProxy(proxy, { hostname: "127.0.0.1", port: 0, signal: stop.signal });
  try {
    return await fn(served.address.port, proxy);
  } finally {
    stop.abort();
    await served.finished;
  }
}

function clientOf(port: number) {
  return createClient(
    ClientService,
    createConnectTransport({
      baseUrl: `http://127.0.0.1:${port}`,
      httpVersion: "1.1",
      useBinaryFormat: true,
    }),
  );
}

const as = (token: string): CallOptions => ({ headers: { authorization: `Bearer ${token}` } });

function outcome(error: unknown): string {
  const e = ConnectError.from(error);
  return `${Code[e.code]}: ${e.rawMessage}`;
}

/**
 * The first `n` message cases of a Poll, then how it ended. `onMessage` sees
 * each case as it arrives (a test waits for "registered" with it).
 */
async function poll(
  port: number,
  fqdn: string,
  token: string,
  n: number,
  signal?: AbortSignal,
  onMessage?: (messageCase: string) => void,
): Promise<string[]> {
  const seen: string[] = [];
  try {
    for await (
      const message of clientOf(port).poll({ fqdn }, {
        ...as(token),
        ...(signal ? { signal } : {}),
      })
    ) {
      seen.push(message.message.case ?? "none");
      onMessage?.(seen.at(-1)!);
      if (seen.length === n) return seen;
    }
    seen.push("end");
  } catch (error) {
    seen.push(outcome(error));
  }
  return seen;
}

async function push(port: number, requests: PushRequest[], token = ANY): Promise<string> {
  try {
    const result = await clientOf(port).push(
      (async function* () {
        yield* requests;
      })(),
      as(token),
    );
    return `ok ${result.bytesRelayed}`;
  } catch (error) {
    return outcome(error);
  }
}

const head = (scrapeId: string, sessionId: string, status = 200): PushRequest =>
  create(PushRequestSchema, {
    message: { case: "head", value: { scrapeId, sessionId, status } },
  });
const chunk = (text: string): PushRequest =>
  create(PushRequestSchema, {
    message: { case: "bodyChunk", value: new TextEncoder().encode(text) },
  });

/**
 * Resolves `registered` when a poll given `onMessage` gets its "registered"
 * message; rejects after 10 s so that a test waiting on it stays bounded.
 */
function registration(): {
  registered: Promise<void>;
  onMessage: (messageCase: string) => void;
} {
  let done!: () => void;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const registered = new Promise<void>((resolve, reject) => {
    done = resolve;
    timer = setTimeout(() => reject(new Error("no registered message within 10 s")), 10_000);
  }).finally(() => clearTimeout(timer));
  return {
    registered,
    onMessage: (messageCase) => {
      if (messageCase === "registered") done();
    },
  };
}

/** The same calls, on the fast path or through connect-es. */
async function scenario(fast: boolean): Promise<Record<string, unknown>> {
  return await withProxy(fast, async (port, proxy) => {
    const out: Record<string, unknown> = {};
    out.registered = await poll(port, "node1.example.com", NODE1, 3);
    out.badFqdn = await poll(port, "bad host!", ANY, 1);
    out.noToken = await poll(port, "node1.example.com", "wrong-token-0123456789abcdef", 1);
    out.foreignFqdn = await poll(port, "node2.example.com", NODE1, 1);
    out.pushUnknown = await push(port, [head("nope", "nope")]);
    out.pushNoHead = await push(port, [chunk("x")]);
    out.pushBadStatus = await push(port, [head("nope", "nope", 42)]);
    out.pushTooLarge = await push(port, [chunk("x".repeat(5000))]);

    // A scrape answered by push.
    const streams = new AbortController();
    const client = clientOf(port);
    const it = client.poll({ fqdn: "a.example.com" }, { ...as(ANY), signal: streams.signal })[
      Symbol.asyncIterator
    ]();
    const registered = (await it.next()).value!;
    assert.equal(registered.message.case, "registered");
    const sessionId = (registered.message.value as { sessionId: string }).sessionId;
    const reply = proxy.coordinator.requestScrape({
      host: "a.example.com",
      method: "GET",
      url: "http://a.example.com/metrics",
      headers: [],
      deadline: Date.now() + 5000,
    }, AbortSignal.timeout(5000));
    let next = await it.next();
    while (next.value?.message.case === "heartbeat") next = await it.next();
    const scrape = next.value!.message.value as { id: string; url: string };
    out.scrapeUrl = scrape.url;
    const pushed = push(port, [head(scrape.id, sessionId), chunk("up 1\n"), chunk("x 2\n")]);
    const answer = await reply;
    let body = "";
    for await (const piece of answer.body) body += new TextDecoder().decode(piece);
    answer.settle();
    out.pushOk = await pushed;
    out.scrapeAnswer = [answer.status, body];
    out.pushAgain = (await push(port, [head(scrape.id, sessionId)])).replace(scrape.id, "ID");

    // A second stream for the same fqdn replaces the first, once the first
    // is registered (the client has its "registered" message).
    const first = registration();
    const replacedP = poll(port, "b.example.com", ANY, 99, undefined, first.onMessage);
    await first.registered;
    const replacing = new AbortController();
    out.replacer = await poll(port, "b.example.com", ANY, 1, replacing.signal);
    out.replaced = (await replacedP).filter((c) => c !== "heartbeat");
    out.tooMany = await poll(port, "c.example.com", ANY, 1);
    replacing.abort();

    // Draining: open streams are told to go away, new ones are refused.
    const open = registration();
    const drained = poll(port, "b.example.com", ANY, 99, undefined, open.onMessage);
    await open.registered;
    proxy.coordinator.drain();
    out.drained = (await drained).filter((c) => c !== "heartbeat");
    out.whileDraining = await poll(port, "e.example.com", ANY, 1);
    streams.abort();
    return out;
  });
}

Deno.test("fast path and connect-es give the same results for the same calls", async () => {
  const fast = await scenario(true);
  const slow = await scenario(false);
  assert.deepEqual(fast, slow);
  assert.deepEqual(fast.registered, ["registered", "heartbeat", "heartbeat"]);
  assert.match(String(fast.badFqdn), /^InvalidArgument: Cannot register/);
  assert.match(String(fast.noToken), /^Unauthenticated/);
  assert.match(String(fast.foreignFqdn), /^PermissionDenied: Cannot register/);
  assert.match(String(fast.pushUnknown), /^NotFound/);
  assert.equal(fast.pushNoHead, "InvalidArgument: The first push message must be a head");
  // The head is checked once the push is known to answer a scrape (so that
  // the scrape fails at once with 502: tests/integration/push_head_test.ts); this one
  // answers none.
  assert.match(String(fast.pushBadStatus), /^NotFound/);
  assert.equal(
    fast.pushTooLarge,
    "ResourceExhausted: message size 5003 is larger than configured readMaxBytes 4096",
  );
  assert.equal(fast.pushOk, "ok 9");
  assert.deepEqual(fast.scrapeAnswer, [200, "up 1\nx 2\n"]);
  assert.match(String((fast.replaced as string[]).at(-1)), /^AlreadyExists: Another stream/);
  assert.match(String(fast.tooMany), /^ResourceExhausted/);
  assert.deepEqual(fast.drained, ["registered", "goAway", "end"]);
  assert.match(String(fast.whileDraining), /^Unavailable: Cannot register/);
});

/** Sends raw bytes as a Connect call; resolves with the status and the parsed end-stream. */
function rawCall(
  port: number,
  path: string,
  body: Uint8Array,
  options: { headers?: Record<string, string>; stopAfter?: boolean } = {},
): Promise<{ status: number; messages: number; end: ReturnType<typeof endStreamFromJson> | null }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({
      host: "127.0.0.1",
      port,
      method: "POST",
      path,
      headers: {
        "content-type": "application/connect+proto",
        authorization: `Bearer ${ANY}`,
        ...options.headers,
      },
    }, (res) => {
      const parts: Uint8Array[] = [];
      res.on("data", (c: Uint8Array) => parts.push(c));
      res.on("end", () => {
        const all = new Uint8Array(Buffer.concat(parts));
        let at = 0;
        let messages = 0;
        let end = null;
        while (at + 5 <= all.byteLength) {
          const length = new DataView(all.buffer, at + 1, 4).getUint32(0);
          const data = all.subarray(at + 5, at + 5 + length);
          if (all[at] === 2) end = endStreamFromJson(data);
          else messages++;
          at += 5 + length;
        }
        resolve({ status: res.statusCode ?? 0, messages, end });
      });
    });
    req.on("error", reject);
    req.write(body);
    if (options.stopAfter) {
      setTimeout(() => req.destroy(), 100);
      resolve({ status: 0, messages: 0, end: null });
    } else req.end();
  });
}

Deno.test("fast path: truncated, oversized and compressed envelopes and timeouts, as connect-es", async () => {
  const pollRequest = encodeEnvelope(
    0,
    toBinary(PollRequestSchema, create(PollRequestSchema, { fqdn: "t.example.com" })),
  );
  const results: Record<string, unknown>[] = [];
  for (const fast of [true, false]) {
    results.push(
      await withProxy(fast, async (port, proxy) => {
        const describe = async (p: ReturnType<typeof rawCall>) => {
          const r = await p;
          return [r.status, r.messages, r.end?.error ? outcome(r.end.error) : "ok"];
        };
        const out: Record<string, unknown> = {};
        const push = "/pushprox.v1.ClientService/Push";
        const pollPath = "/pushprox.v1.ClientService/Poll";
        out.truncated = await describe(rawCall(port, push, pollRequest.subarray(0, 3)));
        out.truncatedBody = await describe(rawCall(port, pollPath, pollRequest.subarray(0, 8)));
        out.empty = await describe(rawCall(port, pollPath, new Uint8Array(0)));
        // Whole envelopes whose messages are not protobuf: the client's fault.
        const garbage = encodeEnvelope(0, Uint8Array.from([0xff, 0xff, 0xff]));
        out.garbagePoll = await describe(rawCall(port, pollPath, garbage));
        out.garbagePush = await describe(rawCall(port, push, garbage));
        out.twice = await describe(
          rawCall(port, pollPath, Buffer.concat([pollRequest, pollRequest])),
        );
        const big = new Uint8Array(5);
        new DataView(big.buffer).setUint32(1, 1 << 30);
        out.oversized = await describe(rawCall(port, push, big));
        const compressed = pollRequest.slice();
        compressed[0] = 1;
        out.compressed = await describe(rawCall(port, pollPath, compressed));
        out.badTimeout = await describe(
          rawCall(port, pollPath, pollRequest, { headers: { "connect-timeout-ms": "soon" } }),
        );
        // The stream ends cleanly at the deadline, after registered and heartbeats.
        const started = Date.now();
        const timedOut = await rawCall(port, pollPath, pollRequest, {
          headers: { "connect-timeout-ms": "250" },
        });
        out.timeout = [timedOut.status, timedOut.messages >= 2, timedOut.end?.error ?? "ok"];
        out.timeoutHonoured = Date.now() - started >= 200 && Date.now() - started < 2000;
        // A client that stops mid-envelope: the call ends, nothing stays registered.
        const head = encodeEnvelope(
          0,
          toBinary(PollRequestSchema, create(PollRequestSchema, { fqdn: "m.example.com" })),
        );
        await rawCall(port, pollPath, head.subarray(0, 7), { stopAfter: true });
        await new Promise((r) => setTimeout(r, 300));
        out.midEnvelope = proxy.coordinator.listClients().filter((c) => c.fqdn === "m.example.com");
        return out;
      }),
    );
  }
  assert.deepEqual(results[0], results[1]);
  const fast = results[0]!;
  assert.deepEqual(fast.truncated, [
    200,
    0,
    "InvalidArgument: protocol error: incomplete envelope",
  ]);
  assert.match(String((fast.oversized as string[])[2]), /^ResourceExhausted: message size/);
  assert.match(String((fast.compressed as string[])[2]), /^Internal: received compressed/);
  assert.match(
    String((fast.badTimeout as string[])[2]),
    /^InvalidArgument: protocol error: invalid/,
  );
  assert.deepEqual(fast.timeout, [200, true, "ok"]);
  assert.equal(fast.timeoutHonoured, true);
  assert.match(String((fast.empty as string[])[2]), /^Unimplemented: protocol error: missing/);
  assert.deepEqual(fast.garbagePoll, [
    200,
    0,
    "InvalidArgument: cannot decode message pushprox.v1.PollRequest from binary: premature EOF",
  ]);
  assert.deepEqual(fast.garbagePush, [
    200,
    0,
    "InvalidArgument: cannot decode message pushprox.v1.PushRequest from binary: premature EOF",
  ]);
  assert.match(
    String((fast.twice as string[])[2]),
    /^Unimplemented: protocol error: received extra/,
  );
  assert.deepEqual(fast.midEnvelope, []);
});

Deno.test("CallValues gets, sets and deletes values as connect-es' context values do", () => {
  const keys = [0, 1, 2, 3].map((n) => createContextKey<number>(100 + n));
  const values = new CallValues();
  assert.equal(values.get(keys[0]!), 100);
  values.set(keys[0]!, 10).set(keys[1]!, 11).set(keys[2]!, 12).set(keys[3]!, 13);
  assert.deepEqual(keys.map((key) => values.get(key)), [10, 11, 12, 13]);
  values.set(keys[2]!, 22).delete(keys[0]!);
  assert.deepEqual(keys.map((key) => values.get(key)), [100, 11, 22, 13]);
  values.set(keys[3]!, 33).set(keys[0]!, 30).delete(keys[3]!);
  assert.deepEqual(keys.map((key) => values.get(key)), [30, 11, 22, 103]);
});

Deno.test("fast path: more idle streams than a heartbeat batch all get their heartbeats", async () => {
  // 300 streams registered at once are due together: beaten 128 per
  // firing (BEAT_BATCH), every one still gets its beats.
  const proxy = createProxy({
    logger: createNullLogger(),
    heartbeatIntervalMs: 200,
    maxClients: 400,
    defaultMetrics: false,
    connectFastPath: true,
  });
  const stop = new AbortController();
  const served = await serveProxy(proxy, { hostname: "127.0.0.1", port: 0, signal: stop.signal });
  const signal = AbortSignal.timeout(30_000);
  try {
    const port = served.address.port;
    const all = await Promise.all(
      Array.from({ length: 300 }, (_, i) => poll(port, `n${i}.example.com`, ANY, 3, signal)),
    );
    for (const seen of all) assert.deepEqual(seen, ["registered", "heartbeat", "heartbeat"]);
  } finally {
    stop.abort();
    await served.finished;
  }
});
