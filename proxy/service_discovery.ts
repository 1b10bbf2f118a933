/**
 * The `/clients` document: Prometheus file_sd / http_sd target groups.
 *
 * @module
 */

import type { ClientInfo } from "./coordinator.ts";

/** One target group as http_sd_configs and file_sd_configs read it. */
export interface TargetGroup {
  targets: string[];
  labels: Record<string, string>;
}

/**
 * Builds one target group per client, with the client's own labels. The
 * target is the bare fqdn: Prometheus relabelling appends the port, as with
 * upstream PushProx.
 *
 * @param clients The clients to publish.
 * @returns The target groups, in the clients' order.
 */
export function targetGroups(clients: readonly ClientInfo[]): TargetGroup[] {
  return clients.map((client) => ({
    targets: [client.fqdn],
    labels: { ...client.labels },
  }));
}
