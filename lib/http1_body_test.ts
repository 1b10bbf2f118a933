import assert from "node:assert/strict";
import { BodyReader, ByteReader, chunkFrame, LAST_CHUNK, readWholeBodyNow } from "./http1.ts";
import { chunkData, chunkSizeLineLength, writeChunkSizeLine } from "./http1_body.ts";
import type { BodyFraming } from "./http1_head.ts";
import { ReadBufferPool } from "./read_buffers.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A source handing out `pieces` one per read (split at the buffer's size), counting reads. */
function source(...pieces: string[]) {
  const queue = pieces.map((p) => encoder.encode(p));
  const counter = { reads: 0 };
  const read = (buffer: Uint8Array): Promise<number | null> => {
    counter.reads++;
    const next = queue.shift();
    if (next === undefined) return Promise.resolve(null);
    const n = Math.min(next.byteLength, buffer.byteLength);
    buffer.set(next.subarray(0, n));
    if (n < next.byteLength) queue.unshift(next.subarray(n));
    return Promise.resolve(n);
  };
  return { read, counter };
}

/**
 * As the proxy's edge reads a request: one read into a small buffer (the
 * head's), then a larger reader for the body holding what is left of it.
 */
async function bodyAfterSmallRead(
  framing: BodyFraming,
  smallBytes: number,
  ...pieces: string[]
) {
  const { read, counter } = source(...pieces);
  const small = new ByteReader(read, smallBytes);
  assert.ok(await small.fill());
  const topUp = small.lastReadFull;
  const larger = new ByteReader(read, 1024);
  larger.unread(small.peek());
  const body = new BodyReader(larger, framing, { topUp });
  const out: string[] = [];
  for (let piece = await body.next(); piece !== null; piece = await body.next()) {
    out.push(decoder.decode(piece));
  }
  return { pieces: out, reads: counter.reads, rest: decoder.decode(larger.peek()) };
}

Deno.test("BodyReader topUp: the tail of a full small read goes on with the next read's bytes", async () => {
  const data = "0123456789abcdefghijklmnopqrstuvwxyz!?";
  // Length-framed, the whole body sent in one write.
  const length = await bodyAfterSmallRead({ kind: "length", length: data.length }, 16, data);
  assert.deepEqual(length.pieces, [data]);
  // Chunked: both chunks of the two reads in one piece.
  const wire = `a\r\n${data.slice(0, 10)}\r\n1c\r\n${data.slice(10)}\r\n0\r\n\r\n`;
  const chunked = await bodyAfterSmallRead({ kind: "chunked" }, 16, wire);
  assert.deepEqual(chunked.pieces, [data]);
  assert.equal(chunked.rest, "");
});

Deno.test("BodyReader topUp: no read ahead when the body ends within what is buffered", async () => {
  // A pipelined request follows; reading once more would wait for bytes
  // that are not owed (the source ends the test with null if it is asked).
  const length = await bodyAfterSmallRead({ kind: "length", length: 10 }, 16, "0123456789GET /x");
  assert.deepEqual(length.pieces, ["0123456789"]);
  assert.equal(length.reads, 1);
  assert.equal(length.rest, "GET /x");
  const chunked = await bodyAfterSmallRead(
    { kind: "chunked" },
    16,
    "5\r\nhello\r\n0\r\n\r\nG",
    "ET",
  );
  assert.deepEqual(chunked.pieces, ["hello"]);
  assert.equal(chunked.reads, 1);
  assert.equal(chunked.rest, "G");
  // Unusual framing (a chunk extension): no read ahead either.
  const extension = await bodyAfterSmallRead(
    { kind: "chunked" },
    16,
    "5;x=1\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n",
  );
  assert.deepEqual(extension.pieces, ["hello", "world"]);
});

Deno.test("BodyReader topUp: a read that did not fill its buffer goes on at once", async () => {
  // Nothing else was waiting: the first bytes are a piece of their own
  // (a streaming push is relayed as it arrives).
  const result = await bodyAfterSmallRead(
    { kind: "length", length: 20 },
    16,
    "0123456789",
    "abcdefghij",
  );
  assert.deepEqual(result.pieces, ["0123456789", "abcdefghij"]);
  // Without topUp, a full small read's tail is a piece of its own too.
  const { read } = source("0123456789abcdef", "ghij");
  const small = new ByteReader(read, 16);
  await small.fill();
  const body = new BodyReader(small, { kind: "length", length: 20 });
  assert.equal(decoder.decode((await body.next())!), "0123456789abcdef");
  assert.equal(decoder.decode((await body.next())!), "ghij");
  assert.equal(await body.next(), null);
});

Deno.test("ByteReader.recycle: the next read goes into the same buffer when nothing is buffered", async () => {
  const buffers: ArrayBufferLike[] = [];
  const queue = ["GET / HTTP/1.1\r\n", "GET /b HTTP/1.1\r\nG", "ET /c"].map((p) =>
    encoder.encode(p)
  );
  const reader = new ByteReader((buffer) => {
    buffers.push(buffer.buffer);
    const next = queue.shift();
    if (next === undefined) return Promise.resolve(null);
    buffer.set(next.subarray(0, buffer.byteLength));
    return Promise.resolve(Math.min(next.byteLength, buffer.byteLength));
  }, 32);
  assert.ok(await reader.fill());
  reader.take(reader.buffered);
  reader.recycle();
  // A prefetch (the idle watch) and its fill read into the same buffer.
  await reader.prefetch();
  assert.ok(await reader.fill());
  assert.equal(buffers[1], buffers[0]);
  assert.equal(reader.lineNow(100, "line"), "GET /b HTTP/1.1");
  // A byte still buffered ("G") keeps the buffer: the next read gets a new one.
  reader.recycle();
  await reader.prefetch();
  assert.notEqual(buffers[2], buffers[1]);
  assert.ok(await reader.fill());
  assert.equal(decoder.decode(reader.peek()), "GET /c");
});

/** A 32-byte ByteReader over `parts`, one read each, recording the buffer each read went into. */
function recordingReader(parts: string[]): { reader: ByteReader; buffers: ArrayBufferLike[] } {
  const buffers: ArrayBufferLike[] = [];
  const queue = parts.map((p) => encoder.encode(p));
  const reader = new ByteReader((buffer) => {
    buffers.push(buffer.buffer);
    const next = queue.shift();
    if (next === undefined) return Promise.resolve(null);
    buffer.set(next);
    return Promise.resolve(next.byteLength);
  }, 32);
  return { reader, buffers };
}

Deno.test("ByteReader.letGo: hands over the buffered bytes and keeps no buffer", async () => {
  const { reader, buffers } = recordingReader(["GET / HTTP/1.1\r\nrest", "more"]);
  assert.ok(reader.idle);
  assert.ok(await reader.fill());
  reader.take(16);
  reader.recycle();
  const rest = reader.letGo();
  assert.equal(decoder.decode(rest), "rest");
  assert.equal(reader.buffered, 0);
  // Taken up again: a new buffer (not the one `rest` views, nor a spare).
  assert.ok(reader.idle);
  assert.ok(await reader.fill());
  assert.notEqual(buffers[1], buffers[0]);
  assert.equal(decoder.decode(reader.peek()), "more");
  assert.equal(decoder.decode(rest), "rest");
  // A pending read, or the end, is not idle.
  reader.take(reader.buffered);
  const pending = reader.prefetch();
  assert.ok(!reader.idle);
  await pending;
  assert.ok(!await reader.fill());
  assert.ok(!reader.idle);
});

Deno.test("ByteReader.reuse: a dechunked piece given back is read into again, never while viewed", async () => {
  const { reader, buffers } = recordingReader([
    "3\r\nabc\r\n",
    "2\r\nde\r\n",
    "1\r\nf\r\n0\r\n\r\n",
    "xyz",
    "w",
  ]);
  const body = new BodyReader(reader, { kind: "chunked" });
  const first = (await body.next())!;
  assert.equal(decoder.decode(first), "abc");
  reader.reuse(first);
  // Given back: the next read goes into its buffer.
  const second = (await body.next())!;
  assert.equal(buffers[1], buffers[0]);
  assert.equal(decoder.decode(second), "de");
  // Not given back: a new buffer, the piece kept intact.
  const third = (await body.next())!;
  assert.notEqual(buffers[2], buffers[1]);
  assert.equal(decoder.decode(second), "de");
  assert.equal(decoder.decode(third), "f");
  assert.equal(await body.next(), null);
  // A piece of an older buffer, or of another one, is ignored.
  reader.reuse(second);
  reader.reuse(new Uint8Array(32));
  reader.reuse(third);
  const pending = reader.prefetch();
  assert.equal(buffers[3], buffers[2]);
  // So is one whose buffer a read is pending into.
  reader.reuse(third);
  await pending;
  assert.ok(await reader.fill());
  assert.equal(decoder.decode(reader.take(reader.buffered)), "xyz");
  await reader.prefetch();
  assert.notEqual(buffers[4], buffers[3]);
});

Deno.test("ByteReader.releaseConsumed: a pool buffer read to its end goes back to the pool", async () => {
  const pool = new ReadBufferPool(64);
  const read = source("HTTP/1.1 200 OK\r\n\r\n", "HTTP/1.1 200 OK\r\n\r\nbody").read;
  const reader = new ByteReader(read, 64, { pool, headroom: 8 });
  // The idle watch's read goes into a pool buffer.
  await reader.prefetch();
  assert.ok(await reader.fill());
  reader.releaseConsumed(); // bytes still buffered: kept
  assert.equal(pool.free, 0);
  reader.take(reader.buffered);
  reader.releaseConsumed();
  assert.equal(pool.free, 1);
  assert.equal(reader.buffered, 0);
  // Taken again by the next read; with the body behind the head, kept.
  await reader.prefetch();
  assert.equal(pool.free, 0);
  assert.ok(await reader.fill());
  reader.take(19);
  reader.releaseConsumed();
  assert.equal(pool.free, 0);
  assert.equal(decoder.decode(reader.peek()), "body");
});

Deno.test("chunkFrame() frames a chunk, after the bytes given first", () => {
  const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
  const enc = new TextEncoder();
  assert.equal(text(chunkFrame(enc.encode("abc"))), "3\r\nabc\r\n");
  assert.equal(
    text(chunkFrame(enc.encode("abc"), enc.encode("HEAD\r\n\r\n"))),
    "HEAD\r\n\r\n3\r\nabc\r\n",
  );
  const big = chunkFrame(new Uint8Array(0x12345));
  assert.equal(text(big.subarray(0, 7)), "12345\r\n");
  assert.equal(big.byteLength, 7 + 0x12345 + 2);
  assert.equal(text(LAST_CHUNK), "0\r\n\r\n");
});

Deno.test("writeChunkSizeLine() frames a chunk whole as chunkFrame() does; chunkData() reads it", () => {
  for (const size of [1, 15, 16, 255, 256, 4095, 4096, 0x12345, 1048577]) {
    const data = new Uint8Array(size).fill(120);
    const line = chunkSizeLineLength(size);
    const out = new Uint8Array(line + size + 2);
    const at = writeChunkSizeLine(out, 0, size);
    assert.equal(at, line);
    out.set(data, at);
    out.set([13, 10], at + size);
    assert.deepEqual(out, chunkFrame(data));
    assert.deepEqual(chunkData(out), data);
  }
});

/**
 * As the edge reads a request with a body: a head reader's read, its rest
 * handed to a body reader with letGo(true), the body read, then the head
 * reader taken up again (takeBack) and read into once more. Returns
 * whether that read went into the head reader's first buffer.
 */
async function headBufferAgain(framing: BodyFraming, ...pieces: string[]) {
  const { read } = source(...pieces);
  const buffers: ArrayBufferLike[] = [];
  const seen = (buffer: Uint8Array) => (buffers.push(buffer.buffer), read(buffer));
  const head = new ByteReader(seen, 16);
  assert.ok(await head.fill());
  head.take(4);
  const topUp = head.lastReadFull;
  const larger = new ByteReader(read, 1024);
  larger.unread(head.letGo(true));
  const body = new BodyReader(larger, framing, { topUp });
  const got: Uint8Array[] = [];
  for (let piece = await body.next(); piece !== null; piece = await body.next()) got.push(piece);
  head.takeBack(body.toppedUp);
  head.unread(larger.letGo());
  void head.prefetch();
  await head.fill();
  return {
    toppedUp: body.toppedUp,
    again: buffers[1] === buffers[0],
    // No piece given out is a view of the head's buffer when it is read into again.
    shared: got.some((piece) => piece.buffer === buffers[0]),
    pieces: got.map((piece) => decoder.decode(piece)),
  };
}

Deno.test("ByteReader.takeBack: the head buffer again only when no piece is a view of it", async () => {
  // The body goes on past the head's read: its first bytes are copied off
  // by the first read (topUp); the head reader reads into its buffer again.
  const long = await headBufferAgain(
    { kind: "length", length: 30 },
    "HEAD0123456789ab",
    "cdefghijklmnopqrst",
    "NEXT",
  );
  assert.deepEqual(long, {
    toppedUp: true,
    again: true,
    shared: false,
    pieces: ["0123456789abcdefghijklmnopqrst"],
  });
  // The body ends within the head's read: its piece is a view of that
  // buffer, so a fresh one is read into.
  const short = await headBufferAgain({ kind: "length", length: 12 }, "HEAD0123456789ab", "NEXT");
  assert.deepEqual(short, {
    toppedUp: false,
    again: false,
    shared: true,
    pieces: ["0123456789ab"],
  });
  // A read that did not fill its buffer: no top-up, the piece is a view.
  const partial = await headBufferAgain(
    { kind: "length", length: 10 },
    "HEAD012345",
    "6789",
    "NEXT",
  );
  assert.equal(partial.toppedUp, false);
  assert.equal(partial.again, false);
  // Nothing of the body in the head's read: its buffer is free.
  const clean = await headBufferAgain({ kind: "length", length: 4 }, "HEAD", "body", "NEXT");
  assert.equal(clean.again, true);
  assert.equal(clean.shared, false);
  assert.deepEqual(clean.pieces, ["body"]);
});

Deno.test("ByteReader.takeBack: nothing kept without letGo(true), nor after a takeBack", async () => {
  const { read } = source("HEAD0123456789ab", "cdef", "NEXT", "MORE");
  const buffers: ArrayBufferLike[] = [];
  const head = new ByteReader((buffer) => (buffers.push(buffer.buffer), read(buffer)), 16);
  await head.fill();
  head.take(16);
  head.letGo();
  head.takeBack(true);
  await head.fill();
  assert.notEqual(buffers[1], buffers[0]);
  head.take(4);
  head.letGo(true);
  head.takeBack(false);
  // (Nothing was left: the buffer is free.)
  await head.fill();
  assert.equal(buffers[2], buffers[1]);
  head.take(4);
  head.takeBack(true);
  await head.fill();
  assert.notEqual(buffers[3], buffers[2]);
});

Deno.test("ByteReader.giveBack: the lent buffer again once the piece in it came back", async () => {
  const { read } = source("HEAD012345", "6789", "NEXT");
  const buffers: ArrayBufferLike[] = [];
  const head = new ByteReader((buffer) => (buffers.push(buffer.buffer), read(buffer)), 16);
  assert.ok(await head.fill());
  head.take(4);
  const larger = new ByteReader(read, 1024);
  larger.unread(head.letGo(true));
  const body = new BodyReader(larger, { kind: "length", length: 10 });
  const first = (await body.next())!;
  // A view of the head's buffer (no top-up: the read was not full).
  assert.equal(first.buffer, buffers[0]);
  assert.equal(decoder.decode((await body.next())!), "6789");
  // Another buffer is ignored; the lent one, once its piece is written, is read into again.
  head.giveBack(new ArrayBuffer(16));
  head.giveBack(first.buffer);
  head.takeBack(false);
  head.unread(larger.letGo());
  assert.ok(await head.fill());
  assert.equal(buffers[1], buffers[0]);
  assert.equal(decoder.decode(head.peek()), "NEXT");
});

Deno.test("BodyReader dechunks a read in place, moving the shorter side over the framing", async () => {
  const chunked: BodyFraming = { kind: "chunked" };
  const read = async (wire: string, readBytes: number) => {
    const { read } = source(wire);
    const body = new BodyReader(new ByteReader(read, readBytes), chunked);
    const pieces: Uint8Array[] = [];
    for (let piece = await body.next(); piece !== null; piece = await body.next()) {
      pieces.push(piece);
    }
    return pieces;
  };
  // A read that is one chunk: its data stays where it was read.
  const [one] = await read("a\r\n0123456789\r\n0\r\n\r\n", 15);
  assert.equal(decoder.decode(one), "0123456789");
  assert.equal(one!.byteOffset, 3, "the data is not moved over its size line");
  // The end of a chunk, then a longer one: the end moves up to the next data.
  const [joined] = await read("3\r\nabc\r\n8\r\n01234567\r\n0\r\n\r\n", 21);
  assert.equal(decoder.decode(joined), "abc01234567");
  assert.equal(joined!.byteOffset, 3 + 2 + 3 + 3 - 3, "abc moved behind the next size line");
  // A longer chunk, then a short one: the short one moves down.
  const [down] = await read("8\r\n01234567\r\n3\r\nabc\r\n0\r\n\r\n", 21);
  assert.equal(decoder.decode(down), "01234567abc");
  assert.equal(down!.byteOffset, 3);

  // Random chunk sizes, split into reads at random: the same bytes, in order.
  let seed = 7;
  const random = (n: number) => (seed = (seed * 1103515245 + 12345) % 2147483648) % n;
  for (let round = 0; round < 200; round++) {
    let expected = "";
    let wire = "";
    for (let i = 0, n = 1 + random(12); i < n; i++) {
      const data = String.fromCharCode(97 + random(26)).repeat(1 + random(300));
      expected += data;
      wire += `${data.length.toString(16)}\r\n${data}\r\n`;
    }
    wire += "0\r\n\r\n";
    const pieces = await read(wire, 16 + random(700));
    assert.equal(pieces.map((p) => decoder.decode(p)).join(""), expected);
  }
});

Deno.test("BodyReader.nextNow: buffered pieces without a promise, undefined when a read is needed", async () => {
  // Content-Length: the buffered bytes at once, then a read for the rest.
  {
    const { read, counter } = source("hello ", "world");
    const reader = new ByteReader(read, 1024);
    const body = new BodyReader(reader, { kind: "length", length: 11 });
    assert.equal(body.nextNow(), undefined);
    assert.equal(counter.reads, 0);
    assert.ok(await reader.fill());
    assert.equal(decoder.decode(body.nextNow()!), "hello ");
    assert.equal(body.nextNow(), undefined);
    assert.equal(decoder.decode((await body.next())!), "world");
    assert.equal(body.nextNow(), null);
    assert.equal(await body.next(), null);
  }
  // Chunked: a size line cut short is undefined (its bytes kept), then the
  // same pieces and end as next() gives.
  for (const cut of [1, 3, 7, 12, 20]) {
    const wire = "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
    const { read } = source(wire.slice(0, cut), wire.slice(cut));
    const reader = new ByteReader(read, 1024);
    const body = new BodyReader(reader, { kind: "chunked" });
    let text = "";
    for (;;) {
      const now = body.nextNow();
      const piece = now !== undefined ? now : await body.next();
      if (piece === null) break;
      text += decoder.decode(piece);
    }
    assert.equal(text, "hello world", `cut at ${cut}`);
    assert.equal(body.done, true);
  }
  // Bad framing throws as next() would.
  {
    const { read } = source("zz\r\n");
    const reader = new ByteReader(read, 1024);
    assert.ok(await reader.fill());
    const body = new BodyReader(reader, { kind: "chunked" });
    assert.throws(() => body.nextNow(), /malformed chunk size/);
  }
});

Deno.test("BodyReader: chunk sizes with more than 8 digits of which leading zeros are read", async () => {
  // Valid HTTP (1*HEXDIG): found by tests/integration/relay_integrity_test.ts
  // with a size line of "000011422; q".
  for (
    const wire of [
      "000000005\r\nhello\r\n0000000000000005;q\r\nworld\r\n000000000\r\n\r\n",
      "00000000000A\r\n0123456789\r\n0\r\n\r\n",
    ]
  ) {
    const result = await bodyAfterSmallRead({ kind: "chunked" }, 1024, wire);
    assert.equal(
      result.pieces.join(""),
      wire.startsWith("0000000000") ? "0123456789" : "helloworld",
    );
  }
  // Still at most 8 digits of value.
  await assert.rejects(
    () => bodyAfterSmallRead({ kind: "chunked" }, 1024, "100000000\r\nx\r\n0\r\n\r\n"),
    /malformed chunk size/,
  );
});

Deno.test("readWholeBodyNow() answers at once when the chunked body is buffered to its end", async () => {
  const { read, counter } = source("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
  const reader = new ByteReader(read, 4096);
  await reader.fill();
  const body = readWholeBodyNow(reader, { kind: "chunked" }, 1024);
  assert.ok(body instanceof Uint8Array);
  assert.equal(decoder.decode(body), "hello world");
  assert.equal(counter.reads, 1);
  assert.equal(reader.buffered, 0);
  for (const [text, want] of [["5\r\nhello\r\n0\r\n\r\n", "hello"], ["0\r\n\r\n", ""]]) {
    const one = new ByteReader(source(text!).read, 4096);
    await one.fill();
    const got = readWholeBodyNow(one, { kind: "chunked" }, 1024);
    assert.ok(got instanceof Uint8Array);
    assert.equal(decoder.decode(got), want);
  }
});

Deno.test("readWholeBodyNow() reads on when the body is not all there, alike", async () => {
  for (const split of [3, 8, 14, 20, 26]) {
    const text = "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
    const { read } = source(text.slice(0, split), text.slice(split));
    const reader = new ByteReader(read, 4096);
    await reader.fill();
    const body = readWholeBodyNow(reader, { kind: "chunked" }, 1024);
    assert.equal(decoder.decode(await body), "hello world", `split at ${split}`);
  }
  // Sized, or nothing buffered yet: readWholeBody's promise.
  const sized = new ByteReader(source("abc").read, 4096);
  const answer = readWholeBodyNow(sized, { kind: "length", length: 3 }, 1024);
  assert.ok(answer instanceof Promise);
  assert.equal(decoder.decode(await answer), "abc");
});

Deno.test("readWholeBodyNow() refuses a body too large or badly framed", async () => {
  const large = new ByteReader(source("5\r\nhello\r\n0\r\n\r\n").read, 4096);
  await large.fill();
  assert.throws(() => readWholeBodyNow(large, { kind: "chunked" }, 4), /larger than 4/);
  const bad = new ByteReader(source("zz\r\nhello\r\n0\r\n\r\n").read, 4096);
  await bad.fill();
  assert.throws(() => readWholeBodyNow(bad, { kind: "chunked" }, 1024), /chunk size/);
});
