/**
 * `process_*` metrics (the Prometheus client libraries' process collector)
 * that stay true under the programs' own permission flags.
 *
 * prom-client's collector reads `/proc/self`, which Deno opens only under
 * `--allow-all`; without it prom-client reports 0 quietly. This collector
 * takes CPU, start time and resident memory from Deno's own APIs (no
 * permission needed) and the figures only `/proc` knows (virtual memory,
 * data segment, open and maximum file descriptors) from, in order:
 * `/proc/self` when Deno may read it; else `cat`/`ls` of `/proc/<pid>` when
 * the process may run them (`--allow-run` or `--allow-run=cat,ls`); else
 * those series are left out rather than reported as 0.
 *
 * @module
 */

import process from "node:process";
import { Counter, Gauge, type Registry } from "./prom_client.ts";

/** What `/proc/<pid>` says about a process. */
export interface ProcFigures {
  /** VmSize, bytes. */
  virtualBytes?: number;
  /** VmData, bytes (what Prometheus' clients call the heap). */
  heapBytes?: number;
  /** Entries of /proc/<pid>/fd. */
  openFds?: number;
  /** Soft limit "Max open files". */
  maxFds?: number;
}

/** Reads {@linkcode ProcFigures}; resolves to null when it cannot. */
export type ProcReader = () => Promise<ProcFigures | null>;

/**
 * Parses the text of `/proc/<pid>/status` and `/proc/<pid>/limits`
 * (concatenated, in any order).
 *
 * @param text The files' text.
 * @returns The figures found.
 */
export function parseProcText(text: string): ProcFigures {
  const figures: ProcFigures = {};
  const kb = (key: string) => {
    const match = text.match(new RegExp(`^${key}:\\s+(\\d+) kB`, "m"));
    return match ? Number(match[1]) * 1024 : undefined;
  };
  const virtualBytes = kb("VmSize");
  if (virtualBytes !== undefined) figures.virtualBytes = virtualBytes;
  const heapBytes = kb("VmData");
  if (heapBytes !== undefined) figures.heapBytes = heapBytes;
  const limit = text.match(/^Max open files\s+(\d+|unlimited)\s/m);
  if (limit?.[1] !== undefined && limit[1] !== "unlimited") figures.maxFds = Number(limit[1]);
  return figures;
}

/** Reads `/proc/self` with Deno's file APIs (needs `--allow-all` in Deno 2). */
export async function readProcSelf(): Promise<ProcFigures | null> {
  try {
    const [status, limits] = await Promise.all([
      Deno.readTextFile("/proc/self/status"),
      Deno.readTextFile("/proc/self/limits"),
    ]);
    let openFds = 0;
    for await (const _ of Deno.readDir("/proc/self/fd")) openFds++;
    // The directory handle being read counts itself.
    return { ...parseProcText(status + "\n" + limits), openFds: Math.max(0, openFds - 1) };
  } catch {
    return null;
  }
}

async function output(command: string, args: string[]): Promise<string | null> {
  try {
    const result = await new Deno.Command(command, {
      args,
      stdin: "null",
      stdout: "piped",
      stderr: "null",
      clearEnv: true,
    }).output();
    return result.success ? new TextDecoder().decode(result.stdout) : null;
  } catch {
    return null;
  }
}

/**
 * Reads `/proc/<pid>` through `cat` and `ls` child processes, which are
 * outside Deno's sandbox (one of each per collection).
 *
 * @param pid The process to read, this one by default.
 * @returns The reader.
 */
export function procByCommands(pid: number = Deno.pid): ProcReader {
  return async () => {
    // One after the other, so the count includes one child's pipes, not two.
    const text = await output("cat", [`/proc/${pid}/status`, `/proc/${pid}/limits`]);
    const fds = await output("ls", ["-1U", `/proc/${pid}/fd`]);
    if (text === null || fds === null) return null;
    return {
      ...parseProcText(text),
      openFds: fds.split("\n").filter((line) => line !== "").length,
    };
  };
}

function granted(descriptor: Deno.PermissionDescriptor): boolean {
  try {
    return Deno.permissions.querySync(descriptor).state === "granted";
  } catch {
    return false;
  }
}

/**
 * Picks how to read `/proc` under the permissions this process has: `/proc/self`
 * directly, else `cat`/`ls`, else nothing.
 *
 * @returns The reader, or null when none can work.
 */
export function defaultProcReader(): ProcReader | null {
  if (Deno.build.os !== "linux") return null;
  try {
    Deno.readTextFileSync("/proc/self/limits");
    return readProcSelf;
  } catch { /* Deno 2 opens /proc/self only with --allow-all */ }
  if (granted({ name: "run", command: "cat" }) && granted({ name: "run", command: "ls" })) {
    return procByCommands();
  }
  return null;
}

/** Options for {@linkcode registerProcessMetrics}. */
export interface ProcessMetricsOptions {
  /** Where /proc figures come from; null for none. @default {defaultProcReader()} */
  proc?: ProcReader | null;
  /** Resident set size in bytes. @default {Deno.memoryUsage().rss} */
  rss?: () => number;
  /** CPU time in microseconds. @default {process.cpuUsage} */
  cpuUsage?: () => { user: number; system: number };
  /** Start time, Unix seconds. @default {performance.timeOrigin / 1000} */
  startTime?: number;
  /** How long one /proc reading is reused, ms (bounds child processes). @default {1000} */
  cacheMs?: number;
  /** Clock for the cache. @default {Date.now} */
  now?: () => number;
}

/**
 * Registers the standard `process_*` metrics: `process_cpu_seconds_total`
 * (and its user/system parts), `process_start_time_seconds`,
 * `process_resident_memory_bytes`, and, where /proc can be read,
 * `process_virtual_memory_bytes`, `process_heap_bytes`, `process_open_fds`
 * and `process_max_fds`.
 *
 * @param registry Where to register them.
 * @param options Sources, injectable for tests.
 */
export function registerProcessMetrics(
  registry: Registry,
  options: ProcessMetricsOptions = {},
): void {
  const registers = [registry];
  const proc = options.proc === undefined ? defaultProcReader() : options.proc;
  const rss = options.rss ?? (() => Deno.memoryUsage().rss);
  const cpuUsage = options.cpuUsage ?? (() => process.cpuUsage());
  const startTime = options.startTime ?? performance.timeOrigin / 1000;
  const cacheMs = options.cacheMs ?? 1000;
  const now = options.now ?? Date.now;

  let cached: { at: number; figures: Promise<ProcFigures | null> } | undefined;
  function procFigures(): Promise<ProcFigures | null> {
    if (!proc) return Promise.resolve(null);
    if (!cached || now() - cached.at >= cacheMs) cached = { at: now(), figures: proc() };
    return cached.figures;
  }

  const cpu = (part: "user" | "system" | "total") => {
    const usage = cpuUsage();
    const micros = part === "user"
      ? usage.user
      : part === "system"
      ? usage.system
      : usage.user + usage.system;
    return micros / 1e6;
  };
  for (
    const [name, help, part] of [
      ["process_cpu_user_seconds_total", "Total user CPU time spent in seconds.", "user"],
      ["process_cpu_system_seconds_total", "Total system CPU time spent in seconds.", "system"],
      ["process_cpu_seconds_total", "Total user and system CPU time spent in seconds.", "total"],
    ] as const
  ) {
    new Counter({
      name,
      help,
      registers,
      collect() {
        this.reset();
        this.inc(cpu(part));
      },
    });
  }
  new Gauge({
    name: "process_start_time_seconds",
    help: "Start time of the process since unix epoch in seconds.",
    registers,
  }).set(startTime);
  new Gauge({
    name: "process_resident_memory_bytes",
    help: "Resident memory size in bytes.",
    registers,
    collect() {
      this.set(rss());
    },
  });
  if (!proc) return;
  for (
    const [name, help, key] of [
      ["process_virtual_memory_bytes", "Virtual memory size in bytes.", "virtualBytes"],
      ["process_heap_bytes", "Process heap size in bytes.", "heapBytes"],
      ["process_open_fds", "Number of open file descriptors.", "openFds"],
      ["process_max_fds", "Maximum number of open file descriptors.", "maxFds"],
    ] as const
  ) {
    new Gauge({
      name,
      help,
      registers,
      async collect() {
        const value = (await procFigures())?.[key];
        // Unknown this time (the reading failed): NaN, never a false 0.
        this.set(value ?? NaN);
      },
    });
  }
}
