/**
 * Command-line flags in the Prometheus style (`--web.listen-address=:8080`),
 * declared once in a table that drives both parsing and `--help`.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { parseDuration } from "./duration.ts";
import { errorMessage } from "./error_message.ts";

/** How a flag's value is read. */
export type FlagType = "string" | "duration" | "boolean" | "integer";

/**
 * One flag's declaration. Declare a program's table `as const satisfies
 * readonly FlagSpec[]` so that {@linkcode parseFlags} knows each flag's name
 * and value type ({@linkcode FlagValues}).
 */
export interface FlagSpec {
  /** The flag's name without dashes, e.g. "web.listen-address". */
  readonly name: string;
  /** How the value is read. Durations become milliseconds. */
  readonly type: FlagType;
  /** One line of help. */
  readonly help: string;
  /** The default, as a user would type it; omitted means none. */
  readonly default?: string;
  /** The flag may be given several times; the value is a list. */
  readonly repeatable?: boolean;
  /** Accepted values, checked after parsing. */
  readonly choices?: readonly string[];
  /**
   * Other accepted spellings of values and the value each stands for, e.g.
   * `{ warning: "warn" }` (logrus' level names); listed in `--help`.
   */
  readonly valueAliases?: Readonly<Record<string, string>>;
}

/** The value of a flag without `repeatable`, before a default applies. */
export type FlagScalarValue<S extends FlagSpec> = S["type"] extends "duration" | "integer" ? number
  : S extends { readonly choices: readonly (infer C)[] } ? C
  : string;

/**
 * The parsed value of one flag: a list when repeatable, a boolean for
 * booleans, milliseconds for durations, a number for integers, one of the
 * choices or a string otherwise; `undefined` when the flag has no default
 * and was not given.
 */
export type FlagValue<S extends FlagSpec> =
  // A table typed only as FlagSpec[] says nothing about its flags.
  string extends S["name"] ? string | number | boolean | string[] | undefined
    : S extends { readonly repeatable: true } ? string[]
    : S["type"] extends "boolean" ? boolean
    : S extends { readonly default: string } ? FlagScalarValue<S>
    : FlagScalarValue<S> | undefined;

/**
 * Parsed values keyed by flag name, typed from the table: a flag that is not
 * in the table is a type error. `help` and `version` are always there.
 */
export type FlagValues<Specs extends readonly FlagSpec[] = readonly FlagSpec[]> =
  & { readonly [S in Specs[number] as S["name"]]: FlagValue<S> }
  & { readonly help: boolean; readonly version: boolean };

/** Thrown for bad command lines; the message is meant for the user. */
export class FlagError extends Error {
  /** Creates a FlagError. */
  constructor(message: string) {
    super(message);
    this.name = "FlagError";
  }
}

/**
 * Parses `args` against `specs`. `--help`/`-help`/`-h` and
 * `--version`/`-version` are always accepted and reported as booleans under
 * "help" and "version". Long flags take one dash or two alike (kingpin and
 * Go's flag package): `-web.listen-address=:9999` is `--web.listen-address=:9999`.
 *
 * @example Typed values from a table declared `as const`
 * ```ts
 * import { type FlagSpec, parseFlags } from "./flags.ts";
 *
 * const FLAGS = [
 *   { name: "web.listen-address", type: "string", default: ":8080", help: "Listen here." },
 *   { name: "scrape.max-timeout", type: "duration", default: "5m", help: "Clamp." },
 * ] as const satisfies readonly FlagSpec[];
 * const flags = parseFlags(FLAGS, ["-scrape.max-timeout=30s"]);
 * const timeoutMs: number = flags["scrape.max-timeout"];
 * console.assert(timeoutMs === 30_000 && flags["web.listen-address"] === ":8080");
 * ```
 *
 * @param specs The flag table.
 * @param args The command line, without the program name.
 * @returns The values, defaults filled in.
 * @throws {FlagError} On unknown flags or bad values.
 */
export function parseFlags<const Specs extends readonly FlagSpec[]>(
  specs: Specs,
  args: readonly string[],
): FlagValues<Specs> {
  const options: Record<
    string,
    { type: "string" | "boolean"; multiple?: boolean; short?: string }
  > = {
    help: { type: "boolean", short: "h" },
    version: { type: "boolean" },
  };
  for (const spec of specs) {
    options[spec.name] = {
      type: spec.type === "boolean" ? "boolean" : "string",
      ...(spec.repeatable ? { multiple: true } : {}),
    };
  }
  const normalized = normalizeBooleans(specs, singleDashFlags(specs, args));
  let parsed;
  try {
    parsed = parseArgs({
      args: normalized.args,
      options,
      strict: true,
      allowPositionals: false,
    });
  } catch (error) {
    throw new FlagError(errorMessage(error));
  }
  const raw = parsed.values as Record<
    string,
    string | boolean | string[] | undefined
  >;
  const values: Record<string, string | number | boolean | string[] | undefined> = {
    help: raw.help === true,
    version: raw.version === true,
  };
  for (const spec of specs) {
    const given = raw[spec.name];
    if (spec.repeatable) {
      const list = (given as string[] | undefined) ??
        (spec.default !== undefined && spec.default !== "" ? [spec.default] : []);
      list.forEach((v) => checkChoice(spec, v));
      values[spec.name] = list;
      continue;
    }
    const text = normalized.negated.has(spec.name)
      ? false
      : (given as string | boolean | undefined) ?? spec.default;
    if (text === undefined) {
      values[spec.name] = spec.type === "boolean" ? false : undefined;
      continue;
    }
    values[spec.name] = convert(spec, text);
  }
  // Each value was converted by its spec's type above, as FlagValue<> says.
  return values as FlagValues<Specs>;
}

/**
 * Adds the second dash to single-dash long flags that name a known flag
 * (`-web.listen-address=:9999`, `-version`, `-no-legacy.enabled`), as Go's
 * flag package spells them. Short flags (`-h`), values of the flag before
 * and everything after `--` are left alone.
 *
 * @param specs The flag table.
 * @param args The command line.
 * @returns The command line with `--` long flags.
 */
export function singleDashFlags(specs: readonly FlagSpec[], args: readonly string[]): string[] {
  const valued = new Set(specs.filter((s) => s.type !== "boolean").map((s) => s.name));
  const known = new Set([...specs.map((s) => s.name), "help", "version"]);
  for (const spec of specs) if (spec.type === "boolean") known.add(`no-${spec.name}`);
  const out: string[] = [];
  let valueNext = false;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === "--") {
      out.push(...args.slice(i));
      break;
    }
    if (valueNext) {
      valueNext = false;
      out.push(arg);
      continue;
    }
    const match = /^--?([^-=][^=]*)(=.*)?$/.exec(arg);
    if (match === null || !known.has(match[1]!)) {
      out.push(arg);
      continue;
    }
    valueNext = valued.has(match[1]!) && match[2] === undefined;
    out.push(arg.startsWith("--") ? arg : `-${arg}`);
  }
  return out;
}

/** `--flag=false` and `--no-flag` for booleans, as kingpin accepts. */
function normalizeBooleans(
  specs: readonly FlagSpec[],
  args: readonly string[],
): { args: string[]; negated: Set<string> } {
  const booleans = new Set(
    specs.filter((s) => s.type === "boolean").map((s) => s.name),
  );
  const out: string[] = [];
  const negated = new Set<string>();
  for (const arg of args) {
    const match = /^--(?:no-)?([^=]+)(?:=(true|false))?$/.exec(arg);
    if (match && booleans.has(match[1]!)) {
      const off = arg.startsWith("--no-") || match[2] === "false";
      if (off) negated.add(match[1]!);
      else {
        negated.delete(match[1]!);
        out.push(`--${match[1]}`);
      }
      continue;
    }
    out.push(arg);
  }
  return { args: out, negated };
}

function convert(
  spec: FlagSpec,
  text: string | boolean,
): string | number | boolean {
  if (spec.type === "boolean") return text === true || text === "true";
  const given = String(text);
  const value = spec.valueAliases?.[given] ?? given;
  checkChoice(spec, value);
  if (spec.type === "duration") {
    try {
      return parseDuration(value);
    } catch (error) {
      throw new FlagError(`--${spec.name}: ${errorMessage(error)}`);
    }
  }
  if (spec.type === "integer") {
    if (!/^\d+$/.test(value)) {
      throw new FlagError(
        `--${spec.name}: expected a non-negative integer, got "${value}"`,
      );
    }
    return Number(value);
  }
  return value;
}

function checkChoice(spec: FlagSpec, value: string): void {
  if (spec.choices && !spec.choices.includes(value)) {
    const names = [...spec.choices, ...Object.keys(spec.valueAliases ?? {})];
    throw new FlagError(
      `--${spec.name}: "${value}" is not one of ${names.join(", ")}`,
    );
  }
}

/**
 * Renders `--help` text listing every flag and its default. Every long flag
 * also takes a single dash (`-web.listen-address`).
 *
 * @param usage The first line, e.g. "usage: pushprox-proxy [<flags>]".
 * @param specs The flag table.
 * @returns The help text.
 */
export function formatHelp(usage: string, specs: readonly FlagSpec[]): string {
  const rows = [
    ...specs.map((s) => {
      const left = s.type === "boolean" ? `--[no-]${s.name}` : `--${s.name}=${placeholder(s)}`;
      const aliases = Object.entries(s.valueAliases ?? {});
      const extra = [
        s.repeatable ? "repeatable" : "",
        aliases.length > 0
          ? `aliases: ${aliases.map(([from, to]) => `${from}=${to}`).join(", ")}`
          : "",
        s.default !== undefined && s.default !== "" ? `default: ${s.default}` : "",
      ].filter(Boolean).join("; ");
      return [left, extra ? `${s.help} (${extra})` : s.help];
    }),
    ["-h, --help", "Show this help and exit (-help too)."],
    ["--version", "Show the version and build information and exit (-version too)."],
  ];
  const width = Math.max(...rows.map(([l]) => l!.length));
  return [
    usage,
    "",
    "Flags:",
    ...rows.map(([l, r]) => `  ${l!.padEnd(width)}  ${r}`),
  ].join("\n");
}

function placeholder(spec: FlagSpec): string {
  if (spec.choices) return spec.choices.join("|");
  if (spec.type === "duration") return "DURATION";
  if (spec.type === "integer") return "N";
  return spec.name.split(/[.-]/).pop()!.toUpperCase();
}
