/**
 * CPU profiles of the proxy and client through the V8 inspector (processes
 * started with `--inspect=127.0.0.1:0`), and a summary of where the time
 * went: by function (self and inclusive) and by code area (connect,
 * protobuf, Deno's node:http, garbage collector, …).
 *
 * @module
 */

/** A V8 `.cpuprofile` (Chrome DevTools format). */
export interface CpuProfile {
  nodes: {
    id: number;
    callFrame: {
      functionName: string;
      url: string;
      lineNumber: number;
      columnNumber: number;
    };
    hitCount?: number;
    children?: number[];
  }[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

/**
 * With `BENCH_HEAP_PROF=PREFIX` in the environment, a profiled case also
 * samples allocations (V8's sampling heap profiler, every 4 KiB on average,
 * objects the scavenger freed included) and writes them to
 * PREFIX-N.heapprofile, N counting from 0 in stop order (proxy, then
 * client); Chrome DevTools opens them (issue #11).
 */
const HEAP_PROF = Deno.env.get("BENCH_HEAP_PROF");
let heapProfiles = 0;

/** A profiling session with one process. */
export interface Inspector {
  start(): Promise<void>;
  stop(): Promise<CpuProfile>;
  /** Runs a full garbage collection; resolves with the used JS heap, bytes. */
  collectGarbage(): Promise<number>;
  close(): void;
}

/**
 * Connects to a process's inspector (CPU profiles, forced garbage
 * collection).
 *
 * @param url The `ws://…` URL the process printed.
 * @param samplingMicros Sampling interval.
 * @returns The session, profiler enabled.
 */
export async function connectInspector(
  url: string,
  samplingMicros = 500,
): Promise<Inspector> {
  const socket = new WebSocket(url);
  await new Promise<void>((resolve, reject) => {
    socket.onopen = () => resolve();
    socket.onerror = () => reject(new Error(`Cannot connect to ${url}`));
  });
  let nextId = 1;
  const waiting = new Map<number, (message: Record<string, unknown>) => void>();
  socket.onmessage = (event) => {
    const message = JSON.parse(String(event.data));
    if (typeof message.id === "number") {
      waiting.get(message.id)?.(message);
      waiting.delete(message.id);
    }
  };
  const call = (
    method: string,
    params: Record<string, unknown> = {},
  ): Promise<Record<string, unknown>> => {
    const id = nextId++;
    socket.send(JSON.stringify({ id, method, params }));
    return new Promise((resolve, reject) => {
      waiting.set(id, (message) => {
        if (message.error) {
          reject(new Error(`${method}: ${JSON.stringify(message.error)}`));
        } else resolve((message.result ?? {}) as Record<string, unknown>);
      });
    });
  };
  await call("Profiler.enable");
  await call("Profiler.setSamplingInterval", { interval: samplingMicros });
  return {
    async start() {
      await call("Profiler.start");
      if (HEAP_PROF) {
        await call("HeapProfiler.enable");
        await call("HeapProfiler.startSampling", {
          samplingInterval: 4096,
          includeObjectsCollectedByMajorGC: true,
          includeObjectsCollectedByMinorGC: true,
        });
      }
    },
    async stop() {
      if (HEAP_PROF) {
        const heap = await call("HeapProfiler.stopSampling");
        Deno.writeTextFileSync(
          `${HEAP_PROF}-${heapProfiles++}.heapprofile`,
          JSON.stringify(heap.profile),
        );
      }
      const result = await call("Profiler.stop");
      return result.profile as CpuProfile;
    },
    async collectGarbage() {
      await call("HeapProfiler.collectGarbage");
      const usage = await call("Runtime.getHeapUsage");
      return Number(usage.usedSize);
    },
    close() {
      socket.close();
    },
  };
}

/** One row of a profile summary. */
export interface ProfileRow {
  name: string;
  ms: number;
  /** Share of the sampled non-idle time, percent. */
  pct: number;
}

/** Where a profile's time went. */
export interface ProfileSummary {
  /** Sampled time, idle and profiling artifacts excluded, ms. */
  busyMs: number;
  idleMs: number;
  /**
   * Time in Deno's inspector network bridge, ms: with an inspector attached
   * Deno reports every node:http client request and body chunk to it
   * (base64-encoded). It does not happen without `--inspect`, so it is left
   * out of every other figure here.
   */
  artifactMs: number;
  /** Self time by code area (native frames count for their caller). */
  areas: ProfileRow[];
  /** Functions by self time. */
  self: ProfileRow[];
  /** Functions by inclusive time (each sample counted once per function). */
  inclusive: ProfileRow[];
}

/**
 * The code area of a script URL.
 *
 * @param url A call frame's URL.
 * @returns A short area name, or null for frames without a URL.
 */
export function codeArea(url: string): string | null {
  if (url === "") return null;
  if (url.includes("@connectrpc/connect-node")) return "connect-node";
  if (url.includes("@connectrpc/connect")) return "connect";
  if (url.includes("@bufbuild/protobuf")) return "protobuf-es";
  if (url.includes("prom-client")) return "prom-client";
  if (url.startsWith("node:") || url.startsWith("ext:deno_node")) {
    return "deno node compat (node:*)";
  }
  if (url.startsWith("ext:")) return "deno runtime (ext:*)";
  const project = url.match(/\/(proxy|client|lib|gen)\/[^/]+$/);
  if (project) return `project ${project[1]}/`;
  return "other";
}

function frameName(frame: CpuProfile["nodes"][number]["callFrame"]): string {
  const fn = frame.functionName || "(anonymous)";
  if (frame.url === "") return fn;
  const file = frame.url.replace(/^.*\/node_modules\/\.deno\//, "")
    .replace(/^.*\/(?=[^/]+\/[^/]+$)/, "");
  return `${fn} ${file}:${frame.lineNumber + 1}`;
}

/**
 * Summarizes a profile.
 *
 * @param profile The profile.
 * @param top Rows per list.
 * @returns Areas and top functions.
 */
export function summarizeProfile(
  profile: CpuProfile,
  top = 25,
): ProfileSummary {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const node of profile.nodes) {
    for (const child of node.children ?? []) parent.set(child, node.id);
  }
  const self = new Map<string, number>();
  const inclusive = new Map<string, number>();
  const areas = new Map<string, number>();
  let busy = 0;
  let idle = 0;
  let artifact = 0;
  const isArtifact = (id: number): boolean => {
    for (let at: number | undefined = id; at !== undefined;) {
      const frame = byId.get(at)!.callFrame;
      if (
        frame.url.includes("inspector_network_bridge") ||
        frame.functionName === "op_inspector_emit_protocol_event"
      ) return true;
      at = parent.get(at);
    }
    return false;
  };
  for (let i = 0; i < profile.samples.length; i++) {
    const ms = (profile.timeDeltas[i + 1] ?? profile.timeDeltas[i] ?? 0) /
      1000;
    const node = byId.get(profile.samples[i]!);
    if (!node) continue;
    const fn = node.callFrame.functionName;
    if (fn === "(idle)") {
      idle += ms;
      continue;
    }
    if (isArtifact(node.id)) {
      artifact += ms;
      continue;
    }
    busy += ms;
    const name = frameName(node.callFrame);
    self.set(name, (self.get(name) ?? 0) + ms);
    let area: string | null = fn === "(garbage collector)"
      ? "garbage collector"
      : fn === "(program)"
      ? "(program): native, unattributed"
      : codeArea(node.callFrame.url);
    const seen = new Set<string>();
    for (let id: number | undefined = node.id; id !== undefined;) {
      const frame = byId.get(id)!.callFrame;
      area ??= codeArea(frame.url);
      const key = frameName(frame);
      if (!seen.has(key) && key !== "(root)") {
        seen.add(key);
        inclusive.set(key, (inclusive.get(key) ?? 0) + ms);
      }
      id = parent.get(id);
    }
    area ??= "native, no JS caller";
    areas.set(area, (areas.get(area) ?? 0) + ms);
  }
  const rows = (map: Map<string, number>, limit: number): ProfileRow[] =>
    [...map].sort((a, b) => b[1] - a[1]).slice(0, limit).map((
      [name, ms],
    ) => ({
      name,
      ms: Math.round(ms * 10) / 10,
      pct: Math.round((ms / Math.max(busy, 1e-9)) * 1000) / 10,
    }));
  return {
    busyMs: Math.round(busy),
    idleMs: Math.round(idle),
    artifactMs: Math.round(artifact),
    areas: rows(areas, 100),
    self: rows(self, top),
    inclusive: rows(inclusive, top),
  };
}
