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

import { type ChurnResult, runChurn } from "./churn.ts";
import { checkPeerFlags, parseBenchFlags, type Profile, PROFILES, USAGE } from "./cli.ts";
import { type ClientsResult, runClients } from "./clients.ts";
import { judgeGoals } from "./goals.ts";
import {
  type ModuleCaseResult,
  type ModuleImplementation,
  runModules,
  writeModulesConfig,
} from "./modules.ts";
import { startPeerClient, startPeerExporter, startPeerProxy } from "./peer.ts";
import { plan } from "./plan.ts";
import { machineInfo } from "./proc.ts";
import { stopAll } from "./process.ts";
import { summaryMarkdown } from "./report.ts";
import { CLIENT_FQDN, type IdleFigures, startServices } from "./services.ts";
import {
  bundlePrograms,
  REPO_ROOT,
  type ServiceOptions,
  startModulesClient,
  startTarget,
} from "./stack.ts";
import { type CaseResult, type Implementation, runThroughput } from "./throughput.ts";

const KIB = 1024;

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
  const values = parseBenchFlags(args);
  if ("error" in values) {
    log(`bench: ${values.error}\n${USAGE}`);
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
  // As deployed unless profiling (minified bundles make unreadable profiles).
  const build = (values.build ?? (values["cpu-prof"] ? "source" : "bundle")) as
    | "bundle"
    | "source";
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
  let bundleDir: string | null = null;
  try {
    if (build === "bundle") {
      bundleDir = await Deno.makeTempDir({ prefix: "pushprox-bench-bundles-" });
      const entries = await bundlePrograms(values.repo, bundleDir);
      proxyOptions.entry = entries.proxy;
      clientOptions.entry = entries.client;
      log(`bench: bundled proxy and client of ${values.repo} (--build=bundle, as deployed)`);
    }
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
    if (bundleDir !== null) await Deno.remove(bundleDir, { recursive: true });
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
    build,
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

  print(summaryMarkdown({ ...result, peerLabel, goals }, out));
  return 0;
}

function memoryText(c: CaseResult, process: string): string {
  const m = c.memory?.processes[process];
  return m ? `${m.idle}/${m.peak}/${m.postLoad}` : "-";
}

if (import.meta.main) Deno.exit(await main(Deno.args));
