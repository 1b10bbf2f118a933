import assert from "node:assert/strict";
import {
  builtinsMapping,
  classifySamples,
  formatSplit,
  jsOrigin,
  parsePerfScript,
  parseProcMaps,
  PerfMap,
  perfProblem,
  projectUrlsOf,
  type SplitRow,
  splitRows,
} from "./perf_split.ts";

// The end-to-end tests below need Linux perf and leave to sample the kernel.
const perfSkip = await perfProblem();
if (perfSkip) console.warn(`SKIPPED perf split end-to-end tests: ${perfSkip}`);
const BENCH_DIR = new URL(".", import.meta.url).pathname;

// Lines from a real recording (`perf script -F pid,ip,sym,dso` of a deno
// process run with --perf-basic-prof), chains shortened; the npm line and
// the second process are made up after them.
const EXE = "/usr/lib/node_modules/deno/deno";
const SCRIPT = `
 8669 
\t          10a974 __libc_recv (/usr/lib/x86_64-linux-gnu/libc.so.6)

 8669 
\t         1d530e2 [unknown] (${EXE})
\t         1d52fc3 [unknown] (${EXE})
\t         1b91042 [unknown] (${EXE})
\t           2724a __libc_start_call_main (/usr/lib/x86_64-linux-gnu/libc.so.6)

 8669 
\tffffffff820b79c7 inet_sendmsg ([kernel.kallsyms])
\tffffffff81e7f039 __sys_sendto ([kernel.kallsyms])
\tffffffff81e7f080 __x64_sys_sendto ([kernel.kallsyms])
\tffffffff8225a101 do_syscall_64 ([kernel.kallsyms])
\tffffffff81000130 entry_SYSCALL_64_after_hwframe ([kernel.kallsyms])
\t          10aba4 __send (/usr/lib/x86_64-linux-gnu/libc.so.6)

 8669 
\tffffffff8225f759 pvm_irq_enable ([kernel.kallsyms])
\tffffffff8225f681 __raw_callee_save_pvm_irq_enable ([kernel.kallsyms])
\tffffffff8225a0d5 do_syscall_64 ([kernel.kallsyms])
\tffffffff81000130 entry_SYSCALL_64_after_hwframe ([kernel.kallsyms])
\t          10a974 __libc_recv (/usr/lib/x86_64-linux-gnu/libc.so.6)

 8669 
\t         36729a9 [unknown] (${EXE})
\t    7ff6dba0e1df JS:*' file:///work/repo/client/scrape/scraper.ts:7:6 (/tmp/perf-8669.map)
\t         362187a [unknown] (${EXE})
\t         35da2e7 [unknown] (${EXE})
\t         1d51a66 [unknown] (${EXE})

 8669 
\t    7ff6dba0e1df JS:*' file:///work/repo/client/scrape/scraper.ts:7:6 (/tmp/perf-8669.map)
\t         35da2e7 [unknown] (${EXE})

 8669 
\t    7f43bc0b1f09 JS:*'get protocol ext:deno_web/00_url.js:2:7633 (/tmp/perf-8669.map)
\t    7ff6dba0e1df JS:*' file:///work/repo/client/scrape/scraper.ts:7:6 (/tmp/perf-8669.map)

 8669 
\t         1d530e2 [unknown] (${EXE})
\t    7f43bc0a0000 JS:^parse file:///root/.cache/deno/npm/registry.npmjs.org/yaml/2.9.1/dist/x.js:1:2 (/tmp/perf-8669.map)

 8669 
\t         35da2e7 [unknown] (${EXE})
\t         1d51a66 [unknown] (${EXE})

 8669 
\t           961c3 _int_free (/usr/lib/x86_64-linux-gnu/libc.so.6)
\t               1 [unknown] ([unknown])

 4242 
\t         1d530e2 [unknown] (${EXE})
`;

const MAPS = `556a06cba000-556a08848000 r--p 00000000 fe:00 1442225                    ${EXE}
556a08abe000-556a0c7b2000 r-xp 01b8e000 fe:00 1442225                    ${EXE}
556a0c7b2000-556a0ca24000 rw-p 05881000 fe:00 1442225                    ${EXE}
7ff6dba00000-7ff6dba40000 rwxp 00000000 00:00 0 
7ff6fb7c0000-7ff6fb9e6000 r-xp 035cf000 fe:00 1442225                    ${EXE}
7ff6fd400000-7ff6fd428000 r--p 00000000 fe:00 1450000                    /usr/lib/x86_64-linux-gnu/libc.so.6
`;

const PERF_MAP = `7ff6fb7c0000 3f8 Builtin:DeoptimizationEntry_Eager
7ff6fb7cb240 ec Builtin:JSRunMicrotasksEntry
7ff6fb863980 774 Builtin:SetPrototypeAdd
7ff6dba0e100 200 JS:*' file:///work/repo/client/scrape/scraper.ts:7:6
`;

const projectUrls = projectUrlsOf("/work/repo/");

function split() {
  return classifySamples(
    [...parsePerfScript(SCRIPT)].filter((s) => s.pid === 8669),
    { exe: EXE, maps: parseProcMaps(MAPS), perfMap: new PerfMap(PERF_MAP), projectUrls },
  );
}

Deno.test("parsePerfScript reads samples, their pid and frames, leaf first", () => {
  const samples = [...parsePerfScript(SCRIPT)];
  assert.equal(samples.length, 11);
  assert.deepEqual(samples.map((s) => s.pid), [...Array(10).fill(8669), 4242]);
  assert.deepEqual(samples[0]!.frames, [
    { ip: 0x10a974, sym: "__libc_recv", dso: "/usr/lib/x86_64-linux-gnu/libc.so.6" },
  ]);
  assert.deepEqual(samples[4]!.frames[1], {
    ip: 0x7ff6dba0e1df,
    sym: "JS:*' file:///work/repo/client/scrape/scraper.ts:7:6",
    dso: "/tmp/perf-8669.map",
  });
  assert.equal(samples[2]!.frames.length, 6);
  // Without the pid field each sample starts with an empty line.
  const bare = [...parsePerfScript("\n\t 1d530e2 [unknown] (/x/deno)\n\n\n\t 10 (/y)\n")];
  assert.deepEqual(bare.map((s) => [s.pid, s.frames.length, s.frames[0]!.sym]), [
    [-1, 1, "[unknown]"],
    [-1, 1, "[unknown]"],
  ]);
});

Deno.test("PerfMap finds the code holding an address, the later of two at one start", () => {
  const map = new PerfMap(PERF_MAP + "7ff6fb7c0000 10 Builtin:Replaced\nnot a line\n");
  assert.equal(map.lookup(0x7ff6fb8639a9), "Builtin:SetPrototypeAdd");
  assert.equal(map.lookup(0x7ff6fb863980 + 0x774), undefined);
  assert.equal(map.lookup(0x7ff6fb7c0005), "Builtin:Replaced");
  assert.equal(map.lookup(0x7ff6fb7c0010), undefined);
  assert.equal(map.lookup(0x1000), undefined);
});

Deno.test("builtinsMapping is the deno binary's executable mapping at the highest offset", () => {
  const maps = parseProcMaps(MAPS);
  assert.equal(maps.length, 6);
  assert.equal(maps[3]!.path, "");
  const builtins = builtinsMapping(maps, EXE);
  assert.deepEqual(builtins, {
    start: 0x7ff6fb7c0000,
    end: 0x7ff6fb9e6000,
    perms: "r-xp",
    offset: 0x35cf000,
    path: EXE,
  });
  assert.equal(builtinsMapping(maps.slice(0, 3), EXE), undefined);
});

Deno.test("jsOrigin tells this project's, npm's and Deno's JavaScript apart", () => {
  const name = (url: string) => `JS:*'f ${url}:1:2`;
  assert.equal(jsOrigin(name("file:///work/repo/proxy/main.ts"), projectUrls), "project");
  assert.equal(jsOrigin(name("file:///work/repo/gen/x_pb.ts"), projectUrls), "project");
  assert.equal(jsOrigin(name("file:///work/repo/bench/x.ts"), projectUrls), "other");
  assert.equal(jsOrigin(name("file:///work/repo2/lib/x.ts"), projectUrls), "other");
  assert.equal(jsOrigin(name("ext:core/01_core.js"), projectUrls), "deno");
  assert.equal(jsOrigin(name("node:http"), projectUrls), "deno");
  assert.equal(
    jsOrigin(name("file:///r/node_modules/.deno/yaml@2.9.1/node_modules/yaml/x.js"), projectUrls),
    "npm",
  );
  assert.equal(jsOrigin("JS:^ ", projectUrls), "other");
});

Deno.test("classifySamples splits by layer and gives JS what it entered", () => {
  const s = split();
  assert.equal(s.samples, 10);
  assert.deepEqual(s.kernel, {
    total: 2,
    underJs: 0,
    bySyscall: { sendto: 1, "syscall entry and exit": 1 },
  });
  // __libc_recv and _int_free; the native chain of the event loop; one
  // builtin (JSRunMicrotasksEntry) with no JS above it.
  assert.equal(s.libc, 2);
  assert.equal(s.libcSyscalls, 1);
  assert.equal(s.runtimeNative, 1);
  assert.equal(s.builtins, 1);
  // The project's function: one sample itself, one in SetPrototypeAdd it
  // called; Deno's getter called from it counts for Deno's JS.
  assert.deepEqual(s.js.project, { self: 1, entered: 1 });
  assert.deepEqual(s.js.deno, { self: 1, entered: 0 });
  assert.deepEqual(s.js.npm, { self: 0, entered: 1 });
  assert.deepEqual(s.js.other, { self: 0, entered: 0 });
  assert.deepEqual(s.functions[0], {
    name: "JS:*' file:///work/repo/client/scrape/scraper.ts:7:6",
    origin: "project",
    self: 1,
    entered: 1,
  });
  const leaves = Object.fromEntries(s.leaves.map((l) => [l.name, l.samples]));
  assert.equal(leaves["Builtin:SetPrototypeAdd"], 1);
  assert.equal(leaves["Builtin:JSRunMicrotasksEntry"], 1);
  assert.equal(leaves["Deno native"], 2);
  assert.equal(leaves["libc.so.6: __libc_recv"], 1);
  assert.equal(leaves["kernel: inet_sendmsg"], 1);
});

Deno.test("a kernel sample under JS stays the kernel's", () => {
  const text = `\t ffffffff81e7f080 __x64_sys_write ([kernel.kallsyms])
\t 10aba4 __write (/usr/lib/x86_64-linux-gnu/libc.so.6)
\t 1d530e2 [unknown] (${EXE})
\t 7ff6dba0e1df JS:*'flush file:///work/repo/lib/x.ts:1:1 (/tmp/perf-1.map)
`;
  const s = classifySamples(parsePerfScript(text), {
    exe: EXE,
    maps: parseProcMaps(MAPS),
    perfMap: new PerfMap(""),
    projectUrls,
  });
  assert.deepEqual(s.kernel, { total: 1, underJs: 1, bySyscall: { write: 1 } });
  assert.deepEqual(s.js.project, { self: 0, entered: 0 });
});

Deno.test("splitRows' layers sum to all samples; formatSplit prints ms per request", () => {
  const s = split();
  const layers = splitRows(s).filter((r) => r.depth === 0);
  assert.equal(layers.reduce((sum, r) => sum + r.share, 0), 1);
  const lines = formatSplit("client", s, 0.2);
  assert.match(lines[0]!, /^client: 10 samples; 0\.200 ms CPU per request$/);
  assert.ok(lines.some((l) => /^ {2}kernel +20\.0 +0\.040$/.test(l)), lines.join("\n"));
  assert.ok(lines.some((l) => /^ {2}this project's JS +20\.0 +0\.040$/.test(l)));
  assert.ok(lines.some((l) => /^ {4}sendto +10\.0 +0\.020$/.test(l)));
  // "other JS" has no samples: its line, without parts.
  const other = lines.findIndex((l) => /^ {2}other JS +0\.0 +0\.000$/.test(l));
  assert.equal(other, lines.length - 1, lines.join("\n"));
});

/** Runs a benchmark program to its end; returns its stdout. */
async function run(args: string[]): Promise<string> {
  const output = await new Deno.Command(Deno.execPath(), {
    args,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  assert.equal(output.code, 0, decoder.decode(output.stderr).slice(-3000));
  return decoder.decode(output.stdout);
}

function layerSum(rows: readonly SplitRow[]): number {
  return rows.filter((r) => r.depth === 0).reduce((sum, r) => sum + r.share, 0);
}

Deno.test({
  name:
    "bench:alternate --perf-split finds this project's JS in both programs, layers sum to 100 %",
  ignore: perfSkip !== "",
  async fn() {
    const json = await Deno.makeTempFile({ prefix: "perf-split-test-", suffix: ".json" });
    try {
      const stdout = await run([
        "run",
        "--lock=deno.dev.lock",
        "--frozen",
        "--allow-all",
        `${BENCH_DIR}alternate.ts`,
        `--against=${BENCH_DIR}..`,
        "--perf-split",
        "--requests=300",
        "--rounds=1",
        "--warmup=50",
        `--json=${json}`,
      ]);
      assert.match(
        stdout,
        /^proxy \(this checkout\): \d+ samples; [\d.]+ ms CPU per request \(median without perf/m,
      );
      const summary = JSON.parse(await Deno.readTextFile(json)) as {
        perfSplit: {
          processes: {
            side: string;
            process: string;
            msPerRequest: number;
            rows: (SplitRow & { ms: number })[];
            split: { samples: number; js: { project: { self: number; entered: number } } };
          }[];
        };
      };
      const processes = summary.perfSplit.processes;
      assert.deepEqual(processes.map((p) => p.process), ["proxy", "client", "proxy", "client"]);
      for (const p of processes) {
        const what = `${p.process} (${p.side})`;
        assert.ok(p.split.samples >= 50, `${what}: ${p.split.samples} samples`);
        assert.ok(
          Math.abs(layerSum(p.rows) - 1) < 1e-9,
          `${what}: layers sum to ${layerSum(p.rows)}`,
        );
        const project = p.rows.find((r) => r.layer === "this project's JS")!;
        assert.ok(project.share > 0.02, `${what}: project JS ${project.share}`);
        assert.ok(project.ms > 0 && project.ms < p.msPerRequest, `${what}: ${project.ms} ms`);
        const kernel = p.rows.find((r) => r.layer === "kernel")!;
        assert.ok(kernel.share > 0.05, `${what}: kernel ${kernel.share}`);
      }
    } finally {
      await Deno.remove(json).catch(() => {});
    }
  },
});

Deno.test({
  name: "floor.ts --perf-split splits both floor processes, layers sum to 100 %",
  ignore: perfSkip !== "",
  async fn() {
    const stdout = await run([
      "run",
      "-A",
      `${BENCH_DIR}floor.ts`,
      "--perf-split",
      "--scrapes=200",
    ]);
    assert.match(stdout, /^floor proxy: \d+ samples; [\d.]+ ms CPU per request \(without perf; /m);
    assert.match(stdout, /^floor client: \d+ samples; [\d.]+ ms CPU per request \(without perf; /m);
    const result = JSON.parse(stdout.trim().split("\n").at(-1)!) as {
      perfSplit: Record<
        string,
        { msPerScrape: number; rows: SplitRow[]; split: { samples: number } }
      >;
    };
    assert.deepEqual(Object.keys(result.perfSplit), ["proxy", "client"]);
    for (const [name, p] of Object.entries(result.perfSplit)) {
      assert.ok(p.split.samples >= 20, `${name}: ${p.split.samples} samples`);
      assert.ok(Math.abs(layerSum(p.rows) - 1) < 1e-9, `${name}: ${layerSum(p.rows)}`);
      assert.ok(p.rows.find((r) => r.layer === "kernel")!.share > 0.1, name);
    }
  },
});
