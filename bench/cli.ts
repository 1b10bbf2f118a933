/**
 * The benchmark's command line: its flags, usage text and the checks made
 * before anything starts.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { expandCommand } from "./peer.ts";
import { REPO_ROOT } from "./stack.ts";
import { errorMessage } from "../lib/error_message.ts";

/** The profiles `--profile=` selects. */
export const PROFILES = ["default", "smoke", "clients", "churn", "modules"] as const;
/** A profile name. */
export type Profile = typeof PROFILES[number];

/** The usage text. */
export const USAGE = `usage: deno task bench [--profile=default|smoke|clients|churn|modules] [flags]

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
  --build=bundle|source   run the programs as deployed, from bundles built
                          of --repo as "deno task bundle" builds them (default),
                          or from their sources as "deno task proxy" does (the
                          default with --cpu-prof: readable function names)
  --label=TEXT            a note stored with the results, e.g. what DIR holds
  --proxy.deno-args=ARGS  deno flags for the proxy, space-separated (default
                          "--no-code-cache --v8-flags=--max-semi-space-size=1",
                          as deployed: deno.json's tasks, deploy/; "" for
                          V8's defaults)
  --client.deno-args=ARGS deno flags for the client (the same default)
  --proxy.args=ARGS       extra proxy flags
  --client.args=ARGS      extra client flags`;

/**
 * The deno flags the tasks, bundles and deploy files run both programs with:
 * small young generations, so scavenges are short (at 57 KiB c1 the proxy's
 * median pause is 0.6 ms with them, 5 ms without; README "Performance"), and
 * no code cache file mapped into each process (about 3 MiB of RSS).
 */
const DEPLOYED_V8_FLAGS = "--no-code-cache --v8-flags=--max-semi-space-size=1";

const OPTIONS = {
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
  build: { type: "string" },
  label: { type: "string" },
  "proxy.deno-args": { type: "string", default: DEPLOYED_V8_FLAGS },
  "client.deno-args": { type: "string", default: DEPLOYED_V8_FLAGS },
  "proxy.args": { type: "string" },
  "client.args": { type: "string" },
  "peer.proxy": { type: "string" },
  "peer.client": { type: "string" },
  "peer.exporter": { type: "string" },
  "peer.label": { type: "string", default: "peer" },
  rounds: { type: "string" },
  "post-load-wait": { type: "string" },
  help: { type: "boolean", default: false },
} as const;

/** The parsed flags. */
export type BenchFlags = ReturnType<typeof parseArgs<{ options: typeof OPTIONS }>>["values"];

/**
 * Parses the command line.
 *
 * @param args The arguments.
 * @returns The flags, or why they are wrong (the caller prints the usage).
 */
export function parseBenchFlags(args: readonly string[]): BenchFlags | { error: string } {
  try {
    return parseArgs({ args: [...args], options: OPTIONS }).values;
  } catch (error) {
    return { error: errorMessage(error) };
  }
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
  const build = values.build;
  if (build !== undefined && build !== "bundle" && build !== "source") {
    return `--build is bundle or source, not ${build}`;
  }
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
