/**
 * The error thrown (or used to error a stream) when a scrape body is not a
 * valid exposition.
 *
 * @module
 */

/**
 * Why verification failed.
 *
 * - `malformed`: the body is not valid in the selected exposition format.
 * - `too_large`: a configured bound (`maxBytes`, `maxLineBytes`,
 *   `maxMessageBytes`) was exceeded, so the rest was not checked.
 * - `encoding`: the body could not be decoded (corrupt gzip, unsupported
 *   `Content-Encoding`).
 */
export type VerificationErrorKind = "malformed" | "too_large" | "encoding";

/** Options for {@linkcode VerificationError}. */
export interface VerificationErrorOptions {
  /** Why verification failed. */
  kind: VerificationErrorKind;
  /** 1-based line number (text formats), when known. */
  line?: number;
  /** Byte offset into the decoded body, when known. */
  offset?: number;
  /** The underlying error, if any. */
  cause?: unknown;
}

/**
 * A scrape body failed verification. The message names the position, for
 * example `line 12: invalid metric name "1abc"` or
 * `protobuf message 3 at byte 1234: truncated varint`.
 *
 * @example Telling verification failures apart
 * ```ts
 * import { VerificationError } from "./verification_error.ts";
 *
 * const err: unknown = new VerificationError("line 1: missing value", {
 *   kind: "malformed",
 *   line: 1,
 * });
 * if (err instanceof VerificationError && err.kind === "malformed") {
 *   console.assert(err.line === 1);
 * }
 * ```
 */
export class VerificationError extends Error {
  /** Why verification failed. */
  readonly kind: VerificationErrorKind;
  /** 1-based line number (text formats), when known. */
  readonly line: number | undefined;
  /** Byte offset into the decoded body, when known. */
  readonly offset: number | undefined;

  /**
   * Creates a verification error.
   *
   * @param message What is wrong, prefixed with its position.
   * @param options Kind, position and cause.
   */
  constructor(message: string, options: VerificationErrorOptions) {
    super(
      message,
      options.cause === undefined ? undefined : { cause: options.cause },
    );
    this.name = "VerificationError";
    this.kind = options.kind;
    this.line = options.line;
    this.offset = options.offset;
  }
}
