/**
 * Turns benchmark results into Markdown tables and a goal-by-goal verdict
 * (the goals of issue 5).
 *
 * @module
 */

import type { CaseResult, ChurnResult, ClientsResult } from "./profiles.ts";

/** One goal and how the run did against it. */
export interface GoalVerdict {
  goal: string;
  target: string;
  measured: string;
  /** null when this run did not measure it. */
  pass: boolean | null;
}

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

function fixed(value: number, digits: number): string {
  return value.toFixed(digits);
}

function pair(
  cases: readonly CaseResult[],
): [CaseResult, CaseResult | undefined][] {
  const proxied = new Map(
    cases.filter((c) => c.mode === "proxied").map((c) => [
      `${c.payload} ${c.encoding} ${c.concurrency}`,
      c,
    ]),
  );
  const pairs: [CaseResult, CaseResult | undefined][] = [];
  for (const c of cases) {
    if (c.mode !== "direct") continue;
    pairs.push([c, proxied.get(`${c.payload} ${c.encoding} ${c.concurrency}`)]);
  }
  return pairs;
}

/**
 * The latency and throughput table: direct and proxied side by side.
 *
 * @param cases The matrix's cases.
 * @returns Markdown.
 */
export function latencyTable(cases: readonly CaseResult[]): string {
  const rows = pair(cases).map(([d, p]) => [
    d.payload,
    d.encoding,
    d.bodyBytes,
    `c${d.concurrency}`,
    fixed(d.rps, 1),
    p ? fixed(p.rps, 1) : "-",
    fixed(d.latencyMs.p50, 2),
    p ? fixed(p.latencyMs.p50, 2) : "-",
    p ? fixed(p.latencyMs.p50 - d.latencyMs.p50, 2) : "-",
    fixed(d.latencyMs.p99, 2),
    p ? fixed(p.latencyMs.p99, 2) : "-",
    `${d.requests}/${p?.requests ?? "-"}`,
    `${d.errors}/${p?.errors ?? "-"}`,
    `${fixed(d.cpu.other.cores, 2)}/${p ? fixed(p.cpu.other.cores, 2) : "-"}`,
  ]);
  return markdownTable([
    "payload",
    "enc",
    "body B",
    "conc",
    "rps direct",
    "rps proxied",
    "p50 direct ms",
    "p50 proxied ms",
    "added p50 ms",
    "p99 direct ms",
    "p99 proxied ms",
    "scrapes d/p",
    "errors d/p",
    "other CPU d/p",
  ], rows);
}

/**
 * The cost table: CPU and peak RSS of proxy and client in proxied cases.
 *
 * @param cases The matrix's cases.
 * @returns Markdown.
 */
export function costTable(cases: readonly CaseResult[]): string {
  const rows = cases.filter((c) => c.mode === "proxied").map((c) => [
    c.payload,
    c.encoding,
    `c${c.concurrency}`,
    fixed(c.mibPerSecond, 1),
    fixed(c.cpu.proxy.perScrapeMs, 2),
    fixed(c.cpu.client.perScrapeMs, 2),
    fixed(c.cpu.proxyAndClient.perScrapeMs, 2),
    fixed(c.cpu.proxy.perMiBMs, 2),
    fixed(c.cpu.client.perMiBMs, 2),
    fixed(c.cpu.proxyAndClient.perMiBMs, 2),
    fixed(c.cpu.proxyAndClient.cores, 2),
    fixed(c.peakRssMiB.proxy, 1),
    fixed(c.peakRssMiB.client, 1),
    fixed(c.peakRssMiB.proxyAndClient, 1),
  ]);
  return markdownTable([
    "payload",
    "enc",
    "conc",
    "MiB/s",
    "CPU ms/scrape proxy",
    "client",
    "both",
    "CPU ms/MiB proxy",
    "client",
    "both",
    "cores used",
    "peak RSS MiB proxy",
    "client",
    "both",
  ], rows);
}

/**
 * The idle-clients table.
 *
 * @param results One per N.
 * @returns Markdown.
 */
export function clientsTable(results: readonly ClientsResult[]): string {
  const rows = results.map((r) => [
    r.clients,
    `${r.registered}/${r.failed}/${r.dropped}`,
    `${fixed(r.connectSeconds, 1)}/${fixed(r.releaseSeconds, 1)}`,
    fixed(r.proxy.baseline.rssKiB / 1024, 1),
    fixed(r.proxy.held.rssKiB / 1024, 1),
    fixed(r.proxy.rssPerClientKiB, 2),
    r.proxy.rssPerClientAfterGcKiB === undefined
      ? "-"
      : `${fixed(r.proxy.rssPerClientAfterGcKiB, 2)}/${fixed(r.proxy.heapPerClientKiB ?? 0, 2)}`,
    `${r.proxy.baseline.fds}/${r.proxy.held.fds}/${r.proxy.released.fds}`,
    fixed(r.proxy.fdsPerClient, 3),
    fixed(r.proxy.idleCores, 3),
    fixed(r.proxy.released.rssKiB / 1024, 1),
    fixed(r.scrapes.latencyMs.p50, 2),
    fixed(r.scrapes.latencyMs.p99, 2),
    `${r.scrapes.requests}/${r.scrapes.errors}`,
    fixed(r.holderRssKiB / 1024, 1),
  ]);
  return markdownTable([
    "clients",
    "reg/fail/drop",
    "connect/release s",
    "proxy RSS base MiB",
    "held MiB",
    "KiB/client",
    "after GC: KiB/client RSS/heap",
    "fds base/held/after",
    "fds/client",
    "idle CPU cores",
    "RSS after MiB",
    "scrape p50 ms",
    "p99 ms",
    "scrapes/errors",
    "holder RSS MiB",
  ], rows);
}

/**
 * The churn table.
 *
 * @param r The churn result.
 * @returns Markdown.
 */
export function churnTable(r: ChurnResult): string {
  const mib = (kib: number) => fixed(kib / 1024, 1);
  return markdownTable([
    "cycles",
    "failed",
    "fqdn pool",
    "seconds",
    "cycles/s",
    "proxy CPU ms/cycle",
    "RSS cold/base/after MiB",
    "RSS change %",
    "vs cold %",
    "fds cold/base/after",
    "heap Δ after GC %",
    "scrapes after/errors",
  ], [[
    r.cycles,
    r.failed,
    r.fqdnPool,
    fixed(r.seconds, 1),
    r.cyclesPerSecond,
    fixed(r.proxyCpuPerCycleMs, 3),
    `${mib(r.proxy.cold.rssKiB)}/${mib(r.proxy.baseline.rssKiB)}/${mib(r.proxy.after.rssKiB)}`,
    fixed(r.proxy.rssChangePct, 1),
    fixed(r.proxy.rssChangeVsColdPct, 1),
    `${r.proxy.cold.fds}/${r.proxy.baseline.fds}/${r.proxy.after.fds}`,
    r.proxy.heapChangeAfterGcPct === undefined ? "-" : fixed(r.proxy.heapChangeAfterGcPct, 1),
    `${r.scrapes.requests}/${r.scrapes.errors}`,
  ]]);
}

/**
 * Judges a run against the goals of issue 5 §2.
 *
 * @param cases Throughput cases, if run.
 * @param clients Idle-client results, if run.
 * @param churn Churn result, if run.
 * @returns One verdict per goal.
 */
export function judgeGoals(
  cases: readonly CaseResult[],
  clients: readonly ClientsResult[],
  churn: ChurnResult | null,
): GoalVerdict[] {
  const proxied = cases.filter((c) => c.mode === "proxied");
  const verdicts: GoalVerdict[] = [];

  const bulk = proxied.filter((c) => c.encoding === "identity" && c.bodyBytes >= 1024 * 1024);
  const worst = bulk.reduce<CaseResult | null>(
    (w, c) =>
      w === null ||
        c.cpu.proxyAndClient.perMiBMs > w.cpu.proxyAndClient.perMiBMs
        ? c
        : w,
    null,
  );
  verdicts.push({
    goal: "CPU per MiB proxied, proxy+client (worst identity case ≥ 1 MiB)",
    target: "≤ 1.0 ms",
    measured: worst
      ? `${fixed(worst.cpu.proxyAndClient.perMiBMs, 2)} ms (${worst.name})`
      : "not run",
    pass: worst ? worst.cpu.proxyAndClient.perMiBMs <= 1.0 : null,
  });

  const big = proxied.find((c) =>
    c.encoding === "identity" && c.bodyBytes === 20 * 1024 * 1024 &&
    c.concurrency === 8
  );
  verdicts.push({
    goal: "Peak RSS proxy+client, 20 MiB bodies at c8",
    target: "≤ 128 MiB",
    measured: big
      ? `${fixed(big.peakRssMiB.proxyAndClient, 1)} MiB (proxy ${
        fixed(big.peakRssMiB.proxy, 1)
      } + client ${fixed(big.peakRssMiB.client, 1)})`
      : "not run",
    pass: big ? big.peakRssMiB.proxyAndClient <= 128 : null,
  });

  const small = pair(cases).find(([d]) =>
    d.encoding === "identity" && d.payload === "57KiB" && d.concurrency === 1
  );
  const added = small?.[1] ? small[1].latencyMs.p50 - small[0].latencyMs.p50 : null;
  verdicts.push({
    goal: "Added p50 latency, 57 KiB at c1, over direct",
    target: "≤ 1.0 ms",
    measured: added === null
      ? "not run"
      : `${fixed(added, 2)} ms (${fixed(small![0].latencyMs.p50, 2)} → ${
        fixed(small![1]!.latencyMs.p50, 2)
      })`,
    pass: added === null ? null : added <= 1.0,
  });

  const tenK = clients.find((r) => r.clients === 10_000) ??
    clients.at(-1);
  verdicts.push({
    goal: `Idle clients: proxy RSS per client at ${
      tenK?.clients ?? 10_000
    } clients, scrapes p99 ≤ 50 ms`,
    target: "≤ 20 KiB and ≤ 50 ms, no errors",
    measured: tenK
      ? `${fixed(tenK.proxy.rssPerClientKiB, 2)} KiB/client${
        tenK.proxy.rssPerClientAfterGcKiB === undefined
          ? ""
          : ` (${fixed(tenK.proxy.rssPerClientAfterGcKiB, 2)} after a forced GC)`
      }, p99 ${
        fixed(tenK.scrapes.latencyMs.p99, 2)
      } ms, ${tenK.scrapes.errors} errors, ${tenK.registered}/${tenK.clients} registered`
      : "not run",
    pass: tenK
      ? tenK.clients >= 10_000 && tenK.proxy.rssPerClientKiB <= 20 &&
        tenK.scrapes.latencyMs.p99 <= 50 && tenK.scrapes.errors === 0 &&
        tenK.registered === tenK.clients
      : null,
  });

  verdicts.push({
    goal: `Churn (${churn?.cycles ?? 20_000} cycles): fds back to baseline, RSS within 10%`,
    target: "fds Δ ≤ 0, RSS Δ ≤ +10%",
    measured: churn
      ? `fds Δ ${churn.proxy.fdsChange}, RSS Δ ${
        fixed(churn.proxy.rssChangePct, 1)
      }% (vs cold start ${fixed(churn.proxy.rssChangeVsColdPct, 1)}%)`
      : "not run",
    pass: churn
      ? churn.proxy.fdsChange <= 0 &&
        churn.proxy.rssChangePct <= 10 && churn.failed === 0
      : null,
  });
  return verdicts;
}

/**
 * Formats goal verdicts as a table.
 *
 * @param verdicts The verdicts.
 * @returns Markdown.
 */
export function goalsTable(verdicts: readonly GoalVerdict[]): string {
  return markdownTable(
    ["goal", "target", "measured", "verdict"],
    verdicts.map((v) => [
      v.goal,
      v.target,
      v.measured,
      v.pass === null ? "n/a" : v.pass ? "PASS" : "FAIL",
    ]),
  );
}
