/**
 * What the module flags ask for (checked by client/modules/cli.ts) and the
 * running module machinery (started by client/modules/start.ts), apart from
 * both so that neither imports the other.
 *
 * @module
 */

import type { ListenAddress } from "../../lib/address.ts";
import type { WebConfig } from "../../lib/web_config.ts";
import type { ExporterServer, ExporterTlsFlags } from "./exporter_server.ts";
import type { LoadedConfig } from "./config.ts";
import type { ModuleEngine, PreparedConfig } from "./engine.ts";
import type { ConfigReloader } from "./reloader.ts";
import type { ModuleScrapeHandler } from "./scrape_route.ts";

/** What the module flags ask for, checked. */
export interface ModuleSettings {
  /** True when --config.file or --config.dirs was given. */
  readonly configured: boolean;
  /** Loads the configuration with the flags applied. */
  readonly load: () => Promise<LoadedConfig>;
  /** The configuration at start-up. */
  readonly initial: PreparedConfig;
  readonly allowRawScrapes: boolean;
  readonly verifyMaxBytes: number;
  readonly execMaxOutputBytes: number;
  readonly address: ListenAddress | null;
  readonly tlsAddress: ListenAddress | null;
  readonly tls: ExporterTlsFlags | null;
  readonly webConfig: WebConfig | null;
  readonly bearerToken: string | null;
  readonly allowNets: readonly string[];
  readonly lifecycle: boolean;
  /** `--web.proxy-path`. */
  readonly proxyPath: string;
  /** `--web.telemetry-path`. */
  readonly telemetryPath: string;
}

/** Module names the proxy accepts in a registration (see proxy/core/identity.ts). */
const ANNOUNCEABLE_REGEXP = /^[a-zA-Z0-9_][a-zA-Z0-9_.-]{0,127}$/;

/**
 * The module names to announce in the Poll registration: the ones the
 * proxy accepts (at most 1024); others are still served.
 *
 * @param config The configuration.
 * @returns The names.
 */
export function announcedModules(config: LoadedConfig): string[] {
  return [...config.modules.keys()].filter((n) => ANNOUNCEABLE_REGEXP.test(n)).slice(0, 1024);
}

/** The running module machinery. */
export interface Modules {
  /** The engine; null when no modules and no direct listener are configured. */
  readonly engine: ModuleEngine | null;
  /** The reloader; null when no modules and no direct listener are configured. */
  readonly reloader: ConfigReloader | null;
  /** For the scraper; undefined without a configuration (raw scrapes as before). */
  readonly scrapeHandler: ModuleScrapeHandler | undefined;
  /**
   * The names announced to the proxy; updated in place on reload, so the
   * next registration (reconnect) announces the new list.
   */
  readonly announced: string[];
  /** The direct listeners, when configured. */
  readonly server: ExporterServer | null;
  /** SIGHUP: reload modules and TLS files. */
  reload(): Promise<void>;
  /** Settles once the listeners are closed and the engine stopped (after `signal` or `close()`). */
  readonly finished: Promise<void>;
  /** Stops the direct listeners: aborts, then awaits `finished`. */
  close(): Promise<void>;
}
