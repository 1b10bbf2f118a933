/**
 * A small structured logger that writes logfmt or JSON lines, like
 * Prometheus' own `--log.level` and `--log.format` flags.
 *
 * @module
 */

import type { FlagSpec } from "./flags.ts";

/** Severity, lowest first. */
export type LogLevel = "debug" | "info" | "warn" | "error";
/** Output encoding of each record. */
export type LogFormat = "logfmt" | "json";
/** Key/value pairs attached to a record. */
export type LogFields = Record<string, unknown>;

/** A structured logger. `with` returns a child carrying extra fields. */
export interface Logger {
  /** Logs at level debug. */
  debug(msg: string, fields?: LogFields): void;
  /** Logs at level info. */
  info(msg: string, fields?: LogFields): void;
  /** Logs at level warn. */
  warn(msg: string, fields?: LogFields): void;
  /** Logs at level error. */
  error(msg: string, fields?: LogFields): void;
  /** A child logger that adds `fields` to every record. */
  with(fields: LogFields): Logger;
  /**
   * Whether records at `level` are written: lets a caller skip building
   * fields nobody reads (per-scrape debug records). @default {true when absent}
   */
  enabled?(level: LogLevel): boolean;
}

/** Options for {@linkcode createLogger}. */
export interface LoggerOptions {
  /** Records below this level are dropped. @default {"info"} */
  level?: LogLevel;
  /** How records are written. @default {"logfmt"} */
  format?: LogFormat;
  /** Where lines go. @default {writes to stderr} */
  write?: (line: string) => void;
  /** Clock for the `ts` field. @default {Date.now} */
  now?: () => number;
}

const LEVELS: readonly LogLevel[] = ["debug", "info", "warn", "error"];
/** Valid values of `--log.level`. */
export const LOG_LEVELS: readonly LogLevel[] = LEVELS;
/** Valid values of `--log.format`. */
export const LOG_FORMATS: readonly LogFormat[] = ["logfmt", "json"];

/** `--log.level` and `--log.format`, as every Prometheus component has them. */
export const LOG_FLAGS = [
  {
    name: "log.level",
    type: "string",
    default: "info",
    choices: LOG_LEVELS,
    // logrus' names, as exporter_exporter takes them.
    valueAliases: { warning: "warn", fatal: "error", panic: "error", trace: "debug" },
    help: "Only log messages with the given severity or above.",
  },
  {
    name: "log.format",
    type: "string",
    default: "logfmt",
    choices: LOG_FORMATS,
    help: "Output format of log messages.",
  },
] as const satisfies readonly FlagSpec[];

const encoder = new TextEncoder();
function writeStderr(line: string): void {
  Deno.stderr.writeSync(encoder.encode(line + "\n"));
}

/**
 * Creates a logger.
 *
 * @param options Level, format, sink and clock.
 * @returns The logger.
 */
export function createLogger(options: LoggerOptions = {}): Logger {
  const minimum = LEVELS.indexOf(options.level ?? "info");
  const format = options.format ?? "logfmt";
  const write = options.write ?? writeStderr;
  const now = options.now ?? Date.now;

  function make(base: LogFields): Logger {
    function log(level: LogLevel, msg: string, fields?: LogFields): void {
      if (LEVELS.indexOf(level) < minimum) return;
      const record: LogFields = {
        ts: new Date(now()).toISOString(),
        level,
        msg,
        ...base,
        ...fields,
      };
      write(
        format === "json" ? JSON.stringify(record, jsonValue) : logfmt(record),
      );
    }
    // A level below the minimum is a function that does nothing: a debug
    // call on the scrape path costs a call, not a level lookup (issue #11).
    const at = (level: LogLevel): Logger["debug"] =>
      LEVELS.indexOf(level) < minimum ? ignore : (msg, fields) => log(level, msg, fields);
    return {
      debug: at("debug"),
      info: at("info"),
      warn: at("warn"),
      error: at("error"),
      with: (fields) => make({ ...base, ...fields }),
      enabled: (level) => LEVELS.indexOf(level) >= minimum,
    };
  }
  return make({});
}

function ignore(): void {}

/** A logger that drops everything, for tests and libraries. */
export function createNullLogger(): Logger {
  const logger: Logger = {
    debug() {},
    info() {},
    warn() {},
    error() {},
    with: () => logger,
    enabled: () => false,
  };
  return logger;
}

function jsonValue(_key: string, value: unknown): unknown {
  return value instanceof Error ? value.message : value;
}

function logfmt(record: LogFields): string {
  const parts: string[] = [];
  for (const [key, value] of Object.entries(record)) {
    if (value === undefined) continue;
    parts.push(`${key}=${logfmtValue(value)}`);
  }
  return parts.join(" ");
}

function logfmtValue(value: unknown): string {
  const text = value instanceof Error
    ? value.message
    : typeof value === "string"
    ? value
    : typeof value === "object" && value !== null
    ? JSON.stringify(value)
    : String(value);
  // deno-lint-ignore no-control-regex
  return text === "" || /[\s"=\\]/.test(text) || /[\x00-\x1f]/.test(text)
    ? JSON.stringify(text)
    : text;
}

/** Options for {@linkcode createRepeatFilter}. */
export interface RepeatFilterOptions {
  /** A key is let through at most once per interval. @default {60000} */
  intervalMs?: number;
  /** Keys remembered at most; the oldest are forgotten. @default {1000} */
  maxKeys?: number;
  /** The clock. @default {Date.now} */
  now?: () => number;
}

/**
 * Rate-limits repeated log lines: for a key (e.g. a URL and a status), the
 * first call in each interval returns how many calls were held back since
 * the last line (0 the first time); the others return null (log them at
 * debug, or not at all).
 *
 * @param options Interval, memory bound and clock.
 * @returns The filter.
 */
export function createRepeatFilter(
  options: RepeatFilterOptions = {},
): (key: string) => number | null {
  const intervalMs = options.intervalMs ?? 60_000;
  const maxKeys = options.maxKeys ?? 1000;
  const now = options.now ?? Date.now;
  const seen = new Map<string, { at: number; held: number }>();
  return (key) => {
    const at = now();
    const entry = seen.get(key);
    if (entry !== undefined && at - entry.at < intervalMs) {
      entry.held++;
      return null;
    }
    const held = entry?.held ?? 0;
    seen.delete(key);
    seen.set(key, { at, held: 0 });
    if (seen.size > maxKeys) seen.delete(seen.keys().next().value!);
    return held;
  };
}
