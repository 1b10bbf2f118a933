/**
 * The benchmark's profiles: the throughput matrix (payload × concurrency,
 * direct and through the proxy), many idle clients, and client churn.
 *
 * @module
 */

import {
  connectInspector,
  type CpuProfile,
  type Inspector,
  type ProfileSummary,
  summarizeProfile,
} from "./cpu_profile.ts";
import type { Latency, LoadResult } from "./load.ts";
import { countFds, openFileLimit, readCpu, readMachineBusy, readMemory } from "./proc.ts";
import {
  type ClientProcess,
  type ProxyProcess,
  runLoadProcess,
  type ServiceOptions,
  startClient,
  startHolder,
  startProxy,
  type Target,
} from "./stack.ts";

const MIB = 1024 * 1024;
/** The fqdn of the one real client; the target is scraped as this host. */
export const CLIENT_FQDN = "localhost";

/** A payload the target serves. */
export interface PayloadSpec {
  /** Short name, e.g. "57KiB". */
  label: string;
  /** Uncompressed size in bytes. */
  bytes: number;
  /** "gzip" asks the target for its gzip variant. */
  encoding: "identity" | "gzip";
}

/** How long one case runs. */
export interface TimingSpec {
  warmupMs: number;
  durationMs: number;
  minRequests: number;
  maxMs: number;
}

/** The throughput matrix. */
export interface ThroughputSpec {
  payloads: PayloadSpec[];
  concurrency: number[];
  timing(payload: PayloadSpec): TimingSpec;
  /** X-Prometheus-Scrape-Timeout-Seconds. */
  timeoutSeconds: number;
  /** Only cases whose name matches run. */
  only: RegExp | null;
  /** Profile the proxy and client during proxied cases; write here. */
  cpuProfileDir: string | null;
  /** Before each case, wait up to this long for a quiet machine. */
  quietWaitMs: number;
  /** Rounds of each case; the implementations' order alternates. */
  rounds: number;
  /** How long after the load the post-load RSS is read. */
  postLoadWaitMs(payload: PayloadSpec): number;
  /** Pause after start-up before the idle RSS is read. */
  idleSettleMs: number;
}

/** CPU of one process (or two together) in a case. */
export interface CpuFigure {
  /** CPU seconds in the measured window. */
  seconds: number;
  /** Per completed scrape, ms. */
  perScrapeMs: number;
  /** Per MiB of body delivered to the load generator, ms. */
  perMiBMs: number;
  /** CPU seconds per wall second (1.0 = one core busy). */
  cores: number;
}

/** One case of the matrix. */
export interface CaseResult {
  name: string;
  payload: string;
  encoding: "identity" | "gzip";
  /** Body bytes per scrape as sent (compressed for gzip). */
  bodyBytes: number;
  concurrency: number;
  mode: "direct" | "proxied";
  /** Whose proxy and client: this project's or the peer's (direct: "self"). */
  impl: "self" | "peer";
  implLabel: string;
  /** 1, 2, …: the round of an interleaved run. */
  round: number;
  requests: number;
  errors: number;
  errorSamples: string[];
  seconds: number;
  rps: number;
  mibPerSecond: number;
  latencyMs: Latency;
  cpu: {
    proxy: CpuFigure;
    client: CpuFigure;
    proxyAndClient: CpuFigure;
    target: CpuFigure;
    load: CpuFigure;
    /** Every other process on the machine: noise. */
    other: CpuFigure;
  };
  /** Peak RSS in the window (VmHWM), MiB; proxyAndClient is the sum. */
  peakRssMiB: { proxy: number; client: number; proxyAndClient: number };
  /** VmRSS at the start and end of the window, MiB (growth across cases). */
  rssMiB: {
    proxyStart: number;
    proxyEnd: number;
    clientStart: number;
    clientEnd: number;
  };
  /** CPU seconds by thread name, proxied cases. */
  threads?: { proxy: Record<string, number>; client: Record<string, number> };
  profile?: { proxy: ProfileSummary; client: ProfileSummary; files: string[] };
  /** Proxied cases: idle, peak and post-load RSS of proxy and client. */
  memory?: MemoryFigures;
}

/** Resident memory and descriptors of a process at one moment. */
export interface ProcessSnapshot {
  rssKiB: number;
  fds: number;
  /**
   * With `--gc`: right after a forced full garbage collection, RSS and the
   * used JS heap. Separates live memory from garbage V8 has not collected
   * yet and from memory the allocator keeps.
   */
  afterGc?: { rssKiB: number; heapKiB: number };
}

function round(value: number, digits = 3): number {
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
}

/**
 * CPU seconds of a load window per scrape, per MiB and per wall second.
 *
 * @param seconds CPU seconds used in the window.
 * @param load The load generator's report.
 * @returns The figure.
 */
export function cpuFigure(seconds: number, load: LoadResult): CpuFigure {
  const mib = load.bytes / MIB;
  return {
    seconds: round(seconds),
    perScrapeMs: round((seconds * 1000) / Math.max(1, load.requests)),
    perMiBMs: round(mib > 0 ? (seconds * 1000) / mib : 0),
    cores: round(seconds / load.seconds),
  };
}

function snapshot(pid: number): ProcessSnapshot {
  return { rssKiB: readMemory(pid).rssKiB, fds: countFds(pid) };
}

/** A snapshot, plus figures after a forced GC when an inspector is given. */
async function gcSnapshot(
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

async function proxyInspector(proxy: ProxyProcess): Promise<Inspector | null> {
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
async function waitForFds(
  pid: number,
  fds: number,
  timeoutMs: number,
): Promise<void> {
  const until = performance.now() + timeoutMs;
  while (countFds(pid) > fds && performance.now() < until) await sleep(100);
}

/**
 * Resolves after `ms` milliseconds.
 *
 * @param ms The wait.
 */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
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
async function idleRss(services: Services, settleMs: number): Promise<Record<string, number>> {
  await sleep(Math.min(settleMs, 1000));
  return {
    proxy: readMemory(services.proxy.child.pid).rssKiB,
    client: readMemory(services.client.child.pid).rssKiB,
  };
}

/** Memory figures with the peak since start and the RSS now as post-load. */
function postLoadRss(
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

/** One proxy and client under test: this project's, or a peer's. */
export interface Implementation {
  /** "self" for this project, "peer" for the program it is compared with. */
  id: "self" | "peer";
  /** Its name in tables, e.g. "this project" or "peer". */
  label: string;
  /** Starts a fresh proxy and client, the client registered. */
  start(): Promise<Services>;
}

/**
 * Runs the throughput matrix: for each payload and concurrency, direct to
 * the target and then through each implementation's proxy, in `rounds`
 * rounds whose order of implementations alternates (self, peer; then peer,
 * self; …), so that a drift of the machine does not favour one of them.
 * Each proxied case gets a fresh proxy and client: its idle RSS is read
 * before the load and its post-load RSS `postLoadWaitMs` after it.
 *
 * @param spec The matrix.
 * @param target The running target.
 * @param impls This project, and optionally a peer.
 * @param onCase Called with each finished case.
 * @returns The cases, and the idle figures of the first fresh pair of each
 * implementation.
 */
export async function runThroughput(
  spec: ThroughputSpec,
  target: Target,
  impls: readonly Implementation[],
  onCase: (result: CaseResult) => void,
): Promise<{ cases: CaseResult[]; idle: Record<string, IdleFigures> }> {
  const results: CaseResult[] = [];
  const idle: Record<string, IdleFigures> = {};
  for (const payload of spec.payloads) {
    const sizes = target.bodies[String(payload.bytes)];
    if (!sizes) throw new Error(`The target has no ${payload.bytes}-byte body`);
    const bodyBytes = payload.encoding === "gzip" ? sizes.gzip : sizes.plain;
    const path = `/${payload.encoding === "gzip" ? "gzip" : "plain"}/${payload.bytes}`;
    const url = `http://${CLIENT_FQDN}:${target.port}${path}`;
    for (const concurrency of spec.concurrency) {
      const key = `${payload.label} ${payload.encoding} c${concurrency}`;
      const selected = (name: string) => !spec.only || spec.only.test(name);
      const directName = `direct ${key}`;
      for (let round = 1; round <= spec.rounds; round++) {
        const suffix = spec.rounds > 1 ? ` #${round}` : "";
        if (selected(directName)) {
          if (spec.quietWaitMs > 0) await waitQuiet(spec.quietWaitMs);
          const load = await runLoadProcess({
            port: target.port,
            url,
            proxied: false,
            concurrency,
            ...spec.timing(payload),
            expectBytes: bodyBytes,
            timeoutSeconds: spec.timeoutSeconds,
            watch: { target: target.child.pid },
          });
          const result = caseResult(directName + suffix, payload, bodyBytes, "direct", load);
          result.round = round;
          results.push(result);
          onCase(result);
        }
        const order = round % 2 === 1 ? impls : [...impls].reverse();
        for (const impl of order) {
          const name = `proxied ${key}${impl.id === "peer" ? " peer" : ""}`;
          if (!selected(name)) continue;
          const result = await proxiedCase(spec, target, impl, {
            name: name + suffix,
            payload,
            bodyBytes,
            url,
            concurrency,
            onIdle: (figures) => idle[impl.id] ??= figures,
          });
          result.round = round;
          results.push(result);
          onCase(result);
        }
      }
    }
  }
  return { cases: results, idle };
}

async function proxiedCase(
  spec: ThroughputSpec,
  target: Target,
  impl: Implementation,
  what: {
    name: string;
    payload: PayloadSpec;
    bodyBytes: number;
    url: string;
    concurrency: number;
    onIdle(figures: IdleFigures): void;
  },
): Promise<CaseResult> {
  const services = await impl.start();
  const { proxy, client } = services;
  let inspectors: { proxy: Inspector; client: Inspector } | null = null;
  try {
    await sleep(spec.idleSettleMs);
    const idle = {
      proxy: snapshot(proxy.child.pid),
      client: snapshot(client.child.pid),
    };
    what.onIdle(idle);
    const profiling = spec.cpuProfileDir !== null && impl.id === "self";
    if (profiling) {
      if (!proxy.inspector || !client.inspector) {
        throw new Error("Cannot profile: proxy and client need --inspect");
      }
      inspectors = {
        proxy: await connectInspector(proxy.inspector),
        client: await connectInspector(client.inspector),
      };
    }
    if (spec.quietWaitMs > 0) await waitQuiet(spec.quietWaitMs);
    if (inspectors) {
      await inspectors.proxy.start();
      await inspectors.client.start();
    }
    const load = await runLoadProcess({
      port: proxy.port,
      url: what.url,
      proxied: true,
      concurrency: what.concurrency,
      ...spec.timing(what.payload),
      expectBytes: what.bodyBytes,
      timeoutSeconds: spec.timeoutSeconds,
      watch: {
        proxy: proxy.child.pid,
        client: client.child.pid,
        target: target.child.pid,
      },
    });
    const result = caseResult(what.name, what.payload, what.bodyBytes, "proxied", load);
    result.impl = impl.id;
    result.implLabel = impl.label;
    if (inspectors) {
      const profiles = {
        proxy: await inspectors.proxy.stop(),
        client: await inspectors.client.stop(),
      };
      result.profile = {
        proxy: summarizeProfile(profiles.proxy),
        client: summarizeProfile(profiles.client),
        files: await writeProfiles(spec.cpuProfileDir!, what.name, profiles),
      };
    }
    const waitMs = spec.postLoadWaitMs(what.payload);
    await sleep(waitMs);
    result.memory = memoryFigures(
      { proxy: idle.proxy.rssKiB, client: idle.client.rssKiB },
      result.peakRssMiB,
      { proxy: readMemory(proxy.child.pid).rssKiB, client: readMemory(client.child.pid).rssKiB },
      waitMs,
    );
    return result;
  } finally {
    inspectors?.proxy.close();
    inspectors?.client.close();
    await stopServices(services);
  }
}

/** RSS of one process around a case's load, MiB. */
export interface ProcessMemory {
  /** VmRSS before the load (fresh process, after start-up). */
  idle: number;
  /** VmHWM over the measured window. */
  peak: number;
  /** VmRSS `postLoadWaitSeconds` after the load ended. */
  postLoad: number;
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
 * @returns The figures in MiB.
 */
export function memoryFigures(
  idleKiB: Record<string, number>,
  peakMiB: Record<string, number>,
  postLoadKiB: Record<string, number>,
  waitMs: number,
): MemoryFigures {
  const processes: Record<string, ProcessMemory> = {};
  for (const [name, kib] of Object.entries(idleKiB)) {
    processes[name] = {
      idle: round(kib / 1024, 1),
      peak: peakMiB[name] ?? 0,
      postLoad: round((postLoadKiB[name] ?? 0) / 1024, 1),
    };
  }
  return { postLoadWaitSeconds: round(waitMs / 1000, 1), processes };
}

async function writeProfiles(
  dir: string,
  name: string,
  profiles: Record<string, CpuProfile>,
): Promise<string[]> {
  await Deno.mkdir(dir, { recursive: true });
  const files = [];
  for (const [process, profile] of Object.entries(profiles)) {
    const file = `${dir}/${name.replace(/\s+/g, "-")}-${process}.cpuprofile`;
    await Deno.writeTextFile(file, JSON.stringify(profile));
    files.push(file);
  }
  return files;
}

function caseResult(
  name: string,
  payload: PayloadSpec,
  bodyBytes: number,
  mode: "direct" | "proxied",
  load: LoadResult,
): CaseResult {
  const w = load.watched;
  const proxyCpu = w.proxy?.cpu.total ?? 0;
  const clientCpu = w.client?.cpu.total ?? 0;
  const proxyPeak = (w.proxy?.peakRssKiB ?? 0) / 1024;
  const clientPeak = (w.client?.peakRssKiB ?? 0) / 1024;
  const result: CaseResult = {
    name,
    payload: payload.label,
    encoding: payload.encoding,
    bodyBytes,
    concurrency: load.concurrency,
    mode,
    impl: "self",
    implLabel: "this project",
    round: 1,
    requests: load.requests,
    errors: load.errors,
    errorSamples: load.errorSamples,
    seconds: load.seconds,
    rps: load.rps,
    mibPerSecond: round(load.bytes / MIB / load.seconds, 1),
    latencyMs: load.latencyMs,
    cpu: {
      proxy: cpuFigure(proxyCpu, load),
      client: cpuFigure(clientCpu, load),
      proxyAndClient: cpuFigure(proxyCpu + clientCpu, load),
      target: cpuFigure(w.target?.cpu.total ?? 0, load),
      load: cpuFigure(load.loadCpu.total, load),
      other: cpuFigure(load.otherCpu, load),
    },
    peakRssMiB: {
      proxy: round(proxyPeak, 1),
      client: round(clientPeak, 1),
      proxyAndClient: round(proxyPeak + clientPeak, 1),
    },
    rssMiB: {
      proxyStart: round((w.proxy?.rssStartKiB ?? 0) / 1024, 1),
      proxyEnd: round((w.proxy?.rssEndKiB ?? 0) / 1024, 1),
      clientStart: round((w.client?.rssStartKiB ?? 0) / 1024, 1),
      clientEnd: round((w.client?.rssEndKiB ?? 0) / 1024, 1),
    },
  };
  if (mode === "proxied" && w.proxy && w.client) {
    result.threads = { proxy: w.proxy.threads, client: w.client.threads };
  }
  return result;
}

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
  const limit = openFileLimit("self");
  for (const count of spec.counts) {
    if (count + 256 > limit) {
      throw new Error(
        `Cannot hold ${count} clients: the open-file limit is ${limit} (raise it with ulimit -n)`,
      );
    }
    const services = await start();
    const { proxy, client } = services;
    const inspector = await proxyInspector(proxy);
    const idle = await idleRss(services, spec.settleMs);
    try {
      const url = `http://${CLIENT_FQDN}:${target.port}/plain/${spec.payloadBytes}`;
      const scrape = (durationMs: number) =>
        runLoadProcess({
          port: proxy.port,
          url,
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
  const { proxy, client } = services;
  const inspector = await proxyInspector(proxy);
  const idle = await idleRss(services, spec.settleMs);
  try {
    const url = `http://${CLIENT_FQDN}:${target.port}/plain/${spec.payloadBytes}`;
    const scrape = (durationMs: number) =>
      runLoadProcess({
        port: proxy.port,
        url,
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
