/**
 * The client's settings: its flag table and {@linkcode toAgentOptions},
 * which turns parsed flags into the agent's options and names the flag that
 * is wrong. Pure: files named by flags are read afterwards
 * ({@linkcode readTlsFiles}); the module and security flags have their own
 * readers (client/modules/cli.ts, client/security_flags.ts).
 *
 * @module
 */

import { type ListenAddress, parseListenAddress } from "../lib/address.ts";
import { FlagError, type FlagSpec, type FlagValues } from "../lib/flags.ts";
import { LOG_FLAGS, type LogFormat, type LogLevel } from "../lib/logger.ts";
import { fqdnProblem, labelsProblem } from "../proxy/core/identity.ts";
import { COMPAT_FLAGS } from "./compat.ts";
import { MODULE_FLAGS, wantsDirectListener } from "./modules/cli.ts";
import { parseProxyUrl } from "./transport/proxy_url.ts";
import { SECURITY_FLAGS } from "./security_flags.ts";
import { errorMessage } from "../lib/error_message.ts";

/** Every flag of the client, with its default. */
export const CLIENT_FLAGS = [
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
] as const satisfies readonly FlagSpec[];

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
      `--${flag}: cannot read ${path}: ${errorMessage(error)}`,
    );
  }
}

/** The parsed command line of the client. */
export type ClientFlagValues = FlagValues<typeof CLIENT_FLAGS>;

/** Paths of the proxy TLS files (`--tls.*`), read by {@linkcode readTlsFiles}. */
export interface TlsFiles {
  /** `--tls.cacert`. */
  readonly ca?: string;
  /** `--tls.cert`. */
  readonly cert?: string;
  /** `--tls.key`. */
  readonly key?: string;
}

/** What the client's own flags ask for (modules and security aside). */
export interface AgentSettings {
  /** `--proxy-url`, in order; empty when only the direct listener serves. */
  readonly proxyUrls: string[];
  /** `--fqdn`; undefined: detect this host's. */
  readonly fqdn: string | undefined;
  /** `--label`. */
  readonly labels: Record<string, string>;
  /** `--metrics-addr`; null when empty. */
  readonly metricsAddress: ListenAddress | null;
  /** `--tls.cacert`, `--tls.cert`, `--tls.key`. */
  readonly tlsFiles: TlsFiles;
  /** `--proxy.resolve-interval`. */
  readonly resolveIntervalMs: number;
  /** `--proxy.retry.initial-wait`. */
  readonly retryInitialMs: number;
  /** `--proxy.retry.max-wait`. */
  readonly retryMaxMs: number;
  /** `--log.level`, and `--log.format` or `--log.json`. */
  readonly log: { readonly level: LogLevel; readonly format: LogFormat };
}

/**
 * Turns the client's parsed flags into its settings, checking them.
 *
 * @example Two proxies and a label
 * ```ts
 * import { parseFlags } from "../lib/flags.ts";
 * import { CLIENT_FLAGS, toAgentOptions } from "./settings.ts";
 *
 * const flags = parseFlags(CLIENT_FLAGS, [
 *   "--proxy-url=http://proxy-a:8080/",
 *   "--proxy-url=http://proxy-b:8080/",
 *   "--label=zone=eu",
 * ]);
 * const settings = toAgentOptions(flags);
 * console.assert(settings.proxyUrls.length === 2);
 * console.assert(settings.labels.zone === "eu");
 * ```
 *
 * @param flags The parsed command line.
 * @returns The settings.
 * @throws {FlagError} Naming the flag that is wrong.
 * @throws {TypeError} For a `--proxy-url` that is not an http(s) URL.
 * @throws {SyntaxError} For a `--metrics-addr` without a valid port.
 */
export function toAgentOptions(flags: ClientFlagValues): AgentSettings {
  const proxyUrls = flags["proxy-url"];
  if (proxyUrls.length === 0 && !wantsDirectListener(flags)) {
    throw new FlagError(
      "--proxy-url is required (or --web.listen-address to serve modules only directly)",
    );
  }
  for (const url of proxyUrls) parseProxyUrl(url);
  const labels = parseLabels(flags["label"]);
  const fqdn = flags["fqdn"] || undefined;
  const fqdnError = fqdn ? fqdnProblem(fqdn) : null;
  if (fqdnError !== null) throw new FlagError(`--fqdn: ${fqdnError}`);
  const metricsText = flags["metrics-addr"];
  const metricsAddress = metricsText === "" ? null : parseListenAddress(metricsText);
  if (Boolean(flags["tls.cert"]) !== Boolean(flags["tls.key"])) {
    throw new FlagError("--tls.cert and --tls.key go together");
  }
  const ca = flags["tls.cacert"];
  const cert = flags["tls.cert"];
  const key = flags["tls.key"];
  return {
    proxyUrls: proxyUrls.filter((url) => url !== ""),
    fqdn,
    labels,
    metricsAddress,
    tlsFiles: { ...(ca ? { ca } : {}), ...(cert ? { cert } : {}), ...(key ? { key } : {}) },
    resolveIntervalMs: flags["proxy.resolve-interval"],
    retryInitialMs: flags["proxy.retry.initial-wait"],
    retryMaxMs: flags["proxy.retry.max-wait"],
    log: {
      level: flags["log.level"],
      format: flags["log.json"] ? "json" : flags["log.format"],
    },
  };
}

/**
 * Reads the proxy TLS files that the flags name.
 *
 * @param files From {@linkcode AgentSettings}.
 * @returns Their contents, for the agent's `proxyTls`.
 * @throws {FlagError} Naming the flag whose file cannot be read.
 */
export async function readTlsFiles(
  files: TlsFiles,
): Promise<{ ca?: string; cert?: string; key?: string }> {
  const ca = await readOptional(files.ca, "tls.cacert");
  const cert = await readOptional(files.cert, "tls.cert");
  const key = await readOptional(files.key, "tls.key");
  return {
    ...(ca ? { ca } : {}),
    ...(cert ? { cert } : {}),
    ...(key ? { key } : {}),
  };
}
