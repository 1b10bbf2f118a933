/**
 * Go-style durations ("15s", "5m", "1h30m", "250ms"), the format Prometheus
 * and PushProx flags use.
 *
 * @module
 */

const PART_REGEXP = /(\d*)(?:\.(\d*))?(ns|us|\u00b5s|\u03bcs|ms|s|m|h)/y;
const NS_PER_UNIT: Readonly<Record<string, number>> = {
  ns: 1,
  us: 1e3,
  "\u00b5s": 1e3, // micro sign
  "\u03bcs": 1e3, // Greek mu
  ms: 1e6,
  s: 1e9,
  m: 60e9,
  h: 3600e9,
};
/** Go's time.Duration is an int64 of nanoseconds. */
const MAX_DURATION_NS = 9223372036854775807;

/**
 * Parses a duration exactly as Go's `time.ParseDuration` does: an optional
 * sign, then one or more decimal numbers each with a unit (`ns`, `us`, `µs`,
 * `μs`, `ms`, `s`, `m`, `h`), as in "300ms", "-1.5h", "2h45m", ".5s" or
 * "5.s"; "0" alone needs no unit. No spaces anywhere, and nothing beyond
 * Go's int64 nanoseconds (about 292 years).
 *
 * @example Reading Go durations
 * ```ts
 * import { parseGoDuration } from "./duration.ts";
 * parseGoDuration("1m30s"); // 90000
 * parseGoDuration("-250us"); // -0.25
 * parseGoDuration("15"); // undefined: no unit
 * ```
 *
 * @param text The duration.
 * @returns Milliseconds (negative for a negative duration, fractional below
 * 1 ms), or `undefined` when Go would refuse the text.
 */
export function parseGoDuration(text: string): number | undefined {
  let rest = text;
  let sign = 1;
  if (rest.startsWith("-") || rest.startsWith("+")) {
    if (rest[0] === "-") sign = -1;
    rest = rest.slice(1);
  }
  if (rest === "0") return 0;
  if (rest === "") return undefined;
  let ns = 0;
  let at = 0;
  while (at < rest.length) {
    PART_REGEXP.lastIndex = at;
    const match = PART_REGEXP.exec(rest);
    if (match === null) return undefined;
    const whole = match[1] ?? "";
    const fraction = match[2];
    if (whole === "" && (fraction === undefined || fraction === "")) {
      return undefined;
    }
    const number = Number(`${whole || "0"}.${fraction || "0"}`);
    ns += number * NS_PER_UNIT[match[3]!]!;
    at = PART_REGEXP.lastIndex;
  }
  if (ns > MAX_DURATION_NS) return undefined;
  return ns === 0 ? 0 : (sign * ns) / 1e6;
}

/**
 * Parses a Go duration that must not be negative, such as a flag's value,
 * into milliseconds. The grammar is {@linkcode parseGoDuration}'s.
 *
 * @param text A duration such as "15s", "1m30s" or "0".
 * @returns The duration in milliseconds.
 * @throws {SyntaxError} When the text is not a Go duration.
 * @throws {RangeError} When the duration is negative.
 */
export function parseDuration(text: string): number {
  if (text === "") throw new SyntaxError("Cannot parse duration: empty");
  const ms = parseGoDuration(text);
  if (ms === undefined) {
    throw new SyntaxError(
      `Cannot parse duration "${text}": expected a number and a unit (ms, s, m, h)`,
    );
  }
  if (ms < 0) {
    throw new RangeError(`Cannot use duration "${text}": must not be negative`);
  }
  return ms;
}

/**
 * Formats milliseconds as a short Go-style duration ("15s", "5m0s", "250ms").
 *
 * @param ms The duration in milliseconds.
 * @returns The formatted duration.
 */
export function formatDuration(ms: number): string {
  if (ms === 0) return "0s";
  if (ms < 1000) return `${ms}ms`;
  const hours = Math.floor(ms / 3_600_000);
  const minutes = Math.floor((ms % 3_600_000) / 60_000);
  const seconds = (ms % 60_000) / 1000;
  let out = "";
  if (hours > 0) out += `${hours}h`;
  if (hours > 0 || minutes > 0) out += `${minutes}m`;
  out += `${seconds}s`;
  return out;
}
