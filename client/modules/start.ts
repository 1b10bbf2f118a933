/**
 * The module machinery's start-up: engine, reloader, the route through the
 * proxy and the direct listeners. Imported by client/modules/cli.ts only
 * when modules or a direct listener are configured.
 *
 * @module
 */

import type { Registry } from "../../lib/prom_client.ts";
import { formatAddress, type ListenAddress } from "../../lib/address.ts";
import { createAllowList, parseCidr } from "../../lib/cidr.ts";
import type { Logger } from "../../lib/logger.ts";
import { type ExporterServer, startExporterServer } from "./exporter_server.ts";
import { announcedModules, type Modules, type ModuleSettings } from "./module_settings.ts";
import { createModuleEngine } from "./engine.ts";
import { createModuleMetrics } from "./metrics.ts";
import { createConfigReloader } from "./reloader.ts";
import { createModuleScrapeHandler } from "./scrape_route.ts";
import { sleep } from "../../lib/sleep.ts";
import { exposition } from "../../lib/metrics.ts";

/**
 * Builds the engine and starts the direct listeners.
 *
 * @param settings From `readModuleSettings` (client/modules/cli.ts).
 * @param options The client's registry (module metrics join it), logger and
 *   the signal that stops the modules.
 * @returns The running modules.
 */
export async function startModuleEngine(
  settings: ModuleSettings,
  options: { registry: Registry; logger: Logger; signal?: AbortSignal },
): Promise<Modules> {
  const stop = new AbortController();
  const signal = options.signal ? AbortSignal.any([options.signal, stop.signal]) : stop.signal;
  const { logger, registry } = options;
  const log = logger.with({ component: "modules" });
  const metrics = createModuleMetrics(registry);
  for (const warning of settings.initial.config.warnings) {
    log.warn("Module configuration", { warning });
  }
  const engine = createModuleEngine({
    config: settings.initial,
    metrics,
    logger: log,
    verifyMaxBytes: settings.verifyMaxBytes,
    execMaxOutputBytes: settings.execMaxOutputBytes,
  });
  const announced = announcedModules(settings.initial.config);
  const reloader = createConfigReloader({
    load: settings.load,
    engine,
    metrics,
    logger: log,
    onReload(config) {
      announced.splice(0, announced.length, ...announcedModules(config));
    },
  });
  reloader.markLoaded();
  const ownMetrics = async () => ({
    contentType: registry.contentType,
    body: await exposition(registry),
  });
  const scrapeHandler = settings.configured
    ? createModuleScrapeHandler({
      engine,
      ownMetrics,
      allowRawScrapes: settings.allowRawScrapes,
    })
    : undefined;
  const reloadModules = () =>
    settings.configured
      ? reloader.reload()
      : Promise.resolve({ ok: true as const, modules: [] as string[] });

  let server: ExporterServer | null = null;
  if (settings.address !== null || settings.tlsAddress !== null) {
    server = await startExporterServer({
      engine,
      metrics: ownMetrics,
      logger: log,
      address: settings.address,
      webConfig: settings.webConfig,
      tlsAddress: settings.tlsAddress,
      tls: settings.tls,
      bearerToken: settings.bearerToken,
      allowList: settings.allowNets.length > 0
        ? createAllowList(settings.allowNets.map((n) => parseCidr(n)))
        : null,
      reload: settings.lifecycle ? reloadModules : null,
      proxyPath: settings.proxyPath,
      telemetryPath: settings.telemetryPath,
      signal,
    });
    for (const [listener, address] of [["http", server.address], ["https", server.tlsAddress]]) {
      if (address) {
        log.info("Listening on", {
          address: formatAddress(address as ListenAddress),
          listener: `modules ${listener}`,
        });
      }
    }
  }
  log.info("Modules loaded", {
    modules: [...settings.initial.config.modules.keys()].join(",") || undefined,
    count: settings.initial.config.modules.size,
    through_proxy: settings.configured,
    raw_scrapes: !settings.configured || settings.allowRawScrapes,
  });

  const finished = (async () => {
    await sleep(Infinity, { signal }).catch(() => {});
    await server?.finished;
    engine.close();
  })();

  return {
    engine,
    reloader,
    scrapeHandler,
    announced,
    server,
    async reload() {
      await reloadModules();
      await server?.reloadTls();
    },
    finished,
    async close() {
      stop.abort();
      await finished;
    },
  };
}
