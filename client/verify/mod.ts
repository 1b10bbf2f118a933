/**
 * Streaming verification of scrape bodies: Prometheus text 0.0.4,
 * OpenMetrics text 1.0 and delimited protobuf, optionally gzip-encoded,
 * with memory that does not grow with the body.
 *
 * - {@linkcode createVerifier}: push chunks, then finish; throws a
 *   {@linkcode VerificationError} on the first problem.
 * - {@linkcode verifyStream}: a pass-through that forwards the original
 *   bytes and errors the stream when the body is invalid.
 * - {@linkcode detectExpositionFormat}: Content-Type → format.
 *
 * @example Verify a complete body
 * ```ts
 * import { createVerifier } from "./mod.ts";
 *
 * const verifier = createVerifier({
 *   contentType: "application/openmetrics-text; version=1.0.0",
 * });
 * verifier.push(new TextEncoder().encode("# TYPE up gauge\nup 1\n# EOF\n"));
 * verifier.finish();
 * ```
 *
 * @module
 */

export * from "./exposition_format.ts";
export * from "./verification_error.ts";
export * from "./verifier.ts";
export * from "./verify_stream.ts";
