/**
 * The client's two personalities. Started as `pushprox-client` it takes
 * PushProx flags and needs `--proxy-url` (or a direct listener). Started by
 * the name `exporter_exporter` (a compiled binary or bundle renamed, Debian's
 * `prometheus-exporter-exporter`, or `--compat=exporter_exporter`) it is a
 * drop-in for exporter_exporter: its defaults (the Debian package's config
 * file, `:9999`, no proxy, `-log.level=warn`) and its flag set. One flag
 * table serves both; only the defaults differ.
 *
 * @module
 */

import type { FlagSpec } from "../lib/flags.ts";

/** Which program the client stands in for. */
export type ClientMode = "pushprox-client" | "exporter_exporter";

/** The modes, as `--compat` takes them. */
export const CLIENT_MODES: readonly ClientMode[] = ["pushprox-client", "exporter_exporter"];

/** Flags that exist for exporter_exporter's command line. */
export const COMPAT_FLAGS = [
  {
    name: "compat",
    type: "string",
    choices: CLIENT_MODES,
    help:
      "Act as this program: exporter_exporter takes its defaults (config /etc/prometheus/exporter-exporter.yml, :9999, no proxy). Also chosen by the program's name.",
  },
  {
    name: "log.json",
    type: "boolean",
    help: "Alias of --log.format=json (exporter_exporter's name).",
  },
] as const satisfies readonly FlagSpec[];

/** exporter_exporter's defaults, as Debian's package runs it (`ARGS=""`). */
export const EXPORTER_EXPORTER_DEFAULTS: Readonly<Record<string, string>> = {
  // Debian's build; upstream's own default is expexp.yaml in the working directory.
  "config.file": "/etc/prometheus/exporter-exporter.yml",
  "web.listen-address": ":9999",
  "log.level": "warn",
  // exporter_exporter serves its own metrics on its listener only.
  "metrics-addr": "",
};

/** Program names that mean exporter_exporter (extensions ignored). */
const EXPEXP_NAMES = /^(prometheus-)?exporter[-_]exporter$/;

/**
 * Picks the mode from `--compat` or, without it, from the names the program
 * was started by.
 *
 * @param args The command line.
 * @param names Paths the program was started by: the executable (compiled
 *   binary) and the main module (bundle).
 * @returns The mode.
 */
export function clientMode(args: readonly string[], names: readonly string[]): ClientMode {
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === "--") break;
    const match = /^--?compat(?:=(.*))?$/.exec(arg);
    if (match === null) continue;
    const value = match[1] ?? args[i + 1];
    if (value === "exporter_exporter" || value === "pushprox-client") return value;
  }
  for (const name of names) {
    const base = name.split(/[\\/]/).pop() ?? "";
    if (EXPEXP_NAMES.test(base.replace(/\.(exe|js|ts|mjs)$/, ""))) return "exporter_exporter";
  }
  return "pushprox-client";
}

/**
 * The paths this process was started by, for {@linkcode clientMode}.
 *
 * @returns The executable and the main module.
 */
export function startedAs(): string[] {
  const names = [Deno.execPath()];
  try {
    names.push(decodeURIComponent(new URL(Deno.mainModule).pathname));
  } catch {
    // No main module (embedded use).
  }
  return names;
}

/**
 * The flag table with the mode's defaults.
 *
 * @param mode The mode.
 * @param specs The client's flag table.
 * @returns The table to parse with.
 */
export function flagsFor<const Specs extends readonly FlagSpec[]>(
  mode: ClientMode,
  specs: Specs,
): Specs {
  if (mode === "pushprox-client") return specs;
  // Only defaults change, and only to strings: every value keeps its type
  // (a flag without a default may now have one, which narrows it).
  return specs.map((spec) =>
    spec.name in EXPORTER_EXPORTER_DEFAULTS
      ? { ...spec, default: EXPORTER_EXPORTER_DEFAULTS[spec.name]! }
      : spec
  ) as readonly FlagSpec[] as Specs;
}

/**
 * The first lines of `--help` for the mode.
 *
 * @param mode The mode.
 * @returns The usage text.
 */
export function usageFor(mode: ClientMode): string {
  return mode === "exporter_exporter"
    ? "usage: exporter_exporter [<flags>]\n\n" +
      "The PushProx client as a drop-in exporter_exporter: serves the modules of " +
      "-config.file on -web.listen-address; add --proxy-url to also serve them through a " +
      "PushProx proxy. Long flags take one dash or two."
    : "usage: pushprox-client --proxy-url=URL [<flags>]\n\n" +
      "The PushProx client. Long flags take one dash or two.";
}
