/**
 * A verifying pass-through for scrape bodies.
 *
 * @module
 */

import { VerificationError } from "./verification_error.ts";
import { createVerifier, type VerifierOptions } from "./verifier.ts";
import { errorMessage } from "../../lib/error_message.ts";

/** Options for {@linkcode verifyStream}. */
export interface VerifyStreamOptions extends VerifierOptions {
  /**
   * The Content-Encoding of the body bytes. `gzip`/`x-gzip` and `deflate`
   * are decompressed (as a stream, for verification only); missing, empty
   * and `identity` mean the bytes are verified as they are. Any other value
   * fails verification with an `encoding` error.
   *
   * @default {undefined}
   */
  contentEncoding?: string | null | undefined;
}

type Decompression = "gzip" | "deflate" | undefined;

function decompressionFor(encoding: string | null | undefined): Decompression {
  const value = (encoding ?? "").trim().toLowerCase();
  if (value === "" || value === "identity") return undefined;
  if (value === "gzip" || value === "x-gzip") return "gzip";
  if (value === "deflate") return "deflate";
  throw new VerificationError(
    `cannot verify a body with Content-Encoding ${JSON.stringify(encoding)}`,
    { kind: "encoding" },
  );
}

function asEncodingError(error: unknown, format: string): unknown {
  if (error instanceof VerificationError) return error;
  const reason = errorMessage(error);
  return new VerificationError(`invalid ${format} data: ${reason}`, {
    kind: "encoding",
    cause: error,
  });
}

/**
 * Passes a body through unchanged while verifying it.
 *
 * The returned stream yields the original bytes (still compressed, if they
 * were). When the body is invalid, the returned stream errors with a
 * {@linkcode VerificationError} instead of closing, and the source is
 * cancelled. The last chunk is held back until verification of the whole
 * body has succeeded, so a consumer never sees a complete body that failed
 * verification, even when it forwards a Content-Length.
 *
 * Memory stays bounded: one held-back chunk plus the verifier's state (see
 * {@linkcode createVerifier}); gzip is decompressed incrementally with
 * `DecompressionStream` and the decompressed bytes are discarded once
 * checked.
 *
 * @param body The body to verify.
 * @param options Content type, content encoding and bounds.
 * @returns The same bytes, erroring on the first verification problem.
 * @throws {RangeError} When a bound is not a positive integer.
 *
 * @example Verifying a fetched body while forwarding it
 * ```ts ignore
 * import { verifyStream } from "./verify_stream.ts";
 *
 * const upstream = await fetch("http://localhost:9100/metrics");
 * const checked = verifyStream(upstream.body!, {
 *   contentType: upstream.headers.get("content-type"),
 *   contentEncoding: upstream.headers.get("content-encoding"),
 *   maxBytes: 64 * 1024 * 1024,
 * });
 * const response = new Response(checked, { headers: upstream.headers });
 * ```
 */
export function verifyStream(
  body: ReadableStream<Uint8Array>,
  options: VerifyStreamOptions = {},
): ReadableStream<Uint8Array> {
  const verifier = createVerifier(options);
  let decompression: Decompression;
  let setupError: unknown;
  try {
    decompression = decompressionFor(options.contentEncoding);
  } catch (error) {
    setupError = error;
  }

  let held: Uint8Array | undefined;
  let writer: WritableStreamDefaultWriter<BufferSource> | undefined;
  let pump: Promise<void> | undefined;
  let failure: unknown;
  let cancelled = false;

  const transform = new TransformStream<Uint8Array, Uint8Array>({
    start(controller) {
      if (setupError !== undefined) {
        controller.error(setupError);
        return;
      }
      if (decompression === undefined) return;
      const stream = new DecompressionStream(decompression);
      const sink = stream.writable.getWriter();
      // Keep the writer's rejections from surfacing as unhandled; the pump
      // below reports the same failure from the readable side.
      sink.closed.catch(() => {});
      writer = sink;
      const format = decompression;
      pump = (async () => {
        try {
          for await (const chunk of stream.readable) verifier.push(chunk);
        } catch (error) {
          if (cancelled) return;
          failure = asEncodingError(error, format);
          controller.error(failure);
          writer?.abort(failure).catch(() => {});
        }
      })();
    },
    async transform(chunk, controller) {
      if (failure !== undefined) throw failure;
      if (writer === undefined) {
        verifier.push(chunk);
      } else {
        try {
          await writer.write(chunk as Uint8Array<ArrayBuffer>);
        } catch (error) {
          await pump;
          throw failure ?? asEncodingError(error, decompression ?? "");
        }
      }
      if (held !== undefined) controller.enqueue(held);
      held = chunk;
    },
    async flush(controller) {
      if (writer !== undefined) {
        try {
          await writer.close();
        } catch (error) {
          failure ??= asEncodingError(error, decompression ?? "");
        }
        await pump;
        if (failure !== undefined) throw failure;
      }
      verifier.finish();
      if (held !== undefined) controller.enqueue(held);
      held = undefined;
    },
    async cancel(reason) {
      cancelled = true;
      held = undefined;
      if (writer !== undefined) {
        await writer.abort(reason).catch(() => {});
        await pump;
      }
    },
  });
  return body.pipeThrough(transform);
}
