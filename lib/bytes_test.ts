import assert from "node:assert/strict";
import { concatBytes, joinBytes } from "./bytes.ts";

Deno.test("concatBytes() joins parts in order into a new array", () => {
  const a = new Uint8Array([1, 2, 3]).subarray(1);
  const b = new Uint8Array([4]);
  const joined = concatBytes([a, new Uint8Array(0), b]);
  assert.deepEqual([...joined], [2, 3, 4]);
  joined[0] = 9;
  assert.equal(a[0], 2, "a copy, not a view");
  assert.deepEqual([...concatBytes([b])], [4]);
  assert.notEqual(concatBytes([b]).buffer, b.buffer);
  assert.equal(concatBytes([]).byteLength, 0);
});

Deno.test("joinBytes() keeps a single part and joins several", () => {
  const one = new Uint8Array([1, 2]);
  assert.equal(joinBytes([one]), one);
  const joined = joinBytes([one, new Uint8Array([3])]);
  assert.notEqual(joined, one);
  assert.deepEqual([...joined], [1, 2, 3]);
});
