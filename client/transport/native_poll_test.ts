import assert from "node:assert/strict";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { CallCode, CallError } from "./call_error.ts";
import {
  PollRequestSchema,
  type PollResponse,
  PollResponseSchema,
} from "../../gen/pushprox/v1/pushprox_pb.ts";
import { rawServer } from "../_testing.ts";
import { createNativePoll } from "./native_poll.ts";
import { describePollError } from "../agent/poll_error.ts";

const encoder = new TextEncoder();

function envelope(flags: number, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(5 + data.byteLength);
  out[0] = flags;
  new DataView(out.buffer).setUint32(1, data.byteLength);
  out.set(data, 5);
  return out;
}

function message(init: Parameters<typeof create<typeof PollResponseSchema>>[1]): Uint8Array {
  return envelope(0, toBinary(PollResponseSchema, create(PollResponseSchema, init)));
}

function endStream(json: unknown): Uint8Array {
  return envelope(2, encoder.encode(JSON.stringify(json)));
}

function chunk(bytes: Uint8Array): Uint8Array {
  const head = encoder.encode(`${bytes.byteLength.toString(16)}\r\n`);
  const out = new Uint8Array(head.byteLength + bytes.byteLength + 2);
  out.set(head);
  out.set(bytes, head.byteLength);
  out.set(encoder.encode("\r\n"), head.byteLength + bytes.byteLength);
  return out;
}

async function write(conn: Deno.Conn, data: Uint8Array | string): Promise<void> {
  const bytes = typeof data === "string" ? encoder.encode(data) : data;
  for (let at = 0; at < bytes.byteLength;) at += await conn.write(bytes.subarray(at));
}

/** Reads one request: its head as text and its Content-Length body as bytes. */
async function readPollRequest(conn: Deno.Conn): Promise<{ head: string; body: Uint8Array }> {
  let data = new Uint8Array(0);
  const buffer = new Uint8Array(4096);
  for (;;) {
    const text = new TextDecoder("latin1").decode(data);
    const end = text.indexOf("\r\n\r\n");
    if (end >= 0) {
      const length = Number(/\r\ncontent-length: (\d+)/i.exec(text)?.[1] ?? "0");
      if (data.byteLength >= end + 4 + length) {
        return { head: text.slice(0, end), body: data.slice(end + 4, end + 4 + length) };
      }
    }
    const n = await conn.read(buffer);
    if (n === null) throw new Error("request cut short");
    const next = new Uint8Array(data.byteLength + n);
    next.set(data);
    next.set(buffer.subarray(0, n), data.byteLength);
    data = next;
  }
}

const OK_HEAD = "HTTP/1.1 200 OK\r\ncontent-type: application/connect+proto\r\n" +
  "transfer-encoding: chunked\r\n\r\n";

async function collect(
  poll: ReturnType<typeof createNativePoll>,
  signal = new AbortController().signal,
): Promise<{ messages: PollResponse[]; error: unknown }> {
  const messages: PollResponse[] = [];
  try {
    for await (const m of poll({ fqdn: "host.example", version: "t" }, signal)) messages.push(m);
    return { messages, error: null };
  } catch (error) {
    return { messages, error };
  }
}

Deno.test("createNativePoll() streams messages as they arrive, with path prefix and auth", async () => {
  const requests: { head: string; body: Uint8Array }[] = [];
  const seenSecond = Promise.withResolvers<void>();
  const server = rawServer(async (conn) => {
    requests.push(await readPollRequest(conn));
    await write(conn, OK_HEAD);
    // One envelope split over two chunks and two writes.
    const registered = message({
      message: { case: "registered", value: { sessionId: "s-1", heartbeatIntervalMs: 5000 } },
    });
    await write(conn, chunk(registered.subarray(0, 3)));
    await write(conn, chunk(registered.subarray(3)));
    await write(conn, chunk(message({ message: { case: "heartbeat", value: {} } })));
    // The next message only once the client has read the first two.
    await seenSecond.promise;
    await write(
      conn,
      chunk(message({
        message: {
          case: "scrape",
          value: { id: "x", method: "GET", url: "http://host.example/m", timeoutMs: 900 },
        },
      })),
    );
    await write(conn, chunk(endStream({})));
    await write(conn, "0\r\n\r\n");
  });
  try {
    const poll = createNativePoll({
      baseUrl: `http://localhost:${server.port}/prefix/path`,
      address: "127.0.0.1",
      authorization: () => "Bearer t0ken",
    });
    const messages: PollResponse[] = [];
    for await (
      const m of poll({ fqdn: "host.example", version: "t" }, AbortSignal.timeout(10_000))
    ) {
      messages.push(m);
      if (messages.length === 2) seenSecond.resolve();
    }
    assert.deepEqual(messages.map((m) => m.message.case), ["registered", "heartbeat", "scrape"]);
    const scrape = messages[2]!.message;
    assert.equal(scrape.case === "scrape" && scrape.value.url, "http://host.example/m");
    const { head, body } = requests[0]!;
    assert.match(head, /^POST \/prefix\/path\/pushprox\.v1\.ClientService\/Poll HTTP\/1\.1\r\n/);
    assert.match(head, new RegExp(`\r\nhost: localhost:${server.port}\r\n`));
    assert.match(head, /\r\ncontent-type: application\/connect\+proto\r\n/);
    assert.match(head, /\r\nconnect-protocol-version: 1\r\n/);
    assert.match(head, /\r\nauthorization: Bearer t0ken(\r\n|$)/);
    assert.equal(body[0], 0);
    const request = fromBinary(PollRequestSchema, body.subarray(5));
    assert.equal(request.fqdn, "host.example");
    assert.equal(new DataView(body.buffer).getUint32(1), body.byteLength - 5);
  } finally {
    await server.close();
  }
});

Deno.test("createNativePoll() turns the end-stream error into a CallError with its code", async () => {
  const server = rawServer(async (conn) => {
    await readPollRequest(conn);
    await write(conn, OK_HEAD);
    await write(
      conn,
      chunk(endStream({ error: { code: "already_exists", message: "fqdn taken" } })),
    );
    await write(conn, "0\r\n\r\n");
  });
  try {
    const poll = createNativePoll({ baseUrl: `http://127.0.0.1:${server.port}` });
    const { messages, error } = await collect(poll);
    assert.equal(messages.length, 0);
    assert.ok(error instanceof CallError);
    assert.equal(error.code, CallCode.AlreadyExists);
    assert.equal(error.rawMessage, "fqdn taken");
  } finally {
    await server.close();
  }
});

Deno.test("createNativePoll() reports a load balancer's page by status and content type", async () => {
  const server = rawServer(async (conn) => {
    await readPollRequest(conn);
    const page = "<html><body>502 Bad Gateway</body></html>";
    await write(
      conn,
      `HTTP/1.1 502 Bad Gateway\r\ncontent-type: text/html\r\ncontent-length: ${page.length}\r\n\r\n${page}`,
    );
  });
  try {
    const poll = createNativePoll({ baseUrl: `http://127.0.0.1:${server.port}` });
    const { error } = await collect(poll);
    assert.ok(error instanceof CallError);
    assert.equal(error.code, CallCode.Unavailable);
    assert.match(
      describePollError(error),
      /^proxy answered HTTP 502 text\/html instead of a Connect/,
    );
  } finally {
    await server.close();
  }
});

Deno.test("createNativePoll(): the connection ending under the stream is Aborted; a clean end without end-stream is a protocol error", async () => {
  const server = rawServer(async (conn, index) => {
    await readPollRequest(conn);
    await write(conn, OK_HEAD);
    await write(
      conn,
      chunk(message({
        message: { case: "registered", value: { sessionId: "s", heartbeatIntervalMs: 0 } },
      })),
    );
    if (index === 1) await write(conn, "0\r\n\r\n");
    // Index 0: the handler ends and the server closes the connection mid-body.
  });
  try {
    const poll = createNativePoll({ baseUrl: `http://127.0.0.1:${server.port}` });
    const cut = await collect(poll);
    assert.equal(cut.messages.length, 1);
    assert.ok(cut.error instanceof CallError);
    assert.equal(cut.error.code, CallCode.Aborted);
    const ended = await collect(poll);
    assert.ok(ended.error instanceof CallError);
    assert.equal(ended.error.code, CallCode.InvalidArgument);
    assert.match(ended.error.message, /missing EndStreamResponse/);
  } finally {
    await server.close();
  }
});

Deno.test("createNativePoll() stops at the signal's abort and closes its connection", async () => {
  const closed = Promise.withResolvers<void>();
  const server = rawServer(async (conn) => {
    await readPollRequest(conn);
    await write(conn, OK_HEAD);
    await write(
      conn,
      chunk(message({
        message: { case: "registered", value: { sessionId: "s", heartbeatIntervalMs: 0 } },
      })),
    );
    // Nothing more: the client aborts; its close ends this read.
    const n = await conn.read(new Uint8Array(16)).catch(() => null);
    assert.equal(n, null);
    closed.resolve();
  });
  try {
    const poll = createNativePoll({ baseUrl: `http://127.0.0.1:${server.port}` });
    const stop = new AbortController();
    const messages: PollResponse[] = [];
    let error: unknown = null;
    try {
      for await (const m of poll({ fqdn: "h" }, stop.signal)) {
        messages.push(m);
        stop.abort(new Error("no heartbeat"));
      }
    } catch (e) {
      error = e;
    }
    assert.equal(messages.length, 1);
    assert.ok(error instanceof CallError);
    assert.equal(error.code, CallCode.Canceled);
    assert.match(error.message, /no heartbeat/);
    await closed.promise;
  } finally {
    await server.close();
  }
});

Deno.test("createNativePoll() refuses a message above readMaxBytes and a refused dial is Unavailable", async () => {
  const server = rawServer(async (conn) => {
    await readPollRequest(conn);
    await write(conn, OK_HEAD);
    const prefix = new Uint8Array(5);
    new DataView(prefix.buffer).setUint32(1, 2048);
    await write(conn, chunk(prefix));
    await conn.read(new Uint8Array(16)).catch(() => null);
  });
  try {
    const poll = createNativePoll({
      baseUrl: `http://127.0.0.1:${server.port}`,
      readMaxBytes: 1024,
    });
    const { error } = await collect(poll);
    assert.ok(error instanceof CallError);
    assert.equal(error.code, CallCode.ResourceExhausted);
  } finally {
    await server.close();
  }
  // The port is closed now.
  const refused = await collect(createNativePoll({ baseUrl: `http://127.0.0.1:${server.port}` }));
  assert.ok(refused.error instanceof CallError);
  assert.equal(refused.error.code, CallCode.Unavailable);
});

Deno.test("createNativePoll() reads a message larger than one read, in one write", async () => {
  // A scrape request of ~40 KiB: ten reads' worth for the poll's reader.
  const url = `http://host.example/m?q=${"x".repeat(40_000)}`;
  const server = rawServer(async (conn) => {
    await readPollRequest(conn);
    const scrape = message({
      message: { case: "scrape", value: { id: "big", method: "GET", url, timeoutMs: 900 } },
    });
    const heartbeat = message({ message: { case: "heartbeat", value: {} } });
    const all = new Uint8Array(scrape.byteLength + heartbeat.byteLength);
    all.set(scrape);
    all.set(heartbeat, scrape.byteLength);
    await write(conn, OK_HEAD);
    await write(conn, chunk(all));
    await write(conn, chunk(endStream({})));
    await write(conn, "0\r\n\r\n");
  });
  try {
    const poll = createNativePoll({ baseUrl: `http://127.0.0.1:${server.port}` });
    const { messages, error } = await collect(poll, AbortSignal.timeout(10_000));
    assert.equal(error, null);
    assert.deepEqual(messages.map((m) => m.message.case), ["scrape", "heartbeat"]);
    const scrape = messages[0]!.message;
    assert.equal(scrape.case === "scrape" && scrape.value.url, url);
  } finally {
    await server.close();
  }
});
