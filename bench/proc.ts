/**
 * Readers of Linux `/proc` for the benchmark: CPU time, resident memory,
 * open file descriptors and machine facts. Every figure is the kernel's own,
 * read from outside the measured process so that it costs that process
 * nothing.
 *
 * @module
 */

/** Clock ticks per second of `/proc/PID/stat` times (USER_HZ). */
let ticksPerSecond = 100;
try {
  const out = new Deno.Command("getconf", { args: ["CLK_TCK"] }).outputSync();
  const value = Number(new TextDecoder().decode(out.stdout).trim());
  if (Number.isFinite(value) && value > 0) ticksPerSecond = value;
} catch {
  // getconf missing: Linux has used 100 on every common architecture.
}

/** CPU time a process has used, in seconds. */
export interface CpuTimes {
  /** User-mode seconds (utime). */
  user: number;
  /** Kernel-mode seconds (stime). */
  system: number;
  /** user + system. */
  total: number;
}

/**
 * Reads utime and stime of a process (all its threads) from
 * `/proc/PID/stat`.
 *
 * @param pid The process, or "self".
 * @returns Its CPU seconds so far.
 * @throws {Deno.errors.NotFound} When the process is gone.
 */
export function readCpu(pid: number | "self"): CpuTimes {
  return parseStat(Deno.readTextFileSync(`/proc/${pid}/stat`));
}

function parseStat(text: string): CpuTimes {
  // The command name (field 2) may hold spaces and parentheses: count fields
  // from the last ")". Field 3 (state) is then index 0; utime is field 14.
  const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
  const user = Number(fields[11]) / ticksPerSecond;
  const system = Number(fields[12]) / ticksPerSecond;
  return { user, system, total: user + system };
}

/**
 * Reads the CPU time the whole machine has spent busy (every CPU, every
 * process, idle and iowait excluded) from `/proc/stat`.
 *
 * @returns Busy CPU seconds since boot.
 */
export function readMachineBusy(): number {
  const line = Deno.readTextFileSync("/proc/stat").split("\n", 1)[0]!;
  // cpu user nice system idle iowait irq softirq steal guest guest_nice
  const f = line.trim().split(/\s+/).slice(1).map(Number);
  const busy = f[0]! + f[1]! + f[2]! + (f[5] ?? 0) + (f[6] ?? 0) + (f[7] ?? 0);
  return busy / ticksPerSecond;
}

/** One thread's name and CPU time. */
export interface ThreadCpu {
  tid: number;
  name: string;
  cpu: CpuTimes;
}

/**
 * Reads the CPU time of each thread of a process, to tell the JavaScript
 * thread from V8's garbage-collection and Tokio's worker threads.
 *
 * @param pid The process.
 * @returns One entry per live thread.
 */
export function readThreadCpu(pid: number): ThreadCpu[] {
  const threads: ThreadCpu[] = [];
  for (const entry of Deno.readDirSync(`/proc/${pid}/task`)) {
    try {
      const tid = Number(entry.name);
      const stat = Deno.readTextFileSync(`/proc/${pid}/task/${tid}/stat`);
      const name = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
      threads.push({ tid, name, cpu: parseStat(stat) });
    } catch {
      // The thread ended while we listed it.
    }
  }
  return threads;
}

/** Resident memory of a process, in KiB. */
export interface Memory {
  /** Resident set size now (VmRSS). */
  rssKiB: number;
  /** Peak resident set size (VmHWM) since start or the last reset. */
  hwmKiB: number;
  /**
   * The private anonymous part of the RSS (RssAnon): JS heap, malloc'd
   * memory, stacks. The rest of the RSS is file pages (the executable's code
   * and data, shared with every process running it and dropped by the kernel
   * when it needs the memory) and shared memory.
   */
  anonKiB: number;
}

/**
 * Reads VmRSS, VmHWM and RssAnon from `/proc/PID/status`.
 *
 * @param pid The process, or "self".
 * @returns Current and peak RSS, and the private anonymous part of it.
 */
export function readMemory(pid: number | "self"): Memory {
  const text = Deno.readTextFileSync(`/proc/${pid}/status`);
  const field = (name: string): number => {
    const match = text.match(new RegExp(`^${name}:\\s+(\\d+) kB`, "m"));
    return match ? Number(match[1]) : 0;
  };
  return { rssKiB: field("VmRSS"), hwmKiB: field("VmHWM"), anonKiB: field("RssAnon") };
}

/**
 * Resets a process's peak RSS (VmHWM) to its current RSS by writing "5" to
 * `/proc/PID/clear_refs` (Linux 4.0+), so the next peak belongs to the next
 * measurement only.
 *
 * @param pid The process; must belong to the same user.
 * @returns False when the kernel refused.
 */
export function resetPeakRss(pid: number): boolean {
  try {
    Deno.writeTextFileSync(`/proc/${pid}/clear_refs`, "5");
    return true;
  } catch {
    return false;
  }
}

/**
 * Counts the open file descriptors of a process (`/proc/PID/fd`).
 *
 * @param pid The process, or "self".
 * @returns The count.
 */
export function countFds(pid: number | "self"): number {
  let count = 0;
  for (const _ of Deno.readDirSync(`/proc/${pid}/fd`)) count++;
  return count;
}

/**
 * Reads the soft limit on open files of a process (`/proc/PID/limits`).
 *
 * @param pid The process, or "self".
 * @returns The limit, or Infinity when unlimited.
 */
export function openFileLimit(pid: number | "self"): number {
  return openFileLimits(pid).soft;
}

/**
 * The soft and hard open-files limits of a process (Infinity: unlimited).
 *
 * @param pid A process id, or "self".
 * @returns Both limits.
 */
export function openFileLimits(pid: number | "self"): { soft: number; hard: number } {
  const text = Deno.readTextFileSync(`/proc/${pid}/limits`);
  const match = text.match(/^Max open files\s+(\S+)\s+(\S+)/m);
  const value = (s: string | undefined) =>
    s === undefined || s === "unlimited" ? Infinity : Number(s);
  return { soft: value(match?.[1]), hard: value(match?.[2]) };
}

/** Facts about the machine a run came from. */
export interface MachineInfo {
  /** CPUs this process may run on. */
  nproc: number;
  cpuModel: string;
  memTotalMiB: number;
  kernel: string;
  deno: string;
  v8: string;
}

/**
 * Describes the machine from `/proc/cpuinfo`, `/proc/meminfo` and Deno.
 *
 * @returns The machine facts.
 */
export function machineInfo(): MachineInfo {
  const cpuinfo = Deno.readTextFileSync("/proc/cpuinfo");
  const meminfo = Deno.readTextFileSync("/proc/meminfo");
  const model = cpuinfo.match(/^model name\s*:\s*(.*)$/m)?.[1] ?? "unknown";
  const memKiB = Number(meminfo.match(/^MemTotal:\s+(\d+)/m)?.[1] ?? 0);
  return {
    nproc: navigator.hardwareConcurrency,
    cpuModel: model.trim(),
    memTotalMiB: Math.round(memKiB / 1024),
    kernel: Deno.osRelease(),
    deno: Deno.version.deno,
    v8: Deno.version.v8,
  };
}
