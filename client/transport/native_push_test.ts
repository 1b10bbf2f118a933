import assert from "node:assert/strict";
import { fromBinary } from "@bufbuild/protobuf";
import { CallCode, CallError } from "./call_error.ts";
import { PushRequestSchema } from "../../gen/pushprox/v1/pushprox_pb.ts";
import { createNativePush, nativePushSupported } from "./native_push.ts";
import { BODY_PROGRESS, type BodyProgress, markOwned } from "../../lib/owned_chunks.ts";
import { ReadBufferPool } from "../../lib/read_buffers.ts";
import { concatBytes } from "../../lib/bytes.ts";

/** What a fake proxy saw of one push. */
export interface SeenPush {
  requestHead: string;
  /** The decoded Push messages: the head, then each body chunk's bytes. */
  messages: ReturnType<typeof fromBinary<typeof PushRequestSchema>>[];
  /** The raw bytes of each body_chunk message (field header included). */
  rawChunks: Uint8Array[];
}

/**
 * Serves Push calls on `listener` like the proxy's fast path: decodes the
 * chunked request body into Connect envelopes and answers with `answer`.
 */
export async function serveFakeProxy(
  listener: Deno.Listener,
  seen: SeenPush[],
  answer: (index: number) => string | Uint8Array = () => okResponse(),
): Promise<void> {
  for await (const conn of listener) {
    (async () => {
      let data = new Uint8Array(0);
      const more = async () => {
        const buffer = new Uint8Array(65536);
        const n = await conn.read(buffer);
        if (n === null) throw new Error("eof");
        const next = new Uint8Array(data.length + n);
        next.set(data);
        next.set(buffer.subarray(0, n), data.length);
        data = next;
      };
      const line = async () => {
        for (;;) {
          const at = data.indexOf(10);
          if (at >= 0) {
            const text = new TextDecoder().decode(data.subarray(0, at - 1));
            data = data.subarray(at + 1);
            return text;
          }
          await more();
        }
      };
      const take = async (n: number) => {
        while (data.length < n) await more();
        const out = data.slice(0, n);
        data = data.subarray(n);
        return out;
      };
      try {
        for (;;) {
          const head: string[] = [];
          for (let l = await line(); l !== ""; l = await line()) head.push(l);
          let body = new Uint8Array(0);
          for (;;) {
            const size = parseInt(await line(), 16);
            if (size === 0) {
              await line();
              break;
            }
            const chunk = await take(size);
            await take(2);
            const next = new Uint8Array(body.length + chunk.length);
            next.set(body);
            next.set(chunk, body.length);
            body = next;
          }
          const push: SeenPush = { requestHead: head.join("\n"), messages: [], rawChunks: [] };
          for (let at = 0; at < body.length;) {
            const length = new DataView(body.buffer, at + 1, 4).getUint32(0);
            const message = body.slice(at + 5, at + 5 + length);
            if (push.messages.length > 0) push.rawChunks.push(message);
            push.messages.push(fromBinary(PushRequestSchema, message));
            at += 5 + length;
          }
          seen.push(push);
          const reply = answer(seen.length - 1);
          const bytes = typeof reply === "string" ? new TextEncoder().encode(reply) : reply;
          for (let at = 0; at < bytes.length;) at += await conn.write(bytes.subarray(at));
        }
      } catch {
        // The client closed the connection.
      } finally {
        try {
          conn.close();
        } catch {
          // Already closed.
        }
      }
    })();
  }
}

function envelope(flags: number, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(5 + data.length);
  out[0] = flags;
  new DataView(out.buffer).setUint32(1, data.length);
  out.set(data, 5);
  return out;
}

/** A 200 answer with an empty PushResponse and the end-stream message `json`. */
export function okResponse(json = "{}"): Uint8Array {
  const body = new Uint8Array([
    ...envelope(0, new Uint8Array(0)),
    ...envelope(2, new TextEncoder().encode(json)),
  ]);
  const head = new TextEncoder().encode(
    "HTTP/1.1 200 OK\r\ncontent-type: application/connect+proto\r\n" +
      `content-length: ${body.length}\r\n\r\n`,
  );
  return new Uint8Array([...head, ...body]);
}

async function* chunks(...parts: Uint8Array[]): AsyncGenerator<Uint8Array> {
  for (const part of parts) yield part;
}

const HEAD = {
  scrapeId: "s1",
  sessionId: "sess",
  status: 200,
  headers: [{ name: "content-type", value: "text/plain" }],
  error: "",
};

Deno.test("native push frames the head and raw body chunks; keep-alive; errors", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const seen: SeenPush[] = [];
  const serving = serveFakeProxy(
    listener,
    seen,
    (i) =>
      i === 2
        ? okResponse('{"error":{"code":"not_found","message":"No scrape \\"s3\\" is waiting"}}')
        : i === 3
        ? "HTTP/1.1 401 Unauthorized\r\ncontent-length: 12\r\n\r\nno password\n"
        : okResponse(),
  );
  const port = (listener.addr as Deno.NetAddr).port;
  const push = createNativePush({
    baseUrl: `http://localhost:${port}/prefix`,
    address: "127.0.0.1",
    authorization: () => "Bearer t0k",
  });
  try {
    const big = new Uint8Array(200_000).map((_, i) => i & 0xff);
    const small = new Uint8Array([0, 1, 2, 255]);
    // A read's worth (joined with its prefix into one write), twice: the
    // second reuses the first one's spare buffer.
    const read = new Uint8Array(65_536).map((_, i) => (i * 7) & 0xff);
    const read2 = new Uint8Array(40_000).fill(3);
    await push.send(
      HEAD,
      chunks(big, small, read, read2, new Uint8Array(0)),
      AbortSignal.timeout(5000),
    );
    await push.send({ ...HEAD, scrapeId: "s2" }, null, AbortSignal.timeout(5000));
    await assert.rejects(
      push.send({ ...HEAD, scrapeId: "s3" }, chunks(small), AbortSignal.timeout(5000)),
      (e: unknown) =>
        e instanceof CallError && e.code === CallCode.NotFound && /s3/.test(e.rawMessage),
    );
    await assert.rejects(
      push.send(HEAD, null, AbortSignal.timeout(5000)),
      (e: unknown) =>
        e instanceof CallError && e.code === CallCode.Unauthenticated && /HTTP 401/.test(e.message),
    );
    // A head larger than a spare head buffer, after pushes that used one.
    const long = "v".repeat(5000);
    await push.send(
      { ...HEAD, scrapeId: "s5", headers: [{ name: "x-long", value: long }] },
      chunks(small),
      AbortSignal.timeout(5000),
    );
    assert.equal(seen.length, 5);
    const fifth = seen[4]!.messages[0]!.message;
    assert.equal(fifth.case === "head" && fifth.value.scrapeId, "s5");
    assert.equal(fifth.case === "head" && fifth.value.headers[0]!.value, long);
    assert.match(seen[4]!.requestHead, /\nauthorization: Bearer t0k$/);
    const [first, second] = seen;
    assert.match(
      first!.requestHead,
      /^POST \/prefix\/pushprox\.v1\.ClientService\/Push HTTP\/1\.1\nhost: localhost:\d+\n/,
    );
    assert.match(first!.requestHead, /\ncontent-type: application\/connect\+proto\n/);
    assert.match(first!.requestHead, /\nauthorization: Bearer t0k$/);
    const head = first!.messages[0]!.message;
    assert.equal(head.case, "head");
    assert.equal(head.case === "head" && head.value.scrapeId, "s1");
    assert.deepEqual(
      first!.messages.slice(1).map((m) => m.message.case === "bodyChunk" && m.message.value),
      [big, small, read, read2, new Uint8Array(0)],
    );
    // Exactly what protobuf-es would write for a lone body_chunk.
    assert.deepEqual(first!.rawChunks[1], new Uint8Array([0x12, 4, 0, 1, 2, 255]));
    assert.equal(second!.messages.length, 1);
  } finally {
    push.close();
    listener.close();
    await serving.catch(() => {});
  }
});

Deno.test("native push frees the buffers of owned chunks once sent, and only those", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const seen: SeenPush[] = [];
  const serving = serveFakeProxy(listener, seen, () => okResponse());
  const push = createNativePush({
    baseUrl: `http://127.0.0.1:${(listener.addr as Deno.NetAddr).port}`,
  });
  try {
    const ownedBig = markOwned(new Uint8Array(100_000).fill(7));
    const ownedSmall = markOwned(new Uint8Array([1, 2, 3]));
    // A read's worth: joined with its prefix, then freed before the write.
    const ownedRead = markOwned(new Uint8Array(60_000).fill(5));
    const lent = new Uint8Array(100_000).fill(9);
    await push.send(HEAD, chunks(ownedBig, ownedSmall, ownedRead, lent), AbortSignal.timeout(5000));
    // The proxy got every byte; the owned buffers are gone, the lent one is intact.
    assert.deepEqual(
      seen[0]!.messages.slice(1).map((m) => m.message.case === "bodyChunk" && m.message.value),
      [
        new Uint8Array(100_000).fill(7),
        new Uint8Array([1, 2, 3]),
        new Uint8Array(60_000).fill(5),
        new Uint8Array(100_000).fill(9),
      ],
    );
    assert.equal((ownedBig.buffer as ArrayBuffer).detached, true);
    assert.equal((ownedSmall.buffer as ArrayBuffer).detached, true);
    assert.equal((ownedRead.buffer as ArrayBuffer).detached, true);
    assert.equal(lent.buffer.detached, false);
    assert.equal(lent.byteLength, 100_000);
  } finally {
    push.close();
    listener.close();
    await serving.catch(() => {});
  }
});

Deno.test("native push: the deadline ends a push whose proxy does not answer", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const held: Deno.Conn[] = [];
  const accepting = (async () => {
    for await (const conn of listener) held.push(conn); // reads nothing, answers nothing
  })();
  const push = createNativePush({
    baseUrl: `http://127.0.0.1:${(listener.addr as Deno.NetAddr).port}`,
  });
  try {
    const deadline = AbortSignal.timeout(300);
    await assert.rejects(
      push.send(HEAD, chunks(new Uint8Array(10)), deadline),
      (e: unknown) => e instanceof CallError && e.code === CallCode.Canceled,
    );
  } finally {
    push.close();
    listener.close();
    held.forEach((c) => c.close());
    await accepting.catch(() => {});
  }
});

Deno.test("native push: a connection the proxy closed while idle is not used again", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  let accepted = 0;
  const end = new TextEncoder().encode("\r\n0\r\n\r\n");
  // Answers one push per connection, then closes it.
  const serving = (async () => {
    for await (const conn of listener) {
      accepted++;
      (async () => {
        const buffer = new Uint8Array(65536);
        let data = new Uint8Array(0);
        for (;;) {
          const n = await conn.read(buffer);
          if (n === null) break;
          data = new Uint8Array([...data, ...buffer.subarray(0, n)]);
          const tail = data.subarray(data.length - end.length);
          if (tail.every((b, i) => b === end[i])) break;
        }
        await conn.write(okResponse());
        conn.close();
      })().catch(() => {});
    }
  })();
  const push = createNativePush({
    baseUrl: `http://127.0.0.1:${(listener.addr as Deno.NetAddr).port}`,
  });
  try {
    await push.send(HEAD, chunks(new Uint8Array(10)), AbortSignal.timeout(5000));
    // (The idle read sees the close in an event loop turn or two.)
    await new Promise((resolve) => setTimeout(resolve, 200));
    await push.send(HEAD, chunks(new Uint8Array(10)), AbortSignal.timeout(5000));
    assert.equal(accepted, 2);
  } finally {
    push.close();
    listener.close();
    await serving.catch(() => {});
  }
});

Deno.test("nativePushSupported() keeps connect-es for HTTP proxies, custom CAs and client certs", () => {
  assert.equal(nativePushSupported({ baseUrl: "http://p:8080" }), true);
  assert.equal(nativePushSupported({ baseUrl: "https://p", address: "10.0.0.1" }), true);
  assert.equal(
    nativePushSupported({ baseUrl: "http://p", httpProxy: new URL("http://hp:3128") }),
    false,
  );
  assert.equal(nativePushSupported({ baseUrl: "https://p", tls: { ca: "x" } }), false);
  assert.equal(nativePushSupported({ baseUrl: "https://p", tls: { cert: "c", key: "k" } }), false);
});

Deno.test("native push over TLS on a pinned address checks the URL's host name", async () => {
  const openssl = ["/usr/bin/openssl", "/usr/local/bin/openssl"].find((p) => {
    try {
      return Deno.statSync(p).isFile;
    } catch {
      return false;
    }
  });
  if (openssl === undefined) {
    console.warn("SKIPPED native push over TLS: no openssl to make a test CA");
    return;
  }
  const { createTestCa } = await import("../../tests/certs.ts");
  const dir = await Deno.makeTempDir();
  try {
    const ca = await createTestCa(dir);
    const server = await ca.issue("server", {
      cn: "localhost",
      sans: ["DNS:localhost"],
      usage: "server",
    });
    // DENO_CERT adds the test CA to Deno's roots in a child process, so the
    // default dial (system roots, no --tls.cacert) is the one tested.
    const script = `
      import { createNativePush } from ${
      JSON.stringify(new URL("./native_push.ts", import.meta.url).href)
    };
      import { serveFakeProxy } from ${JSON.stringify(import.meta.url)};
      const listener = Deno.listenTls({ hostname: "127.0.0.1", port: 0,
        cert: Deno.readTextFileSync(${JSON.stringify(server.certFile)}),
        key: Deno.readTextFileSync(${JSON.stringify(server.keyFile)}) });
      const seen = [];
      serveFakeProxy(listener, seen);
      const port = listener.addr.port;
      const good = createNativePush({ baseUrl: "https://localhost:" + port, address: "127.0.0.1" });
      await good.send({ scrapeId: "a", sessionId: "b", status: 200, headers: [], error: "" },
        (async function* () { yield new Uint8Array([1, 2, 3]); })(), AbortSignal.timeout(5000));
      console.log("pushed", seen.length, seen[0].messages.length);
      const wrong = createNativePush({ baseUrl: "https://wrong.example:" + port, address: "127.0.0.1" });
      try {
        await wrong.send({ scrapeId: "a", sessionId: "b", status: 200, headers: [], error: "" }, null,
          AbortSignal.timeout(5000));
        console.log("wrong name accepted");
      } catch (e) { console.log("wrong name refused:", e.message); }
      good.close(); wrong.close(); Deno.exit(0);
    `;
    const file = `${dir}/script.ts`;
    await Deno.writeTextFile(file, script);
    const config = new URL("../../deno.json", import.meta.url).pathname;
    const output = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", `--config=${config}`, file],
      env: { DENO_CERT: ca.certFile },
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(60_000),
    }).output();
    const text = new TextDecoder().decode(output.stdout) + new TextDecoder().decode(output.stderr);
    assert.match(text, /^pushed 1 2$/m, text);
    assert.match(text, /^wrong name refused: .*(certificate|NotValidForName|name)/im, text);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** A body that tells its progress, as native scrape bodies do. */
function progressBody(
  pieces: Uint8Array[],
  ready: boolean,
  pool: ReadBufferPool | null = null,
): AsyncIterable<Uint8Array> & { [BODY_PROGRESS]: BodyProgress } {
  let at = 0;
  const progress = {
    ready,
    get complete() {
      return at === pieces.length;
    },
    owned: true,
    pool,
  };
  return {
    [BODY_PROGRESS]: progress,
    [Symbol.asyncIterator]() {
      return {
        next: () =>
          Promise.resolve(
            at < pieces.length
              ? { done: false as const, value: pieces[at++]! }
              : { done: true as const, value: undefined },
          ),
      };
    },
  };
}

Deno.test("native push joins its writes when the body tells it may", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const seen: SeenPush[] = [];
  const serving = serveFakeProxy(listener, seen, () => okResponse());
  const writes: number[] = [];
  const port = (listener.addr as Deno.NetAddr).port;
  const push = createNativePush({
    baseUrl: `http://127.0.0.1:${port}`,
    maxIdle: 0,
    dial: async () => {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      const write = conn.write.bind(conn);
      conn.write = (bytes) => {
        writes.push(bytes.byteLength);
        return write(bytes);
      };
      return conn;
    },
  });
  const counted = async (body: AsyncIterable<Uint8Array> | null) => {
    writes.length = 0;
    await push.send(HEAD, body, AbortSignal.timeout(5000));
    return writes.length;
  };
  try {
    // Received and complete: head, piece and end of stream in one write.
    const piece = new Uint8Array(20_000).fill(1);
    assert.equal(await counted(progressBody([piece], true)), 1);
    assert.equal((piece.buffer as ArrayBuffer).detached, true, "an owned piece is freed");
    const small = new Uint8Array(1000).fill(1);
    assert.equal(await counted(progressBody([small], true)), 1);
    assert.equal(small.byteLength, 1000, "a small one is left to the collector");
    // Not received yet: the head waits for it, in one write all the same.
    assert.equal(await counted(progressBody([new Uint8Array(10)], false)), 1);
    // Two pieces: the end of stream goes with the second.
    assert.equal(await counted(progressBody([new Uint8Array(10), new Uint8Array(20)], true)), 2);
    // Larger than a join: head and prefix, then the piece, then the end.
    assert.equal(await counted(progressBody([new Uint8Array(100_000)], true)), 3);
    // A body that tells nothing: head, piece, end of stream, as they come.
    const lent = new Uint8Array(10).fill(2);
    assert.equal(await counted(chunks(lent)), 3);
    assert.equal(lent.byteLength, 10, "a piece not owned is left alone");
    assert.equal(await counted(null), 1);
    const bodies = seen.map((push) =>
      push.messages.slice(1).map((m) =>
        m.message.case === "bodyChunk" && m.message.value.byteLength
      )
    );
    assert.deepEqual(bodies, [[20_000], [1000], [10], [10, 20], [100_000], [10], []]);
  } finally {
    push.close();
    listener.close();
    await serving.catch(() => {});
  }
});

Deno.test("native push writes the head of a body that fails before its first piece", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  const received: Promise<Uint8Array> = (async () => {
    const conn = await listener.accept();
    const parts: Uint8Array[] = [];
    const buffer = new Uint8Array(65536);
    for (let n; (n = await conn.read(buffer)) !== null;) parts.push(buffer.slice(0, n));
    conn.close();
    return concatBytes(parts);
  })();
  const push = createNativePush({ baseUrl: `http://127.0.0.1:${port}`, maxIdle: 0 });
  const failing = progressBody([], false);
  failing[Symbol.asyncIterator] = () => ({
    next: () => Promise.reject(new Error("target went away")),
  });
  try {
    await assert.rejects(push.send(HEAD, failing, AbortSignal.timeout(5000)), /target went away/);
    // The proxy sees the push begin and its stream cut, as when the head went first.
    const text = new TextDecoder().decode(await received);
    assert.match(text, /^POST \/pushprox\.v1\.ClientService\/Push HTTP\/1\.1\r\n/);
    assert.ok(!text.includes("\r\n0\r\n\r\n"), "no end of stream");
  } finally {
    push.close();
    listener.close();
  }
});

Deno.test("native push frames owned pieces in their headroom and reuses their buffers once written", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const seen: SeenPush[] = [];
  const serving = serveFakeProxy(listener, seen, () => okResponse());
  const port = (listener.addr as Deno.NetAddr).port;
  /** Each write's buffer; `fail` makes writes reject. */
  const writes: ArrayBufferLike[] = [];
  let fail = false;
  const push = createNativePush({
    baseUrl: `http://127.0.0.1:${port}`,
    maxIdle: 0,
    dial: async () => {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      const write = conn.write.bind(conn);
      conn.write = (bytes) => {
        writes.push(bytes.buffer);
        return fail ? Promise.reject(new Deno.errors.BrokenPipe("gone")) : write(bytes);
      };
      return conn;
    },
  });
  const pool = new ReadBufferPool(65536);
  try {
    // Two reads behind 1 KiB of headroom (as native scrape reads them).
    const first = pool.take().subarray(1024, 1024 + 30_000).fill(3);
    const second = pool.take().subarray(1024, 1024 + 20_000).fill(4);
    // No room in front (a read at the start of its buffer): joined, copied.
    const third = new Uint8Array(65536).subarray(0, 100).fill(5);
    await push.send(
      HEAD,
      progressBody([first, second, third], true, pool),
      AbortSignal.timeout(5000),
    );
    assert.deepEqual(
      seen[0]!.messages.slice(1).map((m) => m.message.case === "bodyChunk" && m.message.value),
      [
        new Uint8Array(30_000).fill(3),
        new Uint8Array(20_000).fill(4),
        new Uint8Array(100).fill(5),
      ],
    );
    // The request head and the Push head went in front of the first piece,
    // the second piece's framing in front of it: their own buffers written.
    assert.equal(writes[0], first.buffer);
    assert.equal(writes[1], second.buffer);
    assert.notEqual(writes[2], third.buffer);
    assert.equal(writes.length, 3);
    // Back for the next reads, intact (not freed); the copied one too.
    assert.equal(pool.free, 3);
    assert.equal(first.byteLength, 30_000);
    const reused = [pool.take().buffer, pool.take().buffer, pool.take().buffer];
    assert.deepEqual(new Set(reused), new Set([first.buffer, second.buffer, third.buffer]));

    // A write that failed gives nothing back, and frees nothing.
    fail = true;
    const lost = pool.take().subarray(1024, 1024 + 1000).fill(6);
    await assert.rejects(
      push.send(HEAD, progressBody([lost], true, pool), AbortSignal.timeout(5000)),
      CallError,
    );
    assert.equal(pool.free, 0);
    assert.equal(lost.byteLength, 1000);
  } finally {
    push.close();
    listener.close();
    await serving.catch(() => {});
  }
});

Deno.test("native push takes pieces at hand through nextNow, falls back to next(), and returns the body", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const seen: SeenPush[] = [];
  const serving = serveFakeProxy(listener, seen, () => okResponse());
  const port = (listener.addr as Deno.NetAddr).port;
  const push = createNativePush({ baseUrl: `http://127.0.0.1:${port}` });
  /** Pieces given by nextNow where `now` says so, else by next(); counts the calls. */
  const body = (pieces: Uint8Array[], now: boolean[], failNow = false) => {
    let at = 0;
    const calls = { now: 0, next: 0, returned: 0 };
    const take = () => pieces[at++]!;
    const progress: BodyProgress = {
      get ready() {
        return at === pieces.length || now[at] === true;
      },
      get complete() {
        return at === pieces.length;
      },
      owned: false,
      nextNow() {
        calls.now++;
        if (failNow) throw new Error("bad framing");
        if (at === pieces.length) return null;
        return now[at] ? take() : undefined;
      },
    };
    const iterable = {
      [BODY_PROGRESS]: progress,
      [Symbol.asyncIterator]: () => ({
        next() {
          calls.next++;
          return Promise.resolve(
            at < pieces.length
              ? { done: false as const, value: take() }
              : { done: true as const, value: undefined },
          );
        },
        return() {
          calls.returned++;
          return Promise.resolve({ done: true as const, value: undefined });
        },
      }),
    };
    return { iterable, calls };
  };
  try {
    // At hand: no next(); the body is returned once complete.
    const a = body([new Uint8Array(10).fill(1)], [true]);
    await push.send(HEAD, a.iterable, AbortSignal.timeout(5000));
    assert.deepEqual(a.calls, { now: 1, next: 0, returned: 1 });
    // Not at hand, then at hand: next() once, then nextNow.
    const b = body([new Uint8Array(3).fill(2), new Uint8Array(4).fill(3)], [false, true]);
    await push.send(HEAD, b.iterable, AbortSignal.timeout(5000));
    assert.deepEqual(b.calls, { now: 2, next: 1, returned: 1 });
    // nextNow failing fails the push; the body is returned.
    const c = body([new Uint8Array(5)], [true], true);
    await assert.rejects(push.send(HEAD, c.iterable, AbortSignal.timeout(5000)), /bad framing/);
    assert.equal(c.calls.returned, 1);
    const bodies = seen.map((push) =>
      push.messages.slice(1).map((m) =>
        m.message.case === "bodyChunk" && m.message.value.byteLength
      )
    );
    assert.deepEqual(bodies.slice(0, 2), [[10], [3, 4]]);
  } finally {
    push.close();
    listener.close();
    await serving.catch(() => {});
  }
});
