/**
 * `deno task bench`: the PushProx benchmark harness.
 *
 * Starts on loopback a target serving fixed Prometheus text payloads, the
 * proxy and the client (each its own process, started from the deno binary
 * so that `/proc` figures are theirs), and a load generator process that
 * scrapes like Prometheus; prints Markdown tables and writes a JSON file.
 *
 * Profiles (`--profile=`):
 * - `default`: 57 KiB, 1 MiB (plain and gzip) and 20 MiB payloads at
 *   concurrency 1 and 8, direct and through the proxy.
 * - `smoke`: a tiny version of everything, for CI.
 * - `clients`: N idle Poll streams (`--clients=1000,10000`) held by one
 *   holder process; proxy RSS and fds per client, scrapes still answered.
 * - `churn`: `--churn.cycles=20000` connects and disconnects; RSS and fds
 *   against the baseline.
 * - `modules`: the client's own exporter_exporter listener (no proxy),
 *   `http` modules on the target, verification on and off.
 *
 * `--peer.proxy=CMD --peer.client=CMD` runs every proxied case also through
 * another proxy and client (e.g. upstream PushProx), interleaved in
 * alternating rounds; `--peer.exporter=CMD` does the same for the module
 * path. See bench/peer.ts for the command templates' placeholders.
 *
 * @module
 */

import { parseArgs } from "node:util";
import {
  type ModuleCaseResult,
  type ModuleImplementation,
  type ModulesSpec,
  runModules,
  writeModulesConfig,
} from "./modules.ts";
import { expandCommand, startPeerClient, startPeerExporter, startPeerProxy } from "./peer.ts";
import { machineInfo } from "./proc.ts";
import {
  type CaseResult,
  type ChurnResult,
  type ChurnSpec,
  CLIENT_FQDN,
  type ClientsResult,
  type ClientsSpec,
  type IdleFigures,
  type Implementation,
  type PayloadSpec,
  runChurn,
  runClients,
  runThroughput,
  startServices,
  type ThroughputSpec,
  type TimingSpec,
} from "./profiles.ts";
import { stopAll } from "./process.ts";
import {
  churnTable,
  clientsTable,
  costTable,
  goalsTable,
  judgeGoals,
  latencyTable,
  memoryTable,
  modulesTable,
  peerTable,
} from "./report.ts";
import { REPO_ROOT, type ServiceOptions, startModulesClient, startTarget } from "./stack.ts";
import { errorMessage } from "../lib/error_message.ts";

const KIB = 1024;
const MIB = 1024 * 1024;
const PROFILES = ["default", "smoke", "clients", "churn", "modules"] as const;
type Profile = typeof PROFILES[number];

const USAGE = `usage: deno task bench [--profile=default|smoke|clients|churn|modules] [flags]

  --profile=NAME          default (throughput matrix), smoke (tiny, for CI),
                          clients (idle streams), churn (connect/disconnect),
                          modules (the client's exporter_exporter listener)
  --peer.proxy=CMD        also run every proxied case through this proxy…
  --peer.client=CMD       …and this client, side by side (e.g. upstream PushProx):
                          "pushprox-proxy --web.listen-address=127.0.0.1:{port}"
                          "pushprox-client --proxy-url={proxy_url} --fqdn={fqdn}
                           --metrics-addr=127.0.0.1:{metrics_port}"
  --peer.exporter=CMD     modules profile: also run this exporter_exporter, e.g.
                          "prometheus-exporter-exporter -web.listen-address={address}
                           -config.file={config}"
  --peer.label=TEXT       the peer's name in the results (peer)
                          Placeholders: {port} {address} (127.0.0.1:{port}) for
                          proxy and exporter; {proxy_url} {proxy_port} {fqdn}
                          {metrics_port} for the client; {config} for the
                          exporter. Split at whitespace, no shell; run in --repo.
  --rounds=N              rounds per case, order alternating (2 with a peer, else 1)
  --post-load-wait=S      read RSS S seconds after each case's load (default 60
                          for 20 MiB cases, 5 for smaller; smoke 0.2)
  --out=FILE              JSON result file (default bench/results/PROFILE-TIME.json)
  --clients=N,N           idle client counts for --profile=clients (1000,10000)
  --clients.hold-ms=MS    how long streams sit idle before measuring (20000)
  --churn.cycles=N        connect/disconnect cycles for --profile=churn (20000)
  --churn.pool=N          distinct fqdns the churning clients use (1000)
  --only=REGEXP           run only cases whose name matches, e.g. "1MiB.*c8"; names:
                          "direct|proxied 57KiB identity c1[ peer]",
                          "module 1MiB verify|noverify c8[ peer]"
  --scale=X               multiply matrix durations by X (1)
  --timeout-seconds=S     X-Prometheus-Scrape-Timeout-Seconds (10,
                          Prometheus' default scrape_timeout)
  --quiet-wait=S          before each matrix case, wait up to S seconds for
                          the machine to be idle (0: don't wait)
  --gc                    clients and churn: also measure right after a forced
                          full GC in the proxy (started with --inspect)
  --cpu-prof              CPU-profile proxy and client in proxied cases
                          (via --inspect); writes .cpuprofile files next to the JSON
  --repo=DIR              run proxy/ and client/ of another checkout (this one)
  --label=TEXT            a note stored with the results, e.g. what DIR holds
  --proxy.deno-args=ARGS  extra deno flags for the proxy, space-separated
  --client.deno-args=ARGS extra deno flags for the client
  --proxy.args=ARGS       extra proxy flags
  --client.args=ARGS      extra client flags`;

function log(message: string): void {
  // deno-lint-ignore no-console
  console.error(message);
}

function print(message: string): void {
  // deno-lint-ignore no-console
  console.log(message);
}

function split(text: string | undefined): string[] {
  return (text ?? "").split(/\s+/).filter((s) => s !== "");
}

const DEFAULT_PAYLOADS: PayloadSpec[] = [
  { label: "57KiB", bytes: 57 * KIB, encoding: "identity" },
  { label: "57KiB", bytes: 57 * KIB, encoding: "gzip" },
  { label: "1MiB", bytes: MIB, encoding: "identity" },
  { label: "1MiB", bytes: MIB, encoding: "gzip" },
  { label: "20MiB", bytes: 20 * MIB, encoding: "identity" },
];

function defaultTiming(scale: number) {
  return (payload: PayloadSpec): TimingSpec =>
    payload.bytes >= 10 * MIB
      ? {
        warmupMs: 1000 * scale,
        durationMs: 5000 * scale,
        minRequests: 16,
        maxMs: 20_000 * scale,
      }
      : {
        warmupMs: 1500 * scale,
        durationMs: 4000 * scale,
        minRequests: 0,
        maxMs: 4000 * scale,
      };
}

interface Plan {
  throughput: ThroughputSpec | null;
  clients: ClientsSpec | null;
  churn: ChurnSpec | null;
  modules: ModulesSpec | null;
}

const MODULE_CASES = [
  { payload: DEFAULT_PAYLOADS[0]!, concurrency: 1 },
  { payload: DEFAULT_PAYLOADS[2]!, concurrency: 1 },
  { payload: DEFAULT_PAYLOADS[2]!, concurrency: 8 },
  { payload: DEFAULT_PAYLOADS[4]!, concurrency: 8 },
];

function plan(
  profile: Profile,
  values: Record<string, string | boolean | undefined>,
): Plan {
  const scale = Number(values.scale ?? 1);
  const timeoutSeconds = Number(values["timeout-seconds"] ?? 10);
  const only = typeof values.only === "string" ? new RegExp(values.only) : null;
  const smallScrape = { payloadBytes: 57 * KIB, timeoutSeconds };
  const quietWaitMs = Number(values["quiet-wait"] ?? 0) * 1000;
  // Two alternating rounds by default where a peer runs beside this project.
  const rounds = Number(values.rounds ?? (values["peer.proxy"] !== undefined ? 2 : 1));
  const moduleRounds = Number(values.rounds ?? (values["peer.exporter"] !== undefined ? 2 : 1));
  const postLoadWait = values["post-load-wait"];
  const postLoadWaitMs = (payload: PayloadSpec) =>
    postLoadWait !== undefined
      ? Number(postLoadWait) * 1000
      : payload.bytes >= 10 * MIB
      ? 60_000
      : 5000;
  const common = { only, quietWaitMs, rounds, postLoadWaitMs, idleSettleMs: 1000, timeoutSeconds };
  const smokeTiming = () => ({ warmupMs: 200, durationMs: 400, minRequests: 0, maxMs: 5000 });
  const smokeCommon = {
    ...common,
    postLoadWaitMs: postLoadWait !== undefined ? postLoadWaitMs : () => 200,
    idleSettleMs: 100,
    timing: smokeTiming,
  };
  switch (profile) {
    case "default":
      return {
        throughput: {
          payloads: DEFAULT_PAYLOADS,
          concurrency: [1, 8],
          timing: defaultTiming(scale),
          cpuProfileDir: null,
          ...common,
        },
        clients: null,
        churn: null,
        modules: null,
      };
    case "smoke":
      return {
        throughput: {
          payloads: DEFAULT_PAYLOADS.slice(0, 1),
          concurrency: [1],
          cpuProfileDir: null,
          ...smokeCommon,
        },
        modules: {
          cases: [{ payload: DEFAULT_PAYLOADS[2]!, concurrency: 2 }],
          verify: [false, true],
          ...smokeCommon,
          // One round keeps the smoke test short; the throughput part alternates.
          rounds: Number(values.rounds ?? 1),
        },
        clients: {
          counts: [50],
          holdMs: 300,
          scrapeMs: 300,
          connectConcurrency: 50,
          warmupScrapeMs: 300,
          settleMs: 200,
          ...smallScrape,
        },
        churn: {
          cycles: 200,
          warmupCycles: 50,
          fqdnPool: 50,
          concurrency: 16,
          scrapeMs: 300,
          settleMs: 200,
          ...smallScrape,
        },
      };
    case "clients":
      return {
        throughput: null,
        clients: {
          counts: String(values.clients ?? "1000,10000").split(",").map(
            Number,
          ),
          holdMs: Number(values["clients.hold-ms"] ?? 20_000),
          scrapeMs: 5000,
          connectConcurrency: 200,
          warmupScrapeMs: 2000,
          settleMs: (timeoutSeconds + 2) * 1000,
          ...smallScrape,
        },
        churn: null,
        modules: null,
      };
    case "churn":
      return {
        throughput: null,
        clients: null,
        modules: null,
        churn: {
          cycles: Number(values["churn.cycles"] ?? 20_000),
          warmupCycles: 1000,
          fqdnPool: Number(values["churn.pool"] ?? 1000),
          concurrency: 32,
          scrapeMs: 2000,
          settleMs: (timeoutSeconds + 2) * 1000,
          ...smallScrape,
        },
      };
    case "modules":
      return {
        throughput: null,
        clients: null,
        churn: null,
        modules: {
          cases: MODULE_CASES,
          verify: [false, true],
          timing: defaultTiming(scale),
          ...common,
          rounds: moduleRounds,
        },
      };
  }
}

async function gitCommit(repo: string): Promise<string | null> {
  try {
    const out = await new Deno.Command("git", {
      args: ["-C", repo, "rev-parse", "--short", "HEAD"],
      stdout: "piped",
      stderr: "null",
    }).output();
    return out.success ? new TextDecoder().decode(out.stdout).trim() : null;
  } catch {
    return null;
  }
}

/**
 * Runs the benchmark.
 *
 * @param args The command line.
 * @returns The exit code.
 */
export async function main(args: readonly string[]): Promise<number> {
  let values;
  try {
    values = parseArgs({
      args: [...args],
      options: {
        profile: { type: "string", default: "default" },
        out: { type: "string" },
        clients: { type: "string" },
        "clients.hold-ms": { type: "string" },
        "churn.cycles": { type: "string" },
        "churn.pool": { type: "string" },
        only: { type: "string" },
        scale: { type: "string" },
        "timeout-seconds": { type: "string" },
        "cpu-prof": { type: "boolean", default: false },
        "quiet-wait": { type: "string" },
        gc: { type: "boolean", default: false },
        repo: { type: "string", default: REPO_ROOT },
        label: { type: "string" },
        "proxy.deno-args": { type: "string" },
        "client.deno-args": { type: "string" },
        "proxy.args": { type: "string" },
        "client.args": { type: "string" },
        "peer.proxy": { type: "string" },
        "peer.client": { type: "string" },
        "peer.exporter": { type: "string" },
        "peer.label": { type: "string", default: "peer" },
        rounds: { type: "string" },
        "post-load-wait": { type: "string" },
        help: { type: "boolean", default: false },
      },
    }).values;
  } catch (error) {
    log(`bench: ${errorMessage(error)}\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    print(USAGE);
    return 0;
  }
  const profile = values.profile as Profile;
  if (!PROFILES.includes(profile)) {
    log(`bench: unknown profile "${values.profile}"\n${USAGE}`);
    return 2;
  }

  const problem = checkPeerFlags(values);
  if (problem !== null) {
    log(`bench: ${problem}\n${USAGE}`);
    return 2;
  }

  const startedAt = new Date();
  const stamp = startedAt.toISOString().replace(/[:.]/g, "-");
  const out = values.out ??
    `${REPO_ROOT}bench/results/${profile}-${stamp}.json`;
  const outDir = out.replace(/\/[^/]*$/, "") || ".";
  const steps = plan(profile, values);
  if (steps.throughput && values["cpu-prof"]) {
    steps.throughput.cpuProfileDir = `${outDir}/profiles-${stamp}`;
  }
  const inspect = values["cpu-prof"] ? ["--inspect=127.0.0.1:0"] : [];
  const proxyOptions: ServiceOptions = {
    repo: values.repo,
    denoArgs: [...split(values["proxy.deno-args"]), ...inspect],
    args: split(values["proxy.args"]),
  };
  const clientOptions: ServiceOptions = {
    repo: values.repo,
    denoArgs: [...split(values["client.deno-args"]), ...inspect],
    args: split(values["client.args"]),
  };
  const machine = machineInfo();
  log(
    `bench: profile ${profile} on ${machine.nproc} × ${machine.cpuModel}, deno ${machine.deno}`,
  );

  let interrupted = false;
  const onSignal = () => {
    interrupted = true;
    log("bench: interrupted; stopping every process it started");
    stopAll(1000).finally(() => Deno.exit(130));
  };
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);

  const began = performance.now();
  const elapsed = () => `${((performance.now() - began) / 1000).toFixed(0)}s`;
  const peerLabel = values["peer.label"];
  let cases: CaseResult[] = [];
  let modules: ModuleCaseResult[] = [];
  let clients: ClientsResult[] = [];
  let churn: ChurnResult | null = null;
  let idle: Record<string, IdleFigures> = {};
  let workDir: string | null = null;
  try {
    const sizes = new Set<number>([57 * KIB]);
    for (const p of steps.throughput?.payloads ?? []) sizes.add(p.bytes);
    for (const c of steps.modules?.cases ?? []) sizes.add(c.payload.bytes);
    const target = await startTarget([...sizes]);
    const start = () => startServices(proxyOptions, clientOptions);
    const gcProxyOptions: ServiceOptions = {
      ...proxyOptions,
      denoArgs: values.gc && !values["cpu-prof"]
        ? [...proxyOptions.denoArgs, "--inspect=127.0.0.1:0"]
        : proxyOptions.denoArgs,
    };
    const startForMemory = () => startServices(gcProxyOptions, clientOptions);

    if (steps.throughput) {
      const impls: Implementation[] = [{ id: "self", label: "this project", start }];
      const peerProxy = values["peer.proxy"];
      const peerClient = values["peer.client"];
      if (peerProxy !== undefined && peerClient !== undefined) {
        impls.push({
          id: "peer",
          label: peerLabel,
          start: async () => {
            const proxy = await startPeerProxy(peerProxy, values.repo);
            try {
              const client = await startPeerClient(
                peerClient,
                values.repo,
                proxy.port,
                CLIENT_FQDN,
              );
              return { proxy, client };
            } catch (error) {
              await proxy.child.stop();
              throw error;
            }
          },
        });
      }
      const run = await runThroughput(
        steps.throughput,
        target,
        impls,
        (c) =>
          log(
            `[${elapsed()}] ${c.name}${
              c.mode === "proxied" ? ` (${c.implLabel})` : ""
            }: ${c.rps} rps, ` +
              `p50 ${c.latencyMs.p50} ms, p99 ${c.latencyMs.p99} ms` +
              (c.mode === "proxied"
                ? `, CPU proxy+client ${c.cpu.proxyAndClient.perScrapeMs} ms/scrape ${c.cpu.proxyAndClient.perMiBMs} ms/MiB, ` +
                  `RSS MiB idle/peak/post-load proxy ${memoryText(c, "proxy")} client ${
                    memoryText(c, "client")
                  }`
                : "") +
              `, ${c.requests} scrapes, ${c.errors} errors`,
          ),
      );
      cases = run.cases;
      idle = run.idle;
    }
    if (steps.modules) {
      workDir = await Deno.makeTempDir({ prefix: "pushprox-bench-" });
      const config = `${workDir}/expexp.yaml`;
      await writeModulesConfig(config, steps.modules, target);
      const impls: ModuleImplementation[] = [{
        id: "self",
        label: "this project",
        start: (file) => startModulesClient(clientOptions, file),
      }];
      const peerExporter = values["peer.exporter"];
      if (peerExporter !== undefined) {
        impls.push({
          id: "peer",
          label: peerLabel,
          start: (file) => startPeerExporter(peerExporter, values.repo, file),
        });
      }
      modules = await runModules(steps.modules, target, impls, config, (c) => {
        const m = c.memory.processes.exporter!;
        log(
          `[${elapsed()}] ${c.name} (${c.implLabel}): ${c.rps} rps, p50 ${c.latencyMs.p50} ms, ` +
            `p99 ${c.latencyMs.p99} ms, CPU ${c.cpu.exporter.perScrapeMs} ms/scrape ${c.cpu.exporter.perMiBMs} ms/MiB, ` +
            `RSS MiB idle/peak/post-load ${m.idle}/${m.peak}/${m.postLoad}, ${c.requests} scrapes, ${c.errors} errors`,
        );
      });
    }
    if (steps.clients) {
      clients = await runClients(
        steps.clients,
        target,
        startForMemory,
        (r) =>
          log(
            `[${elapsed()}] ${r.clients} idle clients: ${r.proxy.rssPerClientKiB} KiB and ${r.proxy.fdsPerClient} fds per client, ` +
              `scrapes p99 ${r.scrapes.latencyMs.p99} ms, ${r.scrapes.errors} errors`,
          ),
      );
    }
    if (steps.churn) {
      churn = await runChurn(steps.churn, target, startForMemory);
      log(
        `[${elapsed()}] churn: ${churn.cycles} cycles, fds Δ ${churn.proxy.fdsChange}, RSS Δ ${churn.proxy.rssChangePct}%`,
      );
    }
    await target.child.stop();
  } catch (error) {
    log(`bench: ${(error as Error).stack ?? error}`);
    await stopAll();
    return 1;
  } finally {
    Deno.removeSignalListener("SIGINT", onSignal);
    Deno.removeSignalListener("SIGTERM", onSignal);
    if (workDir !== null) await Deno.remove(workDir, { recursive: true });
  }
  if (interrupted) return 130;

  const goals = judgeGoals({ cases, modules, clients, churn });
  const result = {
    profile,
    startedAt: startedAt.toISOString(),
    durationSeconds: Math.round((performance.now() - began) / 1000),
    machine,
    repo: values.repo,
    commit: await gitCommit(values.repo),
    label: values.label ?? null,
    settings: {
      proxyDenoArgs: proxyOptions.denoArgs,
      clientDenoArgs: clientOptions.denoArgs,
      proxyArgs: proxyOptions.args,
      clientArgs: clientOptions.args,
      peer: {
        label: peerLabel,
        proxy: values["peer.proxy"] ?? null,
        client: values["peer.client"] ?? null,
        exporter: values["peer.exporter"] ?? null,
      },
      rounds: steps.throughput?.rounds ?? steps.modules?.rounds ?? 1,
      postLoadWaitSeconds: values["post-load-wait"] === undefined
        ? null
        : Number(values["post-load-wait"]),
      timeoutSeconds: steps.throughput?.timeoutSeconds ??
        steps.modules?.timeoutSeconds ?? steps.clients?.timeoutSeconds ??
        steps.churn?.timeoutSeconds,
      only: values.only ?? null,
      quietWaitSeconds: Number(values["quiet-wait"] ?? 0),
      scale: Number(values.scale ?? 1),
      gc: values.gc,
    },
    idle,
    cases,
    modules,
    clients,
    churn,
    goals,
  };
  await Deno.mkdir(outDir, { recursive: true });
  await Deno.writeTextFile(out, JSON.stringify(result, null, 2) + "\n");

  const sections = [
    `## PushProx benchmark: profile ${profile}`,
    `${machine.nproc} CPUs (${machine.cpuModel}), ${machine.memTotalMiB} MiB RAM, Linux ${machine.kernel}, deno ${machine.deno} (V8 ${machine.v8}); commit ${
      result.commit ?? "?"
    }${result.label ? ` (${result.label})` : ""}; ${result.durationSeconds} s`,
  ];
  for (const [id, figures] of Object.entries(idle)) {
    const mib = (kib: number) => (kib / 1024).toFixed(1);
    sections.push(
      `Idle, just started (${id === "self" ? "this project" : peerLabel}): proxy ${
        mib(figures.proxy.rssKiB)
      } MiB RSS, ${figures.proxy.fds} fds; client ${
        mib(figures.client.rssKiB)
      } MiB RSS, ${figures.client.fds} fds.`,
    );
  }
  if (cases.length > 0) {
    sections.push(
      "Each proxied case runs on a fresh proxy and client.",
      "### Throughput and latency (direct vs through this project's proxy)",
      latencyTable(cases),
      "### Cost of the proxied scrapes (this project's proxy and client processes)",
      costTable(cases),
    );
    if (cases.some((c) => c.impl === "peer")) {
      sections.push(
        `### Side by side: this project / ${peerLabel} (× = this ÷ ${peerLabel}; ranges over rounds)`,
        peerTable(cases),
      );
    }
    sections.push("### Memory: RSS before, during and after each proxied case", memoryTable(cases));
  }
  if (modules.length > 0) {
    const vs = modules.some((c) => c.impl === "peer") ? ` (this project / ${peerLabel})` : "";
    sections.push(
      `### Module path: the client's exporter_exporter listener${vs}`,
      modulesTable(modules),
    );
  }
  if (clients.length > 0) {
    sections.push("### Idle clients", clientsTable(clients));
  }
  if (churn) sections.push("### Client churn", churnTable(churn));
  sections.push("### Goals (issue 11; churn: issue 5)", goalsTable(goals), `JSON: ${out}`);
  print(sections.join("\n\n"));
  return 0;
}

function memoryText(c: CaseResult, process: string): string {
  const m = c.memory?.processes[process];
  return m ? `${m.idle}/${m.peak}/${m.postLoad}` : "-";
}

/**
 * Checks the peer, rounds and wait flags before anything starts.
 *
 * @param values The parsed flags.
 * @returns What is wrong, or null.
 */
export function checkPeerFlags(
  values: Record<string, string | boolean | undefined>,
): string | null {
  const proxy = values["peer.proxy"];
  const client = values["peer.client"];
  const exporter = values["peer.exporter"];
  const profile = values.profile;
  if ((proxy === undefined) !== (client === undefined)) {
    return "--peer.proxy and --peer.client go together";
  }
  if (proxy !== undefined && profile !== "default" && profile !== "smoke") {
    return `--peer.proxy applies to --profile=default and smoke, not ${profile}`;
  }
  if (exporter !== undefined && profile !== "modules" && profile !== "smoke") {
    return `--peer.exporter applies to --profile=modules and smoke, not ${profile}`;
  }
  const sample = {
    port: 1,
    address: "127.0.0.1:1",
    proxy_url: "http://127.0.0.1:1/",
    proxy_port: 1,
    fqdn: "localhost",
    metrics_port: 1,
    config: "expexp.yaml",
  };
  const use = {
    "peer.proxy": ["port", "address"],
    "peer.client": ["proxy_url", "proxy_port", "fqdn", "metrics_port"],
    "peer.exporter": ["port", "address", "config"],
  } as const;
  for (const [flag, names] of Object.entries(use)) {
    const template = values[flag];
    if (typeof template !== "string") continue;
    try {
      expandCommand(
        template,
        Object.fromEntries(names.map((n) => [n, sample[n as keyof typeof sample]])),
      );
    } catch (error) {
      return `--${flag}: ${errorMessage(error)}`;
    }
  }
  const rounds = values.rounds;
  if (rounds !== undefined && !(Number.isInteger(Number(rounds)) && Number(rounds) >= 1)) {
    return `--rounds must be a whole number ≥ 1, not "${rounds}"`;
  }
  const wait = values["post-load-wait"];
  if (wait !== undefined && !(Number(wait) >= 0)) {
    return `--post-load-wait must be seconds ≥ 0, not "${wait}"`;
  }
  return null;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
