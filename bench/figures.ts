/**
 * Arithmetic and formatting over benchmark results, shared by the report's
 * tables (report.ts) and the goal verdicts (goals.ts).
 *
 * @module
 */

import type { CaseResult } from "./throughput.ts";

/**
 * Formats rows as a Markdown table with aligned columns.
 *
 * @param headers Column titles.
 * @param rows Cells.
 * @returns The table text.
 */
export function markdownTable(
  headers: readonly string[],
  rows: readonly (readonly (string | number)[])[],
): string {
  const cells = [headers, ...rows].map((row) => row.map(String));
  const widths = headers.map((_, i) => Math.max(3, ...cells.map((row) => (row[i] ?? "").length)));
  const line = (row: readonly string[]) =>
    "| " + row.map((cell, i) => cell.padEnd(widths[i]!)).join(" | ") + " |";
  return [
    line(cells[0]!),
    "|" + widths.map((w) => "-".repeat(w + 2)).join("|") + "|",
    ...cells.slice(1).map(line),
  ].join("\n");
}

/** A number with `digits` decimals. */
export function fixed(value: number, digits: number): string {
  return value.toFixed(digits);
}

/** Payload, encoding and concurrency: what a direct and a proxied case share. */
export function caseKey(c: CaseResult): string {
  return `${c.payload} ${c.encoding} ${c.concurrency}`;
}

/** Direct cases with the proxied case of `impl` in the same round. */
export function pair(
  cases: readonly CaseResult[],
  impl: "self" | "peer" = "self",
): [CaseResult, CaseResult | undefined][] {
  const proxied = new Map(
    cases.filter((c) => c.mode === "proxied" && c.impl === impl).map((c) => [
      `${caseKey(c)} ${c.round}`,
      c,
    ]),
  );
  const pairs: [CaseResult, CaseResult | undefined][] = [];
  for (const c of cases) {
    if (c.mode !== "direct") continue;
    pairs.push([c, proxied.get(`${caseKey(c)} ${c.round}`)]);
  }
  return pairs;
}

/** A value, or the range of several: "839–1124". */
export function span(values: readonly number[], digits: number): string {
  if (values.length === 0) return "-";
  const min = Math.min(...values);
  const max = Math.max(...values);
  return min.toFixed(digits) === max.toFixed(digits)
    ? min.toFixed(digits)
    : `${min.toFixed(digits)}–${max.toFixed(digits)}`;
}

/** Whether any scrape of a case succeeded: latency and CPU per MiB exist only then. */
export function succeeded(c: { requests: number; errors: number }): boolean {
  return c.requests > c.errors;
}

/** The arithmetic mean; 0 for none. */
export function mean(values: readonly number[]): number {
  return values.reduce((sum, v) => sum + v, 0) / Math.max(1, values.length);
}

/** this ÷ peer of the means, e.g. "1.52×"; "-" without both. */
export function ratio(self: readonly number[], peer: readonly number[]): string {
  if (self.length === 0 || peer.length === 0 || mean(peer) === 0) return "-";
  return `${(mean(self) / mean(peer)).toFixed(2)}×`;
}
