/**
 * Starts the pieces of a benchmark run as separate processes on loopback:
 * the target, the proxy, the client, the load generator and the idle-stream
 * holder.
 *
 * @module
 */

import type { LoadResult } from "./load.ts";
import { type Child, spawnChild, withOpenFiles } from "./process.ts";

/** This checkout's root. */
export const REPO_ROOT: string = new URL("..", import.meta.url).pathname;
const BENCH_DIR: string = new URL(".", import.meta.url).pathname;
const DENO: string = Deno.execPath();

/** Payload sizes the target serves, plain and gzip-encoded. */
export interface TargetBodies {
  [size: string]: { plain: number; gzip: number };
}

/** A running target. */
export interface Target {
  child: Child;
  port: number;
  bodies: TargetBodies;
}

/**
 * Starts the target with payloads of the given sizes.
 *
 * @param sizes Payload sizes in bytes.
 * @returns The listening target.
 */
export async function startTarget(sizes: readonly number[]): Promise<Target> {
  const child = spawnChild("target", DENO, [
    "run",
    "--allow-all",
    `${BENCH_DIR}target.ts`,
    `--sizes=${sizes.join(",")}`,
  ]);
  const match = await child.waitFor(/^(\{"event":"listening".*)$/m, 60_000);
  const line = JSON.parse(match[1]!) as { port: number; bodies: TargetBodies };
  return { child, port: line.port, bodies: line.bodies };
}

/** Options for {@linkcode startProxy} and {@linkcode startClient}. */
export interface ServiceOptions {
  /** Checkout whose proxy/ and client/ to run. */
  repo: string;
  /**
   * The program file to run, relative to `repo` or absolute: the sources'
   * `proxy/main.ts` or `client/main.ts` unless set (a bundle's `main.js`,
   * see {@linkcode bundlePrograms}).
   */
  entry?: string;
  /** Extra `deno run` flags, e.g. `--v8-flags=…` or `--inspect=…`. */
  denoArgs: readonly string[];
  /** Extra program flags. */
  args: readonly string[];
}

/** Where {@linkcode bundlePrograms} wrote each program's `main.js`. */
export interface BundledPrograms {
  proxy: string;
  client: string;
}

/**
 * Bundles a checkout's proxy and client as its `deno task bundle` does
 * (minified, split into chunks loaded on demand), into `dir`: what the
 * deploy files run, so the figures are the deployed programs'.
 *
 * @param repo The checkout.
 * @param dir An empty folder for the bundles.
 * @returns Each program's `main.js`.
 */
export async function bundlePrograms(repo: string, dir: string): Promise<BundledPrograms> {
  const entries = {
    proxy: `${dir}/pushprox-proxy/main.js`,
    client: `${dir}/pushprox-client/main.js`,
  };
  for (const program of ["proxy", "client"] as const) {
    const output = await new Deno.Command(DENO, {
      args: [
        "bundle",
        "--frozen",
        "--minify",
        "--platform",
        "deno",
        "--code-splitting",
        "--outdir",
        `${dir}/pushprox-${program}`,
        `${program}/main.ts`,
      ],
      cwd: repo,
      stdout: "null",
      stderr: "piped",
    }).output();
    if (!output.success) {
      throw new Error(
        `deno bundle ${program}/main.ts in ${repo} failed: ${
          new TextDecoder().decode(output.stderr)
        }`,
      );
    }
    // As the deploy files do before a start: a first run on a cold DENO_DIR
    // parses the bundle for its imports and keeps about 17 MiB more RSS for
    // the process's life; `deno cache` stores that analysis instead.
    const cached = await new Deno.Command(DENO, {
      args: ["cache", entries[program]],
      cwd: repo,
      stdout: "null",
      stderr: "piped",
    }).output();
    if (!cached.success) {
      throw new Error(
        `deno cache ${entries[program]} failed: ${new TextDecoder().decode(cached.stderr)}`,
      );
    }
  }
  return entries;
}

/** A running proxy. */
export interface ProxyProcess {
  child: Child;
  port: number;
  /** The inspector's WebSocket URL when started with --inspect. */
  inspector: string | null;
}

/**
 * Starts the proxy on an ephemeral loopback port.
 *
 * @param options Checkout and extra flags.
 * @returns The listening proxy.
 */
export async function startProxy(
  options: ServiceOptions,
): Promise<ProxyProcess> {
  const child = spawnChild(
    "proxy",
    ...withOpenFiles(DENO, [
      "run",
      "--allow-all",
      ...options.denoArgs,
      options.entry ?? "proxy/main.ts",
      "--web.listen-address=127.0.0.1:0",
      ...await unlimitedSources(options.repo),
      ...options.args,
    ]),
    { cwd: options.repo },
  );
  const match = await child.waitFor(
    /msg="Listening on" address=127\.0\.0\.1:(\d+)/,
    60_000,
  );
  return {
    child,
    port: Number(match[1]),
    inspector: await inspectorUrl(child, options.denoArgs),
  };
}

/**
 * Flags that lift the proxy's per-source budgets: every simulated client of
 * the bench comes from 127.0.0.1, like a fleet behind one NAT (the proxy's
 * defaults stay as they are for real deployments). Only the flags the
 * checkout's proxy knows (they moved from proxy/main.ts to
 * proxy/settings.ts; reading only main.ts lifted none, and 10,000 clients
 * hit the per-source connection cap at about 9,000).
 */
async function unlimitedSources(repo: string): Promise<string[]> {
  const read = (file: string) => Deno.readTextFile(`${repo}/proxy/${file}`).catch(() => "");
  const source = (await read("main.ts")) + (await read("settings.ts"));
  return [
    ...(source.includes('"clients.max-per-source"')
      ? ["--clients.max-per-source=0", "--registration.rate-per-source=0"]
      : []),
    ...(source.includes('"web.max-connections-per-source"')
      ? ["--web.max-connections-per-source=0"]
      : []),
  ];
}

/** A running client. */
export interface ClientProcess {
  child: Child;
  inspector: string | null;
}

/**
 * Starts a client and waits until the proxy lists it as connected.
 *
 * @param options Checkout and extra flags.
 * @param proxyPort The proxy's port.
 * @param fqdn The name it registers.
 * @returns The registered client.
 */
export async function startClient(
  options: ServiceOptions,
  proxyPort: number,
  fqdn: string,
): Promise<ClientProcess> {
  const child = spawnChild("client", DENO, [
    "run",
    "--allow-all",
    ...options.denoArgs,
    options.entry ?? "client/main.ts",
    `--proxy-url=http://127.0.0.1:${proxyPort}`,
    `--fqdn=${fqdn}`,
    "--metrics-addr=127.0.0.1:0",
    "--log.level=warn",
    ...options.args,
  ], { cwd: options.repo });
  const inspector = await inspectorUrl(child, options.denoArgs);
  await waitRegistered(proxyPort, fqdn, child);
  return { child, inspector };
}

/** A running exporter_exporter: this client's direct listener, or a peer. */
export interface ExporterProcess {
  child: Child;
  port: number;
}

/**
 * Starts this project's client as an exporter_exporter only: its direct
 * module listener (`--web.listen-address`) and no proxy.
 *
 * @param options Checkout and extra flags.
 * @param config The modules configuration file.
 * @returns The listening client.
 */
export async function startModulesClient(
  options: ServiceOptions,
  config: string,
): Promise<ExporterProcess> {
  const child = spawnChild("modules client", DENO, [
    "run",
    "--allow-all",
    ...options.denoArgs,
    options.entry ?? "client/main.ts",
    "--web.listen-address=127.0.0.1:0",
    `--config.file=${config}`,
    "--log.level=info",
    ...options.args,
  ], { cwd: options.repo });
  try {
    const match = await child.waitFor(
      /address=127\.0\.0\.1:(\d+) listener="modules http"/,
      60_000,
    );
    return { child, port: Number(match[1]) };
  } catch (error) {
    await child.stop(1000);
    throw error;
  }
}

async function inspectorUrl(
  child: Child,
  denoArgs: readonly string[],
): Promise<string | null> {
  if (!denoArgs.some((a) => a.startsWith("--inspect"))) return null;
  const match = await child.waitFor(
    /Debugger listening on (ws:\/\/\S+)/,
    30_000,
  );
  return match[1]!;
}

/**
 * Waits until the proxy's /clients lists `fqdn`.
 *
 * @param proxyPort The proxy's port.
 * @param fqdn The client's name.
 * @param child The client, to fail fast when it exits.
 */
export async function waitRegistered(
  proxyPort: number,
  fqdn: string,
  child: Child,
): Promise<void> {
  const until = Date.now() + 60_000;
  while (Date.now() < until) {
    if (child.exited) {
      throw new Error(`The client exited:\n${child.stderr().slice(-2000)}`);
    }
    try {
      const response = await fetch(`http://127.0.0.1:${proxyPort}/clients`);
      const groups = await response.json() as { targets: string[] }[];
      if (groups.some((g) => g.targets.includes(fqdn))) return;
    } catch {
      // Not ready yet.
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`The client "${fqdn}" did not register within 60 s`);
}

/** Arguments of one load-generator run; see bench/load.ts. */
export interface LoadSpec {
  port: number;
  url: string;
  proxied: boolean;
  concurrency: number;
  warmupMs: number;
  durationMs: number;
  minRequests: number;
  maxMs: number;
  expectBytes: number;
  timeoutSeconds: number;
  watch: Record<string, number>;
}

/**
 * Runs the load generator in its own process and returns its report.
 *
 * @param spec What to scrape and what to watch.
 * @returns The load generator's figures.
 */
export async function runLoadProcess(spec: LoadSpec): Promise<LoadResult> {
  const child = spawnChild("load", DENO, [
    "run",
    "--allow-all",
    `${BENCH_DIR}load.ts`,
    `--port=${spec.port}`,
    `--url=${spec.url}`,
    ...(spec.proxied ? ["--proxied"] : []),
    `--concurrency=${spec.concurrency}`,
    `--warmup-ms=${spec.warmupMs}`,
    `--duration-ms=${spec.durationMs}`,
    `--min-requests=${spec.minRequests}`,
    `--max-ms=${spec.maxMs}`,
    `--expect-bytes=${spec.expectBytes}`,
    `--timeout-seconds=${spec.timeoutSeconds}`,
    `--watch=${Object.entries(spec.watch).map(([n, pid]) => `${n}:${pid}`).join(",")}`,
  ]);
  const limit = spec.warmupMs + spec.maxMs + 120_000;
  const timer = setTimeout(() => child.stop(1000), limit);
  const status = await child.status;
  clearTimeout(timer);
  const line = child.stdout().trim().split("\n").pop() ?? "";
  if (!status.success || !line.startsWith("{")) {
    throw new Error(
      `The load generator failed (exit ${status.code}):\n${child.stderr().slice(-2000)}`,
    );
  }
  return JSON.parse(line) as LoadResult;
}

/** A holder process and what it reported. */
export interface Holder {
  child: Child;
  /** The last JSON line it printed, parsed. */
  last(): Record<string, unknown>;
  /** Waits for a line with this event. */
  waitEvent(event: string, timeoutMs: number): Promise<Record<string, unknown>>;
}

/**
 * Starts the idle-stream holder (bench/holder.ts).
 *
 * @param args Its flags (`--port`, `--mode`, `--count`, …).
 * @returns The running holder.
 */
export function startHolder(args: string[]): Holder {
  const child = spawnChild(
    "holder",
    ...withOpenFiles(DENO, ["run", "--allow-all", `${BENCH_DIR}holder.ts`, ...args]),
  );
  let last: Record<string, unknown> = {};
  const seen = new Map<string, Record<string, unknown>>();
  child.onLine((line) => {
    try {
      last = JSON.parse(line);
      seen.set(String(last.event), last);
    } catch {
      // Not a report line.
    }
  });
  return {
    child,
    last: () => last,
    async waitEvent(event, timeoutMs) {
      const until = Date.now() + timeoutMs;
      while (Date.now() < until) {
        const hit = seen.get(event);
        if (hit) return hit;
        if (seen.has("error")) {
          throw new Error(`The holder failed: ${seen.get("error")!.message}`);
        }
        if (child.exited) {
          throw new Error(
            `The holder exited before "${event}":\n${child.stderr().slice(-2000)}`,
          );
        }
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      throw new Error(
        `The holder did not report "${event}" within ${timeoutMs} ms; last: ${
          JSON.stringify(last)
        }`,
      );
    },
  };
}
