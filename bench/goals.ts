/**
 * Judges a benchmark run against the goals of issue 11 (and issue 5's
 * churn goal), goal by goal.
 *
 * @module
 */

import type { ChurnResult } from "./churn.ts";
import type { ClientsResult } from "./clients.ts";
import { fixed, markdownTable, mean, pair, span, succeeded } from "./figures.ts";
import type { ModuleCaseResult } from "./modules.ts";
import type { CaseResult } from "./throughput.ts";
import type { ProcessMemory } from "./services.ts";

/**
 * The private anonymous memory beside an RSS figure: what RSS adds on top of
 * it after a load is mostly the executable's code pages first run under the
 * load (file pages, shared, dropped by the kernel under pressure), which say
 * nothing about memory the program keeps.
 */
function privateText(m: ProcessMemory): string {
  return m.anon
    ? `; private (RssAnon) ${fixed(m.anon.idle, 1)} → ${fixed(m.anon.postLoad, 1)} MiB`
    : "";
}

/** One goal and how the run did against it. */
export interface GoalVerdict {
  goal: string;
  target: string;
  measured: string;
  /** null when this run did not measure it. */
  pass: boolean | null;
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
      } %) after ${fixed(back.memory!.postLoadWaitSeconds, 0)} s${
        privateText(mem(back, "client"))
      }`,
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
