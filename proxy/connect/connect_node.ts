/**
 * connect-es on node:http: the Connect, gRPC-Web and gRPC handler of the
 * ClientService and the RegistryService, for the requests the fast path and
 * the native front door do not serve. proxy/http/server.ts imports this
 * module (and with it @connectrpc/connect-node) the first time such a
 * request comes, so that a proxy that never sees one never loads them.
 *
 * @module
 */

import type { IncomingMessage, ServerResponse } from "node:http";
import {
  Code,
  ConnectError,
  createContextValues,
  type HandlerContext,
  type Interceptor,
} from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { ClientService, RegistryService } from "../../gen/pushprox/v1/pushprox_pb.ts";
import type { Coordinator } from "../core/coordinator.ts";
import { REQUEST, type RequestContext } from "../http/request_context.ts";
import { type ClientServiceImpl, PEER_ADDRESS } from "./client_service.ts";
import { createRegistryService } from "./registry_service.ts";

/** Options for {@linkcode createConnectHandler}. */
export interface ConnectHandlerOptions {
  coordinator: Coordinator;
  /** The ClientService (the one the fast path serves too). */
  clientService: ClientServiceImpl;
  /** Largest Connect message accepted, in bytes. */
  maxMessageBytes: number;
  /** Fails calls whose authentication failed, in their own protocol. */
  interceptor: Interceptor;
  /** The request's context, made by the proxy's pipeline. */
  contextOf(req: object): RequestContext | null;
}

/** Serves one Connect, gRPC-Web or gRPC request on node:http (or node:http2's compatibility API). */
export type ConnectHandler = (req: IncomingMessage, res: ServerResponse) => void;

/**
 * Creates the connect-es handler of the proxy's services.
 *
 * @param options Services, limits, authentication.
 * @returns The handler.
 */
export function createConnectHandler(options: ConnectHandlerOptions): ConnectHandler {
  return connectNodeAdapter({
    routes(router) {
      router.service(ClientService, options.clientService);
      router.service(RegistryService, createRegistryService(options.coordinator));
    },
    readMaxBytes: options.maxMessageBytes,
    // Connect, gRPC-Web and gRPC calls are refused in their own protocol.
    interceptors: [options.interceptor],
    requestGate: reportParseErrorsAsInvalid,
    contextValues(req) {
      const context = options.contextOf(req);
      return createContextValues()
        .set(REQUEST, context)
        .set(PEER_ADDRESS, context?.peerAddress ?? "");
    },
  });
}

/**
 * Makes a request message that cannot be decoded fail with InvalidArgument
 * (HTTP 400, grpc-status 3) naming the message type, as JSON already does,
 * instead of connect-es' Internal "parse binary: …" (HTTP 500, grpc-status
 * 13), which told clients the proxy was at fault.
 *
 * connect-es (2.2) parses a unary request before any interceptor runs, so
 * no interceptor sees the error. Every protocol handler aborts the call's
 * context with the error before it serializes it, and this request gate (run
 * for every call, before its body is read) is handed that context: the
 * abort listener rewrites the error in place. An upgrade that changes this
 * order fails tests/adversarial/bad_message_test.ts, which covers each protocol.
 */
function reportParseErrorsAsInvalid(context: HandlerContext): void {
  context.signal.addEventListener("abort", () => {
    const error: unknown = context.signal.reason;
    if (
      !(error instanceof ConnectError) || error.code !== Code.Internal ||
      !error.rawMessage.startsWith("parse binary: ")
    ) {
      return;
    }
    const rawMessage = `cannot decode message ${context.method.input.typeName} from binary: ${
      error.rawMessage.slice("parse binary: ".length)
    }`;
    const mutable = error as {
      -readonly [K in "code" | "rawMessage" | "message"]: ConnectError[K];
    };
    mutable.code = Code.InvalidArgument;
    mutable.rawMessage = rawMessage;
    mutable.message = `[invalid_argument] ${rawMessage}`;
  }, { once: true });
}
