/**
 * A fast path for `ClientService.Poll` and `Push` over the Connect protocol
 * with binary protobuf (what our client speaks), written on node:http:
 * envelopes go straight to and from the socket instead of through
 * connect-es' per-call pipeline of generators, promises and signals, and
 * pushed body bytes reach the coordinator as views of the received buffers.
 * It calls the very service implementation the Connect router serves (same
 * validation, authorization, heartbeats, relay) with a handler context made
 * by connect-es; other protocols and codecs keep going through connect-es.
 *
 * @module
 */

import type { IncomingMessage } from "node:http";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  type ContextValues,
  createHandlerContext,
  type HandlerContext,
  type ServiceImpl,
} from "@connectrpc/connect";
import { parseTimeout } from "@connectrpc/connect/protocol-connect";
import {
  ClientService,
  PollRequestSchema,
  PollResponseSchema,
  PushResponseSchema,
} from "../../gen/pushprox/v1/pushprox_pb.ts";
import type { Logger } from "../../lib/logger.ts";
import type { Exchange } from "../../lib/http_exchange.ts";
import {
  encodeEndStream,
  encodeEnvelope,
  EnvelopeReader,
  readPushRequests,
} from "./connect_stream.ts";

/** The content type of the calls the fast path serves. */
export const CONTENT_TYPE = "application/connect+proto";
/** The Poll call's path. */
export const POLL_PATH = "/pushprox.v1.ClientService/Poll";
/** The Push call's path. */
export const PUSH_PATH = "/pushprox.v1.ClientService/Push";

/**
 * Whether the fast path serves this request: a POST to Poll or Push with
 * the binary Connect streaming content type and uncompressed messages.
 *
 * @param req The request.
 * @param path Its path, without the query.
 * @returns True for the fast path; false for connect-es.
 */
export function isFastClientCall(req: IncomingMessage, path: string): boolean {
  if (path !== POLL_PATH && path !== PUSH_PATH) return false;
  // HTTP/2 (the gRPC port) goes to connect-es: the fast path copies the
  // request's headers, and HTTP/2 pseudo-headers (":method") are no header
  // names (a binary Poll there failed with 500, and ended the process before).
  if (req.httpVersionMajor !== 1) return false;
  if (req.method !== "POST" || req.headers["content-type"] !== CONTENT_TYPE) return false;
  const encoding = req.headers["connect-content-encoding"];
  return encoding === undefined || encoding === "identity";
}

/** Options for {@linkcode createFastClientHandler}. */
export interface FastClientHandlerOptions {
  /** The implementation the Connect router serves. */
  service: ServiceImpl<typeof ClientService>;
  /** Largest message accepted, in bytes (`readMaxBytes` of the Connect router). */
  maxMessageBytes: number;
  logger: Logger;
}

/**
 * Serves one fast-path call (see {@linkcode isFastClientCall}), on either
 * edge (node:http or the native front door; see lib/http_exchange.ts).
 *
 * @param exchange The request and its response.
 * @param values Context values for the handler (authentication).
 * @param refusal An error to end the call with before it starts (what the
 *   Connect router's interceptors would throw), or null.
 * @returns Settles when the call has ended; rejects only on a fault of the
 *   handler itself (the proxy's edge answers those).
 */
export type FastClientHandler = (
  exchange: Exchange,
  values: ContextValues,
  refusal: ConnectError | null,
) => Promise<void>;

/**
 * Creates the fast-path handler.
 *
 * @param options The service implementation, message size limit and logger.
 * @returns The handler.
 */
export function createFastClientHandler(options: FastClientHandlerOptions): FastClientHandler {
  const { service, maxMessageBytes, logger } = options;

  return (exchange, values, refusal) => {
    const poll = exchange.target.startsWith(POLL_PATH);
    const timeout = parseTimeout(
      exchange.header("connect-timeout-ms") ?? null,
      Number.MAX_SAFE_INTEGER,
    );
    const timeoutMs = timeout.error ? undefined : timeout.timeoutMs;
    const { context, gone } = startCall(exchange, poll, values, timeoutMs);
    const call = new Call(exchange, context);
    const reader = new EnvelopeReader(exchange.body(), maxMessageBytes);
    const run = async (): Promise<void> => {
      if (timeout.error) throw timeout.error;
      if (poll) {
        const input = await reader.message();
        if (input === null) {
          throw new ConnectError(
            "protocol error: missing input message for server-streaming method",
            Code.Unimplemented,
          );
        }
        if ((await reader.message()) !== null) {
          throw new ConnectError(
            "protocol error: received extra input message for server-streaming method",
            Code.Unimplemented,
          );
        }
        let request;
        try {
          request = fromBinary(PollRequestSchema, input);
        } catch (error) {
          throw new ConnectError(
            `cannot decode message ${PollRequestSchema.typeName} from binary: ${
              (error as Error).message
            }`,
            Code.InvalidArgument,
          );
        }
        if (refusal !== null) throw refusal;
        const messages = service.poll(request, context)[Symbol.asyncIterator]();
        try {
          for (;;) {
            const next = await messages.next();
            if (next.done || gone.aborted) break;
            await call.send(
              encodeEnvelope(
                0,
                toBinary(PollResponseSchema, create(PollResponseSchema, next.value)),
              ),
            );
          }
        } finally {
          await messages.return?.(undefined);
        }
        return;
      }
      if (refusal !== null) {
        exchange.discardBody();
        throw refusal;
      }
      const result = await service.push(readPushRequests(reader), context);
      await call.send(
        encodeEnvelope(0, toBinary(PushResponseSchema, create(PushResponseSchema, result))),
      );
    };
    return (async () => {
      let error: ConnectError | undefined;
      try {
        await run();
      } catch (caught) {
        error = caught instanceof ConnectError
          ? caught
          : new ConnectError("internal error", Code.Internal, undefined, undefined, caught);
        if (!(caught instanceof ConnectError)) {
          logger.error("Fast-path call failed", { path: exchange.target, err: caught });
        }
        // Unread request bytes are read and dropped, so that the connection stays usable.
        if (!exchange.bodyEnded) exchange.discardBody();
      }
      // A call that ended well still aborts its context (its listeners
      // let go); a ready-made reason spares the DOMException, with its
      // stack trace, that abort() without one builds on every call.
      context.abort(error ?? CALL_ENDED);
      call.end(encodeEndStream(error, context.responseTrailer));
    })();
  };
}

/** The abort reason of a call's context once the call has ended without error. */
const CALL_ENDED = new ConnectError("the call has ended", Code.Canceled);

/** A handler context with its controller's `abort`. */
type CallContext = ReturnType<typeof createHandlerContext>;

/** The handler context of a call, aborted when the client goes away. */
function startCall(
  exchange: Exchange,
  poll: boolean,
  values: ContextValues,
  timeoutMs: number | undefined,
): { context: CallContext; gone: AbortSignal } {
  const controller = new AbortController();
  const onClose = () => controller.abort(new ConnectError("client went away", Code.Canceled));
  if (exchange.signal.aborted) onClose();
  else exchange.signal.addEventListener("abort", onClose, { once: true });
  const method = poll ? ClientService.method.poll : ClientService.method.push;
  const context = createHandlerContext({
    service: ClientService,
    method,
    protocolName: "connect",
    requestMethod: "POST",
    url: exchange.target,
    requestSignal: controller.signal,
    responseHeader: { "content-type": CONTENT_TYPE },
    contextValues: values,
    ...(timeoutMs === undefined ? {} : { timeoutMs }),
  });
  // The request's headers as a Headers object, built only when read: the
  // service never reads them, and building them for every call was the
  // largest allocation of a Push (about 5 KiB of garbage; issue #11).
  let requestHeader: Headers | undefined;
  Object.defineProperty(context, "requestHeader", {
    get: () => requestHeader ??= new Headers(headerPairs(exchange.rawHeaders)),
    enumerable: true,
    configurable: true,
  });
  return { context, gone: controller.signal };
}

function headerPairs(raw: readonly string[]): [string, string][] {
  const out: [string, string][] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) out.push([raw[i]!, raw[i + 1]!]);
  return out;
}

/** Writes one call's response: headers with the first bytes, back-pressure per write. */
class Call {
  readonly #exchange: Exchange;
  readonly #context: HandlerContext;
  #ended = false;
  constructor(exchange: Exchange, context: HandlerContext) {
    this.#exchange = exchange;
    this.#context = context;
  }

  #head(): void {
    if (this.#exchange.headersSent) return;
    const headers: [string, string][] = [];
    this.#context.responseHeader.forEach((value, name) => headers.push([name, value]));
    this.#exchange.respond(200, headers);
  }

  /** Writes bytes; resolves when the socket takes more (or the call ends). */
  send(bytes: Uint8Array): Promise<void> {
    const exchange = this.#exchange;
    if (exchange.destroyed || this.#ended) return Promise.resolve();
    this.#head();
    const written = exchange.write(bytes);
    const signal = this.#context.signal;
    if (signal.aborted) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const done = () => {
        signal.removeEventListener("abort", done);
        resolve();
      };
      written.then(done, done);
      signal.addEventListener("abort", done);
    });
  }

  /** Ends the response with `bytes`. */
  end(bytes: Uint8Array): void {
    const exchange = this.#exchange;
    if (exchange.destroyed || this.#ended) return;
    this.#ended = true;
    this.#head();
    exchange.end(bytes);
  }
}
