/**
 * Reloading the module configuration (SIGHUP, `POST /-/reload`): load and
 * prepare the new configuration; on success swap it into the engine, on
 * failure keep the old one. Either way the outcome is logged and exposed
 * the way Prometheus does (`…_config_last_reload_successful`,
 * `…_config_last_reload_success_timestamp_seconds`).
 *
 * @module
 */

import type { Logger } from "../../lib/logger.ts";
import type { LoadedConfig } from "./config.ts";
import { type ModuleEngine, prepareConfig, type PreparedConfig } from "./engine.ts";
import type { ModuleMetrics } from "./metrics.ts";
import { errorMessage } from "../../lib/error_message.ts";

/** How a reload went. */
export type ReloadResult =
  | { readonly ok: true; readonly modules: readonly string[] }
  | { readonly ok: false; readonly error: string };

/** Options for {@linkcode createConfigReloader}. */
export interface ConfigReloaderOptions {
  /** Reads the configuration from disk (flags already applied). */
  load: () => Promise<LoadedConfig>;
  /** Reads the files it refers to. @default {prepareConfig} */
  prepare?: (config: LoadedConfig) => Promise<PreparedConfig>;
  /** The engine to update. */
  engine: ModuleEngine;
  /** The reload gauges. */
  metrics: ModuleMetrics;
  /** Logs the outcome and the configuration's warnings. */
  logger: Logger;
  /** Called after a successful reload with the new configuration. */
  onReload?: (config: LoadedConfig) => void;
  /** The clock, in milliseconds. @default {Date.now} */
  now?: () => number;
}

/** Reloads the configuration; concurrent calls run one after another. */
export interface ConfigReloader {
  /** Loads the configuration again. Never throws. */
  reload(): Promise<ReloadResult>;
  /** Records that the configuration in the engine was loaded just now (start-up). */
  markLoaded(): void;
}

/**
 * Creates the reloader.
 *
 * @param options Loader, engine, metrics and logger.
 * @returns The reloader.
 */
export function createConfigReloader(options: ConfigReloaderOptions): ConfigReloader {
  const { engine, metrics, logger } = options;
  const prepare = options.prepare ?? ((config: LoadedConfig) => prepareConfig(config));
  const now = options.now ?? Date.now;
  let queue: Promise<unknown> = Promise.resolve();

  function markLoaded(): void {
    metrics.reloadSuccessful.set(1);
    metrics.reloadSuccessTimestamp.set(Math.floor(now() / 1000));
  }

  async function attempt(): Promise<ReloadResult> {
    let prepared: PreparedConfig;
    try {
      prepared = await prepare(await options.load());
    } catch (error) {
      const reason = errorMessage(error);
      metrics.reloadSuccessful.set(0);
      logger.error("Cannot reload the module configuration; keeping the old one", {
        err: reason,
      });
      return { ok: false, error: reason };
    }
    for (const warning of prepared.config.warnings) {
      logger.warn("Module configuration", { warning });
    }
    engine.replace(prepared);
    markLoaded();
    const modules = [...prepared.config.modules.keys()];
    logger.info("Reloaded the module configuration", {
      modules: modules.join(",") || undefined,
      count: modules.length,
    });
    options.onReload?.(prepared.config);
    return { ok: true, modules };
  }

  return {
    reload() {
      const result = queue.then(attempt, attempt);
      queue = result;
      return result;
    },
    markLoaded,
  };
}
