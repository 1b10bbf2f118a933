/**
 * Child processes of the benchmark: started from the real deno binary (so
 * that each PID's `/proc` figures are that program's own), output drained
 * and kept as a bounded tail, stopped by PID.
 *
 * @module
 */

/** Most output kept per stream; older text is dropped. */
const TAIL_CHARS = 256 * 1024;

/** A process the benchmark started. */
export interface Child {
  readonly name: string;
  readonly pid: number;
  /** The last part of stdout. */
  stdout(): string;
  /** The last part of stderr. */
  stderr(): string;
  /** Calls `listener` with each complete stdout line. */
  onLine(listener: (line: string) => void): void;
  /** Waits until stdout or stderr matches, or fails after `timeoutMs`. */
  waitFor(pattern: RegExp, timeoutMs: number): Promise<RegExpMatchArray>;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves on exit. */
  stop(graceMs?: number): Promise<Deno.CommandStatus>;
  readonly status: Promise<Deno.CommandStatus>;
  readonly exited: boolean;
}

const running = new Set<Child>();

/** Options for {@linkcode spawnChild}. */
export interface SpawnChildOptions {
  cwd?: string;
  env?: Record<string, string>;
  /** Echo stderr to ours as it arrives. @default {false} */
  echo?: boolean;
}

/**
 * Starts a program with piped output.
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
  const process = new Deno.Command(command, {
    args,
    ...(options.cwd !== undefined ? { cwd: options.cwd } : {}),
    env: options.env ?? childEnv(),
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let out = "";
  let err = "";
  let partial = "";
  let exited = false;
  const lineListeners: ((line: string) => void)[] = [];
  const changeListeners = new Set<() => void>();
  const notify = () => {
    for (const listener of changeListeners) listener();
  };

  async function pump(
    stream: ReadableStream<Uint8Array>,
    isOut: boolean,
  ): Promise<void> {
    const decoder = new TextDecoder();
    for await (const chunk of stream) {
      const text = decoder.decode(chunk, { stream: true });
      if (isOut) {
        out = (out + text).slice(-TAIL_CHARS);
        partial += text;
        let newline;
        while ((newline = partial.indexOf("\n")) >= 0) {
          const line = partial.slice(0, newline);
          partial = partial.slice(newline + 1);
          for (const listener of lineListeners) listener(line);
        }
      } else {
        err = (err + text).slice(-TAIL_CHARS);
        if (options.echo) Deno.stderr.writeSync(chunk);
      }
      notify();
    }
  }
  const pumps = Promise.all([
    pump(process.stdout, true),
    pump(process.stderr, false),
  ]);
  const status = process.status.then(async (s) => {
    await pumps;
    exited = true;
    running.delete(child);
    notify();
    return s;
  });

  const kill = (signal: Deno.Signal) => {
    if (exited) return;
    try {
      Deno.kill(process.pid, signal);
    } catch {
      // Already gone.
    }
  };

  const child: Child = {
    name,
    pid: process.pid,
    stdout: () => out,
    stderr: () => err,
    onLine(listener) {
      lineListeners.push(listener);
    },
    waitFor(pattern, timeoutMs) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () =>
            done(() =>
              reject(
                new Error(
                  `Timed out after ${timeoutMs} ms waiting for ${pattern} from ${name}:\n${
                    err.slice(-2000)
                  }`,
                ),
              )
            ),
          timeoutMs,
        );
        const check = () => {
          const match = out.match(pattern) ?? err.match(pattern);
          if (match) return done(() => resolve(match));
          if (exited) {
            done(() =>
              reject(
                new Error(
                  `${name} exited before printing ${pattern}:\n${err.slice(-2000)}`,
                ),
              )
            );
          }
        };
        const done = (then: () => void) => {
          clearTimeout(timer);
          changeListeners.delete(check);
          then();
        };
        changeListeners.add(check);
        check();
      });
    },
    async stop(graceMs = 5000) {
      kill("SIGTERM");
      const timer = setTimeout(() => kill("SIGKILL"), graceMs);
      try {
        return await status;
      } finally {
        clearTimeout(timer);
      }
    },
    status,
    get exited() {
      return exited;
    },
  };
  running.add(child);
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

/** Environment for child deno processes: no colour, the same caches. */
export function childEnv(): Record<string, string> {
  const env: Record<string, string> = { NO_COLOR: "1" };
  for (
    const name of [
      "HOME",
      "PATH",
      "DENO_DIR",
      "NPM_CONFIG_REGISTRY",
      "XDG_CACHE_HOME",
      "TMPDIR",
    ]
  ) {
    const value = Deno.env.get(name);
    if (value !== undefined) env[name] = value;
  }
  return env;
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
