/**
 * What a module request produces, and the stream helpers the executors
 * share: holding back the start of a verified body so that most invalid
 * bodies still get a clean 502, and gzip for generated bodies.
 *
 * @module
 */

import type { HeaderField } from "../../lib/headers.ts";
import type { ReadBufferPool } from "../../lib/read_buffers.ts";

/** The answer to a module request. */
export interface ModuleResponse {
  /** The HTTP status. */
  readonly status: number;
  /** Response header fields (forwardable ones only). */
  readonly headers: HeaderField[];
  /**
   * Empty on success. Otherwise what went wrong, naming the module, and
   * `body` is null.
   */
  readonly error: string;
  /**
   * The body. When it throws part-way, the response must be aborted (the
   * status was already sent): the body was invalid, truncated or too late.
   */
  readonly body: AsyncIterable<Uint8Array> | null;
  /**
   * The body's length, when known before it streams (the backend's
   * Content-Length of the bytes passed on unchanged).
   */
  readonly contentLength?: number;
  /**
   * True when each chunk's buffer is referenced by nothing else once
   * yielded: a consumer that has written a chunk may free its buffer at once
   * (`chunk.buffer.transfer(0)`) instead of leaving it to the GC.
   */
  readonly ownedChunks?: boolean;
  /**
   * With `ownedChunks`: the buffers the chunks were read into, and room in
   * front of each chunk. A consumer may write its framing into the bytes
   * in front of a chunk (they are free), write both as one view, and give
   * the buffer back here once written (or free it when `give` declines).
   */
  readonly readBuffers?: ReadBufferPool;
}

/** The media type of the Prometheus text format the client generates. */
export const TEXT_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

/**
 * Builds an error answer.
 *
 * @param status The HTTP status.
 * @param error The reason.
 * @returns The response.
 */
export function errorResponse(status: number, error: string): ModuleResponse {
  return { status, headers: [], error, body: null };
}

/** A body whose start has been read. */
export interface PrefetchedBody {
  /** True when the whole body was read (and so, for a verified stream, verified). */
  readonly complete: boolean;
  /** Bytes read ahead. */
  readonly bytes: number;
  /** The whole body: the bytes read ahead, then the rest as it arrives. */
  readonly body: AsyncIterable<Uint8Array>;
}

/**
 * Reads up to `windowBytes` of a stream before anything is sent. For a
 * stream from `verifyStream`, an invalid body that fails within the window
 * (nearly all garbage fails on its first line) or any body shorter than the
 * window is known to be bad before the status is sent, so it can be
 * answered with a 502; a longer body is streamed and aborted if it fails
 * later. Memory: at most `windowBytes` plus one chunk.
 *
 * @param stream The (verifying) stream.
 * @param windowBytes How much to read ahead.
 * @returns The body so far and the rest.
 * @throws The stream's error, when it fails within the window.
 */
export async function prefetch(
  stream: ReadableStream<Uint8Array>,
  windowBytes: number,
): Promise<PrefetchedBody> {
  const reader = stream.getReader();
  const chunks: Uint8Array[] = [];
  let bytes = 0;
  try {
    while (bytes < windowBytes) {
      const { done, value } = await reader.read();
      if (done) {
        reader.releaseLock();
        return { complete: true, bytes, body: chunksOf(chunks) };
      }
      chunks.push(value);
      bytes += value.byteLength;
    }
  } catch (error) {
    reader.releaseLock();
    throw error;
  }
  return { complete: false, bytes, body: rest(chunks, reader) };
}

async function* chunksOf(chunks: Uint8Array[]): AsyncGenerator<Uint8Array> {
  while (chunks.length > 0) yield chunks.shift()!;
}

async function* rest(
  chunks: Uint8Array[],
  reader: ReadableStreamDefaultReader<Uint8Array>,
): AsyncGenerator<Uint8Array> {
  let done = false;
  try {
    while (chunks.length > 0) yield chunks.shift()!;
    for (;;) {
      const next = await reader.read();
      if (next.done) {
        done = true;
        return;
      }
      yield next.value;
    }
  } finally {
    // Stopped early (consumer gone) or failed: release the source.
    if (!done) reader.cancel().catch(() => {});
  }
}

/**
 * Calls `onEnd` once when a body has been fully consumed, failed, or was
 * abandoned by its consumer (`return()`, as a `for await` that stops early
 * calls it).
 *
 * A plain iterator rather than an async generator: it adds one promise
 * reaction per chunk, not a generator's resumptions.
 *
 * @param body The body.
 * @param onEnd Receives the error, or undefined on success.
 * @returns The same bytes.
 */
export function observeBody(
  body: AsyncIterable<Uint8Array>,
  onEnd: (error: unknown) => void,
): AsyncIterableIterator<Uint8Array> {
  let source: AsyncIterator<Uint8Array> | undefined;
  let ended = false;
  const end = (error: unknown) => {
    if (ended) return;
    ended = true;
    onEnd(error);
  };
  const DONE: IteratorReturnResult<undefined> = { done: true, value: undefined };
  const passOn = (result: IteratorResult<Uint8Array>): IteratorResult<Uint8Array> => {
    if (result.done) end(undefined);
    return result;
  };
  const fail = (error: unknown): never => {
    end(error);
    throw error;
  };
  return {
    next(): Promise<IteratorResult<Uint8Array>> {
      if (ended) return Promise.resolve(DONE);
      source ??= body[Symbol.asyncIterator]();
      let pending;
      try {
        pending = source.next();
      } catch (error) {
        end(error);
        return Promise.reject(error);
      }
      return pending.then(passOn, fail);
    },
    async return(): Promise<IteratorResult<Uint8Array>> {
      if (ended) return DONE;
      end(new Error("the body was abandoned before its end"));
      // Stopped early: release the source.
      await source?.return?.();
      return DONE;
    },
    [Symbol.asyncIterator]() {
      return this;
    },
  };
}

/**
 * Says whether an Accept-Encoding header allows gzip.
 *
 * @param headers The request's header fields.
 * @returns True when gzip is acceptable.
 */
export function acceptsGzip(headers: readonly HeaderField[]): boolean {
  for (const { name, value } of headers) {
    if (name.toLowerCase() !== "accept-encoding") continue;
    for (const part of value.split(",")) {
      const [coding, ...params] = part.trim().toLowerCase().split(";");
      if (coding !== "gzip" && coding !== "x-gzip") continue;
      const q = params.map((p) => p.trim()).find((p) => p.startsWith("q="));
      if (q === undefined || Number(q.slice(2)) > 0) return true;
    }
  }
  return false;
}

/**
 * Gzips a generated body as it streams.
 *
 * @param body The plain body.
 * @returns The gzip-encoded body.
 */
export function gzipBody(body: AsyncIterable<Uint8Array>): AsyncIterable<Uint8Array> {
  return ReadableStream.from(body).pipeThrough(
    new CompressionStream("gzip") as unknown as TransformStream<Uint8Array, Uint8Array>,
  );
}
