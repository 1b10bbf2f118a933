import assert from "node:assert/strict";
import type { HeaderPair } from "../../lib/http_exchange.ts";
import { NativeExchange, type ResponseHeads } from "./native_exchange.ts";
import { scanRequestHead } from "../../lib/request_head.ts";

/** A connection that keeps what is written to it. */
function memoryConn(): { conn: Deno.Conn; written: () => string } {
  const chunks: Uint8Array[] = [];
  const conn = {
    remoteAddr: { transport: "tcp", hostname: "127.0.0.1", port: 40000 },
    write(bytes: Uint8Array) {
      chunks.push(bytes.slice());
      return Promise.resolve(bytes.byteLength);
    },
    close() {},
  } as unknown as Deno.Conn;
  return {
    conn,
    written: () => chunks.map((c) => new TextDecoder().decode(c)).join(""),
  };
}

function exchange(
  request: string,
  headers: readonly HeaderPair[],
  heads: ResponseHeads | null = null,
) {
  const scan = scanRequestHead(new TextEncoder().encode(request), 16384);
  assert.equal(scan.kind, "head");
  if (scan.kind !== "head") throw new Error("unreachable");
  const { conn, written } = memoryConn();
  return {
    exchange: new NativeExchange(conn, scan.head, { keepAliveSeconds: 5, headers, heads }),
    written,
  };
}

/** The head without its Date line (the second may turn between two heads). */
const withoutDate = (text: string) => text.replace(/\r\nDate: [^\r]*/, "");

/** What follows the response head in the bytes written. */
function bodyOf(writes: readonly Uint8Array[]): string {
  const text = writes.map((w) => new TextDecoder().decode(w)).join("");
  return text.slice(text.indexOf("\r\n\r\n") + 4);
}

/** A scrape's request head (absolute-form). */
function scrapeHead() {
  const scan = scanRequestHead(
    new TextEncoder().encode("GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n"),
    16384,
  );
  if (scan.kind !== "head") throw new Error("unreachable");
  return scan.head;
}

/** A connection that keeps each write's bytes (copied) and the buffer each was written from. */
function recordingConn(): { conn: Deno.Conn; writes: Uint8Array[]; buffers: ArrayBufferLike[] } {
  const writes: Uint8Array[] = [];
  const buffers: ArrayBufferLike[] = [];
  const conn = {
    remoteAddr: { transport: "tcp", hostname: "127.0.0.1", port: 40000 },
    write(bytes: Uint8Array) {
      writes.push(bytes.slice());
      buffers.push(bytes.buffer);
      return Promise.resolve(bytes.byteLength);
    },
    close() {},
  } as unknown as Deno.Conn;
  return { conn, writes, buffers };
}

Deno.test("NativeExchange: a connection's last head is reused only when nothing differs", async () => {
  const PUSH = "POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n";
  const CLOSE = "POST /p HTTP/1.1\r\nHost: a\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";
  const frozen = Object.freeze([Object.freeze(["content-type", "application/x"] as const)]);
  const extra = Object.freeze([Object.freeze(["x-extra", "1"] as const)]);
  // Changed in place after its head was built: the next head must see it.
  const mutable: [string, string][] = [["content-type", "application/x"]];
  const heads: string[] = [];
  const memo: ResponseHeads = { lastHead: null };
  for (
    const [request, headers, extraHeaders, status] of [
      [PUSH, frozen, extra, 200],
      [PUSH, frozen, extra, 200],
      [PUSH, [["content-type", "application/x"]], [["x-extra", "1"]], 200],
      [CLOSE, frozen, extra, 200],
      [PUSH, frozen, extra, 503],
      [PUSH, frozen, Object.freeze([]), 200],
      [PUSH, frozen, extra, 200],
      [PUSH, [["content-type", "application/y"]], extra, 200],
      [PUSH, mutable, extra, 200],
      [PUSH, mutable, extra, 200],
    ] as const
  ) {
    if (heads.length === 9) mutable[0] = ["content-type", "application/z"];
    const { exchange: ex, written } = exchange(request, extraHeaders, memo);
    ex.respond(status, headers);
    ex.end("body");
    assert.equal(await ex.finished(), true);
    heads.push(withoutDate(written()));
  }
  const expected = "HTTP/1.1 200 OK\r\nx-extra: 1\r\ncontent-type: application/x\r\n" +
    "Connection: keep-alive\r\nKeep-Alive: timeout=5\r\nTransfer-Encoding: chunked\r\n\r\n" +
    "4\r\nbody\r\n0\r\n\r\n";
  assert.equal(heads[0], expected);
  assert.equal(heads[1], expected);
  assert.equal(heads[2], expected);
  assert.match(heads[3]!, /\r\nConnection: close\r\n/);
  assert.doesNotMatch(heads[3]!, /Keep-Alive/);
  assert.match(heads[4]!, /^HTTP\/1\.1 503 Service Unavailable\r\n/);
  assert.doesNotMatch(heads[5]!, /x-extra/);
  assert.equal(heads[6], expected);
  assert.equal(heads[7], expected.replace("application/x", "application/y"));
  assert.equal(heads[8], expected);
  assert.equal(heads[9], expected.replace("application/x", "application/z"));
  // Without a connection's memo, the same heads.
  const { exchange: alone, written } = exchange(PUSH, extra);
  alone.respond(200, frozen);
  alone.end("body");
  assert.equal(await alone.finished(), true);
  assert.equal(withoutDate(written()), expected);
});

Deno.test("NativeExchange: the signal made after the peer left is already aborted", () => {
  const { exchange: ex } = exchange("GET /x HTTP/1.1\r\nHost: a\r\n\r\n", []);
  ex.peerGone();
  ex.abort();
  assert.equal(ex.signal.aborted, true);
  assert.match((ex.signal.reason as Error).message, /closed the connection/);
  const { exchange: other } = exchange("GET /x HTTP/1.1\r\nHost: a\r\n\r\n", []);
  const signal = other.signal;
  assert.equal(signal.aborted, false);
  other.abort();
  assert.equal(signal.aborted, true);
  assert.match((signal.reason as Error).message, /was aborted/);
});

Deno.test("NativeExchange: an owned chunk's buffer goes back to the pool once written", async () => {
  const { markOwned, isOwned } = await import("../../lib/owned_chunks.ts");
  const { ReadBufferPool } = await import("../../lib/read_buffers.ts");
  const pool = new ReadBufferPool(64);
  const { conn, written } = memoryConn();
  const ex = new NativeExchange(conn, scrapeHead(), { keepAliveSeconds: 5, pool });
  ex.respond(200, [["content-length", "12"]]);
  const owned = pool.take().subarray(10, 16);
  owned.set(new TextEncoder().encode("first "));
  markOwned(owned);
  const other = new Uint8Array(64).subarray(0, 6);
  other.set(new TextEncoder().encode("second"));
  await ex.write(owned);
  assert.equal(isOwned(owned), false);
  await ex.write(other);
  ex.end();
  assert.equal(await ex.finished(), true);
  assert.match(written(), /\r\n\r\nfirst second$/);
  // The owned chunk's buffer is back (once); the other one is not.
  assert.equal(pool.free, 1);
  assert.equal(pool.take().buffer, owned.buffer);
});

Deno.test("NativeExchange: the head goes in front of an owned first chunk, in its buffer", async () => {
  const { markOwned } = await import("../../lib/owned_chunks.ts");
  const { ReadBufferPool } = await import("../../lib/read_buffers.ts");
  const pool = new ReadBufferPool(512);
  const { conn, writes, buffers } = recordingConn();
  const send = async (offset: number) => {
    writes.length = 0;
    buffers.length = 0;
    const ex = new NativeExchange(conn, scrapeHead(), { keepAliveSeconds: 5, pool });
    ex.respond(200, [["content-length", "4"]]);
    const chunk = markOwned(pool.take().subarray(offset, offset + 4));
    chunk.set(new TextEncoder().encode("body"));
    await ex.write(chunk);
    ex.end();
    assert.equal(await ex.finished(), true);
    assert.equal(writes.length, 1);
    assert.match(new TextDecoder().decode(writes[0]!), /^HTTP\/1\.1 200 OK\r\n[^]*\r\n\r\nbody$/);
    return { chunk, buffer: buffers[0]! };
  };
  // Room before the chunk: one write of the chunk's own buffer, no copy.
  const roomy = await send(400);
  assert.equal(roomy.buffer, roomy.chunk.buffer);
  // No room: the head and the chunk joined in a new buffer.
  const tight = await send(10);
  assert.notEqual(tight.buffer, tight.chunk.buffer);
});

Deno.test("NativeExchange: onGone listeners, one or several, are told once and can be withdrawn", () => {
  const { exchange: one } = exchange("GET /x HTTP/1.1\r\nHost: a\r\n\r\n", []);
  const heard: string[] = [];
  one.onGone(() => heard.push("only"));
  one.peerGone();
  one.abort();
  assert.deepEqual(heard, ["only"]);

  const { exchange: many } = exchange("GET /x HTTP/1.1\r\nHost: a\r\n\r\n", []);
  const stopFirst = many.onGone(() => heard.push("first"));
  many.onGone(() => heard.push("second"));
  const stopThird = many.onGone(() => heard.push("third"));
  stopFirst();
  stopThird();
  many.peerGone();
  assert.deepEqual(heard, ["only", "second"]);

  const { exchange: withdrawn } = exchange("GET /x HTTP/1.1\r\nHost: a\r\n\r\n", []);
  withdrawn.onGone(() => heard.push("withdrawn"))();
  withdrawn.peerGone();
  // Told at once when already gone.
  withdrawn.onGone(() => heard.push("late"));
  assert.deepEqual(heard, ["only", "second", "late"]);
});

Deno.test("NativeExchange: chunked writes after the head are framed with their size in hex", async () => {
  const { exchange: ex, written } = exchange("GET /x HTTP/1.1\r\nHost: a\r\n\r\n", []);
  ex.respond(200, []);
  await ex.write(new TextEncoder().encode("head"));
  const sizes = [1, 15, 16, 255, 256, 4095, 4096, 65536, 1048577];
  for (const size of sizes) await ex.write(new Uint8Array(size).fill(120));
  await ex.write(new Uint8Array(0));
  ex.end();
  assert.equal(await ex.finished(), true);
  const body = written().slice(written().indexOf("\r\n\r\n") + 4);
  const expected = "4\r\nhead\r\n" +
    sizes.map((size) => `${size.toString(16)}\r\n${"x".repeat(size)}\r\n`).join("") +
    "0\r\n\r\n";
  assert.equal(body, expected);
});

Deno.test("NativeExchange: owned chunks of a chunked answer are framed in their own buffers", async () => {
  const { markOwned } = await import("../../lib/owned_chunks.ts");
  const { ReadBufferPool } = await import("../../lib/read_buffers.ts");
  const pool = new ReadBufferPool(4096);
  const { conn, writes, buffers } = recordingConn();
  const ex = new NativeExchange(conn, scrapeHead(), { keepAliveSeconds: 5, pool });
  ex.respond(200, []);
  const owned = (offset: number, text: string) => {
    const buffer = pool.take();
    const chunk = buffer.subarray(offset, offset + text.length);
    chunk.set(new TextEncoder().encode(text));
    // Bytes behind the chunk must survive: it may end where the read did.
    buffer.fill(0x21, offset + text.length);
    return { chunk: markOwned(chunk), buffer: buffer.buffer };
  };
  // Head and size line in front of the first; size lines (and the CRLF owed)
  // in front of the next; a chunk with no room in front, and one not owned,
  // are copied; the last chunk takes the CRLF still owed.
  const first = owned(1024, "abc");
  await ex.write(first.chunk);
  const second = owned(100, "x".repeat(300));
  await ex.write(second.chunk);
  const tight = owned(2, "tight");
  await ex.write(tight.chunk);
  const third = owned(50, "third");
  await ex.write(third.chunk);
  await ex.write(new TextEncoder().encode("plain"));
  const last = owned(50, "last");
  await ex.write(last.chunk);
  ex.end();
  assert.equal(await ex.finished(), true);
  assert.equal(
    bodyOf(writes),
    `3\r\nabc\r\n12c\r\n${"x".repeat(300)}\r\n5\r\ntight\r\n5\r\nthird\r\n` +
      "5\r\nplain\r\n4\r\nlast\r\n0\r\n\r\n",
  );
  assert.equal(buffers[0], first.buffer, "framed in place");
  assert.equal(buffers[1], second.buffer);
  assert.notEqual(buffers[2], tight.buffer, "no room in front: copied");
  assert.equal(buffers[3], third.buffer);
  assert.equal(buffers[5], last.buffer);
  assert.equal(writes.length, 7);
});

Deno.test("NativeExchange: a whole answer is reused only for the same head and body", async () => {
  const PUSH = "POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n";
  const fields = Object.freeze([
    Object.freeze(["content-type", "application/x"] as const),
    Object.freeze(["content-length", "3"] as const),
  ]);
  const other = Object.freeze([
    Object.freeze(["content-type", "application/y"] as const),
    Object.freeze(["content-length", "3"] as const),
  ]);
  const abc = new TextEncoder().encode("abc");
  const xyz = new TextEncoder().encode("xyz");
  const memo: ResponseHeads = { lastHead: null };
  const answers: string[] = [];
  for (
    const [headers, body] of [
      [fields, abc],
      [fields, abc],
      [fields, xyz],
      [other, xyz],
      [fields, abc],
      [fields, "abc"],
    ] as const
  ) {
    const { exchange: ex, written } = exchange(PUSH, [], memo);
    ex.respond(200, headers);
    ex.end(body);
    assert.equal(await ex.finished(), true);
    answers.push(withoutDate(written()));
  }
  const expected = "HTTP/1.1 200 OK\r\ncontent-type: application/x\r\ncontent-length: 3\r\n" +
    "Connection: keep-alive\r\nKeep-Alive: timeout=5\r\n\r\nabc";
  assert.equal(answers[0], expected);
  assert.equal(answers[1], expected);
  assert.equal(answers[2], expected.replace("abc", "xyz"));
  assert.equal(answers[3], expected.replace("abc", "xyz").replace("/x", "/y"));
  assert.equal(answers[4], expected);
  assert.equal(answers[5], expected);
  // Chunked (no Content-Length, as a Push's answer): framed alike each time.
  const plain = Object.freeze([Object.freeze(["content-type", "application/x"] as const)]);
  const chunked: string[] = [];
  for (const body of [abc, abc, xyz, abc]) {
    const { exchange: ex, written } = exchange(PUSH, [], memo);
    ex.respond(200, plain);
    ex.end(body);
    assert.equal(await ex.finished(), true);
    chunked.push(withoutDate(written()));
  }
  const framed = "HTTP/1.1 200 OK\r\ncontent-type: application/x\r\n" +
    "Connection: keep-alive\r\nKeep-Alive: timeout=5\r\nTransfer-Encoding: chunked\r\n\r\n" +
    "3\r\nabc\r\n0\r\n\r\n";
  assert.deepEqual(chunked, [framed, framed, framed.replace("abc", "xyz"), framed]);
  assert.equal(memo.lastWhole?.body, abc);
  // A body too large to keep is sent, not kept.
  const large = new Uint8Array(4096).fill(0x61);
  const { exchange: ex, written } = exchange(PUSH, [], memo);
  ex.respond(200, [["content-length", "4096"]]);
  ex.end(large);
  assert.equal(await ex.finished(), true);
  assert.ok(written().endsWith("a".repeat(4096)));
  assert.equal(memo.lastWhole, null);
});

Deno.test("NativeExchange: a relayed Date is sent once, instead of the edge's own", async () => {
  const PUSH = "GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n";
  const memo: ResponseHeads = { lastHead: null };
  const texts: string[] = [];
  for (
    const headers of [[["date", "Tue, 01 Dec 2026 00:00:00 GMT"]], [["DATE", "x"]], []] as const
  ) {
    const { exchange: ex, written } = exchange(PUSH, [], memo);
    ex.respond(200, headers);
    ex.end("up 1\n");
    assert.equal(await ex.finished(), true);
    texts.push(written());
  }
  const dates = (text: string) => [...text.matchAll(/\r\ndate: ([^\r]*)/gi)].map((m) => m[1]);
  assert.deepEqual(dates(texts[0]!), ["Tue, 01 Dec 2026 00:00:00 GMT"]);
  assert.deepEqual(dates(texts[1]!), ["x"]);
  assert.equal(dates(texts[2]!).length, 1, "without one, the edge's own");
  assert.notEqual(dates(texts[2]!)[0], "x");
});

Deno.test("NativeExchange.writeChunk: a framed chunk as it is, only after the head with nothing owed", async () => {
  const { chunkData, chunkFrame } = await import("../../lib/http1_body.ts");
  const { markOwned } = await import("../../lib/owned_chunks.ts");
  const { ReadBufferPool } = await import("../../lib/read_buffers.ts");
  const pool = new ReadBufferPool(4096);
  const { conn, writes, buffers } = recordingConn();
  const ex = new NativeExchange(conn, scrapeHead(), { keepAliveSeconds: 5, pool });
  ex.respond(200, []);
  const chunk = (text: string) => chunkFrame(new TextEncoder().encode(text));
  // Before the head: null (the caller writes the data, with the head).
  const first = chunk("first");
  assert.equal(ex.writeChunk(first), null);
  await ex.write(chunkData(first));
  const second = chunk("x".repeat(300));
  await ex.writeChunk(second);
  // An owned chunk leaves its CRLF owed: null then, until written.
  const owned = pool.take().subarray(100, 105);
  owned.set(new TextEncoder().encode("owned"));
  await ex.write(markOwned(owned));
  const third = chunk("third");
  assert.equal(ex.writeChunk(third), null);
  await ex.write(chunkData(third));
  const last = chunk("last");
  await ex.writeChunk(last);
  ex.end();
  assert.equal(await ex.finished(), true);
  assert.equal(
    bodyOf(writes),
    `5\r\nfirst\r\n12c\r\n${"x".repeat(300)}\r\n5\r\nowned\r\n5\r\nthird\r\n` +
      "4\r\nlast\r\n0\r\n\r\n",
  );
  assert.equal(buffers[1], second.buffer, "written as it is");
  assert.equal(buffers[4], last.buffer);
  assert.equal(writes.length, 6);
  // Ended: nothing more is written.
  await ex.writeChunk(chunk("late"));
  assert.equal(writes.length, 6);
});

Deno.test("NativeExchange: writes the connection takes in parts go on; a failed write ends the exchange", async () => {
  const { ReadBufferPool } = await import("../../lib/read_buffers.ts");
  const { markOwned } = await import("../../lib/owned_chunks.ts");
  const pool = new ReadBufferPool(4096);
  let out = "";
  let fail = false;
  const conn = {
    remoteAddr: { transport: "tcp", hostname: "127.0.0.1", port: 40000 },
    write(bytes: Uint8Array) {
      if (fail) return Promise.reject(new Error("reset"));
      // At most 7 bytes a write.
      const n = Math.min(7, bytes.byteLength);
      out += new TextDecoder().decode(bytes.subarray(0, n));
      return Promise.resolve(n);
    },
    close() {},
  } as unknown as Deno.Conn;
  const ex = new NativeExchange(conn, scrapeHead(), { keepAliveSeconds: 5, pool });
  ex.respond(200, [["content-length", "60"]]);
  const buffer = pool.take();
  const piece = buffer.subarray(1024, 1054).fill(0x61);
  await ex.write(markOwned(piece));
  await ex.write(new Uint8Array(30).fill(0x62));
  ex.end();
  assert.equal(await ex.finished(), true);
  assert.ok(out.endsWith("\r\n\r\n" + "a".repeat(30) + "b".repeat(30)), out);
  // The owned piece's buffer went back to the pool once written.
  assert.equal(pool.take().buffer, buffer.buffer);

  const gone = new NativeExchange(conn, scrapeHead(), { keepAliveSeconds: 5 });
  let told = 0;
  gone.onGone(() => told++);
  gone.respond(200, []);
  fail = true;
  await gone.write(new Uint8Array(3));
  gone.end();
  assert.equal(await gone.finished(), false);
  assert.equal(gone.destroyed, true);
  assert.equal(told, 1);
});
