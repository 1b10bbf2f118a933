/**
 * Go-style durations ("15s", "5m", "1h30m", "250ms"), the format Prometheus
 * and PushProx flags use.
 *
 * @module
 */

const UNIT_MS: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  "µs": 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

const PART_REGEXP = /^(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)/;

/**
 * Parses a Go duration string into milliseconds.
 *
 * @param text A duration such as "15s", "1m30s" or "0".
 * @returns The duration in milliseconds.
 * @throws {SyntaxError} When the text is not a duration.
 */
export function parseDuration(text: string): number {
  const input = text.trim();
  if (input === "0") return 0;
  if (input === "") throw new SyntaxError("Cannot parse duration: empty");
  let rest = input;
  let total = 0;
  while (rest.length > 0) {
    const match = PART_REGEXP.exec(rest);
    if (match === null) {
      throw new SyntaxError(
        `Cannot parse duration "${text}": expected a number and a unit (ms, s, m, h)`,
      );
    }
    total += Number(match[1]) * UNIT_MS[match[2]!]!;
    rest = rest.slice(match[0].length);
  }
  return total;
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
