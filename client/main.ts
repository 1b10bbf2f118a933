/**
 * `deno task client` (and the compiled `pushprox-client`): the client's
 * command line.
 *
 * @module
 */

import { formatAddress } from "../lib/address.ts";
import { FlagError, formatHelp, parseFlags } from "../lib/flags.ts";
import { createLogger } from "../lib/logger.ts";
import { installLastResort, raiseForTest } from "../lib/last_resort.ts";
import { Counter } from "../lib/prom_client.ts";
import { VERSION, versionText } from "../lib/version.ts";
import { ConfigError as WebConfigError } from "../lib/web_config_error.ts";
import { createShutdownSignals } from "../lib/signals.ts";
import { type Agent, startAgent } from "./agent/agent.ts";
import { clientMode, flagsFor, startedAs, usageFor } from "./compat.ts";
import { detectFqdn } from "./agent/fqdn.ts";
import { createClientMetrics } from "./agent/metrics.ts";
import { ConfigError as ModuleConfigError } from "./modules/config/types.ts";
import {
  type Modules,
  type ModuleSettings,
  readModuleSettings,
  startModules,
} from "./modules/cli.ts";
import { parseProxyUrl } from "./transport/proxy_url.ts";
import { fqdnProblem } from "../proxy/core/identity.ts";
import { readSecuritySettings, type SecuritySettings } from "./security_flags.ts";
import { type AgentSettings, CLIENT_FLAGS, readTlsFiles, toAgentOptions } from "./settings.ts";

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
  let settings: AgentSettings;
  let tls: { ca?: string; cert?: string; key?: string };
  let moduleSettings: ModuleSettings;
  let security: SecuritySettings;
  try {
    const specs = flagsFor(mode, CLIENT_FLAGS);
    const flags = parseFlags(specs, args);
    if (flags.help) {
      console.log(formatHelp(usageFor(mode), specs));
      return 0;
    }
    if (flags.version) {
      console.log(versionText(program));
      return 0;
    }
    settings = toAgentOptions(flags);
    tls = await readTlsFiles(settings.tlsFiles);
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

  const logger = createLogger(settings.log);
  const fqdn = settings.fqdn ?? await detectFqdn();
  const detectedProblem = fqdnProblem(fqdn);
  if (detectedProblem !== null) {
    console.error(`${program}: the detected ${detectedProblem}; set --fqdn`);
    return 2;
  }
  const proxyUrls = settings.proxyUrls;
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
  /** Aborted once to stop the agent and the modules; each settles its `finished`. */
  const shutdown = new AbortController();
  try {
    modules = await startModules(moduleSettings, {
      registry: metrics.registry,
      logger,
      signal: shutdown.signal,
    });
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
    shutdown.abort();
    Promise.all([agent?.finished, modules.finished]).finally(() => stopped.resolve());
  }
  if (proxyUrls.length > 0) {
    try {
      agent = await startAgent({
        proxyUrls,
        resolveIntervalMs: settings.resolveIntervalMs,
        fqdn,
        labels: settings.labels,
        logger,
        proxyTls: tls,
        metricsAddress: settings.metricsAddress,
        retryInitialMs: settings.retryInitialMs,
        retryMaxMs: settings.retryMaxMs,
        metrics,
        modules: modules.announced,
        modulesOnly: moduleSettings.configured && !moduleSettings.allowRawScrapes,
        scrapePolicy: security.scrapePolicy,
        readTargetToken: security.readTargetToken,
        targetTls: security.targetTls,
        proxyAuthorization: security.proxyAuthorization,
        ...(modules.scrapeHandler ? { moduleHandler: modules.scrapeHandler } : {}),
        onFatal: () => stop("fatal"),
        signal: shutdown.signal,
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
