/**
 * Child processes of the benchmark: started from the real deno binary (so
 * that each PID's `/proc` figures are that program's own), output drained
 * and kept as a bounded tail, stopped by PID (lib/testing/process.ts, which
 * the tests use too).
 *
 * @module
 */

import { childEnv, type ChildProcess, spawnProcess } from "../lib/testing/process.ts";
import { openFileLimits } from "./proc.ts";

/** Most output kept per stream; older text is dropped. */
const TAIL_CHARS = 256 * 1024;

/** A process the benchmark started. */
export type Child = ChildProcess;

const running = new Set<Child>();

/**
 * A command line that starts `command` with its soft open-files limit
 * raised to the hard one, through util-linux's `prlimit` (which execs the
 * command: the PID is the program's own). Unchanged when the soft limit is
 * already the hard one or `prlimit` is missing.
 *
 * @param command The executable.
 * @param args Its arguments.
 * @returns The command and arguments to spawn.
 */
export function withOpenFiles(command: string, args: string[]): [string, string[]] {
  const { soft, hard } = openFileLimits("self");
  if (soft >= hard || !Number.isFinite(hard)) return [command, args];
  const prlimit = ["/usr/bin/prlimit", "/bin/prlimit"].find((path) => {
    try {
      return Deno.statSync(path).isFile;
    } catch {
      return false;
    }
  });
  return prlimit === undefined
    ? [command, args]
    : [prlimit, [`--nofile=${hard}:${hard}`, command, ...args]];
}

/** Options for {@linkcode spawnChild}. */
export interface SpawnChildOptions {
  /** Working directory. @default {the benchmark's} */
  cwd?: string;
  /** The whole environment. @default {childEnv()} */
  env?: Record<string, string>;
  /** Echo stderr to ours as it arrives. @default {false} */
  echo?: boolean;
}

/**
 * Starts a program with piped output, in its own environment, keeping the
 * last 256 KiB of each output; {@linkcode stopAll} stops it if it still runs.
 *
 * @param name A short name for messages.
 * @param command The executable.
 * @param args Its arguments.
 * @param options Working directory, environment, echo.
 * @returns The child.
 */
export function spawnChild(
  name: string,
  command: string,
  args: string[],
  options: SpawnChildOptions = {},
): Child {
  const child = spawnProcess(command, args, {
    name,
    ...(options.cwd !== undefined ? { cwd: options.cwd } : {}),
    env: options.env ?? childEnv(),
    clearEnv: true,
    ...(options.echo ? { echo: "stderr" as const } : {}),
    maxOutputChars: TAIL_CHARS,
  });
  running.add(child);
  child.status.then(() => running.delete(child));
  return child;
}

/**
 * Stops every child still running, each by its PID.
 *
 * @param graceMs Time between SIGTERM and SIGKILL.
 */
export async function stopAll(graceMs = 3000): Promise<void> {
  await Promise.all([...running].map((child) => child.stop(graceMs)));
}

/**
 * Makes a helper process exit when the benchmark that started it dies
 * without stopping it (it gets re-parented), so that no load or holder
 * process outlives a killed run.
 */
export function exitWithParent(): void {
  const parent = Deno.ppid;
  const timer = setInterval(() => {
    const stat = Deno.readTextFileSync("/proc/self/stat");
    const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
    if (ppid !== parent) Deno.exit(3);
  }, 1000);
  Deno.unrefTimer(timer);
}
