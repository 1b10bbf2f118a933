/**
 * Helpers for tests that start real processes and servers: free ports,
 * processes stopped by PID, waiting for log lines and for conditions.
 *
 * @module
 */

import { createServer } from "node:net";
import { childEnv, type ChildProcess, spawnProcess } from "../lib/testing/process.ts";

/** The repository root. */
export const ROOT: string = new URL("..", import.meta.url).pathname;

/**
 * Returns a port that was free a moment ago on 127.0.0.1 (for programs that
 * cannot listen on port 0 and report it).
 */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** A process started by a test (lib/testing/process.ts, which the benchmark uses too). */
export type TestProcess = ChildProcess;

/**
 * A list for the processes a test starts; `await using` stops them all at
 * once, each by its PID, as `await Promise.all(processes.map((p) => p.stop()))`
 * did in a finally.
 *
 * @returns The empty list, disposable.
 */
export function processList(): TestProcess[] & AsyncDisposable {
  const processes: TestProcess[] = [];
  return Object.assign(processes, {
    async [Symbol.asyncDispose]() {
      await Promise.all(processes.map((p) => p.stop()));
    },
  });
}

/** Options for {@linkcode spawn}. */
export interface SpawnOptions {
  /** Working directory. @default {the repository root} */
  cwd?: string;
  /** Environment variables added to the test's. @default {none} */
  env?: Record<string, string>;
  /** Echo output to the test's stderr as it arrives. @default {false} */
  echo?: boolean;
}

/**
 * Starts a program with piped output.
 *
 * @param command The executable.
 * @param args Its arguments.
 * @param options Working directory and environment.
 * @returns The process handle.
 */
export function spawn(
  command: string,
  args: string[],
  options: SpawnOptions = {},
): TestProcess {
  return spawnProcess(command, args, {
    cwd: options.cwd ?? ROOT,
    env: options.env ?? {},
    ...(options.echo ? { echo: "all" as const } : {}),
  });
}

/** The deno binary running the tests; tests start servers with it, not npx. */
export const DENO: string = Deno.execPath();

/** Environment for child deno processes: no colour, same caches. */
export function denoEnv(): Record<string, string> {
  return childEnv();
}

/**
 * Starts the proxy (`proxy/main.ts`) on an ephemeral loopback port.
 *
 * @param args Extra flags.
 * @returns The process and its base URL.
 */
export async function startProxyProcess(
  args: string[] = [],
  options: SpawnOptions = {},
): Promise<{ process: TestProcess; url: string; port: number }> {
  const process = spawn(DENO, [
    "run",
    "--allow-all",
    "proxy/main.ts",
    "--web.listen-address=127.0.0.1:0",
    ...args,
  ], { env: denoEnv(), ...options });
  const match = await process.waitFor(
    /msg="Listening on" address=127\.0\.0\.1:(\d+)/,
  );
  const port = Number(match[1]);
  return { process, url: `http://127.0.0.1:${port}`, port };
}

/**
 * Starts the client (`client/main.ts`).
 *
 * @param args Flags, --proxy-url and --fqdn among them.
 * @returns The process.
 */
export function startClientProcess(
  args: string[],
  options: SpawnOptions = {},
): TestProcess {
  return spawn(DENO, [
    "run",
    "--allow-all",
    "client/main.ts",
    "--metrics-addr=127.0.0.1:0",
    ...args,
  ], {
    env: denoEnv(),
    ...options,
  });
}

/**
 * Polls `check` until it returns a value other than undefined.
 *
 * @param check The condition; may throw, which counts as not yet.
 * @param timeoutMs How long to try.
 * @param what Described in the failure message.
 * @returns The value.
 */
export async function waitUntil<T>(
  check: () => Promise<T | undefined> | T | undefined,
  timeoutMs: number,
  what: string,
): Promise<T> {
  const until = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < until) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (error) {
      last = error;
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(
    `Timed out after ${timeoutMs}ms waiting for ${what}${last ? `: ${last}` : ""}`,
  );
}

/**
 * Sends one request through an HTTP forward proxy, as Prometheus does with
 * proxy_url: absolute-form request target over a plain connection.
 *
 * @param proxyPort The proxy's port on 127.0.0.1.
 * @param url The absolute target URL.
 * @param headers Request headers.
 * @returns Status, headers and body bytes.
 */
export async function proxiedGet(
  proxyPort: number,
  url: string,
  headers: Record<string, string> = {},
): Promise<
  {
    status: number;
    headers: Record<string, string | string[] | undefined>;
    body: Uint8Array<ArrayBuffer>;
  }
> {
  const http = await import("node:http");
  return await new Promise((resolve, reject) => {
    const request = http.request({
      host: "127.0.0.1",
      port: proxyPort,
      method: "GET",
      path: url,
      headers: { host: new URL(url).host, ...headers },
      agent: false,
    }, (response) => {
      const chunks: Uint8Array[] = [];
      response.on("data", (chunk: Uint8Array) => chunks.push(chunk));
      response.on("error", reject);
      response.on("end", () => {
        const body = new Uint8Array(
          chunks.reduce((n, c) => n + c.byteLength, 0),
        );
        let offset = 0;
        for (const c of chunks) {
          body.set(c, offset);
          offset += c.byteLength;
        }
        resolve({
          status: response.statusCode ?? 0,
          headers: response.headers,
          body,
        });
      });
    });
    request.on("error", reject);
    request.end();
  });
}

/**
 * Says whether an executable exists, for tests that need system binaries.
 *
 * @param path The executable's absolute path.
 * @returns True when it can be run.
 */
export function hasExecutable(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

/**
 * Calls `ListClients` with `buf curl` (a foreign Connect/gRPC client) and
 * returns the decoded JSON answer; fails with buf's stderr when it exits
 * non-zero.
 *
 * @param baseUrl The server, e.g. "http://127.0.0.1:8080".
 * @param flags buf curl flags such as `--protocol grpc`.
 * @returns The response message as JSON.
 */
export async function bufCurlListClients(
  baseUrl: string,
  flags: string[],
): Promise<{ clients?: Record<string, unknown>[] }> {
  const output = await new Deno.Command(DENO, {
    args: [
      "run",
      "--lock=deno.dev.lock",
      "--frozen",
      "-A",
      "npm:@bufbuild/buf@1.74.0",
      "curl",
      "--schema",
      "proto",
      ...flags,
      "--data",
      "{}",
      `${baseUrl}/pushprox.v1.RegistryService/ListClients`,
    ],
    cwd: ROOT,
    env: denoEnv(),
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (output.code !== 0) {
    throw new Error(`buf curl failed (${output.code}): ${new TextDecoder().decode(output.stderr)}`);
  }
  return JSON.parse(new TextDecoder().decode(output.stdout));
}

/**
 * The `deno run` arguments of a deno.json task (`proxy`, `client`), with the
 * task's own permission flags, for tests that must run a program exactly as
 * `deno task` does.
 *
 * @param name The task's name.
 * @returns The arguments after `deno`, e.g. `["run", "--allow-net", …, "proxy/main.ts"]`.
 */
export function taskArgs(name: string): string[] {
  const config = JSON.parse(Deno.readTextFileSync(`${ROOT}/deno.json`));
  const task: string | { command: string } = config.tasks[name];
  const command = typeof task === "string" ? task : task.command;
  const words = command.split(/\s+/).filter((w) => w !== "");
  if (words[0] !== "deno" || words.includes("&&")) {
    throw new Error(`Task ${name} is not a single deno command: ${command}`);
  }
  return words.slice(1);
}

/**
 * The PIDs of a process's children and their children (Linux /proc), for
 * tests that must stop a process tree by PID.
 *
 * @param pid The parent.
 * @returns Descendant PIDs, deepest last.
 */
export function descendants(pid: number): number[] {
  const found: number[] = [];
  let children: number[] = [];
  try {
    for (const task of Deno.readDirSync(`/proc/${pid}/task`)) {
      const text = Deno.readTextFileSync(`/proc/${pid}/task/${task.name}/children`);
      children.push(...text.split(/\s+/).filter((w) => w !== "").map(Number));
    }
  } catch { /* gone */ }
  children = [...new Set(children)];
  for (const child of children) found.push(child, ...descendants(child));
  return found;
}

/** A `/clients` target group. */
export interface SdGroup {
  targets: string[];
  labels: Record<string, string>;
}

/**
 * `/clients` groups without the `__meta_*` labels (which Prometheus drops
 * after relabelling), for comparing the published targets and labels.
 *
 * @param groups The parsed `/clients` document.
 * @returns The groups with only the clients' own labels.
 */
export function withoutMeta(groups: SdGroup[]): SdGroup[] {
  return groups.map((g) => ({
    targets: g.targets,
    labels: Object.fromEntries(
      Object.entries(g.labels).filter(([name]) => !name.startsWith("__meta_")),
    ),
  }));
}
