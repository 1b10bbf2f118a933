/**
 * What each benchmark profile runs: payloads, concurrencies and timings,
 * from the profile name and the flags.
 *
 * @module
 */

import type { ChurnSpec } from "./churn.ts";
import type { ClientsSpec } from "./clients.ts";
import type { Profile } from "./cli.ts";
import type { ModulesSpec } from "./modules.ts";
import type { PayloadSpec, ThroughputSpec, TimingSpec } from "./throughput.ts";

const KIB = 1024;
const MIB = 1024 * 1024;

const DEFAULT_PAYLOADS: PayloadSpec[] = [
  { label: "57KiB", bytes: 57 * KIB, encoding: "identity" },
  { label: "57KiB", bytes: 57 * KIB, encoding: "gzip" },
  { label: "1MiB", bytes: MIB, encoding: "identity" },
  { label: "1MiB", bytes: MIB, encoding: "gzip" },
  { label: "20MiB", bytes: 20 * MIB, encoding: "identity" },
];

function defaultTiming(scale: number) {
  return (payload: PayloadSpec): TimingSpec =>
    payload.bytes >= 10 * MIB
      ? {
        warmupMs: 1000 * scale,
        durationMs: 5000 * scale,
        minRequests: 16,
        maxMs: 20_000 * scale,
      }
      : {
        warmupMs: 1500 * scale,
        durationMs: 4000 * scale,
        minRequests: 0,
        maxMs: 4000 * scale,
      };
}

/** The steps of a run; null for a profile that does not run it. */
export interface Plan {
  throughput: ThroughputSpec | null;
  clients: ClientsSpec | null;
  churn: ChurnSpec | null;
  modules: ModulesSpec | null;
}

const MODULE_CASES = [
  { payload: DEFAULT_PAYLOADS[0]!, concurrency: 1 },
  { payload: DEFAULT_PAYLOADS[2]!, concurrency: 1 },
  { payload: DEFAULT_PAYLOADS[2]!, concurrency: 8 },
  { payload: DEFAULT_PAYLOADS[4]!, concurrency: 8 },
];

/**
 * The steps of a profile.
 *
 * @param profile The profile.
 * @param values The flags.
 * @returns The steps.
 */
export function plan(
  profile: Profile,
  values: Record<string, string | boolean | undefined>,
): Plan {
  const scale = Number(values.scale ?? 1);
  const timeoutSeconds = Number(values["timeout-seconds"] ?? 10);
  const only = typeof values.only === "string" ? new RegExp(values.only) : null;
  const smallScrape = { payloadBytes: 57 * KIB, timeoutSeconds };
  const quietWaitMs = Number(values["quiet-wait"] ?? 0) * 1000;
  // Two alternating rounds by default where a peer runs beside this project.
  const rounds = Number(values.rounds ?? (values["peer.proxy"] !== undefined ? 2 : 1));
  const moduleRounds = Number(values.rounds ?? (values["peer.exporter"] !== undefined ? 2 : 1));
  const postLoadWait = values["post-load-wait"];
  const postLoadWaitMs = (payload: PayloadSpec) =>
    postLoadWait !== undefined
      ? Number(postLoadWait) * 1000
      : payload.bytes >= 10 * MIB
      ? 60_000
      : 5000;
  const common = { only, quietWaitMs, rounds, postLoadWaitMs, idleSettleMs: 1000, timeoutSeconds };
  const smokeTiming = () => ({ warmupMs: 200, durationMs: 400, minRequests: 0, maxMs: 5000 });
  const smokeCommon = {
    ...common,
    postLoadWaitMs: postLoadWait !== undefined ? postLoadWaitMs : () => 200,
    idleSettleMs: 100,
    timing: smokeTiming,
  };
  switch (profile) {
    case "default":
      return {
        throughput: {
          payloads: DEFAULT_PAYLOADS,
          concurrency: [1, 8],
          timing: defaultTiming(scale),
          cpuProfileDir: null,
          ...common,
        },
        clients: null,
        churn: null,
        modules: null,
      };
    case "smoke":
      return {
        throughput: {
          payloads: DEFAULT_PAYLOADS.slice(0, 1),
          concurrency: [1],
          cpuProfileDir: null,
          ...smokeCommon,
        },
        modules: {
          cases: [{ payload: DEFAULT_PAYLOADS[2]!, concurrency: 2 }],
          verify: [false, true],
          ...smokeCommon,
          // One round keeps the smoke test short; the throughput part alternates.
          rounds: Number(values.rounds ?? 1),
        },
        clients: {
          counts: [50],
          holdMs: 300,
          scrapeMs: 300,
          connectConcurrency: 50,
          warmupScrapeMs: 300,
          settleMs: 200,
          ...smallScrape,
        },
        churn: {
          cycles: 200,
          warmupCycles: 50,
          fqdnPool: 50,
          concurrency: 16,
          scrapeMs: 300,
          settleMs: 200,
          ...smallScrape,
        },
      };
    case "clients":
      return {
        throughput: null,
        clients: {
          counts: String(values.clients ?? "1000,10000").split(",").map(
            Number,
          ),
          holdMs: Number(values["clients.hold-ms"] ?? 20_000),
          scrapeMs: 5000,
          connectConcurrency: 200,
          warmupScrapeMs: 2000,
          settleMs: (timeoutSeconds + 2) * 1000,
          ...smallScrape,
        },
        churn: null,
        modules: null,
      };
    case "churn":
      return {
        throughput: null,
        clients: null,
        modules: null,
        churn: {
          cycles: Number(values["churn.cycles"] ?? 20_000),
          warmupCycles: 1000,
          fqdnPool: Number(values["churn.pool"] ?? 1000),
          concurrency: 32,
          scrapeMs: 2000,
          settleMs: (timeoutSeconds + 2) * 1000,
          ...smallScrape,
        },
      };
    case "modules":
      return {
        throughput: null,
        clients: null,
        churn: null,
        modules: {
          cases: MODULE_CASES,
          verify: [false, true],
          timing: defaultTiming(scale),
          ...common,
          rounds: moduleRounds,
        },
      };
  }
}
