/**
 * The throughput profile: payload × concurrency, direct to the target and
 * through each implementation's proxy and client, in alternating rounds;
 * latency, CPU and memory per case.
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
import { readMemory } from "./proc.ts";
import {
  CLIENT_FQDN,
  type IdleFigures,
  type MemoryFigures,
  memoryFigures,
  round,
  type Services,
  snapshot,
  stopServices,
  waitQuiet,
} from "./services.ts";
import { sleep } from "../lib/sleep.ts";
import { runLoadProcess, type Target } from "./stack.ts";

const MIB = 1024 * 1024;

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
    const after = { proxy: readMemory(proxy.child.pid), client: readMemory(client.child.pid) };
    result.memory = memoryFigures(
      { proxy: idle.proxy.rssKiB, client: idle.client.rssKiB },
      result.peakRssMiB,
      { proxy: after.proxy.rssKiB, client: after.client.rssKiB },
      waitMs,
      idle.proxy.anonKiB === undefined || idle.client.anonKiB === undefined ? undefined : {
        idle: { proxy: idle.proxy.anonKiB, client: idle.client.anonKiB },
        postLoad: { proxy: after.proxy.anonKiB, client: after.client.anonKiB },
      },
    );
    return result;
  } finally {
    inspectors?.proxy.close();
    inspectors?.client.close();
    await stopServices(services);
  }
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
