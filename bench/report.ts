/**
 * Turns benchmark results into Markdown tables and a goal-by-goal verdict
 * (the goals of issue 11, and issue 5's churn goal).
 *
 * @module
 */

import type { ModuleCaseResult } from "./modules.ts";
import type { CaseResult, ChurnResult, ClientsResult, ProcessMemory } from "./profiles.ts";

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

function caseKey(c: CaseResult): string {
  return `${c.payload} ${c.encoding} ${c.concurrency}`;
}

/** Direct cases with the proxied case of `impl` in the same round. */
function pair(
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
function span(values: readonly number[], digits: number): string {
  if (values.length === 0) return "-";
  const min = Math.min(...values);
  const max = Math.max(...values);
  return min.toFixed(digits) === max.toFixed(digits)
    ? min.toFixed(digits)
    : `${min.toFixed(digits)}–${max.toFixed(digits)}`;
}

/** Whether any scrape of a case succeeded: latency and CPU per MiB exist only then. */
function succeeded(c: { requests: number; errors: number }): boolean {
  return c.requests > c.errors;
}

function mean(values: readonly number[]): number {
  return values.reduce((sum, v) => sum + v, 0) / Math.max(1, values.length);
}

/** this ÷ peer of the means, e.g. "1.52×"; "-" without both. */
function ratio(self: readonly number[], peer: readonly number[]): string {
  if (self.length === 0 || peer.length === 0 || mean(peer) === 0) return "-";
  return `${(mean(self) / mean(peer)).toFixed(2)}×`;
}

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
    const mem = (list: ModuleCaseResult[], f: keyof ProcessMemory) =>
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

/** Everything a run measured, for {@linkcode judgeGoals}. */
export interface RunResults {
  cases: readonly CaseResult[];
  modules: readonly ModuleCaseResult[];
  clients: readonly ClientsResult[];
  churn: ChurnResult | null;
}

/** exporter_exporter 0.4.0's figures (issue 11), used when no peer ran. */
const EXPEXP_ANCHOR = { scrape57KiBMs: 0.14, perMiB1MiBMs: 0.62 };

const NOT_RUN = "not run";

function worst<T>(list: readonly T[], value: (item: T) => number): T | null {
  return list.reduce<T | null>((w, c) => w === null || value(c) > value(w) ? c : w, null);
}

/**
 * Judges a run against the goals of issue 11 (and issue 5's churn goal).
 * Where several rounds ran, the worst round is judged.
 *
 * @param run What the run measured.
 * @returns One verdict per goal; `pass` is null when the run did not
 * measure it.
 */
export function judgeGoals(run: RunResults): GoalVerdict[] {
  const { cases, modules, clients, churn } = run;
  const verdicts: GoalVerdict[] = [];
  const goal = (
    name: string,
    target: string,
    measured: string | null,
    pass: boolean | null,
  ) => verdicts.push({ goal: name, target, measured: measured ?? NOT_RUN, pass });
  const self = (payload: string, concurrency?: number) =>
    cases.filter((c) =>
      c.mode === "proxied" && c.impl === "self" && c.encoding === "identity" &&
      c.payload === payload && (concurrency === undefined || c.concurrency === concurrency) &&
      succeeded(c)
    );
  const peer = (payload: string, concurrency: number) =>
    cases.filter((c) =>
      c.mode === "proxied" && c.impl === "peer" && c.encoding === "identity" &&
      c.payload === payload && c.concurrency === concurrency && succeeded(c)
    );
  const both = (c: CaseResult) => c.cpu.proxyAndClient;

  const small = worst(self("57KiB", 1), (c) => both(c).perScrapeMs);
  goal(
    "CPU per scrape, proxy + client, 57 KiB c1",
    "≤ 0.38 ms",
    small && `${fixed(both(small).perScrapeMs, 2)} ms`,
    small && both(small).perScrapeMs <= 0.38,
  );
  for (const [payload, limit] of [["1MiB", 1.5], ["20MiB", 1.0]] as const) {
    const w = worst(self(payload), (c) => both(c).perMiBMs);
    goal(
      `CPU per MiB, proxy + client, ${payload} (worst concurrency)`,
      `≤ ${fixed(limit, 1)} ms/MiB`,
      w && `${fixed(both(w).perMiBMs, 2)} ms/MiB (c${w.concurrency})`,
      w && both(w).perMiBMs <= limit,
    );
  }

  const selfRps = self("57KiB", 1).map((c) => c.rps);
  const peerRps = peer("57KiB", 1).map((c) => c.rps);
  const rpsRatio = selfRps.length > 0 && peerRps.length > 0 ? mean(selfRps) / mean(peerRps) : null;
  goal(
    "rps at 57 KiB c1 against the peer (--peer.proxy), side by side",
    "≥ 2×",
    rpsRatio === null ? null : `${fixed(rpsRatio, 2)}× (${span(selfRps, 0)} / ${span(peerRps, 0)})`,
    rpsRatio === null ? null : rpsRatio >= 2,
  );

  const smallPairs = pair(cases).filter(([d, p]) =>
    p !== undefined && succeeded(d) && succeeded(p) && d.encoding === "identity" &&
    d.payload === "57KiB" && d.concurrency === 1
  ) as [CaseResult, CaseResult][];
  const addedP50 = smallPairs.map(([d, p]) => p.latencyMs.p50 - d.latencyMs.p50);
  goal(
    "Added p50 latency at 57 KiB c1 over a direct scrape",
    "≤ 0.5 ms",
    addedP50.length > 0 ? `${span(addedP50, 2)} ms` : null,
    addedP50.length > 0 ? Math.max(...addedP50) <= 0.5 : null,
  );
  const p99 = smallPairs.map(([, p]) => p.latencyMs.p99);
  goal(
    "p99 latency at 57 KiB c1 through the proxy",
    "≤ 3 ms",
    p99.length > 0 ? `${span(p99, 2)} ms` : null,
    p99.length > 0 ? Math.max(...p99) <= 3 : null,
  );

  const withMemory = cases.filter((c) => c.mode === "proxied" && c.impl === "self" && c.memory);
  const mem = (c: CaseResult, process: string) => c.memory!.processes[process]!;
  for (const [process, limit] of [["client", 48], ["proxy", 56]] as const) {
    const w = worst(withMemory, (c) => mem(c, process).idle);
    goal(
      `${process === "client" ? "Client" : "Proxy"} idle RSS (fresh, before load; worst case)`,
      `≤ ${limit} MiB`,
      w && `${fixed(mem(w, process).idle, 1)} MiB`,
      w && mem(w, process).idle <= limit,
    );
  }
  const big = self("20MiB", 8).filter((c) => c.memory);
  for (const [process, limit] of [["client", 96], ["proxy", 128]] as const) {
    const w = worst(big, (c) => mem(c, process).peak);
    goal(
      `${process === "client" ? "Client" : "Proxy"} peak RSS at 8 × 20 MiB`,
      `≤ ${limit} MiB`,
      w && `${fixed(mem(w, process).peak, 1)} MiB`,
      w && mem(w, process).peak <= limit,
    );
  }
  const back = worst(big, (c) => mem(c, "client").postLoad / Math.max(1, mem(c, "client").idle));
  const backPct = back &&
    (mem(back, "client").postLoad / Math.max(1, mem(back, "client").idle) - 1) * 100;
  goal(
    "Client RSS a minute after 8 × 20 MiB, against its idle RSS",
    "≤ +10 %",
    back &&
      `${fixed(mem(back, "client").idle, 1)} → ${fixed(mem(back, "client").postLoad, 1)} MiB (${
        fixed(backPct!, 0)
      } %) after ${fixed(back.memory!.postLoadWaitSeconds, 0)} s`,
    // Back within 10 % sooner than a minute is met; not back yet after a
    // shorter wait is not a verdict.
    back && (backPct! <= 10 ? true : back.memory!.postLoadWaitSeconds >= 60 ? false : null),
  );
  goal("A 256 MiB scrape: client and proxy each", "≤ 128 MiB", null, null);

  const tenK = clients.find((r) => r.clients === 10_000) ?? clients.at(-1);
  goal(
    `Idle clients: proxy RSS per client at ${tenK?.clients ?? 10_000} clients, scrapes p99`,
    "≤ 12 KiB and ≤ 50 ms, no errors",
    tenK
      ? `${fixed(tenK.proxy.rssPerClientKiB, 2)} KiB/client${
        tenK.proxy.rssPerClientAfterGcKiB === undefined
          ? ""
          : ` (${fixed(tenK.proxy.rssPerClientAfterGcKiB, 2)} after a forced GC)`
      }, p99 ${
        fixed(tenK.scrapes.latencyMs.p99, 2)
      } ms, ${tenK.scrapes.errors} errors, ${tenK.registered}/${tenK.clients} registered`
      : null,
    tenK
      ? tenK.clients >= 10_000 && tenK.proxy.rssPerClientKiB <= 12 &&
        tenK.scrapes.latencyMs.p99 <= 50 && tenK.scrapes.errors === 0 &&
        tenK.registered === tenK.clients
      : null,
  );

  const mod = (impl: "self" | "peer", payload: string, verify: boolean, concurrency?: number) =>
    modules.filter((c) =>
      c.impl === impl && c.payload === payload && c.verify === verify &&
      (concurrency === undefined || c.concurrency === concurrency) && succeeded(c)
    );
  const hasPeerExporter = modules.some((c) => c.impl === "peer");
  for (
    const [payload, perMiB, anchor] of [
      ["57KiB", false, EXPEXP_ANCHOR.scrape57KiBMs],
      ["1MiB", true, EXPEXP_ANCHOR.perMiB1MiBMs],
    ] as const
  ) {
    const cpu = (c: ModuleCaseResult) =>
      perMiB ? c.cpu.exporter.perMiBMs : c.cpu.exporter.perScrapeMs;
    const w = worst(mod("self", payload, false, 1), cpu);
    const peerCases = mod("peer", payload, false, 1);
    const limit = peerCases.length > 0 ? mean(peerCases.map(cpu)) : anchor;
    const unit = perMiB ? "ms/MiB" : "ms/scrape";
    goal(
      `Module path, verify off, ${payload} c1: client CPU against exporter_exporter`,
      `≤ ${fixed(limit, 2)} ${unit} (${
        peerCases.length > 0 ? "the peer, measured" : "exporter_exporter 0.4.0 in issue 11"
      })`,
      w && `${fixed(cpu(w), 2)} ${unit}`,
      w && cpu(w) <= limit,
    );
  }
  for (const [verify, limit] of [[false, 64], [true, 96]] as const) {
    const list = mod("self", "20MiB", verify, 8);
    const growth = (c: ModuleCaseResult) =>
      c.memory.processes.exporter!.peak - c.memory.processes.exporter!.idle;
    const w = worst(list, growth);
    goal(
      `Module path, verify ${verify ? "on" : "off"}, 8 × 20 MiB: client peak RSS over idle`,
      `≤ ${limit} MiB`,
      w &&
        `+${fixed(growth(w), 1)} MiB (${fixed(w.memory.processes.exporter!.idle, 1)} → ${
          fixed(w.memory.processes.exporter!.peak, 1)
        })`,
      w && growth(w) <= limit,
    );
  }
  const leads = [
    ...new Set(modules.filter((c) => c.verify).map((c) => `${c.payload} c${c.concurrency}`)),
  ]
    .map((key) => {
      const of = (impl: "self" | "peer") =>
        modules.filter((c) =>
          c.impl === impl && c.verify && `${c.payload} c${c.concurrency}` === key
        )
          .map((c) => c.rps);
      const s = of("self");
      const p = of("peer");
      return s.length > 0 && p.length > 0 ? { key, ratio: mean(s) / mean(p) } : null;
    }).filter((x) => x !== null);
  goal(
    "Module path, verify on: rps against the peer exporter_exporter (--peer.exporter)",
    "≥ 1× in every case",
    hasPeerExporter && leads.length > 0
      ? leads.map((l) => `${l.key} ${fixed(l.ratio, 2)}×`).join(", ")
      : null,
    hasPeerExporter && leads.length > 0 ? leads.every((l) => l.ratio >= 1) : null,
  );

  goal(
    `Churn (${churn?.cycles ?? 20_000} cycles): fds back to baseline, RSS within 10%`,
    "fds Δ ≤ 0, RSS Δ ≤ +10%",
    churn
      ? `fds Δ ${churn.proxy.fdsChange}, RSS Δ ${
        fixed(churn.proxy.rssChangePct, 1)
      }% (vs cold start ${fixed(churn.proxy.rssChangeVsColdPct, 1)}%)`
      : null,
    churn
      ? churn.proxy.fdsChange <= 0 &&
        churn.proxy.rssChangePct <= 10 && churn.failed === 0
      : null,
  );
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
      v.pass === null ? "n/a" : v.pass ? "met" : "missed",
    ]),
  );
}
