/**
 * The module-path profile (`--profile=modules`): the client as an
 * exporter_exporter, serving on its own listener (no proxy) `http` modules
 * that point at the benchmark's target, with verification on and off; load
 * on `/proxy?module=NAME` as Prometheus scrapes it; CPU per scrape and
 * idle, peak and post-load RSS of the exporter process. Optionally side by
 * side, in alternating rounds, with another exporter_exporter
 * (`--peer.exporter`) reading the same configuration file.
 *
 * @module
 */

import type { Latency } from "./load.ts";
import { readMemory } from "./proc.ts";
import { type MemoryFigures, memoryFigures, waitQuiet } from "./services.ts";
import { sleep } from "../lib/sleep.ts";
import { type CpuFigure, cpuFigure, type PayloadSpec, type TimingSpec } from "./throughput.ts";
import { type ExporterProcess, runLoadProcess, type Target } from "./stack.ts";

const MIB = 1024 * 1024;

/** One exporter_exporter under test: this client's listener or a peer's. */
export interface ModuleImplementation {
  id: "self" | "peer";
  label: string;
  /** Starts a fresh exporter serving the modules of `config`. */
  start(config: string): Promise<ExporterProcess>;
}

/** Settings of the module-path profile. */
export interface ModulesSpec {
  /** Payload (identity) and concurrency of each case. */
  cases: { payload: PayloadSpec; concurrency: number }[];
  /** Verification settings to run each case with. */
  verify: boolean[];
  timing(payload: PayloadSpec): TimingSpec;
  postLoadWaitMs(payload: PayloadSpec): number;
  timeoutSeconds: number;
  only: RegExp | null;
  quietWaitMs: number;
  rounds: number;
  /** Pause after start-up before the idle RSS is read. */
  idleSettleMs: number;
}

/** One case of the module-path profile. */
export interface ModuleCaseResult {
  name: string;
  impl: "self" | "peer";
  implLabel: string;
  round: number;
  module: string;
  payload: string;
  bodyBytes: number;
  concurrency: number;
  verify: boolean;
  requests: number;
  errors: number;
  errorSamples: string[];
  seconds: number;
  rps: number;
  mibPerSecond: number;
  latencyMs: Latency;
  cpu: { exporter: CpuFigure; target: CpuFigure; other: CpuFigure };
  /** Idle, peak and post-load RSS of the exporter process. */
  memory: MemoryFigures;
}

/**
 * The module name the profile gives a payload and verification setting.
 *
 * @param payload The payload.
 * @param verify Whether the module verifies.
 * @returns E.g. `p58368_verify`.
 */
export function moduleName(payload: PayloadSpec, verify: boolean): string {
  return `p${payload.bytes}_${verify ? "verify" : "noverify"}`;
}

/**
 * Writes an exporter_exporter configuration (`expexp.yaml` format, which
 * this client and exporter_exporter both read) with an `http` module per
 * payload and verification setting, pointing at the target.
 *
 * @param file Where to write it.
 * @param spec The profile.
 * @param target The running target.
 */
export async function writeModulesConfig(
  file: string,
  spec: ModulesSpec,
  target: Target,
): Promise<void> {
  const lines = ["modules:"];
  const seen = new Set<string>();
  for (const { payload } of spec.cases) {
    for (const verify of spec.verify) {
      const name = moduleName(payload, verify);
      if (seen.has(name)) continue;
      seen.add(name);
      lines.push(
        `  ${name}:`,
        "    method: http",
        "    http:",
        "      address: 127.0.0.1",
        `      port: ${target.port}`,
        `      path: /plain/${payload.bytes}`,
        `      verify: ${verify}`,
      );
    }
  }
  await Deno.writeTextFile(file, lines.join("\n") + "\n");
}

/**
 * Runs the module-path profile.
 *
 * @param spec Cases and timings.
 * @param target The running target.
 * @param impls This client, and optionally a peer exporter_exporter.
 * @param config Path of the configuration written by
 * {@linkcode writeModulesConfig}.
 * @param onCase Called with each finished case.
 * @returns The cases.
 */
export async function runModules(
  spec: ModulesSpec,
  target: Target,
  impls: readonly ModuleImplementation[],
  config: string,
  onCase: (result: ModuleCaseResult) => void,
): Promise<ModuleCaseResult[]> {
  const results: ModuleCaseResult[] = [];
  for (const { payload, concurrency } of spec.cases) {
    const bodyBytes = target.bodies[String(payload.bytes)]?.plain;
    if (bodyBytes === undefined) {
      throw new Error(`The target has no ${payload.bytes}-byte body`);
    }
    for (const verify of spec.verify) {
      const module = moduleName(payload, verify);
      const key = `module ${payload.label} ${verify ? "verify" : "noverify"} c${concurrency}`;
      for (let round = 1; round <= spec.rounds; round++) {
        const order = round % 2 === 1 ? impls : [...impls].reverse();
        for (const impl of order) {
          const name = `${key}${impl.id === "peer" ? " peer" : ""}`;
          if (spec.only && !spec.only.test(name)) continue;
          const exporter = await impl.start(config);
          try {
            await sleep(spec.idleSettleMs);
            const idleKiB = readMemory(exporter.child.pid).rssKiB;
            if (spec.quietWaitMs > 0) await waitQuiet(spec.quietWaitMs);
            const load = await runLoadProcess({
              port: exporter.port,
              url: `http://127.0.0.1:${exporter.port}/proxy?module=${module}`,
              proxied: false,
              concurrency,
              ...spec.timing(payload),
              expectBytes: bodyBytes,
              timeoutSeconds: spec.timeoutSeconds,
              watch: { exporter: exporter.child.pid, target: target.child.pid },
            });
            const waitMs = spec.postLoadWaitMs(payload);
            await sleep(waitMs);
            const w = load.watched;
            const peak = round1((w.exporter?.peakRssKiB ?? 0) / 1024);
            const result: ModuleCaseResult = {
              name: name + (spec.rounds > 1 ? ` #${round}` : ""),
              impl: impl.id,
              implLabel: impl.label,
              round,
              module,
              payload: payload.label,
              bodyBytes,
              concurrency,
              verify,
              requests: load.requests,
              errors: load.errors,
              errorSamples: load.errorSamples,
              seconds: load.seconds,
              rps: load.rps,
              mibPerSecond: round1(load.bytes / MIB / load.seconds),
              latencyMs: load.latencyMs,
              cpu: {
                exporter: cpuFigure(w.exporter?.cpu.total ?? 0, load),
                target: cpuFigure(w.target?.cpu.total ?? 0, load),
                other: cpuFigure(load.otherCpu, load),
              },
              memory: memoryFigures(
                { exporter: idleKiB },
                { exporter: peak },
                { exporter: readMemory(exporter.child.pid).rssKiB },
                waitMs,
              ),
            };
            results.push(result);
            onCase(result);
          } finally {
            await exporter.child.stop();
          }
        }
      }
    }
  }
  return results;
}

function round1(value: number): number {
  return Math.round(value * 10) / 10;
}
