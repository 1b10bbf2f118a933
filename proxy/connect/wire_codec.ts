/**
 * Hand-written protobuf encoders and decoders for the few messages the
 * fast path (fast_client_service.ts) handles once per scrape, where
 * protobuf-es' reflection-driven codec was a few percent of the proxy's
 * CPU per scrape (issue #11). Each produces the very bytes (or message)
 * protobuf-es does — wire_codec_test.ts compares them on randomized
 * messages — and leaves anything unusual to protobuf-es.
 *
 * @module
 */

import { create, toBinary } from "@bufbuild/protobuf";
import { PushResponseSchema } from "../../gen/pushprox/v1/pushprox_pb.ts";

/**
 * A `PushResponse`, encoded.
 *
 * @param result The bytes relayed.
 * @returns The message's bytes, as protobuf-es' `toBinary` writes them.
 */
export function encodePushResponse(result: { bytesRelayed: bigint }): Uint8Array {
  const relayed = result.bytesRelayed;
  if (relayed < 0n || relayed > BigInt(Number.MAX_SAFE_INTEGER)) {
    return toBinary(PushResponseSchema, create(PushResponseSchema, result));
  }
  let value = Number(relayed);
  // proto3: a zero field is not written.
  if (value === 0) return new Uint8Array(0);
  const out = new Uint8Array(1 + varintLength(value));
  out[0] = 0x08; // field 1, varint
  writeVarint(out, 1, value);
  return out;
}

/** Bytes of a varint for a safe non-negative integer. */
function varintLength(value: number): number {
  let length = 1;
  while (value >= 0x80) {
    value = Math.floor(value / 0x80);
    length++;
  }
  return length;
}

/** Writes a varint for a safe non-negative integer at `at`; returns the index after it. */
function writeVarint(out: Uint8Array, at: number, value: number): number {
  while (value >= 0x80) {
    out[at++] = (value % 0x80) | 0x80;
    value = Math.floor(value / 0x80);
  }
  out[at++] = value;
  return at;
}
