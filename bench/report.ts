/**
 * Turns benchmark results into Markdown tables; goals.ts judges them
 * against the goals.
 *
 * @module
 */

import type { ChurnResult } from "./churn.ts";
import type { ClientsResult } from "./clients.ts";
import { caseKey, fixed, markdownTable, pair, ratio, span, succeeded } from "./figures.ts";
import { goalsTable, type GoalVerdict } from "./goals.ts";
import type { ModuleCaseResult } from "./modules.ts";
import type { MachineInfo } from "./proc.ts";
import type { IdleFigures, ProcessMemory } from "./services.ts";
import type { CaseResult } from "./throughput.ts";

export { markdownTable } from "./figures.ts";

function memoryCell(m: ProcessMemory | undefined): string {
  return m ? `${fixed(m.idle, 1)} / ${fixed(m.peak, 1)} / ${fixed(m.postLoad, 1)}` : "-";
}

/**
 * The latency and throughput table: direct and proxied side by side.
 *
 * @param cases The matrix's cases.
 * @returns Markdown.
 */
export function latencyTable(cases: readonly CaseResult[]): string {
  const rows = pair(cases).map(([d, p]) => [
    d.round,
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
    "round",
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
 * The cost table: CPU and peak RSS of this project's proxy and client in
 * proxied cases.
 *
 * @param cases The matrix's cases.
 * @returns Markdown.
 */
export function costTable(cases: readonly CaseResult[]): string {
  const rows = cases.filter((c) => c.mode === "proxied" && c.impl === "self").map((c) => [
    c.round,
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
    "round",
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
    memoryCell(r.memory.processes.client),
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
    "client RSS MiB idle / peak / post-load",
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
    "proxy RSS MiB idle / peak / post-load",
    "client",
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
    memoryCell(r.memory.processes.proxy),
    memoryCell(r.memory.processes.client),
  ]]);
}

/**
 * The side-by-side table: each matrix case through this project and through
 * the peer, every round, with ratios (this ÷ peer) of the means.
 *
 * @param cases The matrix's cases, run with a peer.
 * @returns Markdown.
 */
export function peerTable(cases: readonly CaseResult[]): string {
  const keys = [...new Set(cases.filter((c) => c.mode === "proxied").map(caseKey))];
  const rows = keys.map((key) => {
    const of = (impl: "self" | "peer") =>
      cases.filter((c) => c.mode === "proxied" && c.impl === impl && caseKey(c) === key);
    const self = of("self");
    const peer = of("peer");
    const added = (impl: "self" | "peer", p: "p50" | "p99") =>
      pair(cases, impl).filter(([d, x]) =>
        caseKey(d) === key && x !== undefined && succeeded(d) && succeeded(x)
      ).map(([d, x]) => x!.latencyMs[p] - d.latencyMs[p]);
    const first = self[0] ?? peer[0]!;
    const both = (c: CaseResult) => c.cpu.proxyAndClient;
    const bulk = first.bodyBytes >= 1024 * 1024;
    const cpu = (list: CaseResult[]) =>
      list.filter(succeeded).map((c) => bulk ? both(c).perMiBMs : both(c).perScrapeMs);
    const peak = (list: CaseResult[]) => list.map((c) => c.peakRssMiB.proxyAndClient);
    return [
      `${first.payload} ${first.encoding === "gzip" ? "gzip " : ""}c${first.concurrency}`,
      `${span(self.map((c) => c.rps), 0)} / ${span(peer.map((c) => c.rps), 0)}`,
      ratio(self.map((c) => c.rps), peer.map((c) => c.rps)),
      `${span(cpu(self), 2)} / ${span(cpu(peer), 2)} ${bulk ? "ms/MiB" : "ms/scrape"}`,
      ratio(cpu(self), cpu(peer)),
      `${span(added("self", "p50"), 2)} / ${span(added("peer", "p50"), 2)}`,
      `${span(added("self", "p99"), 2)} / ${span(added("peer", "p99"), 2)}`,
      `${span(peak(self), 0)} / ${span(peak(peer), 0)}`,
      ratio(peak(self), peak(peer)),
      `${self.reduce((n, c) => n + c.errors, 0)} / ${peer.reduce((n, c) => n + c.errors, 0)}`,
    ];
  });
  return markdownTable([
    "case",
    "rps this / peer",
    "rps ×",
    "CPU proxy+client this / peer",
    "CPU ×",
    "added p50 ms this / peer",
    "added p99 ms this / peer",
    "peak RSS MiB proxy+client this / peer",
    "RSS ×",
    "errors",
  ], rows);
}

/**
 * The memory table: idle, peak and post-load RSS of proxy and client in
 * each proxied case.
 *
 * @param cases The matrix's cases.
 * @returns Markdown.
 */
export function memoryTable(cases: readonly CaseResult[]): string {
  const rows = cases.filter((c) => c.mode === "proxied" && c.memory).map((c) => [
    c.implLabel,
    c.round,
    `${c.payload} ${c.encoding === "gzip" ? "gzip " : ""}c${c.concurrency}`,
    memoryCell(c.memory!.processes.proxy),
    memoryCell(c.memory!.processes.client),
    fixed(c.memory!.postLoadWaitSeconds, 1),
  ]);
  return markdownTable([
    "proxy and client",
    "round",
    "case",
    "proxy RSS MiB idle / peak / post-load",
    "client RSS MiB idle / peak / post-load",
    "post-load after s",
  ], rows);
}

/**
 * The module-path table: the exporter process per case, this client and the
 * peer exporter_exporter side by side when there is one.
 *
 * @param cases The module-path cases.
 * @returns Markdown.
 */
export function modulesTable(cases: readonly ModuleCaseResult[]): string {
  const keyOf = (c: ModuleCaseResult) => `${c.payload} ${c.verify} ${c.concurrency}`;
  const keys = [...new Set(cases.map(keyOf))];
  const hasPeer = cases.some((c) => c.impl === "peer");
  const rows = keys.map((key) => {
    const self = cases.filter((c) => c.impl === "self" && keyOf(c) === key);
    const peer = cases.filter((c) => c.impl === "peer" && keyOf(c) === key);
    const first = self[0] ?? peer[0]!;
    const bulk = first.bodyBytes >= 1024 * 1024;
    const cpu = (list: ModuleCaseResult[]) =>
      list.filter(succeeded).map((c) =>
        bulk ? c.cpu.exporter.perMiBMs : c.cpu.exporter.perScrapeMs
      );
    const mem = (list: ModuleCaseResult[], f: "idle" | "peak" | "postLoad") =>
      list.map((c) => c.memory.processes.exporter?.[f] ?? 0);
    const cell = (f: (list: ModuleCaseResult[]) => number[], digits: number) =>
      hasPeer ? `${span(f(self), digits)} / ${span(f(peer), digits)}` : span(f(self), digits);
    return [
      `${first.payload} c${first.concurrency}`,
      first.verify ? "on" : "off",
      cell((l) => l.map((c) => c.rps), 0),
      ...(hasPeer ? [ratio(self.map((c) => c.rps), peer.map((c) => c.rps))] : []),
      cell((l) => l.filter(succeeded).map((c) => c.latencyMs.p50), 2),
      cell((l) => l.filter(succeeded).map((c) => c.latencyMs.p99), 2),
      `${cell(cpu, 2)} ${bulk ? "ms/MiB" : "ms/scrape"}`,
      ...(hasPeer ? [ratio(cpu(self), cpu(peer))] : []),
      cell((l) => mem(l, "idle"), 1),
      cell((l) => mem(l, "peak"), 1),
      cell((l) => mem(l, "postLoad"), 1),
      `${[...self, ...peer].reduce((n, c) => n + c.errors, 0)}`,
    ];
  });
  const vs = hasPeer ? " this / peer" : "";
  return markdownTable([
    "case",
    "verify",
    `rps${vs}`,
    ...(hasPeer ? ["rps ×"] : []),
    `p50 ms${vs}`,
    `p99 ms${vs}`,
    `CPU${vs}`,
    ...(hasPeer ? ["CPU ×"] : []),
    `idle RSS MiB${vs}`,
    `peak RSS MiB${vs}`,
    `post-load RSS MiB${vs}`,
    "errors",
  ], rows);
}

/** What {@linkcode summaryMarkdown} reports of a run. */
export interface RunSummary {
  profile: string;
  machine: MachineInfo;
  commit: string | null;
  label: string | null;
  /** How the programs ran: from bundles (as deployed) or from sources. */
  build?: "bundle" | "source";
  durationSeconds: number;
  /** The peer's name in tables. */
  peerLabel: string;
  idle: Record<string, IdleFigures>;
  cases: readonly CaseResult[];
  modules: readonly ModuleCaseResult[];
  clients: readonly ClientsResult[];
  churn: ChurnResult | null;
  goals: readonly GoalVerdict[];
}

/**
 * The run's Markdown report: machine, idle figures, every table and the
 * goals.
 *
 * @param run What the run measured.
 * @param out Where the JSON result was written.
 * @returns Markdown.
 */
export function summaryMarkdown(run: RunSummary, out: string): string {
  const sections = [
    `## PushProx benchmark: profile ${run.profile}`,
    `${run.machine.nproc} CPUs (${run.machine.cpuModel}), ${run.machine.memTotalMiB} MiB RAM, Linux ${run.machine.kernel}, deno ${run.machine.deno} (V8 ${run.machine.v8}); commit ${
      run.commit ?? "?"
    }${run.label ? ` (${run.label})` : ""}; ${
      run.build === "bundle"
        ? "run from bundles, as deployed; "
        : run.build === "source"
        ? "run from sources; "
        : ""
    }${run.durationSeconds} s`,
  ];
  for (const [id, figures] of Object.entries(run.idle)) {
    const mib = (kib: number) => (kib / 1024).toFixed(1);
    sections.push(
      `Idle, just started (${id === "self" ? "this project" : run.peerLabel}): proxy ${
        mib(figures.proxy.rssKiB)
      } MiB RSS, ${figures.proxy.fds} fds; client ${
        mib(figures.client.rssKiB)
      } MiB RSS, ${figures.client.fds} fds.`,
    );
  }
  if (run.cases.length > 0) {
    sections.push(
      "Each proxied case runs on a fresh proxy and client.",
      "### Throughput and latency (direct vs through this project's proxy)",
      latencyTable(run.cases),
      "### Cost of the proxied scrapes (this project's proxy and client processes)",
      costTable(run.cases),
    );
    if (run.cases.some((c) => c.impl === "peer")) {
      sections.push(
        `### Side by side: this project / ${run.peerLabel} (× = this ÷ ${run.peerLabel}; ranges over rounds)`,
        peerTable(run.cases),
      );
    }
    sections.push(
      "### Memory: RSS before, during and after each proxied case",
      memoryTable(run.cases),
    );
  }
  if (run.modules.length > 0) {
    const vs = run.modules.some((c) => c.impl === "peer")
      ? ` (this project / ${run.peerLabel})`
      : "";
    sections.push(
      `### Module path: the client's exporter_exporter listener${vs}`,
      modulesTable(run.modules),
    );
  }
  if (run.clients.length > 0) {
    sections.push("### Idle clients", clientsTable(run.clients));
  }
  if (run.churn) sections.push("### Client churn", churnTable(run.churn));
  sections.push("### Goals (issue 11; churn: issue 5)", goalsTable(run.goals), `JSON: ${out}`);
  return sections.join("\n\n");
}
