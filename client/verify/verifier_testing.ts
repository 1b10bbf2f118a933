/**
 * What the verifier tests share: sample bodies in each format and ways to
 * verify a body whole, in chunks, or expecting an error.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  counterFamily,
  delimited,
  histogramFamily,
  OPENMETRICS_CONTENT_TYPE,
  PROTOBUF_CONTENT_TYPE,
  TEXT_CONTENT_TYPE,
} from "./_testing.ts";
import { VerificationError } from "./verification_error.ts";
import { createVerifier, type VerifierOptions } from "./verifier.ts";

export const ENCODER = new TextEncoder();

export const TEXT_SAMPLE = await Deno.readFile(
  new URL("./testdata/text_valid.prom", import.meta.url),
);

export const OPENMETRICS_SAMPLE = await Deno.readFile(
  new URL("./testdata/openmetrics_valid.om", import.meta.url),
);

export const HTML_PAGE = await Deno.readFile(
  new URL("./testdata/error_page.txt", import.meta.url),
);

export const PROTOBUF_SAMPLE = delimited(
  counterFamily("http_requests_total", [1027, 3]),
  histogramFamily("request_duration_seconds"),
  counterFamily("empty_family", []),
);

export const TEXT: VerifierOptions = { contentType: TEXT_CONTENT_TYPE };

export const OM: VerifierOptions = { contentType: OPENMETRICS_CONTENT_TYPE };

export const PROTO: VerifierOptions = { contentType: PROTOBUF_CONTENT_TYPE };

export function bytesOf(body: Uint8Array | string): Uint8Array {
  return typeof body === "string" ? ENCODER.encode(body) : body;
}

export function verifyChunks(chunks: Uint8Array[], options: VerifierOptions): void {
  const verifier = createVerifier(options);
  for (const chunk of chunks) verifier.push(chunk);
  verifier.finish();
}

export function verify(body: Uint8Array | string, options: VerifierOptions): void {
  verifyChunks([bytesOf(body)], options);
}

export function failure(
  fn: () => void,
): VerificationError {
  try {
    fn();
  } catch (error) {
    assert.ok(
      error instanceof VerificationError,
      `expected a VerificationError, got ${error}`,
    );
    return error;
  }
  assert.fail("expected verification to fail");
}

export function verifyError(
  body: Uint8Array | string,
  options: VerifierOptions,
): VerificationError {
  return failure(() => verify(body, options));
}

export function splitAt(bytes: Uint8Array, cuts: number[]): Uint8Array[] {
  const chunks: Uint8Array[] = [];
  let last = 0;
  for (const cut of cuts) {
    chunks.push(bytes.subarray(last, cut));
    last = cut;
  }
  chunks.push(bytes.subarray(last));
  return chunks;
}
