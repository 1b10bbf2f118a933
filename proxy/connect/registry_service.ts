/**
 * The Connect adapter for readers: `ListClients`, and `WatchClients`, which
 * follows the coordinator's registry changes. Each watcher has a bounded
 * queue: one that reads too slowly is dropped with ResourceExhausted instead
 * of being buffered without bound.
 *
 * @module
 */

import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import {
  type ClientSchema,
  type ListClientsResponseSchema,
  type ProxyStatsSchema,
  RegistryService,
  type ScrapeOutcomeSchema,
  type WatchClientsResponseSchema,
} from "../../gen/pushprox/v1/pushprox_pb.ts";
import type { ClientInfo, Coordinator, RegistryEvent, ScrapeOutcome } from "../core/coordinator.ts";

/** Options for {@linkcode createRegistryService}. */
export interface RegistryServiceOptions {
  /** Changes queued for one watcher before it is dropped. @default {1024} */
  maxQueuedEvents?: number;
  /**
   * How often watchers get the proxy-wide statistics, in milliseconds.
   * @default {the statistics' bucket length}
   */
  statsIntervalMs?: number;
}

type ClientInit = MessageInitShape<typeof ClientSchema>;
type WatchMessage = MessageInitShape<typeof WatchClientsResponseSchema>;
type Queued = RegistryEvent | { kind: "stats" };

const UINT32_MAX = 0xffffffff;

function outcomeMessage(outcome: ScrapeOutcome): MessageInitShape<typeof ScrapeOutcomeSchema> {
  return {
    time: timestampFromMs(outcome.at),
    status: outcome.status,
    durationMs: Math.min(Math.round(outcome.durationMs), UINT32_MAX),
    bytes: BigInt(Math.max(0, Math.round(outcome.bytes))),
    error: outcome.error,
  };
}

function clientMessage(client: ClientInfo): ClientInit {
  return {
    fqdn: client.fqdn,
    labels: client.labels,
    version: client.version,
    modules: client.modules,
    connectedSince: timestampFromMs(client.connectedSince),
    ...(client.lastScrape > 0 ? { lastScrape: timestampFromMs(client.lastScrape) } : {}),
    inFlight: client.inFlight,
    connected: client.connected,
    protocol: client.protocol,
    proxies: client.proxies ?? [],
    modulesOnly: client.modulesOnly ?? false,
    ...(client.lastResult
      ? {
        lastScrapeStatus: client.lastResult.status,
        lastScrapeError: client.lastResult.error,
        lastScrapeDurationMs: Math.min(Math.round(client.lastResult.durationMs), UINT32_MAX),
      }
      : {}),
    ...(!client.connected && client.disconnectedAt
      ? { disconnectedAt: timestampFromMs(client.disconnectedAt) }
      : {}),
    peerAddress: client.peerAddress ?? "",
    recentScrapes: (client.recentScrapes ?? []).map(outcomeMessage),
  };
}

function statsMessage(coordinator: Coordinator): MessageInitShape<typeof ProxyStatsSchema> {
  const stats = coordinator.stats();
  return {
    bucketSeconds: Math.round(stats.bucketMs / 1000),
    inFlight: stats.inFlight,
    buckets: stats.buckets.map((bucket) => ({
      start: timestampFromMs(bucket.start),
      scrapes: bucket.scrapes,
      errors: bucket.errors,
      maxInFlight: bucket.maxInFlight,
    })),
  };
}

function listMessage(coordinator: Coordinator): MessageInitShape<typeof ListClientsResponseSchema> {
  return {
    clients: coordinator.listClients().map(clientMessage),
    stats: statsMessage(coordinator),
  };
}

function eventMessage(event: Queued, coordinator: Coordinator): WatchMessage {
  switch (event.kind) {
    case "connected":
      return { event: { case: "connected", value: clientMessage(event.client) } };
    case "disconnected":
      return {
        event: {
          case: "disconnected",
          value: { fqdn: event.fqdn, disconnectedAt: timestampFromMs(event.at) },
        },
      };
    case "scraped":
      return {
        event: {
          case: "scraped",
          value: {
            fqdn: event.fqdn,
            outcome: outcomeMessage(event.outcome),
            inFlight: event.inFlight,
          },
        },
      };
    case "forgotten":
      return { event: { case: "forgotten", value: { fqdn: event.fqdn } } };
    case "stats":
      return { event: { case: "stats", value: statsMessage(coordinator) } };
  }
}

/**
 * Creates the RegistryService implementation.
 *
 * @param coordinator The registry to read.
 * @param options The watchers' queue bound and statistics interval.
 * @returns The service implementation for a Connect router.
 */
export function createRegistryService(
  coordinator: Coordinator,
  options: RegistryServiceOptions = {},
): ServiceImpl<typeof RegistryService> {
  const maxQueued = options.maxQueuedEvents ?? 1024;
  return {
    listClients() {
      return listMessage(coordinator);
    },

    async *watchClients(_request, context) {
      const queue: Queued[] = [];
      let overflowed = false;
      let wake: (() => void) | null = null;
      const enqueue = (event: Queued) => {
        if (overflowed) return;
        if (queue.length >= maxQueued) {
          overflowed = true;
          queue.length = 0;
          unsubscribe();
        } else {
          queue.push(event);
        }
        wake?.();
      };
      const unsubscribe = coordinator.subscribe(enqueue);
      const statsMs = options.statsIntervalMs ?? coordinator.stats().bucketMs;
      const timer = setInterval(() => enqueue({ kind: "stats" }), statsMs);
      const onAbort = () => wake?.();
      context.signal.addEventListener("abort", onAbort, { once: true });
      try {
        yield { event: { case: "snapshot", value: listMessage(coordinator) } };
        while (!context.signal.aborted) {
          if (overflowed) {
            throw new ConnectError(
              `Cannot keep up: more than ${maxQueued} changes wait for this watcher; ` +
                "read faster, or reconnect for a fresh snapshot",
              Code.ResourceExhausted,
            );
          }
          const event = queue.shift();
          if (event !== undefined) {
            yield eventMessage(event, coordinator);
            continue;
          }
          await new Promise<void>((resolve) => wake = resolve);
          wake = null;
        }
      } finally {
        clearInterval(timer);
        context.signal.removeEventListener("abort", onAbort);
        unsubscribe();
      }
    },
  };
}
