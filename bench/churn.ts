/**
 * The churn profile: clients connect and disconnect many times; the proxy's
 * memory and descriptors afterwards are compared with the baseline.
 *
 * @module
 */

import type { Latency } from "./load.ts";
import { readCpu } from "./proc.ts";
import {
  gcSnapshot,
  idleRss,
  type MemoryFigures,
  postLoadRss,
  type ProcessSnapshot,
  proxyInspector,
  round,
  scrapeThroughProxy,
  type Services,
  stopServices,
} from "./services.ts";
import { sleep } from "../lib/sleep.ts";
import { startHolder, type Target } from "./stack.ts";

/** The churn profile's result. */
export interface ChurnResult {
  cycles: number;
  failed: number;
  failureSamples: string[];
  fqdnPool: number;
  seconds: number;
  cyclesPerSecond: number;
  /** Proxy CPU per connect/register/disconnect cycle, ms. */
  proxyCpuPerCycleMs: number;
  proxy: {
    /** After start-up, the client's registration and warm-up scrapes. */
    cold: ProcessSnapshot;
    /** After a warm-up churn over the same fqdn pool. */
    baseline: ProcessSnapshot;
    after: ProcessSnapshot;
    rssChangePct: number;
    rssChangeVsColdPct: number;
    fdsChange: number;
    /** With `--gc`: live JS heap after the churn vs baseline, percent. */
    heapChangeAfterGcPct?: number;
  };
  /** Scrapes through the proxy after the churn. */
  scrapes: { requests: number; errors: number; latencyMs: Latency };
  /**
   * Proxy and client RSS: idle after start, peak since start (VmHWM), and
   * post-load `settleMs` after the churn.
   */
  memory: MemoryFigures;
}

/** Settings of the churn profile. */
export interface ChurnSpec {
  cycles: number;
  warmupCycles: number;
  fqdnPool: number;
  concurrency: number;
  /** Warm-up scrapes before the cold snapshot, and scrapes after. */
  scrapeMs: number;
  settleMs: number;
  payloadBytes: number;
  timeoutSeconds: number;
}

/**
 * Connects and disconnects clients many times and compares the proxy's RSS
 * and descriptors with the baseline.
 *
 * @param spec Cycles, pool and timings.
 * @param target The running target.
 * @param start Starts a fresh proxy and client.
 * @returns The result.
 */
export async function runChurn(
  spec: ChurnSpec,
  target: Target,
  start: () => Promise<Services>,
): Promise<ChurnResult> {
  const services = await start();
  const { proxy } = services;
  const inspector = await proxyInspector(proxy);
  const idle = await idleRss(services, spec.settleMs);
  try {
    const scrape = (durationMs: number) => scrapeThroughProxy(services, target, spec, durationMs);
    const churn = async (cycles: number) => {
      const holder = startHolder([
        `--port=${proxy.port}`,
        "--mode=churn",
        `--count=${cycles}`,
        `--concurrency=${spec.concurrency}`,
        `--fqdn-pool=${spec.fqdnPool}`,
        "--fqdn-prefix=churn",
      ]);
      try {
        return await holder.waitEvent("done", 900_000);
      } finally {
        await holder.child.stop(5000);
      }
    };
    await scrape(spec.scrapeMs);
    await sleep(spec.settleMs);
    const cold = await gcSnapshot(proxy.child.pid, inspector);
    await churn(spec.warmupCycles);
    await sleep(spec.settleMs);
    const baseline = await gcSnapshot(proxy.child.pid, inspector);
    const cpu0 = readCpu(proxy.child.pid).total;
    const done = await churn(spec.cycles);
    const cpu = readCpu(proxy.child.pid).total - cpu0;
    await sleep(spec.settleMs);
    const memory = postLoadRss(services, idle, spec.settleMs);
    const after = await gcSnapshot(proxy.child.pid, inspector);
    const load = await scrape(spec.scrapeMs);
    const cycles = Number(done.cycles);
    return {
      cycles,
      failed: Number(done.failed),
      failureSamples: (done.failures as string[] | undefined) ?? [],
      fqdnPool: spec.fqdnPool,
      seconds: round(Number(done.elapsedMs) / 1000, 1),
      cyclesPerSecond: Number(done.cyclesPerSecond),
      proxyCpuPerCycleMs: round((cpu * 1000) / Math.max(1, cycles)),
      proxy: {
        cold,
        baseline,
        after,
        rssChangePct: round(
          ((after.rssKiB - baseline.rssKiB) / baseline.rssKiB) * 100,
          1,
        ),
        rssChangeVsColdPct: round(
          ((after.rssKiB - cold.rssKiB) / cold.rssKiB) * 100,
          1,
        ),
        fdsChange: after.fds - baseline.fds,
        ...(after.afterGc && baseline.afterGc
          ? {
            heapChangeAfterGcPct: round(
              ((after.afterGc.heapKiB - baseline.afterGc.heapKiB) /
                baseline.afterGc.heapKiB) * 100,
              1,
            ),
          }
          : {}),
      },
      scrapes: {
        requests: load.requests,
        errors: load.errors,
        latencyMs: load.latencyMs,
      },
      memory,
    };
  } finally {
    inspector?.close();
    await stopServices(services);
  }
}
