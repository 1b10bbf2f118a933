/**
 * The idle-clients profile: N Poll streams held open by one holder process
 * against a fresh proxy; what they cost it in memory, descriptors and CPU,
 * with real scrapes still going through.
 *
 * @module
 */

import type { Latency } from "./load.ts";
import { openFileLimits, readCpu, readMemory } from "./proc.ts";
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
  waitForFds,
} from "./services.ts";
import { sleep } from "../lib/sleep.ts";
import { startHolder, type Target } from "./stack.ts";

/** The idle-clients profile for one N. */
export interface ClientsResult {
  clients: number;
  registered: number;
  failed: number;
  failureSamples: string[];
  /** Streams the proxy ended while they were held. */
  dropped: number;
  connectSeconds: number;
  /** Time until the proxy's fds were back to baseline after the holder left. */
  releaseSeconds: number;
  holdSeconds: number;
  proxy: {
    /** With only the real client connected, after warm-up scrapes. */
    baseline: ProcessSnapshot;
    held: ProcessSnapshot;
    /** After the holder closed its streams and a short pause. */
    released: ProcessSnapshot;
    rssPerClientKiB: number;
    /** With `--gc`: the same after forced garbage collections. */
    rssPerClientAfterGcKiB?: number;
    /** With `--gc`: live JS heap per client. */
    heapPerClientKiB?: number;
    fdsPerClient: number;
    /** Proxy CPU per wall second while the streams sat idle. */
    idleCores: number;
    peakRssKiB: number;
  };
  holderRssKiB: number;
  /**
   * Proxy and client RSS: idle after start, peak since start (VmHWM), and
   * post-load after the streams were released and `settleMs` passed.
   */
  memory: MemoryFigures;
  /** Real scrapes (57 KiB, c1) through the proxy while the streams were held. */
  scrapes: {
    requests: number;
    errors: number;
    errorSamples: string[];
    rps: number;
    latencyMs: Latency;
  };
}

/** Settings of the idle-clients profile. */
export interface ClientsSpec {
  counts: number[];
  /** How long the streams sit idle before measuring (≥ one heartbeat). */
  holdMs: number;
  scrapeMs: number;
  /** Streams registering at once. */
  connectConcurrency: number;
  /** Warm-up scrapes before the baseline. */
  warmupScrapeMs: number;
  /**
   * Pause before the baseline and after releasing the streams. Longer than
   * the scrape timeout, so that memory a scrape holds until its deadline
   * is not in the baseline.
   */
  settleMs: number;
  payloadBytes: number;
  timeoutSeconds: number;
}

/**
 * Holds N idle Poll streams open against a fresh proxy and measures what
 * they cost it, with real scrapes still going through.
 *
 * @param spec Counts and timings.
 * @param target The running target.
 * @param start Starts a fresh proxy and client.
 * @param onResult Called with each N's result.
 * @returns One result per N.
 */
export async function runClients(
  spec: ClientsSpec,
  target: Target,
  start: () => Promise<Services>,
  onResult: (result: ClientsResult) => void,
): Promise<ClientsResult[]> {
  const results: ClientsResult[] = [];
  // The proxy and the holder start with their soft limit raised to the
  // hard one (bench/process.ts withOpenFiles).
  const limit = openFileLimits("self").hard;
  for (const count of spec.counts) {
    if (count + 256 > limit) {
      throw new Error(
        `Cannot hold ${count} clients: the open-file limit is ${limit} (raise the hard limit: ulimit -Hn, or LimitNOFILE= in systemd)`,
      );
    }
    const services = await start();
    const { proxy } = services;
    const inspector = await proxyInspector(proxy);
    const idle = await idleRss(services, spec.settleMs);
    try {
      const scrape = (durationMs: number) => scrapeThroughProxy(services, target, spec, durationMs);
      await scrape(spec.warmupScrapeMs);
      await sleep(spec.settleMs);
      const baseline = await gcSnapshot(proxy.child.pid, inspector);

      const started = performance.now();
      const holder = startHolder([
        `--port=${proxy.port}`,
        "--mode=hold",
        `--count=${count}`,
        `--concurrency=${spec.connectConcurrency}`,
      ]);
      try {
        const ready = await holder.waitEvent("ready", 600_000);
        const connectSeconds = (performance.now() - started) / 1000;
        const cpu0 = readCpu(proxy.child.pid).total;
        const hold0 = performance.now();
        await sleep(spec.holdMs);
        const idleCores = (readCpu(proxy.child.pid).total - cpu0) /
          ((performance.now() - hold0) / 1000);
        const held = await gcSnapshot(proxy.child.pid, inspector);
        const holderRssKiB = readMemory(holder.child.pid).rssKiB;
        const load = await scrape(spec.scrapeMs);
        const peakRssKiB = readMemory(proxy.child.pid).hwmKiB;
        await holder.child.stop(10_000);
        const closed = holder.last();
        const releaseStarted = performance.now();
        await waitForFds(proxy.child.pid, baseline.fds, 60_000);
        const releaseSeconds = (performance.now() - releaseStarted) / 1000;
        await sleep(spec.settleMs);
        const memory = postLoadRss(services, idle, spec.settleMs);
        const released = await gcSnapshot(proxy.child.pid, inspector);
        const registered = Number(ready.registered);
        const result: ClientsResult = {
          clients: count,
          registered,
          failed: Number(ready.failed),
          failureSamples: (ready.failures as string[] | undefined) ?? [],
          dropped: Number(closed.dropped ?? -1),
          connectSeconds: round(connectSeconds, 1),
          releaseSeconds: round(releaseSeconds, 1),
          holdSeconds: round(spec.holdMs / 1000, 1),
          proxy: {
            baseline,
            held,
            released,
            rssPerClientKiB: round(
              (held.rssKiB - baseline.rssKiB) / Math.max(1, registered),
              2,
            ),
            fdsPerClient: round(
              (held.fds - baseline.fds) / Math.max(1, registered),
              3,
            ),
            ...(held.afterGc && baseline.afterGc
              ? {
                rssPerClientAfterGcKiB: round(
                  (held.afterGc.rssKiB - baseline.afterGc.rssKiB) /
                    Math.max(1, registered),
                  2,
                ),
                heapPerClientKiB: round(
                  (held.afterGc.heapKiB - baseline.afterGc.heapKiB) /
                    Math.max(1, registered),
                  2,
                ),
              }
              : {}),
            idleCores: round(idleCores),
            peakRssKiB,
          },
          holderRssKiB,
          memory,
          scrapes: {
            requests: load.requests,
            errors: load.errors,
            errorSamples: load.errorSamples,
            rps: load.rps,
            latencyMs: load.latencyMs,
          },
        };
        results.push(result);
        onResult(result);
      } finally {
        await holder.child.stop(5000);
      }
    } finally {
      inspector?.close();
      await stopServices(services);
    }
  }
  return results;
}
