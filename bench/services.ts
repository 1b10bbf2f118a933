/**
 * What every profile of the benchmark shares: starting and stopping a proxy
 * and its client, reading their memory and descriptors (with a forced GC
 * when asked), waiting for a quiet machine, and short scrapes through the
 * proxy.
 *
 * @module
 */

import { connectInspector, type Inspector } from "./cpu_profile.ts";
import type { LoadResult } from "./load.ts";
import { countFds, readMachineBusy, readMemory } from "./proc.ts";
import { sleep } from "../lib/sleep.ts";
import {
  type ClientProcess,
  type ProxyProcess,
  runLoadProcess,
  type ServiceOptions,
  startClient,
  startProxy,
  type Target,
} from "./stack.ts";

/** The fqdn of the one real client; the target is scraped as this host. */
export const CLIENT_FQDN = "localhost";

/** Resident memory and descriptors of a process at one moment. */
export interface ProcessSnapshot {
  rssKiB: number;
  /** RssAnon: the private anonymous part of `rssKiB` (see `Memory.anonKiB`). */
  anonKiB?: number;
  fds: number;
  /**
   * With `--gc`: right after a forced full garbage collection, RSS and the
   * used JS heap. Separates live memory from garbage V8 has not collected
   * yet and from memory the allocator keeps.
   */
  afterGc?: { rssKiB: number; heapKiB: number };
}

/**
 * Rounds to a number of decimal places.
 *
 * @param value The number.
 * @param digits Decimal places. @default {3}
 * @returns The rounded number.
 */
export function round(value: number, digits = 3): number {
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
}

export function snapshot(pid: number): ProcessSnapshot {
  const memory = readMemory(pid);
  return { rssKiB: memory.rssKiB, anonKiB: memory.anonKiB, fds: countFds(pid) };
}

/** A snapshot, plus figures after a forced GC when an inspector is given. */
export async function gcSnapshot(
  pid: number,
  inspector: Inspector | null,
): Promise<ProcessSnapshot> {
  const raw = snapshot(pid);
  if (inspector === null) return raw;
  const heap = await inspector.collectGarbage();
  return {
    ...raw,
    afterGc: {
      rssKiB: readMemory(pid).rssKiB,
      heapKiB: Math.round(heap / 1024),
    },
  };
}

export async function proxyInspector(proxy: ProxyProcess): Promise<Inspector | null> {
  return proxy.inspector === null ? null : await connectInspector(proxy.inspector);
}

/**
 * Waits until the machine has been nearly idle (under 0.15 CPUs busy) for a
 * second, or gives up after `maxMs`: on a shared machine, other work would
 * disturb the figures.
 *
 * @param maxMs Longest wait.
 * @returns Whether it became quiet.
 */
export async function waitQuiet(maxMs: number): Promise<boolean> {
  const until = performance.now() + maxMs;
  for (;;) {
    const before = readMachineBusy();
    await sleep(1000);
    if (readMachineBusy() - before < 0.15) return true;
    if (performance.now() >= until) return false;
  }
}

/** Waits until a process has at most `fds` descriptors open, or gives up. */
export async function waitForFds(
  pid: number,
  fds: number,
  timeoutMs: number,
): Promise<void> {
  const until = performance.now() + timeoutMs;
  while (countFds(pid) > fds && performance.now() < until) await sleep(100);
}

/** A proxy and its one real client. */
export interface Services {
  proxy: ProxyProcess;
  client: ClientProcess;
}

/**
 * Starts a proxy and a client registered as {@linkcode CLIENT_FQDN}.
 *
 * @param proxyOptions Checkout and flags of the proxy.
 * @param clientOptions Checkout and flags of the client.
 * @returns Both, ready.
 */
export async function startServices(
  proxyOptions: ServiceOptions,
  clientOptions: ServiceOptions,
): Promise<Services> {
  const proxy = await startProxy(proxyOptions);
  const client = await startClient(clientOptions, proxy.port, CLIENT_FQDN);
  return { proxy, client };
}

/** Proxy and client VmRSS shortly after start (at most a second's pause). */
export async function idleRss(
  services: Services,
  settleMs: number,
): Promise<Record<string, number>> {
  await sleep(Math.min(settleMs, 1000));
  return {
    proxy: readMemory(services.proxy.child.pid).rssKiB,
    client: readMemory(services.client.child.pid).rssKiB,
  };
}

/** Memory figures with the peak since start and the RSS now as post-load. */
export function postLoadRss(
  services: Services,
  idleKiB: Record<string, number>,
  waitMs: number,
): MemoryFigures {
  const proxy = readMemory(services.proxy.child.pid);
  const client = readMemory(services.client.child.pid);
  return memoryFigures(
    idleKiB,
    { proxy: round(proxy.hwmKiB / 1024, 1), client: round(client.hwmKiB / 1024, 1) },
    { proxy: proxy.rssKiB, client: client.rssKiB },
    waitMs,
  );
}

/** Stops a proxy and its client by PID. */
export async function stopServices(services: Services): Promise<void> {
  await services.client.child.stop();
  await services.proxy.child.stop();
}

/** What the proxy and client look like right after start, idle. */
export interface IdleFigures {
  proxy: ProcessSnapshot;
  client: ProcessSnapshot;
}

/** RSS of one process around a case's load, MiB. */
export interface ProcessMemory {
  /** VmRSS before the load (fresh process, after start-up). */
  idle: number;
  /** VmHWM over the measured window. */
  peak: number;
  /** VmRSS `postLoadWaitSeconds` after the load ended. */
  postLoad: number;
  /**
   * RssAnon (private anonymous memory: heaps and stacks, not the
   * executable's file pages) before the load and at the post-load reading,
   * when they were read.
   */
  anon?: { idle: number; postLoad: number };
}

/** RSS of each watched process before, during and after a case's load. */
export interface MemoryFigures {
  /** Seconds between the end of the load and the post-load reading. */
  postLoadWaitSeconds: number;
  processes: Record<string, ProcessMemory>;
}

/**
 * Builds a case's memory figures.
 *
 * @param idleKiB VmRSS of each process before the load, KiB.
 * @param peakMiB VmHWM of each process over the load, MiB.
 * @param postLoadKiB VmRSS of each process after the wait, KiB.
 * @param waitMs The wait.
 * @param anonKiB RssAnon of each process before the load and after the wait,
 * KiB, where read.
 * @returns The figures in MiB.
 */
export function memoryFigures(
  idleKiB: Record<string, number>,
  peakMiB: Record<string, number>,
  postLoadKiB: Record<string, number>,
  waitMs: number,
  anonKiB?: { idle: Record<string, number>; postLoad: Record<string, number> },
): MemoryFigures {
  const processes: Record<string, ProcessMemory> = {};
  for (const [name, kib] of Object.entries(idleKiB)) {
    processes[name] = {
      idle: round(kib / 1024, 1),
      peak: peakMiB[name] ?? 0,
      postLoad: round((postLoadKiB[name] ?? 0) / 1024, 1),
    };
    const anonIdle = anonKiB?.idle[name], anonAfter = anonKiB?.postLoad[name];
    if (anonIdle !== undefined && anonAfter !== undefined) {
      processes[name].anon = {
        idle: round(anonIdle / 1024, 1),
        postLoad: round(anonAfter / 1024, 1),
      };
    }
  }
  return { postLoadWaitSeconds: round(waitMs / 1000, 1), processes };
}

/**
 * Scrapes the target through the proxy at concurrency 1 for `durationMs`
 * (after a 500 ms warm-up), watching the proxy and the client.
 *
 * @param services The proxy and its client.
 * @param target The running target.
 * @param spec The payload size and scrape timeout.
 * @param durationMs How long to scrape.
 * @returns The load generator's report.
 */
export function scrapeThroughProxy(
  services: Services,
  target: Target,
  spec: { payloadBytes: number; timeoutSeconds: number },
  durationMs: number,
): Promise<LoadResult> {
  const { proxy, client } = services;
  return runLoadProcess({
    port: proxy.port,
    url: `http://${CLIENT_FQDN}:${target.port}/plain/${spec.payloadBytes}`,
    proxied: true,
    concurrency: 1,
    warmupMs: 500,
    durationMs,
    minRequests: 0,
    maxMs: durationMs + 30_000,
    expectBytes: spec.payloadBytes,
    timeoutSeconds: spec.timeoutSeconds,
    watch: { proxy: proxy.child.pid, client: client.child.pid },
  });
}
