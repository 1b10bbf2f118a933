/**
 * Child processes for tests and the benchmark: a program started with piped
 * output, its output drained as it arrives (optionally kept as a bounded
 * tail), waited for by pattern, and stopped by its PID (SIGTERM, then
 * SIGKILL). tests/support.ts and bench/process.ts build on it.
 *
 * @module
 */

/**
 * A process started by {@linkcode spawnProcess}; `await using` stops it by
 * its PID, as {@linkcode ChildProcess.stop} does.
 */
export interface ChildProcess extends AsyncDisposable {
  /** A short name for messages; the command unless given. */
  readonly name: string;
  /** Its process id. */
  readonly pid: number;
  /** Everything written to stdout and stderr so far, interleaved (a tail when bounded). */
  output(): string;
  /** What was written to stdout (a tail when bounded). */
  stdout(): string;
  /** What was written to stderr (a tail when bounded). */
  stderr(): string;
  /** Calls `listener` with each complete stdout line from now on. */
  onLine(listener: (line: string) => void): void;
  /**
   * Waits until the output matches, or fails when the process exits first or
   * after `timeoutMs` (default 15 s).
   */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  /** Sends a signal to this process, by PID (default SIGTERM); nothing once it exited. */
  kill(signal?: Deno.Signal): void;
  /** SIGTERM, then SIGKILL after `graceMs` (default 5 s); resolves on exit. */
  stop(graceMs?: number): Promise<Deno.CommandStatus>;
  /** Resolves when it exited and its output was read. */
  readonly status: Promise<Deno.CommandStatus>;
  /** True once it exited and its output was read. */
  readonly exited: boolean;
}

/** Options for {@linkcode spawnProcess}. */
export interface SpawnProcessOptions {
  /** For messages. @default {the command} */
  name?: string;
  /** Working directory. @default {this process's} */
  cwd?: string;
  /** Environment variables, added to this process's unless `clearEnv`. @default {none} */
  env?: Record<string, string>;
  /** Start from an empty environment (only `env`). @default {false} */
  clearEnv?: boolean;
  /** Copy output to this process's stderr as it arrives: both streams, or stderr only. */
  echo?: "all" | "stderr";
  /** Keep only the last this many characters of each output. @default {Infinity} */
  maxOutputChars?: number;
}

/** How much output a failure message quotes. */
const QUOTED_CHARS = 4000;

/**
 * Starts a program with piped output and stdin closed.
 *
 * @example A process waited for by its output, then stopped
 * ```ts
 * import { spawnProcess } from "./process.ts";
 *
 * const child = spawnProcess(Deno.execPath(), ["eval", "console.log('ready'); setInterval(() => {}, 1000)"]);
 * await child.waitFor(/ready/);
 * await child.stop();
 * ```
 *
 * @param command The executable.
 * @param args Its arguments.
 * @param options Name, working directory, environment, echo and output bound.
 * @returns The process.
 */
export function spawnProcess(
  command: string,
  args: readonly string[],
  options: SpawnProcessOptions = {},
): ChildProcess {
  const name = options.name ?? command;
  const max = options.maxOutputChars ?? Infinity;
  const child = new Deno.Command(command, {
    args: [...args],
    ...(options.cwd !== undefined ? { cwd: options.cwd } : {}),
    env: options.env ?? {},
    clearEnv: options.clearEnv ?? false,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let all = "";
  let out = "";
  let err = "";
  let partial = "";
  let exited = false;
  const lineListeners: ((line: string) => void)[] = [];
  const changeListeners = new Set<() => void>();
  const notify = () => {
    for (const listener of changeListeners) listener();
  };
  const keep = (text: string) => text.length > max ? text.slice(-max) : text;

  async function pump(stream: ReadableStream<Uint8Array>, isOut: boolean): Promise<void> {
    const decoder = new TextDecoder();
    for await (const chunk of stream) {
      const text = decoder.decode(chunk, { stream: true });
      all = keep(all + text);
      if (isOut) {
        out = keep(out + text);
        partial += text;
        let newline;
        while ((newline = partial.indexOf("\n")) >= 0) {
          const line = partial.slice(0, newline);
          partial = partial.slice(newline + 1);
          for (const listener of lineListeners) listener(line);
        }
      } else {
        err = keep(err + text);
      }
      if (options.echo === "all" || (options.echo === "stderr" && !isOut)) {
        Deno.stderr.writeSync(chunk);
      }
      notify();
    }
  }
  const pumps = Promise.all([pump(child.stdout, true), pump(child.stderr, false)]);
  const status = child.status.then(async (s) => {
    await pumps;
    exited = true;
    notify();
    return s;
  });

  const handle: ChildProcess = {
    name,
    pid: child.pid,
    output: () => all,
    stdout: () => out,
    stderr: () => err,
    onLine(listener) {
      lineListeners.push(listener);
    },
    waitFor(pattern, timeoutMs = 15_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const match = all.match(pattern);
          if (match) return finish(() => resolve(match));
          if (exited) {
            finish(() =>
              reject(
                new Error(
                  `${name} exited before printing ${pattern}:\n${all.slice(-QUOTED_CHARS)}`,
                ),
              )
            );
          }
        };
        const timer = setTimeout(
          () =>
            finish(() =>
              reject(
                new Error(
                  `Timed out after ${timeoutMs} ms waiting for ${pattern} from ${name}:\n${
                    all.slice(-QUOTED_CHARS)
                  }`,
                ),
              )
            ),
          timeoutMs,
        );
        const finish = (then: () => void) => {
          clearTimeout(timer);
          changeListeners.delete(check);
          then();
        };
        changeListeners.add(check);
        check();
      });
    },
    kill(signal = "SIGTERM") {
      if (exited) return;
      try {
        Deno.kill(child.pid, signal);
      } catch {
        // Already gone.
      }
    },
    async stop(graceMs = 5_000) {
      handle.kill("SIGTERM");
      const timer = setTimeout(() => handle.kill("SIGKILL"), graceMs);
      try {
        return await status;
      } finally {
        clearTimeout(timer);
      }
    },
    async [Symbol.asyncDispose]() {
      await handle.stop();
    },
    status,
    get exited() {
      return exited;
    },
  };
  return handle;
}

/**
 * Environment for child deno processes: no colour, and this process's home,
 * path, caches, npm registry and temporary folder.
 *
 * @returns The variables.
 */
export function childEnv(): Record<string, string> {
  const env: Record<string, string> = { NO_COLOR: "1" };
  for (
    const name of ["HOME", "PATH", "DENO_DIR", "NPM_CONFIG_REGISTRY", "XDG_CACHE_HOME", "TMPDIR"]
  ) {
    const value = Deno.env.get(name);
    if (value !== undefined) env[name] = value;
  }
  return env;
}
