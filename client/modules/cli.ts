/**
 * The client's module flags (exporter_exporter's names where it has them)
 * and the start-up that follows from them: load the configuration, build
 * the engine, the route through the proxy, the direct listener and reload.
 * Kept out of main.ts so that the command line stays a thin shell. The
 * engine, the configuration's YAML parser and the direct listeners are
 * imported only when modules or a listener are configured
 * (client/modules/start.ts): a plain client never loads them.
 *
 * @module
 */

import type { Registry } from "../../lib/prom_client.ts";
import { parseListenAddress } from "../../lib/address.ts";
import { FlagError, type FlagSpec, type FlagValues } from "../../lib/flags.ts";
import type { Logger } from "../../lib/logger.ts";
import type { ExporterTlsFlags } from "./exporter_server.ts";
import type { PreparedConfig } from "./engine.ts";
import { createModuleMetrics } from "./metrics.ts";
import { errorMessage } from "../../lib/error_message.ts";
import type { Modules, ModuleSettings } from "./module_settings.ts";
import { sleep } from "../../lib/sleep.ts";

export { announcedModules, type Modules, type ModuleSettings } from "./module_settings.ts";

/** The module flags, appended to the client's flag table. */
export const MODULE_FLAGS = [
  {
    name: "config.file",
    type: "string",
    help:
      "exporter_exporter module configuration (expexp.yaml format); modules are off unless this or --config.dirs is given.",
  },
  {
    name: "config.dirs",
    type: "string",
    repeatable: true,
    help: "Directory of one-module *.yml/*.yaml files, each named after its file.",
  },
  {
    name: "config.skip-dirs",
    type: "boolean",
    help: "Skip --config.dirs entries that do not exist instead of failing.",
  },
  {
    name: "allow.raw-scrapes",
    type: "boolean",
    help:
      "With modules configured, also let the proxy scrape ports on this host directly (refused by default).",
  },
  {
    name: "verify.max-bytes",
    type: "integer",
    default: "268435456",
    help: "Most (decompressed) bytes of a body that verification reads; longer bodies fail.",
  },
  {
    name: "exec.max-output-bytes",
    type: "integer",
    default: "16777216",
    help: "Most output bytes an exec module's command may print; more is a 502.",
  },
  {
    name: "web.listen-address",
    type: "string",
    help:
      "Serve modules directly (as exporter_exporter) at this address, e.g. :9999; off unless set.",
  },
  {
    name: "web.config.file",
    type: "string",
    help: "exporter-toolkit web configuration (TLS, basic auth) for --web.listen-address.",
  },
  {
    name: "web.tls.listen-address",
    type: "string",
    help: "Serve modules directly over TLS (--web.tls.cert/key) at this address; off unless set.",
  },
  {
    name: "web.tls.cert",
    type: "string",
    default: "cert.pem",
    help: "Certificate for --web.tls.listen-address.",
  },
  {
    name: "web.tls.key",
    type: "string",
    default: "key.pem",
    help: "Private key for --web.tls.listen-address.",
  },
  {
    name: "web.tls.ca",
    type: "string",
    default: "ca.pem",
    help: "CA that client certificates must chain to (with --web.tls.verify).",
  },
  {
    name: "web.tls.verify",
    type: "boolean",
    help: "Require and verify client certificates on --web.tls.listen-address.",
  },
  {
    name: "web.tls.certmatch",
    type: "string",
    help:
      "Regexp a verified client certificate's CN, DNS or email SAN must match (needs --web.tls.verify).",
  },
  {
    name: "web.bearer.token",
    type: "string",
    help:
      "Require this bearer token on the direct listeners (visible in ps: prefer --web.bearer.token-file).",
  },
  {
    name: "web.bearer.token-file",
    type: "string",
    help: "File holding the bearer token required on the direct listeners.",
  },
  {
    name: "allow.net",
    type: "string",
    repeatable: true,
    help: "Only accept direct requests from this network (CIDR), e.g. 10.0.0.0/8.",
  },
  {
    name: "web.proxy-path",
    type: "string",
    default: "/proxy",
    help: "Path of the module endpoint on the direct listeners (?module=NAME).",
  },
  {
    name: "web.telemetry-path",
    type: "string",
    default: "/metrics",
    help: "Path of the client's own metrics on the direct listeners.",
  },
  {
    name: "web.enable-lifecycle",
    type: "boolean",
    help: "Enable POST /-/reload on the direct listeners (SIGHUP always reloads).",
  },
] as const satisfies readonly FlagSpec[];

/** The parsed module flags. */
export type ModuleFlagValues = FlagValues<typeof MODULE_FLAGS>;

/** True when the flags ask for a direct listener. */
export function wantsDirectListener(flags: ModuleFlagValues): boolean {
  return Boolean(flags["web.listen-address"]) || Boolean(flags["web.tls.listen-address"]);
}

/**
 * Checks the module flags and loads the configuration once.
 *
 * @param flags The parsed command line.
 * @returns The settings.
 * @throws {FlagError} For inconsistent flags.
 * @throws {import("./config.ts").ConfigError} For an invalid configuration (file:line: key: reason).
 * @throws {import("../../lib/web_config.ts").ConfigError} For an invalid web configuration.
 */
export async function readModuleSettings(flags: ModuleFlagValues): Promise<ModuleSettings> {
  const file = flags["config.file"] || undefined;
  const dirs = flags["config.dirs"];
  const skipDirs = flags["config.skip-dirs"];
  const configured = file !== undefined || dirs.length > 0;
  const load = async () => (await import("./config.ts")).loadConfig({ file, dirs, skipDirs });

  const listenText = flags["web.listen-address"];
  const address = listenText ? parseListenAddress(listenText) : null;
  const tlsListenText = flags["web.tls.listen-address"];
  const tlsAddress = tlsListenText ? parseListenAddress(tlsListenText) : null;
  const verify = flags["web.tls.verify"];
  const certMatchText = flags["web.tls.certmatch"];
  if (certMatchText && !verify) {
    throw new FlagError("--web.tls.certmatch needs --web.tls.verify");
  }
  let certMatch: RegExp | null = null;
  if (certMatchText) {
    try {
      certMatch = new RegExp(certMatchText);
    } catch (error) {
      throw new FlagError(`--web.tls.certmatch: ${errorMessage(error)}`);
    }
  }
  const tls: ExporterTlsFlags | null = tlsAddress === null ? null : {
    certFile: flags["web.tls.cert"],
    keyFile: flags["web.tls.key"],
    caFile: flags["web.tls.ca"],
    verify,
    certMatch,
  };
  if (tlsAddress === null && (verify || certMatchText)) {
    throw new FlagError("--web.tls.verify and --web.tls.certmatch need --web.tls.listen-address");
  }
  const webConfigFile = flags["web.config.file"];
  if (webConfigFile && address === null) {
    throw new FlagError("--web.config.file applies to --web.listen-address, which is not set");
  }
  const webConfig = webConfigFile
    ? await (await import("../../lib/web_config.ts")).loadWebConfig(webConfigFile)
    : null;

  const token = flags["web.bearer.token"];
  const tokenFile = flags["web.bearer.token-file"];
  if (token && tokenFile) {
    throw new FlagError("--web.bearer.token and --web.bearer.token-file are mutually exclusive");
  }
  let bearerToken: string | null = token || null;
  if (tokenFile) {
    try {
      bearerToken = (await Deno.readTextFile(tokenFile)).trim();
    } catch (error) {
      throw new FlagError(
        `--web.bearer.token-file: cannot read ${tokenFile}: ${errorMessage(error)}`,
      );
    }
    if (bearerToken === "") throw new FlagError(`--web.bearer.token-file: ${tokenFile} is empty`);
  }
  const allowNets = flags["allow.net"];
  const { parseCidr } = allowNets.length > 0
    ? await import("../../lib/cidr.ts")
    : { parseCidr: null };
  for (const net of allowNets) {
    try {
      parseCidr!(net);
    } catch (error) {
      throw new FlagError(`--allow.net: ${errorMessage(error)}`);
    }
  }
  const verifyMaxBytes = flags["verify.max-bytes"];
  const execMaxOutputBytes = flags["exec.max-output-bytes"];
  if (verifyMaxBytes < 1) throw new FlagError("--verify.max-bytes must be at least 1");
  if (execMaxOutputBytes < 1) throw new FlagError("--exec.max-output-bytes must be at least 1");

  const proxyPath = flags["web.proxy-path"];
  const telemetryPath = flags["web.telemetry-path"];
  const paths: [string, string][] = [
    ["web.proxy-path", proxyPath],
    ["web.telemetry-path", telemetryPath],
  ];
  for (const [name, path] of paths) {
    if (!path.startsWith("/")) throw new FlagError(`--${name}: "${path}" must start with /`);
  }
  if (proxyPath === telemetryPath) {
    throw new FlagError("--web.proxy-path and --web.telemetry-path must differ");
  }
  const reserved = ["/", "/-/healthy", "/-/reload"];
  for (const [name, path] of paths) {
    if (reserved.includes(path)) {
      throw new FlagError(`--${name}: ${path} is taken (${reserved.join(", ")})`);
    }
  }

  // Without modules, the empty configuration prepareConfig() would give.
  const initial: PreparedConfig = configured
    ? await (await import("./engine.ts")).prepareConfig(await load())
    : { config: { modules: new Map(), defaultModule: undefined, warnings: [] }, tls: new Map() };
  return {
    configured,
    load,
    initial,
    allowRawScrapes: flags["allow.raw-scrapes"],
    verifyMaxBytes,
    execMaxOutputBytes,
    address,
    tlsAddress,
    tls,
    webConfig,
    bearerToken,
    allowNets,
    lifecycle: flags["web.enable-lifecycle"],
    proxyPath,
    telemetryPath,
  };
}

/**
 * Builds the engine and starts the direct listeners; without modules and
 * listeners, only the module metrics (as an empty configuration has them).
 *
 * @param settings From {@linkcode readModuleSettings}.
 * @param options The client's registry (module metrics join it), logger and
 *   the signal that stops the modules.
 * @returns The running modules.
 */
export async function startModules(
  settings: ModuleSettings,
  options: { registry: Registry; logger: Logger; signal?: AbortSignal },
): Promise<Modules> {
  if (settings.configured || settings.address !== null || settings.tlsAddress !== null) {
    return await (await import("./start.ts")).startModuleEngine(settings, options);
  }
  const stop = new AbortController();
  const signal = options.signal ? AbortSignal.any([options.signal, stop.signal]) : stop.signal;
  // Nothing to close: finished once stopped.
  const finished = sleep(Infinity, { signal }).catch(() => {});
  const metrics = createModuleMetrics(options.registry);
  metrics.reloadSuccessful.set(1);
  metrics.reloadSuccessTimestamp.set(Math.floor(Date.now() / 1000));
  options.logger.with({ component: "modules" }).info("Modules loaded", {
    count: 0,
    through_proxy: false,
    raw_scrapes: true,
  });
  return {
    engine: null,
    reloader: null,
    scrapeHandler: undefined,
    announced: [],
    server: null,
    reload: () => Promise.resolve(),
    finished,
    close() {
      stop.abort();
      return finished;
    },
  };
}
