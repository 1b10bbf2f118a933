/**
 * A push-based, streaming verifier for scrape bodies: Prometheus text 0.0.4,
 * OpenMetrics text 1.0 and delimited protobuf.
 *
 * @module
 */

import { ProtobufChecker } from "./_protobuf_checker.ts";
import { TextChecker } from "./_text_checker.ts";
import { detectExpositionFormat, type ExpositionFormat } from "./exposition_format.ts";
import { VerificationError } from "./verification_error.ts";

/** Options for {@linkcode createVerifier}. */
export interface VerifierOptions {
  /**
   * The Content-Type of the body; selects the format (see
   * {@linkcode detectExpositionFormat}).
   *
   * @default {undefined} (Prometheus text format 0.0.4)
   */
  contentType?: string | null | undefined;
  /**
   * The most body bytes to verify (after content decoding). A longer body
   * fails with a `too_large` {@linkcode VerificationError}; this is the
   * `--verify.max-bytes` bound.
   *
   * @default {Infinity}
   */
  maxBytes?: number | undefined;
  /**
   * The longest accepted text line in bytes. Memory for the text formats is
   * bounded by this value.
   *
   * @default {1048576} (1 MiB)
   */
  maxLineBytes?: number | undefined;
  /**
   * The largest accepted protobuf MetricFamily message in bytes. Memory for
   * the protobuf format is bounded by this value.
   *
   * @default {16777216} (16 MiB)
   */
  maxMessageBytes?: number | undefined;
  /**
   * How many metric-family names the text checkers remember to detect a
   * duplicate `# TYPE` or metadata after samples. Beyond this number the
   * checks only cover the current family, so memory stays bounded even for
   * bodies with millions of families.
   *
   * @default {100000}
   */
  maxFamilies?: number | undefined;
}

/**
 * Verifies one body, fed in chunks. Memory does not grow with the body: the
 * verifier keeps at most the current partial line (text formats) or the
 * current message (protobuf).
 *
 * After the first error every later call throws that same error.
 */
export interface Verifier {
  /** The format being verified. */
  readonly format: ExpositionFormat;
  /** Bytes pushed so far. */
  readonly bytesVerified: number;
  /**
   * Verifies the next chunk.
   *
   * @param chunk The next body bytes (already content-decoded).
   * @throws {VerificationError} On the first problem found.
   * @throws {TypeError} After {@linkcode Verifier.finish} was called.
   */
  push(chunk: Uint8Array): void;
  /**
   * Verifies the end of the body (last line, `# EOF`, truncation).
   *
   * @throws {VerificationError} When the body is invalid or truncated.
   */
  finish(): void;
}

const DEFAULT_MAX_LINE_BYTES = 1024 * 1024;
const DEFAULT_MAX_MESSAGE_BYTES = 16 * 1024 * 1024;
const DEFAULT_MAX_FAMILIES = 100_000;

function positiveInteger(
  name: string,
  value: number | undefined,
  fallback: number,
): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value <= 0) {
    throw new RangeError(
      `Cannot create verifier: ${name} must be a positive integer, current value is ${value}`,
    );
  }
  return value;
}

interface Checker {
  push(chunk: Uint8Array): void;
  finish(): void;
}

class StreamingVerifier implements Verifier {
  readonly format: ExpositionFormat;
  readonly #checker: Checker;
  readonly #maxBytes: number;
  #bytes = 0;
  #error: unknown;
  #finished = false;

  constructor(format: ExpositionFormat, checker: Checker, maxBytes: number) {
    this.format = format;
    this.#checker = checker;
    this.#maxBytes = maxBytes;
  }

  get bytesVerified(): number {
    return this.#bytes;
  }

  push(chunk: Uint8Array): void {
    if (this.#error !== undefined) throw this.#error;
    if (this.#finished) {
      throw new TypeError("Cannot push: the verifier is already finished");
    }
    if (this.#bytes + chunk.length > this.#maxBytes) {
      this.#error = new VerificationError(
        `body exceeds the verification limit of ${this.#maxBytes} bytes`,
        { kind: "too_large", offset: this.#maxBytes },
      );
      throw this.#error;
    }
    try {
      this.#checker.push(chunk);
    } catch (error) {
      this.#error = error;
      throw error;
    }
    this.#bytes += chunk.length;
  }

  finish(): void {
    if (this.#error !== undefined) throw this.#error;
    if (this.#finished) return;
    try {
      this.#checker.finish();
    } catch (error) {
      this.#error = error;
      throw error;
    }
    this.#finished = true;
  }
}

/**
 * Creates a streaming verifier for one scrape body.
 *
 * The verifier checks syntax, not semantics: metric and label names, label
 * escaping, float values, timestamps, `# HELP`/`# TYPE`/`# UNIT` lines
 * (a `# TYPE` must precede the family's samples, duplicates are errors),
 * OpenMetrics exemplars and the `# EOF` terminator, and the protobuf wire
 * structure of each MetricFamily. It does not check histogram bucket order,
 * counter monotonicity or duplicate series.
 *
 * The bytes pushed must already be content-decoded; use
 * {@linkcode verifyStream} for gzip bodies.
 *
 * @param options Format and bounds.
 * @returns A verifier to push the body through.
 * @throws {RangeError} When a bound is not a positive integer.
 *
 * @example Verifying a text body in two chunks
 * ```ts
 * import { createVerifier } from "./verifier.ts";
 *
 * const verifier = createVerifier({ contentType: "text/plain; version=0.0.4" });
 * const bytes = new TextEncoder().encode("# TYPE up gauge\nup 1\n");
 * verifier.push(bytes.subarray(0, 10));
 * verifier.push(bytes.subarray(10));
 * verifier.finish();
 * ```
 */
export function createVerifier(options: VerifierOptions = {}): Verifier {
  const maxBytes = options.maxBytes ?? Infinity;
  if (
    !(maxBytes === Infinity ||
      (Number.isSafeInteger(maxBytes) && maxBytes >= 0))
  ) {
    throw new RangeError(
      `Cannot create verifier: maxBytes must be a non-negative integer or Infinity, current value is ${maxBytes}`,
    );
  }
  const maxLineBytes = positiveInteger(
    "maxLineBytes",
    options.maxLineBytes,
    DEFAULT_MAX_LINE_BYTES,
  );
  const maxMessageBytes = positiveInteger(
    "maxMessageBytes",
    options.maxMessageBytes,
    DEFAULT_MAX_MESSAGE_BYTES,
  );
  const maxFamilies = positiveInteger(
    "maxFamilies",
    options.maxFamilies,
    DEFAULT_MAX_FAMILIES,
  );
  const format = detectExpositionFormat(options.contentType);
  const checker: Checker = format === "protobuf"
    ? new ProtobufChecker({ maxMessageBytes })
    : new TextChecker({
      openMetrics: format === "openmetrics",
      maxLineBytes,
      maxFamilies,
    });
  return new StreamingVerifier(format, checker, maxBytes);
}
