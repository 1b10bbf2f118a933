import assert from "node:assert/strict";
import { create, toBinary } from "@bufbuild/protobuf";
import { PushResponseSchema } from "../../gen/pushprox/v1/pushprox_pb.ts";
import { encodePushResponse } from "./wire_codec.ts";

/** A deterministic generator (mulberry32), so that a failure can be replayed. */
function random(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

Deno.test("encodePushResponse() writes the bytes protobuf-es writes", () => {
  const next = random(7);
  const values = [0n, 1n, 127n, 128n, 16383n, 16384n, 2n ** 53n - 1n, 2n ** 53n, 2n ** 64n - 1n];
  for (let i = 0; i < 5000; i++) {
    // Magnitudes from 1 byte to 2^64.
    values.push(BigInt.asUintN(64, BigInt(Math.floor(next() * 2 ** 32)) << BigInt(i % 33)));
  }
  for (const bytesRelayed of values) {
    assert.deepEqual(
      encodePushResponse({ bytesRelayed }),
      toBinary(PushResponseSchema, create(PushResponseSchema, { bytesRelayed })),
      String(bytesRelayed),
    );
  }
});
