import assert from "node:assert/strict";
import { ReadBufferPool } from "./read_buffers.ts";

Deno.test("ReadBufferPool: a buffer given back is taken again; others are left alone", () => {
  const pool = new ReadBufferPool(16, 2);
  const first = pool.take();
  assert.equal(first.byteLength, 16);
  assert.equal(pool.free, 0);
  pool.give(first.buffer);
  pool.give(first.buffer); // twice: kept once
  assert.equal(pool.free, 1);
  assert.equal(pool.take().buffer, first.buffer);
  // Another size, a detached buffer, a shared one: not kept.
  pool.give(new ArrayBuffer(32));
  const detached = new ArrayBuffer(16);
  detached.transfer(0);
  pool.give(detached);
  pool.give(new SharedArrayBuffer(16));
  assert.equal(pool.free, 0);
  // At most `max` kept.
  for (let i = 0; i < 3; i++) pool.give(new ArrayBuffer(16));
  assert.equal(pool.free, 2);
});

Deno.test("ByteReader reads into its pool's buffers, and only bytes read are handed out", async () => {
  const { ByteReader } = await import("./http1.ts");
  const pool = new ReadBufferPool(16);
  const stale = pool.take();
  stale.fill(0x78); // "x": a recycled buffer's old bytes
  pool.give(stale.buffer);
  const pieces = [new TextEncoder().encode("abc")];
  const reader = new ByteReader(
    (buffer) => {
      const next = pieces.shift();
      if (next === undefined) return Promise.resolve(null);
      buffer.set(next);
      return Promise.resolve(next.byteLength);
    },
    16,
    { pool },
  );
  const piece = await reader.readSome(100);
  assert.equal(piece?.buffer, stale.buffer);
  assert.equal(new TextDecoder().decode(piece!), "abc");
  assert.equal(await reader.readSome(100), null);
  // A pool of another size is not used.
  const other = new ByteReader(() => Promise.resolve(1), 32, { pool });
  pool.give(stale.buffer);
  assert.ok(await other.fill());
  assert.equal(pool.free, 1);
});

Deno.test("ByteReader leaves its headroom free at the start of each pool buffer", async () => {
  const { ByteReader } = await import("./http1.ts");
  const pool = new ReadBufferPool(64);
  const sizes: number[] = [];
  const reader = new ByteReader(
    (buffer) => {
      sizes.push(buffer.byteLength);
      buffer.fill(0x61);
      return Promise.resolve(buffer.byteLength);
    },
    64,
    { pool, headroom: 16 },
  );
  const piece = (await reader.readSome(1000))!;
  assert.equal(piece.byteOffset, 16);
  assert.equal(piece.byteLength, 48);
  assert.ok(await reader.fill());
  assert.equal(reader.peek().byteOffset, 16);
  assert.deepEqual(sizes, [48, 48]);
});

Deno.test("ByteReader prefetches a large read into a pool buffer behind the headroom", async () => {
  const { ByteReader } = await import("./http1.ts");
  const pool = new ReadBufferPool(64);
  const given = pool.take();
  pool.give(given.buffer);
  const reads: Uint8Array[] = [];
  const reader = new ByteReader(
    (buffer) => {
      reads.push(buffer);
      buffer.fill(0x61);
      return Promise.resolve(buffer.byteLength);
    },
    64,
    { pool, headroom: 8 },
  );
  // Above a quarter of the read size: the pool's buffer, behind the headroom.
  await reader.prefetch(40);
  assert.ok(await reader.fill());
  assert.equal(reads[0]!.buffer, given.buffer);
  assert.equal(reader.peek().byteOffset, 8);
  assert.equal(reader.peek().byteLength, 40);
  reader.take(40);
  // A small read (an idle connection's for a small answer): a new buffer.
  await reader.prefetch(16);
  assert.ok(await reader.fill());
  assert.equal(reads[1]!.buffer.byteLength, 16);
  assert.equal(pool.free, 0);
});
