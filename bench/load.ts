/**
 * The load generator: scrapes one URL the way Prometheus does (HTTP/1.1
 * keep-alive, Prometheus' request headers; absolute-form request targets
 * when going through the proxy, as `proxy_url` makes Prometheus do) with a
 * fixed number of concurrent scrapers, and measures throughput, latency and
 * the CPU and memory of the processes it is told to watch over exactly the
 * measured window.
 *
 * It runs in its own process so that its work is not counted against the
 * proxy or client. Phases: warm-up (not measured), a barrier (all scrapes
 * done), the measured window, a barrier again. CPU times are read from
 * `/proc` at both barriers; peak RSS is reset at the first and read at the
 * second.
 *
 * Usage: `deno run --allow-all bench/load.ts --port=P --url=http://localhost:T/plain/58368 [--proxied] …`;
 * prints one JSON object ({@linkcode LoadResult}) on stdout.
 *
 * @module
 */

import { parseArgs } from "node:util";
import {
  type CpuTimes,
  readCpu,
  readMachineBusy,
  readMemory,
  readThreadCpu,
  resetPeakRss,
} from "./proc.ts";
import { exitWithParent } from "./process.ts";
import { ResponseMeter } from "./response_meter.ts";
import { errorMessage } from "../lib/error_message.ts";

/** Prometheus 2.x's Accept header with its default scrape protocols. */
export const PROMETHEUS_ACCEPT =
  "application/openmetrics-text;version=1.0.0;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2";

/** Latency percentiles of the measured scrapes, in milliseconds. */
export interface Latency {
  p50: number;
  p90: number;
  p99: number;
  max: number;
  mean: number;
}

/** What one watched process did during the measured window. */
export interface WatchedFigures {
  pid: number;
  /** CPU seconds used in the window. */
  cpu: CpuTimes;
  /** Peak RSS in the window (VmHWM after a reset at its start), KiB. */
  peakRssKiB: number;
  /** Highest VmRSS seen by sampling every 50 ms, KiB (cross-check). */
  sampledPeakRssKiB: number;
  /** VmRSS at the start and end of the window, KiB. */
  rssStartKiB: number;
  rssEndKiB: number;
  /** Whether the VmHWM reset worked (else peakRssKiB is the lifetime peak). */
  peakReset: boolean;
  /** CPU seconds in the window by thread name (main JS thread, V8 workers…). */
  threads: Record<string, number>;
}

/** The load generator's report. */
export interface LoadResult {
  url: string;
  proxied: boolean;
  concurrency: number;
  /** Scrapes completed in the window (successful or not). */
  requests: number;
  errors: number;
  /** Up to five error messages. */
  errorSamples: string[];
  /** Body bytes received in the window. */
  bytes: number;
  /** Length of the measured window, seconds. */
  seconds: number;
  rps: number;
  latencyMs: Latency;
  warmupRequests: number;
  /** The load generator's own CPU in the window. */
  loadCpu: CpuTimes;
  /**
   * CPU seconds the rest of the machine used in the window: every process
   * except the watched ones and the load generator. Near 0 on a quiet
   * machine; large values mean the figures are disturbed.
   */
  otherCpu: number;
  watched: Record<string, WatchedFigures>;
}

/** Settings of one load run. */
export interface LoadOptions {
  /** Where to connect: the target itself, or the proxy. */
  host: string;
  port: number;
  /** The absolute URL scraped. */
  url: string;
  /** Send absolute-form request targets (through a forward proxy). */
  proxied: boolean;
  concurrency: number;
  warmupMs: number;
  durationMs: number;
  /** Keep measuring past durationMs until this many scrapes completed… */
  minRequests: number;
  /** …but never longer than this. */
  maxMs: number;
  /** Expected body length; -1 to skip the check. */
  expectBytes: number;
  /** Value of X-Prometheus-Scrape-Timeout-Seconds. */
  timeoutSeconds: number;
  /** Processes to measure, by name. */
  watch: Record<string, number>;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  const rank = Math.ceil((p / 100) * sorted.length) - 1;
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank))]!;
}

function round(value: number, digits = 3): number {
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
}

function cpuDelta(a: CpuTimes, b: CpuTimes): CpuTimes {
  return {
    user: round(b.user - a.user),
    system: round(b.system - a.system),
    total: round(b.total - a.total),
  };
}

/**
 * Runs the load and measures it.
 *
 * @param options What to scrape, how hard and how long, and what to watch.
 * @returns The figures of the measured window.
 */
export async function runLoad(options: LoadOptions): Promise<LoadResult> {
  const target = new URL(options.url);
  const path = options.proxied ? target.href : target.pathname + target.search;
  // Raw sockets and a reader that only counts (as wrk reads): node:http's
  // reading cost this process about 1.5 ms/MiB, during which the measured
  // programs sat idle, so each of their scrapes paid a cold start (wake-ups,
  // cold caches) that a fast scraper like Prometheus does not cause.
  const request = new TextEncoder().encode(
    `GET ${path} HTTP/1.1\r\nHost: ${target.host}\r\nAccept: ${PROMETHEUS_ACCEPT}\r\n` +
      `Accept-Encoding: gzip\r\nUser-Agent: Prometheus/2.53.0\r\n` +
      `X-Prometheus-Scrape-Timeout-Seconds: ${options.timeoutSeconds}\r\n\r\n`,
  );

  let errors = 0;
  const errorSamples: string[] = [];
  const noteError = (message: string) => {
    errors++;
    if (errorSamples.length < 5) errorSamples.push(message);
  };

  /** One keep-alive connection per scrape loop, opened again after an error or a close. */
  class Scraper {
    #conn: Deno.TcpConn | null = null;
    #buffer = new Uint8Array(64 * 1024);

    /** One scrape; resolves with [ms, bytes] or null on error. */
    async scrape(): Promise<[number, number] | null> {
      const started = performance.now();
      // The scrape timeout, and 5 s more, as Prometheus' own deadline.
      const timer = setTimeout(() => this.#close(), options.timeoutSeconds * 1000 + 5000);
      try {
        this.#conn ??= await Deno.connect({ hostname: options.host, port: options.port });
        const conn = this.#conn;
        conn.setNoDelay(true);
        for (let written = 0; written < request.length;) {
          written += await conn.write(request.subarray(written));
        }
        const meter = new ResponseMeter();
        for (;;) {
          const n = await conn.read(this.#buffer);
          if (n === null) throw new Error("connection closed before the response ended");
          if (meter.feed(this.#buffer.subarray(0, n))) break;
        }
        if (meter.closes) this.#close();
        const ms = performance.now() - started;
        if (options.expectBytes >= 0 && meter.bodyBytes !== options.expectBytes) {
          noteError(`body of ${meter.bodyBytes} bytes, expected ${options.expectBytes}`);
          return null;
        }
        return [ms, meter.bodyBytes];
      } catch (e) {
        this.#close();
        noteError(e instanceof Error ? e.message : String(e));
        return null;
      } finally {
        clearTimeout(timer);
      }
    }

    #close(): void {
      try {
        this.#conn?.close();
      } catch {
        // Closed already.
      }
      this.#conn = null;
    }

    close(): void {
      this.#close();
    }
  }
  const scrapers = Array.from({ length: options.concurrency }, () => new Scraper());

  /** Runs `concurrency` scrape loops until `more()` says stop. */
  async function phase(
    more: (done: number) => boolean,
    onDone: (result: [number, number] | null) => void,
  ): Promise<number> {
    let done = 0;
    await Promise.all(
      scrapers.map(async (scraper) => {
        while (more(done)) {
          const result = await scraper.scrape();
          done++;
          onDone(result);
        }
      }),
    );
    return done;
  }

  // Warm-up: JIT, connection pools, the client's target pool.
  const warmupEnd = performance.now() + options.warmupMs;
  const warmupRequests = await phase(
    (done) => performance.now() < warmupEnd || done < options.concurrency * 2,
    () => {},
  );
  errors = 0;
  errorSamples.length = 0;

  // The measured window.
  const names = Object.keys(options.watch);
  const peakReset: Record<string, boolean> = {};
  const rssStart: Record<string, number> = {};
  const sampled: Record<string, number> = {};
  const cpuStart: Record<string, CpuTimes> = {};
  for (const name of names) {
    const pid = options.watch[name]!;
    peakReset[name] = resetPeakRss(pid);
    rssStart[name] = readMemory(pid).rssKiB;
    sampled[name] = rssStart[name];
  }
  const sampler = setInterval(() => {
    for (const name of names) {
      try {
        const rss = readMemory(options.watch[name]!).rssKiB;
        if (rss > sampled[name]!) sampled[name] = rss;
      } catch {
        // Gone; reported as an error below.
      }
    }
  }, 50);
  const threadStart: Record<string, Map<number, number>> = {};
  for (const name of names) {
    const pid = options.watch[name]!;
    threadStart[name] = new Map(
      readThreadCpu(pid).map((t) => [t.tid, t.cpu.total]),
    );
    cpuStart[name] = readCpu(pid);
  }
  const selfStart = readCpu("self");
  const machineStart = readMachineBusy();
  const started = performance.now();
  const windowEnd = started + options.durationMs;
  const hardEnd = started + options.maxMs;
  const latencies: number[] = [];
  let bytes = 0;
  let launched = 0;
  const requests = await phase(
    () => {
      const now = performance.now();
      const more = now < hardEnd &&
        (now < windowEnd || launched < options.minRequests);
      if (more) launched++;
      return more;
    },
    (result) => {
      if (result === null) return;
      latencies.push(result[0]);
      bytes += result[1];
    },
  );
  const seconds = (performance.now() - started) / 1000;
  const selfEnd = readCpu("self");
  const machineEnd = readMachineBusy();
  const watched: Record<string, WatchedFigures> = {};
  for (const name of names) {
    const pid = options.watch[name]!;
    try {
      const memory = readMemory(pid);
      const threads: Record<string, number> = {};
      for (const thread of readThreadCpu(pid)) {
        const used = thread.cpu.total -
          (threadStart[name]!.get(thread.tid) ?? 0);
        threads[thread.name] = round((threads[thread.name] ?? 0) + used);
      }
      watched[name] = {
        pid,
        cpu: cpuDelta(cpuStart[name]!, readCpu(pid)),
        peakRssKiB: memory.hwmKiB,
        sampledPeakRssKiB: Math.max(sampled[name]!, memory.rssKiB),
        rssStartKiB: rssStart[name]!,
        rssEndKiB: memory.rssKiB,
        peakReset: peakReset[name]!,
        threads,
      };
    } catch (error) {
      noteError(`cannot read /proc/${pid}: ${errorMessage(error)}`);
    }
  }
  clearInterval(sampler);
  for (const scraper of scrapers) scraper.close();
  const watchedCpu = Object.values(watched).reduce(
    (sum, w) => sum + w.cpu.total,
    0,
  );
  const otherCpu = machineEnd - machineStart - watchedCpu -
    (selfEnd.total - selfStart.total);

  latencies.sort((a, b) => a - b);
  const mean = latencies.reduce((sum, ms) => sum + ms, 0) /
    Math.max(1, latencies.length);
  return {
    url: options.url,
    proxied: options.proxied,
    concurrency: options.concurrency,
    requests,
    errors,
    errorSamples,
    bytes,
    seconds: round(seconds),
    rps: round(requests / seconds, 2),
    latencyMs: {
      p50: round(percentile(latencies, 50)),
      p90: round(percentile(latencies, 90)),
      p99: round(percentile(latencies, 99)),
      max: round(percentile(latencies, 100)),
      mean: round(mean),
    },
    warmupRequests,
    loadCpu: cpuDelta(selfStart, selfEnd),
    otherCpu: round(Math.max(0, otherCpu)),
    watched,
  };
}

function parseWatch(text: string): Record<string, number> {
  const watch: Record<string, number> = {};
  for (const item of text.split(",").filter((s) => s !== "")) {
    const [name, pid] = item.split(":");
    if (!name || !pid || !Number.isInteger(Number(pid))) {
      throw new TypeError(`Cannot parse --watch item "${item}": expected NAME:PID`);
    }
    watch[name] = Number(pid);
  }
  return watch;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      host: { type: "string", default: "127.0.0.1" },
      port: { type: "string" },
      url: { type: "string" },
      proxied: { type: "boolean", default: false },
      concurrency: { type: "string", default: "1" },
      "warmup-ms": { type: "string", default: "1000" },
      "duration-ms": { type: "string", default: "4000" },
      "min-requests": { type: "string", default: "0" },
      "max-ms": { type: "string", default: "60000" },
      "expect-bytes": { type: "string", default: "-1" },
      "timeout-seconds": { type: "string", default: "30" },
      watch: { type: "string", default: "" },
    },
  });
  if (values.port === undefined || values.url === undefined) {
    throw new TypeError("Cannot run: --port and --url are required");
  }
  exitWithParent();
  const result = await runLoad({
    host: values.host,
    port: Number(values.port),
    url: values.url,
    proxied: values.proxied,
    concurrency: Number(values.concurrency),
    warmupMs: Number(values["warmup-ms"]),
    durationMs: Number(values["duration-ms"]),
    minRequests: Number(values["min-requests"]),
    maxMs: Number(values["max-ms"]),
    expectBytes: Number(values["expect-bytes"]),
    timeoutSeconds: Number(values["timeout-seconds"]),
    watch: parseWatch(values.watch),
  });
  console.log(JSON.stringify(result));
}

if (import.meta.main) await main();
