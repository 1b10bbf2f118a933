/**
 * The Connect adapter for readers: `ListClients`.
 *
 * @module
 */

import type { ServiceImpl } from "@connectrpc/connect";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { RegistryService } from "../gen/pushprox/v1/pushprox_pb.ts";
import type { Coordinator } from "./coordinator.ts";

/**
 * Creates the RegistryService implementation.
 *
 * @param coordinator The registry to read.
 * @returns The service implementation for a Connect router.
 */
export function createRegistryService(
  coordinator: Coordinator,
): ServiceImpl<typeof RegistryService> {
  return {
    listClients() {
      return {
        clients: coordinator.listClients().map((client) => ({
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
              lastScrapeDurationMs: Math.min(Math.round(client.lastResult.durationMs), 0xffffffff),
            }
            : {}),
        })),
      };
    },
  };
}
