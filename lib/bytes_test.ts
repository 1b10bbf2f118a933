import assert from "node:assert/strict";
import { concatBytes } from "./bytes.ts";

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
