/**
 * The client's Poll on native I/O: a Connect server-streaming call (binary,
 * `application/connect+proto`) over HTTP/1.1 on its own `Deno.connect`/
 * `Deno.connectTls` connection, read envelope by envelope as the proxy
 * sends them: registration, scrape requests, heartbeats, goAway, then the
 * end-stream message with its error, if any. Failures are CallErrors with
 * the codes connect-es gives, so the poll loop (client/agent/poller.ts) treats both
 * paths alike. Used under the same rule as native push
 * (`nativePushSupported` in client/transport/native_push.ts); connect-es
 * (client/transport/proxy_transport.ts, imported only then) serves the rest.
 *
 * @module
 */

import type { MessageInitShape } from "@bufbuild/protobuf";
import type { PollRequestSchema, PollResponse } from "../../gen/pushprox/v1/pushprox_pb.ts";
import { CallCode, CallError, codeFromName } from "./call_error.ts";
import {
  decodePollResponse,
  decodePollResponseNow,
  encodePollRequest,
  recentTexts,
} from "./pushprox_codec.ts";
import {
  bodyFraming,
  BodyReader,
  ByteReader,
  Http1Error,
  readResponseHead,
  readWholeBody,
} from "../../lib/http1.ts";
import { codeFromHttpStatus, dialProxy } from "./native_push.ts";
import { errorMessage } from "../../lib/error_message.ts";

/** Opens a Poll stream; its messages until the proxy ends it. Fails with a CallError. */
export type PollStream = (
  request: MessageInitShape<typeof PollRequestSchema>,
  signal: AbortSignal,
) => AsyncIterable<PollResponse>;

/** Options for {@linkcode createNativePoll}. */
export interface NativePollOptions {
  /** The proxy's base URL without credentials (parseProxyUrl's baseUrl). */
  baseUrl: string;
  /** Connect to this address instead of resolving the host (TLS still checks the host name). */
  address?: string | null;
  /** The Authorization header, read when a stream opens; null for none. */
  authorization?: () => string | null;
  /** Largest response header block. @default {16384} */
  maxHeaderBytes?: number;
  /** Largest message accepted from the proxy. @default {1048576} */
  readMaxBytes?: number;
  /** Dials (tests). @default {dialProxy} */
  dial?: (url: URL, address: string | null) => Promise<Deno.Conn>;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const END_STREAM = 0x02;
const COMPRESSED = 0x01;

/**
 * Creates the native Poll for one proxy endpoint. Each stream has its own
 * connection, closed when the stream ends or its signal aborts.
 *
 * @param options Base URL, address, authorization and limits.
 * @returns The stream opener.
 */
export function createNativePoll(options: NativePollOptions): PollStream {
  const base = new URL(options.baseUrl);
  const path = `${base.pathname.replace(/\/+$/, "")}/pushprox.v1.ClientService/Poll`;
  const maxHeaderBytes = options.maxHeaderBytes ?? 16384;
  const readMaxBytes = options.readMaxBytes ?? 1 << 20;
  const dial = options.dial ?? dialProxy;

  return async function* poll(request, signal): AsyncGenerator<PollResponse> {
    if (signal.aborted) throw abortError(signal);
    let conn: Deno.Conn | null = null;
    let closed = false;
    const close = () => {
      if (closed || conn === null) return;
      closed = true;
      try {
        conn.close();
      } catch {
        // Already closed.
      }
    };
    signal.addEventListener("abort", close, { once: true });
    try {
      try {
        conn = await dial(base, options.address ?? null);
      } catch (error) {
        throw new CallError(
          `cannot connect to the proxy: ${errorMessage(error)}`,
          CallCode.Unavailable,
        );
      }
      if (signal.aborted) throw abortError(signal);
      const c = conn;
      const message = await encodePollRequest(request);
      const authorization = options.authorization?.() ?? null;
      const head = encoder.encode(
        `POST ${path} HTTP/1.1\r\n` +
          `host: ${base.host}\r\n` +
          "content-type: application/connect+proto\r\n" +
          "connect-protocol-version: 1\r\n" +
          `content-length: ${5 + message.byteLength}\r\n` +
          (authorization !== null ? `authorization: ${authorization}\r\n` : "") +
          "\r\n",
      );
      const out = new Uint8Array(head.byteLength + 5 + message.byteLength);
      out.set(head);
      writePrefix(out, head.byteLength, 0, message.byteLength);
      out.set(message, head.byteLength + 5);
      for (let at = 0; at < out.byteLength;) at += await c.write(out.subarray(at));

      // Reads of this size: a scrape request or heartbeat is a few hundred
      // bytes, and 16 KiB zeroed per message was garbage per scrape (issue
      // #11); a larger message takes more reads. A piece decoded whole goes
      // back to the reader for the next read (below).
      const reader = new ByteReader((b) => c.read(b), 4096);
      const response = await readResponseHead(reader, maxHeaderBytes);
      const headers = new Headers(response.headers);
      const framing = bodyFraming(response, "POST");
      if (response.status !== 200) {
        // The body (e.g. a load balancer's HTML page) is read for nothing but
        // the connection's sake; the error names status and content type.
        await readWholeBody(reader, framing, 65536).catch(() => null);
        throw new CallError(
          `HTTP ${response.status}`,
          codeFromHttpStatus(response.status),
          headers,
        );
      }
      const type = headers.get("content-type");
      if (!/^application\/connect\+proto\s*(;|$)/i.test(type ?? "")) {
        throw new CallError(
          `unsupported content type ${type}`,
          type === null ? CallCode.Unknown : CallCode.Internal,
          headers,
        );
      }
      const encoding = headers.get("connect-content-encoding");
      if (encoding !== null && encoding.toLowerCase() !== "identity") {
        throw new CallError(
          `unsupported response encoding "${encoding}"`,
          CallCode.Internal,
          headers,
        );
      }
      const body = new BodyReader(reader, framing);
      // Bytes received and not yet parsed: at most one envelope's worth.
      let pending: Uint8Array = new Uint8Array(0);
      // Whether a message decoded from `pending` may keep a view of it
      // (protobuf-es keeps unknown fields as views; the hand decoder copies).
      let viewed = false;
      // The stream's last scrape texts, taken again for equal bytes.
      const recent = recentTexts();
      for (;;) {
        // Every whole envelope in `pending`.
        let at = 0;
        while (pending.byteLength - at >= 5) {
          const flags = pending[at]!;
          const length = ((pending[at + 1]! << 24) >>> 0) + (pending[at + 2]! << 16) +
            (pending[at + 3]! << 8) + pending[at + 4]!;
          if (length > readMaxBytes) {
            throw new CallError(
              `message size ${length} is larger than configured readMaxBytes ${readMaxBytes}`,
              CallCode.ResourceExhausted,
            );
          }
          if (pending.byteLength - at - 5 < length) break;
          const data = pending.subarray(at + 5, at + 5 + length);
          at += 5 + length;
          if ((flags & COMPRESSED) !== 0) {
            throw new CallError("protocol error: received compressed message", CallCode.Internal);
          }
          if ((flags & END_STREAM) !== 0) {
            const error = endStream(data, headers);
            if (error !== null) throw error;
            if (pending.byteLength > at || !(await bodyEnded(body))) {
              throw new CallError(
                "protocol error: received extra message after EndStreamResponse",
                CallCode.InvalidArgument,
              );
            }
            return;
          }
          let decoded: PollResponse;
          try {
            const now = decodePollResponseNow(data, recent);
            if (now === null) viewed = true;
            decoded = now ?? await decodePollResponse(data);
          } catch (error) {
            throw new CallError(
              `cannot decode a PollResponse: ${errorMessage(error)}`,
              CallCode.Internal,
            );
          }
          yield decoded;
        }
        const rest = pending.subarray(at);
        // Every message in it decoded into strings: its buffer is read into again.
        if (rest.byteLength === 0 && !viewed) reader.reuse(pending);
        viewed = false;
        // The next message's bytes: read here and cut without a promise when
        // they came whole (nearly always), one async step less per message
        // than body.next() (issue #11); anything else goes its way.
        let piece = body.nextNow();
        if (piece === undefined && reader.buffered === 0 && await reader.fill()) {
          piece = body.nextNow();
        }
        if (piece === undefined) piece = await body.next();
        if (piece === null) {
          throw new CallError(
            "protocol error: missing EndStreamResponse",
            CallCode.InvalidArgument,
          );
        }
        if (rest.byteLength === 0) pending = piece;
        else {
          pending = new Uint8Array(rest.byteLength + piece.byteLength);
          pending.set(rest);
          pending.set(piece, rest.byteLength);
        }
      }
    } catch (error) {
      if (signal.aborted) throw abortError(signal);
      if (error instanceof CallError) throw error;
      throw streamError(error);
    } finally {
      signal.removeEventListener("abort", close);
      close();
    }
  };
}

/** True when the body has nothing after the end-stream message. */
async function bodyEnded(body: BodyReader): Promise<boolean> {
  try {
    return (await body.next()) === null;
  } catch {
    // Cut after the end-stream message: the call itself is complete.
    return true;
  }
}

/** The end-stream message's error, or null for success. */
function endStream(data: Uint8Array, headers: Headers): CallError | null {
  const invalid = () => new CallError("invalid end stream", CallCode.Unknown);
  let json: unknown;
  try {
    json = JSON.parse(decoder.decode(data));
  } catch {
    throw invalid();
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) throw invalid();
  const error = (json as { error?: unknown }).error;
  if (error === undefined || error === null) return null;
  if (typeof error !== "object" || Array.isArray(error)) throw invalid();
  const { code, message } = error as { code?: unknown; message?: unknown };
  if (message !== undefined && typeof message !== "string") throw invalid();
  return new CallError(
    message ?? "",
    typeof code === "string" ? codeFromName(code) : CallCode.Unknown,
    headers,
  );
}

/**
 * A socket or framing failure during the stream, as connect-node reports
 * it: the connection ending under the stream is Aborted (a proxy restart),
 * a malformed answer Internal.
 */
function streamError(error: unknown): CallError {
  const ended = (error instanceof Http1Error && error.kind === "ended") ||
    error instanceof Deno.errors.ConnectionReset ||
    error instanceof Deno.errors.ConnectionAborted ||
    error instanceof Deno.errors.BrokenPipe ||
    error instanceof Deno.errors.UnexpectedEof;
  if (ended) {
    return new CallError(
      `the proxy closed the connection: ${errorMessage(error)}`,
      CallCode.Aborted,
    );
  }
  if (error instanceof Http1Error) {
    return new CallError(`protocol error: ${error.message}`, CallCode.Internal);
  }
  return new CallError(errorMessage(error), CallCode.Unknown);
}

function writePrefix(out: Uint8Array, at: number, flags: number, length: number): void {
  out[at] = flags;
  out[at + 1] = (length >>> 24) & 0xff;
  out[at + 2] = (length >>> 16) & 0xff;
  out[at + 3] = (length >>> 8) & 0xff;
  out[at + 4] = length & 0xff;
}

/** As connect-es reports an aborted call: canceled, with the reason's message. */
function abortError(signal: AbortSignal): CallError {
  return new CallError(errorMessage(signal.reason), CallCode.Canceled);
}
