/**
 * Where a program's CPU goes, by layer, from Linux `perf` samples: the
 * kernel (by system call), Deno's native code and libc outside JavaScript,
 * and JavaScript by origin — this project's files, npm packages, Deno's own
 * (`ext:`, `node:`) — with the V8 builtins and native code a JavaScript
 * function entered counted for that function.
 *
 * V8's CPU profiles cannot draw this line: they show the kernel, the event
 * loop and Deno's Rust side as opaque entries (an `op_write` "self time"
 * that is mostly the kernel and the event loop). `perf` samples every layer
 * with frame-pointer call chains, in which JIT code appears by name when the
 * program runs with `--perf-basic-prof` (it writes `/tmp/perf-PID.map`).
 * The deno binary has no symbols; V8's embedded builtins lie in its last
 * executable mapping, which `perf` reports by file offset and the perf map
 * names at run time addresses, so the process's `/proc/PID/maps` is read
 * while it runs to translate one to the other.
 *
 * The parsers and {@linkcode classifySamples} are pure; {@linkcode startPerf}
 * and {@linkcode recordSplit} run `perf`.
 *
 * ## Running it
 *
 *     # this checkout's proxy and client, and another checkout's, 57 KiB c1
 *     deno task bench:alternate --against=../other --perf-split [--json=FILE]
 *     # the runtime's floor for the same scrape (bench/floor.ts)
 *     deno run -A bench/floor.ts --perf-split
 *
 * Both need `perf` (Debian: `linux-perf`) and leave to sample the kernel
 * (root, or `kernel.perf_event_paranoid` ≤ 1); without them they say why and
 * exit 3. The split comes from one extra round, measured while `perf`
 * samples at 4 kHz; the other rounds' figures are perf-free, and the ms per
 * request are shares of those: sampling costs the sampled process CPU that
 * its samples do not show (0.08 ms per scrape and process for the floor
 * here, 0.1–0.2 for the real programs), which the recorded round's own
 * figure would spread over every layer.
 *
 * ## Reading the table
 *
 * One table per process; each row is a share of that process's samples and
 * that share of its CPU per request without perf (ms/req). The layers
 * (unindented rows) sum to 100 %:
 *
 * - **kernel**: every sample whose leaf is in the kernel, parted by the
 *   system call in its chain. "syscall entry and exit" is kernel time in no
 *   one call (mostly where interrupts are enabled again on the way out: a
 *   timer sample that fell due inside a call lands there); "interrupts,
 *   faults" had no system call at all. "with a JS frame on the stack" is the
 *   part reached from JavaScript directly (a synchronous op): near zero for
 *   Deno's networking, whose I/O the event loop does.
 * - **Deno native / libc / V8 builtins, no JS on stack**: the event loop,
 *   the op driver, Tokio, the allocator, microtask entry — the runtime
 *   running on its own account. libc's "syscall wrappers" part is mostly
 *   the kernel's: a timer sample that falls due while the kernel runs with
 *   interrupts off is taken on the way back, at the wrapper's return address
 *   (as "syscall entry and exit" is, when taken inside the kernel).
 * - **this project's JS**, **npm packages' JS**, **Deno's JS** (`ext:`,
 *   `node:`), **other JS**: samples with a JavaScript function on the
 *   stack, counted for the nearest one. "JIT self" is its own code; "entered
 *   from it" the builtins (awaits, promises, typed arrays, Map/Set…), native
 *   code and libc it called — the cost of what the function asks for. For
 *   `--bundles` the bundle's code counts as this project's (npm packages
 *   included); for the floor, bench/floor.ts's code.
 *
 * What the project can still cut is in its own JS rows (and, through the
 * calls it makes, part of Deno's JS); the rest is below it. The kernel's
 * share of samples can differ from the system share of `/proc` CPU times by
 * a few points: both are sampled, differently. JSON (`--json`) keeps every
 * row plus the 15 JavaScript functions and 15 leaves with most samples.
 *
 * @module
 */

/** The V8 flags that make JIT code visible to `perf` by name. */
export const PERF_V8_FLAGS: readonly string[] = [
  "--perf-basic-prof",
  // Interpreted functions get a trampoline of their own, so their samples
  // name them instead of the JIT function that called them.
  "--interpreted-frames-native-stack",
  // --perf-basic-prof turns V8's log on, which would leave an
  // isolate-*-v8.log in the working directory; the perf map is apart.
  "--logfile=/dev/null",
];

/** One frame of a sample's call chain. */
export interface PerfFrame {
  /** The address: a file offset for a file-backed mapping, else a run time address. */
  ip: number;
  /** The symbol `perf` found, or "[unknown]". */
  sym: string;
  /** The mapping's file, "[kernel.kallsyms]", or a perf map such as "/tmp/perf-1.map". */
  dso: string;
}

/** One sample: the process and its call chain, leaf first. */
export interface PerfSample {
  /** The process (-1 when the output has no pid field). */
  pid: number;
  frames: PerfFrame[];
}

const FRAME = /^\s+([0-9a-f]+)\s(.*)\s\(([^()]*)\)$/;
const FRAME_NO_SYM = /^\s+([0-9a-f]+)\s+\(([^()]*)\)$/;
const HEADER = /^\s*(\d+)\s*$/;

/**
 * Reads the output of `perf script -F pid,ip,sym,dso` (or `-F ip,sym,dso`)
 * of a recording made with `-g`: a header line per sample (its pid), then
 * one line per frame, leaf first, then a blank line.
 *
 * @param text The output.
 * @returns The samples, in order.
 */
export function* parsePerfScript(text: string): Generator<PerfSample> {
  let current: PerfSample | null = null;
  let pid = -1;
  for (const line of text.split("\n")) {
    const frame = FRAME.exec(line);
    const bare = frame ? null : FRAME_NO_SYM.exec(line);
    if (frame || bare) {
      current ??= { pid, frames: [] };
      current.frames.push(
        frame
          ? { ip: parseInt(frame[1]!, 16), sym: frame[2]!, dso: frame[3]! }
          : { ip: parseInt(bare![1]!, 16), sym: "[unknown]", dso: bare![2]! },
      );
      continue;
    }
    if (current) yield current;
    current = null;
    const header = HEADER.exec(line);
    pid = header ? Number(header[1]) : line.trim() === "" ? pid : -1;
  }
  if (current) yield current;
}

/** Names of code by run time address, from a `/tmp/perf-PID.map`. */
export class PerfMap {
  #starts: number[] = [];
  #ends: number[] = [];
  #names: string[] = [];

  /**
   * @param text The map: lines of "START SIZE NAME", hexadecimal numbers.
   */
  constructor(text: string) {
    const entries: [number, number, string][] = [];
    for (const line of text.split("\n")) {
      const first = line.indexOf(" "), second = line.indexOf(" ", first + 1);
      if (first < 0 || second < 0) continue;
      const start = parseInt(line.slice(0, first), 16);
      const size = parseInt(line.slice(first + 1, second), 16);
      if (Number.isFinite(start) && Number.isFinite(size)) {
        entries.push([start, start + size, line.slice(second + 1)]);
      }
    }
    // Stable: of two entries at one address (code replaced), the later wins.
    entries.sort((a, b) => a[0] - b[0]);
    for (const [start, end, name] of entries) {
      if (this.#starts.at(-1) === start) {
        this.#ends[this.#ends.length - 1] = end;
        this.#names[this.#names.length - 1] = name;
      } else {
        this.#starts.push(start);
        this.#ends.push(end);
        this.#names.push(name);
      }
    }
  }

  /**
   * @param address A run time address.
   * @returns The name of the code holding it, or undefined.
   */
  lookup(address: number): string | undefined {
    let lo = 0, hi = this.#starts.length - 1, found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (this.#starts[mid]! <= address) {
        found = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    return found >= 0 && address < this.#ends[found]! ? this.#names[found] : undefined;
  }
}

/** One line of `/proc/PID/maps`. */
export interface Mapping {
  start: number;
  end: number;
  perms: string;
  /** File offset of `start`. */
  offset: number;
  path: string;
}

/**
 * Reads `/proc/PID/maps`.
 *
 * @param text Its contents.
 * @returns The mappings, in order.
 */
export function parseProcMaps(text: string): Mapping[] {
  const mappings: Mapping[] = [];
  for (const line of text.split("\n")) {
    const m = /^([0-9a-f]+)-([0-9a-f]+)\s+(\S+)\s+([0-9a-f]+)\s+\S+\s+\d+\s*(.*)$/.exec(line);
    if (!m) continue;
    mappings.push({
      start: parseInt(m[1]!, 16),
      end: parseInt(m[2]!, 16),
      perms: m[3]!,
      offset: parseInt(m[4]!, 16),
      path: m[5]!,
    });
  }
  return mappings;
}

/**
 * The mapping of V8's embedded builtins: the executable mapping of the deno
 * binary with the highest file offset (the builtins are remapped there at
 * startup, apart from the rest of the binary's code).
 *
 * @param mappings The process's mappings.
 * @param exe The binary's path as the maps and `perf` name it.
 * @returns The mapping, or undefined when the binary has fewer than two.
 */
export function builtinsMapping(mappings: readonly Mapping[], exe: string): Mapping | undefined {
  const code = mappings.filter((m) => m.path === exe && m.perms.startsWith("r-x"));
  if (code.length < 2) return undefined;
  return code.reduce((a, b) => (b.offset > a.offset ? b : a));
}

/** Where a JavaScript function comes from. */
export type JsOrigin = "project" | "npm" | "deno" | "other";

/** Samples of JavaScript of one origin. */
export interface JsLayer {
  /** With the function's JIT code itself as the leaf. */
  self: number;
  /** In builtins, Deno's native code or libc the function entered. */
  entered: number;
}

/** Where a process's samples fell, by layer (counts of samples). */
export interface LayerSplit {
  samples: number;
  kernel: {
    total: number;
    /** Of `total`, with a JavaScript frame on the stack. */
    underJs: number;
    /**
     * By system call (`__x64_sys_NAME` in the chain), else "syscall entry
     * and exit" or "interrupts, faults".
     */
    bySyscall: Record<string, number>;
  };
  /** Deno's own Rust and V8's C++ with no JavaScript frame on the stack. */
  runtimeNative: number;
  /** V8 builtins and other generated code with no JavaScript frame on the stack. */
  builtins: number;
  /** libc and other shared libraries with no JavaScript frame on the stack. */
  libc: number;
  /**
   * Of `libc`, samples in a system call's wrapper (epoll_wait, send,
   * recv…): kernel time that a timer sample, held while the kernel ran with
   * interrupts off, reports at the return address.
   */
  libcSyscalls: number;
  js: Record<JsOrigin, JsLayer>;
  /** The JavaScript functions with most samples (self + entered), at most 15. */
  functions: { name: string; origin: JsOrigin; self: number; entered: number }[];
  /**
   * The leaves with most samples, at most 15: JavaScript and builtins by
   * name, "kernel: SYMBOL", "libc.so.6: SYMBOL", "Deno native".
   */
  leaves: { name: string; samples: number }[];
}

/** What {@linkcode classifySamples} needs to know of one process. */
export interface ProcessSymbols {
  /** The deno binary's path, as in its maps and `perf`'s dso names. */
  exe: string;
  /** Its `/proc/PID/maps`, read while it ran. */
  maps: readonly Mapping[];
  /** Its perf map. */
  perfMap: PerfMap;
  /** URL prefixes of this project's code (file:///repo/proxy/ …). */
  projectUrls: readonly string[];
}

/** glibc's names for the wrappers of the system calls an event loop makes. */
const SYSCALL_WRAPPER =
  /^(?:__(?:GI___)?(?:libc_)?)?(?:epoll_wait|epoll_pwait2?|epoll_ctl|send|sendto|sendmsg|recv|recvfrom|recvmsg|read|write|readv|writev|close|accept4?|poll|ppoll|syscall|eventfd_(?:read|write)|sched_yield|madvise|mmap64|mmap|munmap|mprotect|clock_nanosleep|nanosleep|futex_abstimed_wait_common(?:64)?|lll_lock_wait)$/;

type FrameKind = "kernel" | "js" | "builtin" | "native" | "lib";

/**
 * Tells a JavaScript function's origin from its perf map name
 * (`JS:*'name file:///…/x.ts:1:2`, `JS:~ ext:core/01_core.js:3:4`).
 *
 * @param name The name.
 * @param projectUrls URL prefixes of this project's code.
 * @returns The origin.
 */
export function jsOrigin(name: string, projectUrls: readonly string[]): JsOrigin {
  const location = name.slice(name.lastIndexOf(" ") + 1);
  const url = /^(.*):\d+:\d+$/.exec(location)?.[1] ?? "";
  if (projectUrls.some((prefix) => url.startsWith(prefix))) return "project";
  if (url.startsWith("ext:") || url.startsWith("node:")) return "deno";
  if (url.includes("/node_modules/") || url.includes("/deno/npm/")) return "npm";
  return "other";
}

function isKernel(dso: string): boolean {
  return dso.startsWith("[kernel");
}

/**
 * Classifies samples into layers (see {@linkcode LayerSplit}). A sample with
 * a JavaScript frame counts for the nearest one (the leaf or its closest
 * caller) unless its leaf is in the kernel: the kernel's share stays the
 * kernel's, whoever asked for it.
 *
 * @param samples One process's samples.
 * @param symbols That process's binary, mappings, perf map and project URLs.
 * @returns The split.
 */
export function classifySamples(
  samples: Iterable<PerfSample>,
  symbols: ProcessSymbols,
): LayerSplit {
  const builtins = builtinsMapping(symbols.maps, symbols.exe);
  const kind = (frame: PerfFrame): FrameKind => {
    if (isKernel(frame.dso)) return "kernel";
    if (/\/perf-\d+\.map$/.test(frame.dso)) return frame.sym.startsWith("JS:") ? "js" : "builtin";
    if (frame.dso === symbols.exe) {
      if (
        builtins && frame.ip >= builtins.offset &&
        frame.ip < builtins.offset + (builtins.end - builtins.start)
      ) return "builtin";
      return "native";
    }
    return "lib";
  };
  const split: LayerSplit = {
    samples: 0,
    kernel: { total: 0, underJs: 0, bySyscall: {} },
    runtimeNative: 0,
    builtins: 0,
    libc: 0,
    libcSyscalls: 0,
    js: {
      project: { self: 0, entered: 0 },
      npm: { self: 0, entered: 0 },
      deno: { self: 0, entered: 0 },
      other: { self: 0, entered: 0 },
    },
    functions: [],
    leaves: [],
  };
  const leafName = (frame: PerfFrame, frameKind: FrameKind): string => {
    if (frameKind === "kernel") return `kernel: ${frame.sym}`;
    if (frameKind === "native") return "Deno native";
    if (frameKind === "lib") {
      return `${frame.dso.slice(frame.dso.lastIndexOf("/") + 1)}: ${frame.sym}`;
    }
    if (frame.dso !== symbols.exe) return frame.sym;
    return symbols.perfMap.lookup(builtins!.start + frame.ip - builtins!.offset) ?? "Builtin?";
  };
  const leaves = new Map<string, number>();
  const functions = new Map<string, { origin: JsOrigin; self: number; entered: number }>();
  for (const sample of samples) {
    const frames = sample.frames;
    if (frames.length === 0) continue;
    split.samples++;
    const leafKind = kind(frames[0]!);
    const leaf = leafName(frames[0]!, leafKind);
    leaves.set(leaf, (leaves.get(leaf) ?? 0) + 1);
    const jsAt = frames.findIndex((f) => kind(f) === "js");
    if (leafKind === "kernel") {
      split.kernel.total++;
      if (jsAt >= 0) split.kernel.underJs++;
      const call = frames.find((f) => isKernel(f.dso) && /^__(?:x64|arm64)_sys_/.test(f.sym));
      const name = call
        ? call.sym.replace(/^__(?:x64|arm64)_sys_/, "")
        : frames.some((f) => /^(?:do_syscall_64|entry_SYSCALL)/.test(f.sym))
        ? "syscall entry and exit"
        : "interrupts, faults";
      split.kernel.bySyscall[name] = (split.kernel.bySyscall[name] ?? 0) + 1;
      continue;
    }
    if (jsAt < 0) {
      if (leafKind === "native") split.runtimeNative++;
      else if (leafKind === "lib") {
        split.libc++;
        if (SYSCALL_WRAPPER.test(frames[0]!.sym)) split.libcSyscalls++;
      } else split.builtins++;
      continue;
    }
    const name = frames[jsAt]!.sym;
    const origin = jsOrigin(name, symbols.projectUrls);
    const entry = functions.get(name) ?? { origin, self: 0, entered: 0 };
    functions.set(name, entry);
    if (jsAt === 0) {
      split.js[origin].self++;
      entry.self++;
    } else {
      split.js[origin].entered++;
      entry.entered++;
    }
  }
  split.functions = [...functions].map(([name, f]) => ({ name, ...f }))
    .sort((a, b) => b.self + b.entered - a.self - a.entered).slice(0, 15);
  split.leaves = [...leaves].map(([name, samples]) => ({ name, samples }))
    .sort((a, b) => b.samples - a.samples).slice(0, 15);
  return split;
}

/** One row of a printed split. */
export interface SplitRow {
  layer: string;
  /** Nesting: 0 for a layer, 1 for its parts. */
  depth: number;
  /** Share of the process's samples, 0–1. */
  share: number;
}

const ORIGIN_LABELS: Record<JsOrigin, string> = {
  project: "this project's JS",
  npm: "npm packages' JS",
  deno: "Deno's JS (ext:, node:)",
  other: "other JS",
};

/**
 * The rows of a split, layers and their main parts, with shares of all
 * samples: kernel (by syscall), runtime native, libc, builtins outside JS,
 * then JavaScript by origin (JIT self, entered from it; left out for an
 * origin without samples).
 *
 * @param split The split.
 * @returns The rows; the depth-0 shares sum to 1.
 */
export function splitRows(split: LayerSplit): SplitRow[] {
  const n = split.samples || 1;
  const rows: SplitRow[] = [{ layer: "kernel", depth: 0, share: split.kernel.total / n }];
  const calls = Object.entries(split.kernel.bySyscall).sort((a, b) => b[1] - a[1]);
  const shown = calls.slice(0, 5);
  for (const [name, count] of shown) rows.push({ layer: name, depth: 1, share: count / n });
  const rest = calls.slice(5).reduce((sum, [, count]) => sum + count, 0);
  if (rest > 0) rows.push({ layer: "other syscalls", depth: 1, share: rest / n });
  rows.push({ layer: "with a JS frame on the stack", depth: 1, share: split.kernel.underJs / n });
  rows.push({ layer: "Deno native, no JS on stack", depth: 0, share: split.runtimeNative / n });
  rows.push({ layer: "libc etc., no JS on stack", depth: 0, share: split.libc / n });
  if (split.libc > 0) {
    rows.push({
      layer: "syscall wrappers (kernel's return)",
      depth: 1,
      share: split.libcSyscalls / n,
    });
    rows.push({ layer: "the rest", depth: 1, share: (split.libc - split.libcSyscalls) / n });
  }
  rows.push({ layer: "V8 builtins, no JS on stack", depth: 0, share: split.builtins / n });
  for (const origin of ["project", "npm", "deno", "other"] as const) {
    const { self, entered } = split.js[origin];
    rows.push({ layer: ORIGIN_LABELS[origin], depth: 0, share: (self + entered) / n });
    if (self + entered === 0) continue;
    rows.push({ layer: "JIT self", depth: 1, share: self / n });
    rows.push({ layer: "entered from it", depth: 1, share: entered / n });
  }
  return rows;
}

/**
 * A printable table of a split: layer, % of samples, ms per request.
 *
 * @param title What was recorded, e.g. "proxy (this checkout)".
 * @param split The split.
 * @param msPerRequest The process's CPU per request (without perf).
 * @param note Text after the first line's figures.
 * @returns The lines.
 */
export function formatSplit(
  title: string,
  split: LayerSplit,
  msPerRequest: number,
  note = "",
): string[] {
  const lines = [
    `${title}: ${split.samples} samples; ${msPerRequest.toFixed(3)} ms CPU per request${note}`,
    `  ${"layer".padEnd(38)} ${"%".padStart(6)} ${"ms/req".padStart(7)}`,
  ];
  for (const row of splitRows(split)) {
    const label = ("  ".repeat(row.depth) + row.layer).padEnd(38);
    lines.push(
      `  ${label} ${(row.share * 100).toFixed(1).padStart(6)} ` +
        `${(row.share * msPerRequest).toFixed(3).padStart(7)}`,
    );
  }
  return lines;
}

/**
 * The URL prefixes of this project's code in a checkout: its proxy/,
 * client/, lib/ and gen/.
 *
 * @param repo The checkout's root directory.
 * @returns file:// URL prefixes, each ending in "/".
 */
export function projectUrlsOf(repo: string): string[] {
  return ["proxy", "client", "lib", "gen"].map((dir) =>
    new URL(`file://${repo.replace(/\/$/, "")}/${dir}/`).href
  );
}

const decoder = new TextDecoder();

/**
 * Why `perf` cannot record here, or "" when it can: missing, or not
 * permitted to sample other processes' kernel side
 * (`/proc/sys/kernel/perf_event_paranoid` above 1 for a user other than
 * root), or failing a one-off recording.
 *
 * @returns The reason, or "".
 */
export async function perfProblem(): Promise<string> {
  try {
    const version = await new Deno.Command("perf", { args: ["--version"], stderr: "null" })
      .output();
    if (!version.success) return "perf does not run (perf --version failed)";
  } catch {
    return "perf is not installed (Debian: apt-get install linux-perf)";
  }
  let paranoid = 2;
  try {
    paranoid = Number(Deno.readTextFileSync("/proc/sys/kernel/perf_event_paranoid").trim());
  } catch { /* unknown: assume the default */ }
  if (Deno.uid() !== 0 && paranoid > 1) {
    return `perf may not sample the kernel: /proc/sys/kernel/perf_event_paranoid is ${paranoid} ` +
      "(needs 1 or less, or root: sysctl kernel.perf_event_paranoid=1)";
  }
  const file = await Deno.makeTempFile({ prefix: "perf-split-probe-" });
  try {
    const probe = await new Deno.Command("perf", {
      args: ["record", "-q", "-g", "-e", "cpu-clock", "-o", file, "--", "true"],
      stdout: "null",
      stderr: "piped",
    }).output();
    if (!probe.success) {
      return `perf record fails here: ${decoder.decode(probe.stderr).trim().slice(0, 300)}`;
    }
  } finally {
    await Deno.remove(file).catch(() => {});
  }
  return "";
}

/** A process to record and what counts as this project's code in it. */
export interface PerfTarget {
  pid: number;
  /** URL prefixes of this project's code, see {@linkcode projectUrlsOf}. */
  projectUrls: readonly string[];
}

/** A running `perf record`; {@linkcode PerfRecording.stop} ends it. */
export interface PerfRecording {
  /**
   * Stops recording and classifies each process's samples; removes the
   * processes' perf maps, read now (later code is not named).
   *
   * @returns The split per pid.
   */
  stop(): Promise<Map<number, LayerSplit>>;
}

/**
 * Starts `perf record -g -e cpu-clock` on some processes (one `perf` for
 * all, so the recording costs one sampler), after reading their mappings.
 * The processes must run with {@linkcode PERF_V8_FLAGS}.
 *
 * @param targets The processes.
 * @param frequency Samples per second per CPU. @default {4000}
 * @returns The recording, once `perf` has attached.
 * @throws {Error} When `perf` does not start.
 */
export async function startPerf(
  targets: readonly PerfTarget[],
  frequency = 4000,
): Promise<PerfRecording> {
  const symbols = targets.map((t) => {
    const exe = Deno.readLinkSync(`/proc/${t.pid}/exe`);
    const maps = parseProcMaps(Deno.readTextFileSync(`/proc/${t.pid}/maps`));
    return { pid: t.pid, exe, maps, projectUrls: t.projectUrls };
  });
  // perf starts with its counters off and turns them on when told through
  // a control FIFO, answering "ack": from then on every sample counts.
  const dir = await Deno.makeTempDir({ prefix: "perf-split-" });
  const file = `${dir}/perf.data`;
  const cleanup = () => Deno.remove(dir, { recursive: true }).catch(() => {});
  for (const fifo of ["ctl", "ack"]) {
    const made = await new Deno.Command("mkfifo", { args: [`${dir}/${fifo}`] }).output();
    if (!made.success) {
      await cleanup();
      throw new Error(`mkfifo ${dir}/${fifo} failed`);
    }
  }
  // Opened for reading and writing, a FIFO's open does not wait for perf.
  const ctl = await Deno.open(`${dir}/ctl`, { read: true, write: true });
  const ack = await Deno.open(`${dir}/ack`, { read: true, write: true });
  const perf = new Deno.Command("perf", {
    args: [
      "record",
      "-q",
      "-g",
      "-e",
      "cpu-clock",
      "-F",
      String(frequency),
      "-D",
      "-1",
      `--control=fifo:${dir}/ctl,${dir}/ack`,
      "-p",
      targets.map((t) => t.pid).join(","),
      "-o",
      file,
    ],
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const stderr = new Response(perf.stderr).text();
  const closeFifos = () => {
    ctl.close();
    ack.close();
  };
  await ctl.write(new TextEncoder().encode("enable\n"));
  const answer = new Uint8Array(16);
  const timeout = new AbortController();
  const acked = await Promise.race([
    ack.read(answer).then(
      (n) => decoder.decode(answer.subarray(0, n ?? 0)).startsWith("ack"),
      () => false,
    ),
    perf.status.then(() => false),
    delay(10_000, timeout.signal).then(() => false, () => false),
  ]);
  timeout.abort();
  if (!acked) {
    perf.kill("SIGKILL");
    await perf.status;
    closeFifos();
    await cleanup();
    throw new Error(`perf record did not start: ${(await stderr).trim().slice(0, 500)}`);
  }
  return {
    async stop() {
      try {
        perf.kill("SIGINT");
        await perf.status;
        await stderr;
        closeFifos();
        const out = await new Deno.Command("perf", {
          args: ["script", "-i", file, "-F", "pid,ip,sym,dso"],
          stdout: "piped",
          stderr: "null",
        }).output();
        if (!out.success) throw new Error(`perf script failed on ${file}`);
        const byPid = new Map<number, PerfSample[]>(symbols.map((s) => [s.pid, []]));
        for (const sample of parsePerfScript(decoder.decode(out.stdout))) {
          byPid.get(sample.pid)?.push(sample);
        }
        const splits = new Map<number, LayerSplit>();
        for (const s of symbols) {
          const mapFile = `/tmp/perf-${s.pid}.map`;
          const perfMap = new PerfMap(await Deno.readTextFile(mapFile));
          // Read once and for all: the file only grows while the process runs.
          await Deno.remove(mapFile).catch(() => {});
          splits.set(s.pid, classifySamples(byPid.get(s.pid)!, { ...s, perfMap }));
        }
        return splits;
      } finally {
        await cleanup();
      }
    },
  };
}

function delay(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", abort);
      resolve();
    }, ms);
    const abort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    signal?.addEventListener("abort", abort, { once: true });
  });
}

/**
 * Records one process for some seconds and splits its samples by layer.
 *
 * @param pid The process (run with {@linkcode PERF_V8_FLAGS}).
 * @param seconds How long to record.
 * @param projectUrls URL prefixes of this project's code.
 * @param signal Ends the wait early; the recording is then discarded.
 * @returns The split.
 */
export async function recordSplit(
  pid: number,
  seconds: number,
  projectUrls: readonly string[],
  signal?: AbortSignal,
): Promise<LayerSplit> {
  const recording = await startPerf([{ pid, projectUrls }]);
  try {
    await delay(seconds * 1000, signal);
  } catch (error) {
    await recording.stop().catch(() => {});
    throw error;
  }
  return (await recording.stop()).get(pid)!;
}
