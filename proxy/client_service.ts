/**
 * The Connect adapter for clients: `Poll` registers a client and streams
 * scrapes and heartbeats to it; `Push` relays a scrape's answer.
 *
 * @module
 */

import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import type { MessageInitShape } from "@bufbuild/protobuf";
import {
  ClientService,
  type PollResponseSchema,
  type PushRequest,
} from "../gen/pushprox/v1/pushprox_pb.ts";
import type { Logger } from "../lib/logger.ts";
import { type Coordinator, CoordinatorError } from "./coordinator.ts";
import { fqdnProblem, labelsProblem, modulesProblem } from "./identity.ts";
import type { ProxyMetrics } from "./metrics.ts";

/** Options for {@linkcode createClientService}. */
export interface ClientServiceOptions {
  coordinator: Coordinator;
  logger: Logger;
  metrics: ProxyMetrics;
  /** Interval of heartbeats on idle Poll streams. */
  heartbeatIntervalMs: number;
  /**
   * Decides whether the caller may register `fqdn`: returns its credential
   * (bound to the fqdn while the stream is open) or throws a ConnectError.
   * @default {everyone may register anything; no credential}
   */
  authorizeRegistration?: (
    context: HandlerContext,
    fqdn: string,
  ) => { credential: string; name: string };
  /**
   * Told when a push's head matched a scrape and its body is being relayed:
   * the scrape's deadline bounds it from then on.
   */
  bodyBound?: (context: HandlerContext) => void;
  /** The credential a push was made with, checked against the scrape's stream. */
  pushCredential?: (context: HandlerContext) => string | null;
  /**
   * Checks, at every heartbeat, that the stream's credential still allows
   * `fqdn`; a reason ends the stream with PermissionDenied (revoked or
   * expired tokens, a narrowed auth configuration).
   */
  revalidate?: (context: HandlerContext, fqdn: string) => Promise<string | null>;
}

/**
 * Creates the ClientService implementation.
 *
 * @param options Coordinator, logger, metrics and heartbeat interval.
 * @returns The service implementation for a Connect router.
 */
export function createClientService(
  options: ClientServiceOptions,
): ServiceImpl<typeof ClientService> {
  const { coordinator, logger, metrics, heartbeatIntervalMs } = options;

  return {
    async *poll(
      request,
      context,
    ): AsyncGenerator<MessageInitShape<typeof PollResponseSchema>> {
      const problem = fqdnProblem(request.fqdn) ??
        labelsProblem(request.labels) ??
        modulesProblem(request.modules);
      if (problem !== null) {
        throw new ConnectError(
          `Cannot register: ${problem}`,
          Code.InvalidArgument,
        );
      }

      if (request.proxies.length > 64 || request.proxies.some((p) => p.length > 512)) {
        throw new ConnectError(
          "Cannot register: more than 64 proxies, or one longer than 512 characters",
          Code.InvalidArgument,
        );
      }
      const grant = options.authorizeRegistration?.(context, request.fqdn) ?? null;
      let session;
      try {
        session = coordinator.register({
          fqdn: request.fqdn,
          labels: request.labels,
          version: request.version,
          modules: request.modules,
          protocol: "connect",
          proxies: request.proxies,
        }, grant === null ? {} : { credential: grant.credential });
      } catch (error) {
        if (error instanceof CoordinatorError && error.kind === "draining") {
          throw new ConnectError(`Cannot register: ${error.message}`, Code.Unavailable);
        }
        if (error instanceof CoordinatorError && error.kind === "credential_mismatch") {
          metrics.authFailures.inc({ role: "client", reason: "forbidden" });
          logger.warn("Registration refused: fqdn held by another credential", {
            fqdn: request.fqdn,
            credential: grant?.name,
          });
          throw new ConnectError(`Cannot register: ${error.message}`, Code.PermissionDenied);
        }
        if (error instanceof CoordinatorError && error.kind === "too_many_clients") {
          metrics.limitHits.inc({ limit: "clients" });
          logger.warn("Registration refused", { fqdn: request.fqdn, err: error.message });
          throw new ConnectError(error.message, Code.ResourceExhausted);
        }
        throw error;
      }
      metrics.registrations.inc();
      const log = logger.with({
        fqdn: request.fqdn,
        session: session.id.slice(0, 8),
      });
      log.info("Client registered", { version: request.version || undefined });
      try {
        yield {
          message: {
            case: "registered",
            value: { sessionId: session.id, heartbeatIntervalMs },
          },
        };
        while (!context.signal.aborted) {
          // One timer per beat, cleared when a scrape comes first (cheaper
          // than AbortSignal.any with AbortSignal.timeout at 10,000 streams).
          const beat = new AbortController();
          const endBeat = () => beat.abort();
          const timer = setTimeout(endBeat, heartbeatIntervalMs);
          context.signal.addEventListener("abort", endBeat, { once: true });
          let task;
          try {
            task = await session.next(beat.signal);
          } catch (error) {
            if (error instanceof CoordinatorError && error.kind === "replaced") {
              log.info("Client stream replaced by a newer one");
              // A typed error, so that a second live client with the same
              // fqdn backs off instead of taking the name back at once.
              throw new ConnectError(
                `Another stream registered as "${request.fqdn}" replaced this one`,
                Code.AlreadyExists,
              );
            }
            if (error instanceof CoordinatorError && error.kind === "draining") {
              log.info("Telling the client to go away: shutting down");
              yield { message: { case: "goAway", value: { reason: "shutting down" } } };
              return;
            }
            throw error;
          } finally {
            clearTimeout(timer);
            context.signal.removeEventListener("abort", endBeat);
          }
          if (context.signal.aborted) break;
          if (task === null) {
            const revoked = await options.revalidate?.(context, request.fqdn) ?? null;
            if (revoked !== null) {
              metrics.authFailures.inc({ role: "client", reason: "forbidden" });
              log.warn("Ending the stream: its credential no longer allows it", { err: revoked });
              throw new ConnectError(`Registration revoked: ${revoked}`, Code.PermissionDenied);
            }
            yield { message: { case: "heartbeat", value: {} } };
            continue;
          }
          log.debug("Sending scrape", { scrape_id: task.id, url: task.url });
          yield {
            message: {
              case: "scrape",
              value: {
                id: task.id,
                method: task.method,
                url: task.url,
                headers: task.headers,
                timeoutMs: Math.min(task.timeoutMs, 0xffffffff),
              },
            },
          };
        }
      } finally {
        session.close();
        log.info("Client stream closed");
      }
    },

    async push(requests, context) {
      return await relayPush(requests, context, options);
    },
  };

  async function relayPush(
    requests: AsyncIterable<PushRequest>,
    context: HandlerContext,
    { coordinator, metrics }: ClientServiceOptions,
  ): Promise<{ bytesRelayed: bigint }> {
    const iterator = requests[Symbol.asyncIterator]();
    const first = await iterator.next();
    if (first.done || first.value.message.case !== "head") {
      metrics.pushErrors.inc({ reason: "invalid" });
      throw new ConnectError(
        "The first push message must be a head",
        Code.InvalidArgument,
      );
    }
    const head = first.value.message.value;
    if (head.status < 100 || head.status > 599) {
      metrics.pushErrors.inc({ reason: "invalid" });
      throw new ConnectError(
        `Status ${head.status} is not an HTTP status`,
        Code.InvalidArgument,
      );
    }
    const credential = options.pushCredential?.(context) ?? null;
    let bytes = 0;
    async function* body(): AsyncGenerator<Uint8Array> {
      // Pulled only by the relay of the scrape this push answers.
      options.bodyBound?.(context);
      for (;;) {
        const next = await iterator.next();
        if (next.done) return;
        if (next.value.message.case !== "bodyChunk") {
          throw new ConnectError(
            "Only body chunks may follow the head",
            Code.InvalidArgument,
          );
        }
        bytes += next.value.message.value.byteLength;
        yield next.value.message.value;
      }
    }
    try {
      await coordinator.acceptPush(
        {
          scrapeId: head.scrapeId,
          sessionId: head.sessionId,
          status: head.status,
          headers: head.headers,
          error: head.error,
          ...(credential === null ? {} : { credential }),
        },
        body(),
      );
    } catch (error) {
      throw pushError(error, context, metrics, logger);
    }
    return { bytesRelayed: BigInt(bytes) };
  }
}

function pushError(
  error: unknown,
  context: HandlerContext,
  metrics: ProxyMetrics,
  logger: Logger,
): ConnectError {
  if (error instanceof ConnectError) return error;
  if (error instanceof CoordinatorError) {
    const code = error.kind === "unknown_scrape"
      ? Code.NotFound
      : error.kind === "foreign_scrape"
      ? Code.PermissionDenied
      : Code.FailedPrecondition;
    metrics.pushErrors.inc({
      reason: error.kind === "foreign_scrape" ? "foreign_scrape" : "unknown_scrape",
    });
    logger.warn("Push refused", { err: error.message });
    return new ConnectError(error.message, code);
  }
  metrics.pushErrors.inc({ reason: "relay_failed" });
  const reason = context.signal.aborted
    ? "client went away"
    : String((error as Error)?.message ?? error);
  return new ConnectError(`Cannot relay the scrape: ${reason}`, Code.Aborted);
}
