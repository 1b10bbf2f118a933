/**
 * The `exec` method: runs a command in a process group of its own and
 * serves its stdout, which must be Prometheus text exposition. Output is
 * bounded; on the deadline the whole group is killed.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import { spawn } from "node:child_process";
import process from "node:process";
import type { HeaderField } from "../../lib/headers.ts";
import { createVerifier, VerificationError } from "../verify/mod.ts";
import type { ExecModuleConfig } from "./config.ts";
import type { ModuleMetrics } from "./metrics.ts";
import {
  acceptsGzip,
  errorResponse,
  gzipBody,
  type ModuleResponse,
  TEXT_CONTENT_TYPE,
} from "./response.ts";

/** One request to an exec module. */
export interface ExecModuleRequest {
  /** The module. */
  readonly module: ExecModuleConfig;
  /** `args` query values, appended after the configured args. */
  readonly args: readonly string[];
  /** The incoming request's header fields (for Accept-Encoding). */
  readonly headers: readonly HeaderField[];
  /** Most stdout bytes accepted (`--exec.max-output-bytes`). */
  readonly maxOutputBytes: number;
  /** Most bytes to verify (`--verify.max-bytes`). */
  readonly verifyMaxBytes: number;
  /** Starts and failures are counted here. */
  readonly metrics: ModuleMetrics;
  /**
   * Gets what a command that exited 0 wrote to stderr (its last 2 KiB,
   * trimmed), when it wrote anything; failed commands carry it in their 502.
   */
  readonly onStderr?: (stderr: string) => void;
}

/** How much of stderr is kept for the error message. */
const STDERR_EXCERPT_BYTES = 1024;

/**
 * Finds a command the way Go's exec.Command does: a name without `/` is
 * looked up in the client's own PATH (not in the module's `env`).
 *
 * @param command The configured command.
 * @param path The PATH to search.
 * @returns The path to run, or undefined when not found.
 */
export function lookPath(command: string, path: string | undefined): string | undefined {
  if (command.includes("/")) return command;
  for (const dir of (path ?? "").split(":")) {
    const candidate = `${dir === "" ? "." : dir}/${command}`;
    try {
      const info = Deno.statSync(candidate);
      if (info.isFile && ((info.mode ?? 0o111) & 0o111) !== 0) return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

interface RunResult {
  kind: "exited" | "too_large" | "aborted" | "start_failed";
  code: number | null;
  signal: string | null;
  stdout: Uint8Array[];
  stdoutBytes: number;
  stderr: string;
  startError?: Error;
}

/**
 * Runs the command and answers with its output. A command still running at
 * the deadline has its whole process group killed and the signal's abort
 * is reported by throwing, so the caller can answer 504.
 *
 * @param request The module, arguments and limits.
 * @param signal The request's deadline.
 * @returns 200 with the output, or a 502 naming what went wrong.
 * @throws The signal's reason when it aborts first.
 */
export async function serveExecModule(
  request: ExecModuleRequest,
  signal: AbortSignal,
): Promise<ModuleResponse> {
  signal.throwIfAborted();
  const { module, metrics } = request;
  const label = { module: module.name };
  const command = lookPath(module.exec.command, Deno.env.get("PATH"));
  if (command === undefined) {
    metrics.commandFails.inc(label);
    return errorResponse(
      502,
      `module ${module.name}: command ${JSON.stringify(module.exec.command)} not found in PATH`,
    );
  }
  metrics.commandStarts.inc(label);
  const result = await run(command, request, signal);
  if (result.kind === "aborted") {
    metrics.commandFails.inc(label);
    throw signal.reason;
  }
  const stderr = result.stderr.trim()
    ? `; stderr: ${JSON.stringify(result.stderr.trim().slice(-STDERR_EXCERPT_BYTES))}`
    : "";
  if (result.kind === "start_failed") {
    metrics.commandFails.inc(label);
    return errorResponse(
      502,
      `module ${module.name}: cannot run ${command}: ${result.startError?.message}`,
    );
  }
  if (result.kind === "too_large") {
    metrics.commandFails.inc(label);
    return errorResponse(
      502,
      `module ${module.name}: command output exceeded ${request.maxOutputBytes} bytes (--exec.max-output-bytes); the command was killed`,
    );
  }
  if (result.code !== 0) {
    metrics.commandFails.inc(label);
    const how = result.signal !== null
      ? `was killed by ${result.signal}`
      : `exited with status ${result.code}`;
    return errorResponse(502, `module ${module.name}: command ${how}${stderr}`);
  }
  const stderrText = result.stderr.trim();
  if (stderrText !== "") request.onStderr?.(stderrText);
  const output = Buffer.concat(result.stdout);
  try {
    const verifier = createVerifier({
      contentType: TEXT_CONTENT_TYPE,
      maxBytes: request.verifyMaxBytes,
    });
    verifier.push(output);
    verifier.finish();
  } catch (error) {
    if (!(error instanceof VerificationError)) throw error;
    if (error.kind !== "too_large") metrics.malformed.inc(label);
    return errorResponse(
      502,
      `module ${module.name}: command output is not valid Prometheus text format: ${error.message}`,
    );
  }
  const headers = [{ name: "content-type", value: TEXT_CONTENT_TYPE }];
  async function* single() {
    if (output.byteLength > 0) yield new Uint8Array(output);
  }
  if (acceptsGzip(request.headers)) {
    headers.push({ name: "content-encoding", value: "gzip" });
    return { status: 200, headers, error: "", body: gzipBody(single()) };
  }
  return { status: 200, headers, error: "", body: single() };
}

function run(
  command: string,
  request: ExecModuleRequest,
  signal: AbortSignal,
): Promise<RunResult> {
  const { module } = request;
  return new Promise((resolve) => {
    const result: RunResult = {
      kind: "exited",
      code: null,
      signal: null,
      stdout: [],
      stdoutBytes: 0,
      stderr: "",
    };
    // A new session and process group (setsid), so that a kill reaches
    // whatever the command started too.
    const child = spawn(command, [...module.exec.args, ...request.args], {
      argv0: module.exec.command,
      detached: true,
      stdio: ["ignore", "pipe", "pipe"],
      ...(module.exec.env !== undefined ? { env: { ...module.exec.env } } : {}),
    });
    let settled = false;
    const killGroup = () => {
      if (child.pid === undefined) return;
      try {
        process.kill(-child.pid, "SIGKILL");
      } catch {
        // already gone
      }
    };
    const finish = () => {
      if (settled) return;
      settled = true;
      signal.removeEventListener("abort", onAbort);
      resolve(result);
    };
    const stop = (kind: RunResult["kind"]) => {
      if (result.kind === "exited") result.kind = kind;
      killGroup();
      child.stdout?.destroy();
      child.stderr?.destroy();
      result.stdout = [];
    };
    const onAbort = () => stop("aborted");
    signal.addEventListener("abort", onAbort, { once: true });

    child.stdout!.on("data", (chunk: Uint8Array) => {
      if (result.kind !== "exited") return;
      result.stdoutBytes += chunk.byteLength;
      if (result.stdoutBytes > request.maxOutputBytes) {
        stop("too_large");
        return;
      }
      result.stdout.push(chunk);
    });
    child.stderr!.on("data", (chunk: Uint8Array) => {
      result.stderr = (result.stderr + new TextDecoder().decode(chunk))
        .slice(-STDERR_EXCERPT_BYTES * 2);
    });
    child.on("error", (error) => {
      if (result.kind === "exited") {
        result.kind = "start_failed";
        result.startError = error;
      }
      finish();
    });
    child.on("exit", (code, sig) => {
      result.code = code;
      result.signal = sig;
      // Killed or failed: nothing more to read, and lingering children of
      // the group would keep the pipes open.
      if (result.kind !== "exited") finish();
    });
    child.on("close", () => {
      if (result.kind === "exited" && result.code !== 0) killGroup();
      finish();
    });
  });
}
