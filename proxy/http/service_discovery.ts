/**
 * The `/clients` document: Prometheus file_sd / http_sd target groups.
 *
 * @module
 */

import type { ClientInfo } from "../core/coordinator.ts";

/** One target group as http_sd_configs and file_sd_configs read it. */
export interface TargetGroup {
  targets: string[];
  labels: Record<string, string>;
}

/** Options for {@linkcode targetGroups}. */
export interface TargetGroupOptions {
  /** This proxy as the reader reached it (the request's Host), for `__meta_pushprox_client_proxy`. */
  proxy?: string;
}

/**
 * Prometheus' convention for a list in one meta label (as `__meta_consul_tags`):
 * comma-separated with a comma at each end, so `.*,name,.*` matches one item.
 */
function metaList(items: readonly string[]): string {
  return items.length === 0 ? "" : `,${items.join(",")},`;
}

/**
 * Builds one target group per client, with the client's own labels and
 * `__meta_pushprox_client_*` labels for relabel rules (Prometheus drops
 * `__meta_*` after relabelling): `modules` (`,a,b,`), `raw_scrapes`
 * (`true`/`false`), `version`, `connected` (`true`/`false`), `protocol`,
 * `proxies` (the proxies the client streams to, `,url,`) and `proxy` (this
 * proxy). The target is the bare fqdn: Prometheus relabelling appends the
 * port, as with upstream PushProx.
 *
 * @param clients The clients to publish.
 * @param options This proxy's address.
 * @returns The target groups, in the clients' order.
 */
export function targetGroups(
  clients: readonly ClientInfo[],
  options: TargetGroupOptions = {},
): TargetGroup[] {
  return clients.map((client) => ({
    targets: [client.fqdn],
    labels: {
      ...client.labels,
      __meta_pushprox_client_modules: metaList(client.modules),
      __meta_pushprox_client_raw_scrapes: String(!(client.modulesOnly ?? false)),
      __meta_pushprox_client_version: client.version,
      __meta_pushprox_client_connected: String(client.connected),
      __meta_pushprox_client_protocol: client.protocol,
      __meta_pushprox_client_proxies: metaList(client.proxies ?? []),
      ...(options.proxy ? { __meta_pushprox_client_proxy: options.proxy } : {}),
    },
  }));
}
