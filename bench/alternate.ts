/**
 * `deno task bench:alternate`: CPU per request of two implementations,
 * measured in one loop that alternates requests between them, so both see
 * the same machine at the same moment.
 *
 * `deno task bench` runs each implementation for a window and then the
 * other; on a shared VM whose speed swings by 10–20 % within a minute that
 * leaves ratios of a few per cent unreadable. Here request i goes to A and
 * request i + 1 to B, sequentially (c1, one keep-alive connection each), and
 * each process's utime + stime is read from `/proc` before and after every
 * round: the ratio of the two is what a change is worth.
 *
 *     # this checkout's proxy + client against another checkout's
 *     deno task bench:alternate --against=../other [--bundles]
 *     # this client's module listener against another exporter_exporter
 *     deno task bench:alternate --peer.exporter='/usr/bin/prometheus-exporter-exporter
 *         -web.listen-address={address} -config.file={config}' [--verify]
 *
 * Options: `--size=BYTES` (58368, a node_exporter page), `--body=plain|chunked`
 * (the target's answer: with a Content-Length, or chunked in 4 KiB pieces as
 * node_exporter's comes; plain), `--requests=N` per
 * implementation per round (3000), `--rounds=N` (3), `--warmup=N` (500),
 * `--bundles` (run `deno task bundle`'s programs, as deployed, instead of
 * the sources), `--json=FILE`. Both stacks run with the V8 flags the tasks
 * and deploy files use. Prints a line per round and the medians; a checkout
 * against itself reads 1.00 ± 0.02 here.
 *
 * `--perf-split` (with `--against`): where each process's CPU goes, by
 * layer. Both stacks then run with V8's perf flags added
 * ({@linkcode PERF_V8_FLAGS}), and one more round is measured while Linux
 * `perf` samples all four processes; a table per process gives each layer's
 * share of its samples and ms per request (that share of the process's
 * median CPU per request in the rounds without perf, which costs CPU its
 * samples do not show): the kernel by system call, Deno's native
 * code and libc outside JavaScript, and JavaScript by origin — this
 * project's, npm packages', Deno's own — with the builtins and native code
 * it entered (bench/perf_split.ts). Needs `perf` and permission to sample
 * the kernel; says so and exits 3 otherwise.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { startPeerExporter } from "./peer.ts";
import {
  formatSplit,
  type LayerSplit,
  PERF_V8_FLAGS,
  perfProblem,
  projectUrlsOf,
  type SplitRow,
  splitRows,
  startPerf,
} from "./perf_split.ts";
import { readCpu } from "./proc.ts";
import { ResponseMeter } from "./response_meter.ts";
import { type Child, stopAll } from "./process.ts";
import {
  bundlePrograms,
  type ExporterProcess,
  REPO_ROOT,
  type ServiceOptions,
  startClient,
  startModulesClient,
  startProxy,
  startTarget,
} from "./stack.ts";

/** The V8 flags deno.json's tasks, the bundles and deploy/ run both programs with. */
const DEPLOYED_V8_FLAGS = ["--max-semi-space-size=1"];
const encoder = new TextEncoder();

/**
 * The median of some numbers (the mean of the middle two for an even count).
 *
 * @param values At least one number.
 * @returns Their median.
 */
export function median(values: readonly number[]): number {
  if (values.length === 0) throw new RangeError("No values");
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** One side of the comparison: processes whose CPU counts, and a request. */
interface Side {
  label: string;
  /**
   * Named processes whose utime + stime make this side's cost, with the
   * URL prefixes of this project's code in them.
   */
  processes: { name: string; pid: number; projectUrls: string[] }[];
  request(): Promise<void>;
  close(): void;
}

/** A keep-alive connection sending one fixed request and reading each response. */
async function requester(port: number, request: string): Promise<Pick<Side, "request" | "close">> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  conn.setNoDelay(true);
  const bytes = encoder.encode(request);
  const buffer = new Uint8Array(256 * 1024);
  return {
    async request() {
      let written = 0;
      while (written < bytes.length) written += await conn.write(bytes.subarray(written));
      const meter = new ResponseMeter();
      for (;;) {
        const n = await conn.read(buffer);
        if (n === null) throw new Error(`Connection to port ${port} closed mid-response`);
        if (meter.feed(buffer.subarray(0, n))) return;
      }
    },
    close: () => conn.close(),
  };
}

function pidOf(child: Child): number {
  return child.pid;
}

/**
 * One round's CPU per request, per side and process, in ms; `user` is the
 * user-mode part of `total` (the rest is the kernel's: socket copies and
 * loopback TCP, which no change to this project's code removes).
 */
interface Round {
  sides: { label: string; total: number; user: number; processes: Record<string, number> }[];
  ratio: number;
}

async function measure(a: Side, b: Side, requests: number): Promise<Round> {
  const pids = [...a.processes, ...b.processes].map((p) => p.pid);
  const before = pids.map(readCpu);
  for (let i = 0; i < requests; i++) {
    await a.request();
    await b.request();
  }
  const after = pids.map(readCpu);
  let k = 0;
  const sides = [a, b].map((side) => {
    const processes: Record<string, number> = {};
    let total = 0, user = 0;
    for (const p of side.processes) {
      const ms = (after[k]!.total - before[k]!.total) * 1000 / requests;
      user += (after[k]!.user - before[k]!.user) * 1000 / requests;
      k++;
      processes[p.name] = ms;
      total += ms;
    }
    return { label: side.label, total, user, processes };
  });
  return { sides, ratio: sides[0]!.total / sides[1]!.total };
}

function programs(
  repo: string,
  bundles: { proxy: string; client: string } | null,
  perf = false,
) {
  const v8Flags = [...DEPLOYED_V8_FLAGS, ...(perf ? PERF_V8_FLAGS : [])];
  return (program: "proxy" | "client"): ServiceOptions => ({
    repo,
    ...(bundles ? { entry: bundles[program] } : {}),
    denoArgs: [...(bundles ? ["--no-code-cache"] : []), `--v8-flags=${v8Flags.join(",")}`],
    args: [],
  });
}

/** This project's code in a side's programs: the sources' folders, or the bundles'. */
function projectUrls(repo: string, bundles: { proxy: string; client: string } | null) {
  return (program: "proxy" | "client"): string[] =>
    bundles
      ? [new URL(`file://${bundles[program].slice(0, bundles[program].lastIndexOf("/") + 1)}`).href]
      : projectUrlsOf(repo);
}

async function proxiedSide(
  label: string,
  repo: string,
  bundles: { proxy: string; client: string } | null,
  targetPort: number,
  path: string,
  perf: boolean,
): Promise<Side> {
  const options = programs(repo, bundles, perf);
  const urls = projectUrls(repo, bundles);
  const proxy = await startProxy(options("proxy"));
  const client = await startClient(options("client"), proxy.port, "localhost");
  const target = `localhost:${targetPort}`;
  const connection = await requester(
    proxy.port,
    `GET http://${target}${path} HTTP/1.1\r\nHost: ${target}\r\n` +
      "Accept: text/plain;version=0.0.4;q=0.9,*/*;q=0.1\r\nAccept-Encoding: gzip\r\n" +
      "User-Agent: Prometheus/3.0\r\nX-Prometheus-Scrape-Timeout-Seconds: 10\r\n\r\n",
  );
  return {
    label,
    processes: [
      { name: "proxy", pid: pidOf(proxy.child), projectUrls: urls("proxy") },
      { name: "client", pid: pidOf(client.child), projectUrls: urls("client") },
    ],
    ...connection,
  };
}

async function exporterSide(label: string, exporter: ExporterProcess): Promise<Side> {
  const connection = await requester(
    exporter.port,
    `GET /proxy?module=m HTTP/1.1\r\nHost: 127.0.0.1:${exporter.port}\r\n` +
      "Accept: text/plain;version=0.0.4;q=0.9,*/*;q=0.1\r\n" +
      "User-Agent: Prometheus/3.0\r\nX-Prometheus-Scrape-Timeout-Seconds: 10\r\n\r\n",
  );
  return {
    label,
    processes: [{ name: "exporter", pid: pidOf(exporter.child), projectUrls: [] }],
    ...connection,
  };
}

/** One process's split from the recorded round, as `--json` writes it. */
interface ProcessSplit {
  side: string;
  process: string;
  /** The process's median CPU per request in the rounds without perf. */
  msPerRequest: number;
  /** Its CPU per request in the recorded round (perf's own cost included). */
  msPerRequestUnderPerf: number;
  /** Layers and parts with their share and ms per request. */
  rows: (SplitRow & { ms: number })[];
  split: LayerSplit;
}

/**
 * One more round, measured while `perf` samples every process of both
 * sides; prints a table per process. The ms per request are shares of the
 * process's median CPU per request in the rounds before: sampling costs the
 * sampled process CPU that its samples do not show (at 4 kHz here 0.1–0.2
 * ms per request and process, +50 % for the floor), so the recorded round's
 * own figure would spread perf's cost over every layer.
 */
async function perfRound(
  a: Side,
  b: Side,
  results: readonly Round[],
  requests: number,
  log: (line: string) => void,
): Promise<{ round: Round; processes: ProcessSplit[] }> {
  const recording = await startPerf([...a.processes, ...b.processes]);
  let round: Round;
  try {
    round = await measure(a, b, requests);
  } catch (error) {
    await recording.stop().catch(() => {});
    throw error;
  }
  const splits = await recording.stop();
  const processes: ProcessSplit[] = [];
  [a, b].forEach((side, i) => {
    for (const p of side.processes) {
      const split = splits.get(p.pid)!;
      const ms = median(results.map((r) => r.sides[i]!.processes[p.name]!));
      const underPerf = round.sides[i]!.processes[p.name]!;
      const note = ` (median without perf; ${underPerf.toFixed(3)} in the perf round)`;
      log("");
      for (const line of formatSplit(`${p.name} (${side.label})`, split, ms, note)) log(line);
      processes.push({
        side: side.label,
        process: p.name,
        msPerRequest: ms,
        msPerRequestUnderPerf: underPerf,
        rows: splitRows(split).map((row) => ({ ...row, ms: row.share * ms })),
        split,
      });
    }
  });
  return { round, processes };
}

const USAGE = `Usage:
  deno task bench:alternate --against=DIR [--bundles] [--perf-split]
                                                           this checkout vs another, through the proxy
  deno task bench:alternate --peer.exporter=CMD [--verify]  this client's module listener vs a peer
Options: --size=BYTES (58368) --body=plain|chunked (plain) --requests=N (3000) --rounds=N (3) --warmup=N (500) --json=FILE`;

async function main(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      against: { type: "string" },
      "peer.exporter": { type: "string" },
      verify: { type: "boolean", default: false },
      bundles: { type: "boolean", default: false },
      "perf-split": { type: "boolean", default: false },
      size: { type: "string", default: "58368" },
      body: { type: "string", default: "plain" },
      requests: { type: "string", default: "3000" },
      rounds: { type: "string", default: "3" },
      warmup: { type: "string", default: "500" },
      json: { type: "string" },
      help: { type: "boolean", default: false },
    },
  });
  const size = Number(values.size), requests = Number(values.requests);
  const rounds = Number(values.rounds), warmup = Number(values.warmup);
  const numbersOk = [size, requests, rounds].every((n) => Number.isInteger(n) && n > 0) &&
    Number.isInteger(warmup) && warmup >= 0;
  if (
    values.help || !numbersOk || (values.body !== "plain" && values.body !== "chunked") ||
    (values.against === undefined) === (values["peer.exporter"] === undefined) ||
    (values["perf-split"] && values.against === undefined)
  ) {
    // deno-lint-ignore no-console
    console.error(USAGE);
    return values.help ? 0 : 2;
  }
  const log = (line: string) => {
    // deno-lint-ignore no-console
    console.log(line);
  };
  const perf = values["perf-split"];
  if (perf) {
    const problem = await perfProblem();
    if (problem) {
      // deno-lint-ignore no-console
      console.error(`--perf-split: ${problem}`);
      return 3;
    }
  }
  const target = await startTarget([size]);
  const path = `/${values.body}/${size}`;
  let a: Side, b: Side;
  if (values.against !== undefined) {
    const other = await Deno.realPath(values.against);
    let bundlesA = null, bundlesB = null;
    if (values.bundles) {
      const dir = await Deno.makeTempDir({ prefix: "pushprox-alternate-" });
      bundlesA = await bundlePrograms(REPO_ROOT, `${dir}/a`);
      bundlesB = await bundlePrograms(other, `${dir}/b`);
    }
    a = await proxiedSide("this checkout", REPO_ROOT, bundlesA, target.port, path, perf);
    b = await proxiedSide(other, other, bundlesB, target.port, path, perf);
  } else {
    const config = await Deno.makeTempFile({ prefix: "pushprox-alternate-", suffix: ".yml" });
    await Deno.writeTextFile(
      config,
      `modules:\n  m:\n    method: http\n    http:\n      address: 127.0.0.1\n` +
        `      port: ${target.port}\n      path: ${path}\n      verify: ${values.verify}\n`,
    );
    const ours = await startModulesClient(programs(REPO_ROOT, null)("client"), config);
    const peer = await startPeerExporter(values["peer.exporter"]!, REPO_ROOT, config);
    a = await exporterSide("this client", ours);
    b = await exporterSide("peer exporter", peer);
  }
  try {
    for (let i = 0; i < warmup; i++) {
      await a.request();
      await b.request();
    }
    const results: Round[] = [];
    for (let r = 0; r < rounds; r++) {
      const round = await measure(a, b, requests);
      results.push(round);
      log(
        `round ${r + 1}: ` + round.sides.map((s) =>
          `${s.label} ${s.total.toFixed(3)} ms (` +
          Object.entries(s.processes).map(([n, ms]) => `${n} ${ms.toFixed(3)}`).join(", ") +
          `; user ${s.user.toFixed(3)})`
        ).join(" | ") + ` | ratio ${round.ratio.toFixed(3)}`,
      );
    }
    const names = a.processes.map((p) => p.name);
    const perProcess = Object.fromEntries(
      names.filter((n) => b.processes.some((p) => p.name === n)).map((n) => [
        n,
        median(results.map((r) => r.sides[0]!.processes[n]! / r.sides[1]!.processes[n]!)),
      ]),
    );
    const summary = {
      size,
      body: values.body,
      requests,
      rounds,
      a: a.label,
      b: b.label,
      msPerRequest: {
        a: median(results.map((r) => r.sides[0]!.total)),
        b: median(results.map((r) => r.sides[1]!.total)),
      },
      userMsPerRequest: {
        a: median(results.map((r) => r.sides[0]!.user)),
        b: median(results.map((r) => r.sides[1]!.user)),
      },
      ratio: median(results.map((r) => r.ratio)),
      ratioByProcess: perProcess,
    };
    log(
      `median CPU per request: ${summary.a} ${summary.msPerRequest.a.toFixed(3)} ms, ` +
        `${summary.b} ${summary.msPerRequest.b.toFixed(3)} ms; ratio ${summary.ratio.toFixed(3)}` +
        Object.entries(perProcess).map(([n, r]) => `, ${n} ${r.toFixed(3)}`).join(""),
    );
    const perfSplit = perf ? await perfRound(a, b, results, requests, log) : undefined;
    if (values.json) {
      await Deno.writeTextFile(
        values.json,
        JSON.stringify({ ...summary, ...(perfSplit ? { perfSplit } : {}) }, null, 2) + "\n",
      );
    }
    return 0;
  } finally {
    a.close();
    b.close();
    await stopAll();
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
