/**
 * `deno task client` (and the compiled `pushprox-client`): the client's
 * command line.
 *
 * @module
 */

import { formatAddress, type ListenAddress, parseListenAddress } from "../lib/address.ts";
import { FlagError, type FlagSpec, type FlagValues, formatHelp, parseFlags } from "../lib/flags.ts";
import { createLogger, LOG_FLAGS, type LogFormat, type LogLevel } from "../lib/logger.ts";
import { installLastResort, raiseForTest } from "../lib/last_resort.ts";
import { Counter } from "prom-client";
import { VERSION, versionText } from "../lib/version.ts";
import { ConfigError as WebConfigError } from "../lib/web_config_error.ts";
import { createShutdownSignals } from "../lib/signals.ts";
import { type Agent, startAgent } from "./agent.ts";
import { clientMode, COMPAT_FLAGS, flagsFor, startedAs, usageFor } from "./compat.ts";
import { detectFqdn } from "./fqdn.ts";
import { createClientMetrics } from "./metrics.ts";
import { ConfigError as ModuleConfigError } from "./modules/config_error.ts";
import {
  MODULE_FLAGS,
  type Modules,
  type ModuleSettings,
  readModuleSettings,
  startModules,
  wantsDirectListener,
} from "./modules/cli.ts";
import { parseProxyUrl } from "./proxy_url.ts";
import { fqdnProblem, labelsProblem } from "../proxy/identity.ts";
import { readSecuritySettings, SECURITY_FLAGS, type SecuritySettings } from "./security_flags.ts";

/** Every flag of the client, with its default. */
export const CLIENT_FLAGS: readonly FlagSpec[] = [
  {
    name: "proxy-url",
    type: "string",
    repeatable: true,
    help:
      "Push proxy to talk to (required), e.g. http://proxy:8080/; repeat it to keep a stream to each of several proxies.",
  },
  {
    name: "fqdn",
    type: "string",
    help: "FQDN to register with; scrapes must name this host (default: this host's FQDN).",
  },
  {
    name: "label",
    type: "string",
    repeatable: true,
    help: "A label NAME=VALUE published with this target in /clients.",
  },
  {
    name: "tls.cacert",
    type: "string",
    help: "CA certificate file to verify the proxy against.",
  },
  {
    name: "tls.cert",
    type: "string",
    help: "Client certificate file for the connection to the proxy.",
  },
  { name: "tls.key", type: "string", help: "Private key file for --tls.cert." },
  {
    name: "metrics-addr",
    type: "string",
    default: ":9369",
    help: "Serve Prometheus metrics at this address; empty disables.",
  },
  {
    name: "proxy.retry.initial-wait",
    type: "duration",
    default: "1s",
    help: "Amount of time to wait after proxy failure.",
  },
  {
    name: "proxy.retry.max-wait",
    type: "duration",
    default: "5s",
    help: "Maximum amount of time to wait between proxy poll retries.",
  },
  {
    name: "proxy.resolve-interval",
    type: "duration",
    default: "30s",
    help:
      "How often proxy host names are resolved again; a name with several addresses (headless Service) gets a stream per address. 0: connect by name only.",
  },
  ...LOG_FLAGS,
  ...COMPAT_FLAGS,
  ...MODULE_FLAGS,
  ...SECURITY_FLAGS,
];

function parseLabels(list: readonly string[]): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const item of list) {
    const eq = item.indexOf("=");
    if (eq <= 0) throw new FlagError(`--label "${item}": expected NAME=VALUE`);
    labels[item.slice(0, eq)] = item.slice(eq + 1);
  }
  // The proxy would refuse them at every registration, forever.
  const problem = labelsProblem(labels);
  if (problem !== null) {
    throw new FlagError(
      `--label: ${problem} (letters, digits and _, not starting with a digit or __)`,
    );
  }
  return labels;
}

async function readOptional(
  path: string | undefined,
  flag: string,
): Promise<string | undefined> {
  if (!path) return undefined;
  try {
    return await Deno.readTextFile(path);
  } catch (error) {
    throw new FlagError(
      `--${flag}: cannot read ${path}: ${(error as Error).message}`,
    );
  }
}

/**
 * Runs the client until SIGINT or SIGTERM.
 *
 * @param args The command line.
 * @param names The paths the program was started by; the name
 *   `exporter_exporter` selects exporter_exporter's defaults (client/compat.ts).
 * @returns The exit code.
 */
export async function main(
  args: readonly string[],
  names: readonly string[] = startedAs(),
): Promise<number> {
  const mode = clientMode(args, names);
  const program = mode === "exporter_exporter" ? "exporter_exporter" : "pushprox-client";
  let flags: FlagValues;
  let labels: Record<string, string>;
  let metricsAddress: ListenAddress | null = null;
  let tls: { ca?: string; cert?: string; key?: string };
  let moduleSettings: ModuleSettings;
  let security: SecuritySettings;
  try {
    const specs = flagsFor(mode, CLIENT_FLAGS);
    flags = parseFlags(specs, args);
    if (flags.help) {
      console.log(formatHelp(usageFor(mode), specs));
      return 0;
    }
    if (flags.version) {
      console.log(versionText(program));
      return 0;
    }
    const proxyUrls = flags["proxy-url"] as string[];
    if (proxyUrls.length === 0 && !wantsDirectListener(flags)) {
      throw new FlagError(
        "--proxy-url is required (or --web.listen-address to serve modules only directly)",
      );
    }
    for (const url of proxyUrls) parseProxyUrl(url);
    labels = parseLabels(flags["label"] as string[]);
    const fqdnFlag = flags["fqdn"] as string | undefined;
    const fqdnError = fqdnFlag ? fqdnProblem(fqdnFlag) : null;
    if (fqdnError !== null) throw new FlagError(`--fqdn: ${fqdnError}`);
    const metricsText = flags["metrics-addr"] as string;
    if (metricsText !== "") metricsAddress = parseListenAddress(metricsText);
    if (Boolean(flags["tls.cert"]) !== Boolean(flags["tls.key"])) {
      throw new FlagError("--tls.cert and --tls.key go together");
    }
    const ca = await readOptional(
      flags["tls.cacert"] as string | undefined,
      "tls.cacert",
    );
    const cert = await readOptional(
      flags["tls.cert"] as string | undefined,
      "tls.cert",
    );
    const key = await readOptional(
      flags["tls.key"] as string | undefined,
      "tls.key",
    );
    tls = {
      ...(ca ? { ca } : {}),
      ...(cert ? { cert } : {}),
      ...(key ? { key } : {}),
    };
    moduleSettings = await readModuleSettings(flags);
    security = readSecuritySettings(flags);
  } catch (error) {
    if (
      !(error instanceof FlagError || error instanceof SyntaxError ||
        error instanceof TypeError || error instanceof ModuleConfigError ||
        error instanceof WebConfigError)
    ) throw error;
    // Only flag mistakes point at --help; a configuration file's error is about the file.
    console.error(
      `${program}: ${error.message}${error instanceof FlagError ? "; see --help" : ""}`,
    );
    return 2;
  }

  const logger = createLogger({
    level: flags["log.level"] as LogLevel,
    format: flags["log.json"] ? "json" : flags["log.format"] as LogFormat,
  });
  const fqdn = (flags["fqdn"] as string | undefined) || await detectFqdn();
  const detectedProblem = fqdnProblem(fqdn);
  if (detectedProblem !== null) {
    console.error(`${program}: the detected ${detectedProblem}; set --fqdn`);
    return 2;
  }
  const proxyUrls = (flags["proxy-url"] as string[]).filter((url) => url !== "");
  const metrics = createClientMetrics({ defaultMetrics: true });
  const uncaught = new Counter({
    name: "pushprox_client_uncaught_errors_total",
    help:
      "Errors and promise rejections that no handler caught (logged; the client keeps serving).",
    registers: [metrics.registry],
  });
  installLastResort({ logger, count: () => uncaught.inc() });
  let agent: Agent | undefined;
  let modules: Modules;
  try {
    modules = await startModules(moduleSettings, { registry: metrics.registry, logger });
  } catch (error) {
    logger.error("Cannot start the module listeners", { err: error });
    return 1;
  }
  let stopping = false;
  let exitCode = 0;
  const stopped = Promise.withResolvers<void>();
  /** Stops once: on a signal, or (exit status 1) when the proxy refuses this client for good. */
  function stop(cause: "SIGINT" | "SIGTERM" | "fatal"): void {
    if (stopping) return;
    stopping = true;
    if (cause === "fatal") {
      exitCode = 1;
      logger.error("Stopping: the proxy refuses this client; fix the flags above and restart");
    } else {
      logger.info("Shutting down; finishing in-flight scrapes", { signal: cause });
    }
    Promise.all([agent?.stop(), modules.close()]).finally(() => stopped.resolve());
  }
  if (proxyUrls.length > 0) {
    try {
      agent = await startAgent({
        proxyUrls,
        resolveIntervalMs: flags["proxy.resolve-interval"] as number,
        fqdn,
        labels,
        logger,
        proxyTls: tls,
        metricsAddress,
        retryInitialMs: flags["proxy.retry.initial-wait"] as number,
        retryMaxMs: flags["proxy.retry.max-wait"] as number,
        metrics,
        modules: modules.announced,
        modulesOnly: moduleSettings.configured && !moduleSettings.allowRawScrapes,
        scrapePolicy: security.scrapePolicy,
        readTargetToken: security.readTargetToken,
        targetTls: security.targetTls,
        proxyAuthorization: security.proxyAuthorization,
        ...(modules.scrapeHandler ? { moduleHandler: modules.scrapeHandler } : {}),
        onFatal: () => stop("fatal"),
      });
    } catch (error) {
      logger.error("Cannot start", { err: error });
      await modules.close();
      return 1;
    }
  }
  logger.info("Starting pushprox-client", {
    version: VERSION,
    ...(mode === "exporter_exporter" ? { compat: mode } : {}),
    fqdn,
    proxy_url: proxyUrls.length > 0
      ? proxyUrls.map((url) => parseProxyUrl(url).baseUrl).join(",")
      : "none (direct listener only)",
  });
  if (agent?.metricsAddress) {
    logger.info("Listening on", {
      address: formatAddress(agent.metricsAddress),
      listener: "metrics",
    });
  }
  // Repeats within 2 s are the same signal (one Ctrl-C under `deno task`
  // or npx arrives two or three times); one sent again later stops at once.
  const shutdownSignals = createShutdownSignals();
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    Deno.addSignalListener(signal, () => {
      const step = shutdownSignals.next();
      if (step === "repeat") return;
      if (step === "again") {
        logger.info("Second signal: stopping now", { signal });
        stopped.resolve();
        return;
      }
      stop(signal);
    });
  }
  Deno.addSignalListener("SIGHUP", () => {
    logger.info("Reloading the module configuration", { signal: "SIGHUP" });
    modules.reload();
  });
  raiseForTest();
  await stopped.promise;
  return exitCode;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
