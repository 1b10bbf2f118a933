/**
 * The `file` method: streams a text exposition file (cron output, a
 * textfile), verified as it goes, followed by exporter_exporter's
 * `expexp_file_mtime_timestamp{module,path}` gauge.
 *
 * @module
 */

import type { HeaderField } from "../../lib/headers.ts";
import { verifyStream } from "../verify/mod.ts";
import type { FileModuleConfig } from "./config.ts";
import type { ModuleMetrics } from "./metrics.ts";
import {
  acceptsGzip,
  errorResponse,
  gzipBody,
  type ModuleResponse,
  prefetch,
  TEXT_CONTENT_TYPE,
} from "./response.ts";
import { errorMessage } from "../../lib/error_message.ts";

/** One request to a file module. */
export interface FileModuleRequest {
  /** The module. */
  readonly module: FileModuleConfig;
  /** The incoming request's header fields (for Accept-Encoding). */
  readonly headers: readonly HeaderField[];
  /** Most bytes to verify (`--verify.max-bytes`). */
  readonly verifyMaxBytes: number;
  /** How much to read before answering. */
  readonly windowBytes: number;
  /** Failures are counted here. */
  readonly metrics: ModuleMetrics;
}

function escapeLabelValue(value: string): string {
  return value.replaceAll("\\", "\\\\").replaceAll("\n", "\\n").replaceAll('"', '\\"');
}

/**
 * The gauge exporter_exporter appends to file output.
 *
 * @param module The module name.
 * @param path The file path.
 * @param mtimeMs The file's modification time.
 * @returns Text exposition lines.
 */
export function mtimeFamily(module: string, path: string, mtimeMs: number): string {
  return "# HELP expexp_file_mtime_timestamp Time of modification of parsed file\n" +
    "# TYPE expexp_file_mtime_timestamp gauge\n" +
    `expexp_file_mtime_timestamp{module="${escapeLabelValue(module)}",path="${
      escapeLabelValue(path)
    }"} ${mtimeMs / 1000}\n`;
}

/**
 * Waits for `promise` unless `signal` aborts first; a value that arrives
 * after the abort is handed to `discard`.
 */
function unlessAborted<T>(
  promise: Promise<T>,
  signal: AbortSignal,
  discard: (value: T) => void,
): Promise<T> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) {
      promise.then(discard, () => {});
      return reject(signal.reason);
    }
    const onAbort = () => {
      promise.then(discard, () => {});
      reject(signal.reason);
    };
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener("abort", onAbort);
        if (signal.aborted) discard(value);
        else resolve(value);
      },
      (error) => {
        signal.removeEventListener("abort", onAbort);
        reject(error);
      },
    );
  });
}

function closeQuietly(file: Deno.FsFile): void {
  try {
    file.close();
  } catch {
    // already closed (the readable closes it at its end)
  }
}

/**
 * Opens the file and answers with its contents. A file that cannot be
 * opened (vanished, unreadable) is a 502 naming the path.
 *
 * @param request The module and limits.
 * @param signal The request's deadline; aborting it stops waiting (a FIFO
 *   without a writer blocks in open and read) and closes the file.
 * @returns The response.
 * @throws The signal's reason when it aborts first.
 */
export async function serveFileModule(
  request: FileModuleRequest,
  signal: AbortSignal,
): Promise<ModuleResponse> {
  signal.throwIfAborted();
  const { module, metrics } = request;
  const path = module.file.path;
  let file: Deno.FsFile;
  let mtime: Date | null = null;
  try {
    file = await unlessAborted(Deno.open(path, { read: true }), signal, closeQuietly);
  } catch (error) {
    if (signal.aborted) throw error;
    metrics.fileFails.inc({ module: module.name });
    return errorResponse(
      502,
      `module ${module.name}: cannot read ${path}: ${errorMessage(error)}`,
    );
  }
  try {
    const info = await file.stat();
    if (info.isFile) mtime = info.mtime;
    if (info.isDirectory) throw new Error("it is a directory");
  } catch (error) {
    file.close();
    metrics.fileFails.inc({ module: module.name });
    return errorResponse(
      502,
      `module ${module.name}: cannot read ${path}: ${errorMessage(error)}`,
    );
  }

  const source = file.readable;
  const opened = file;
  const onAbort = () => closeQuietly(opened);
  signal.addEventListener("abort", onAbort, { once: true });
  const verified = verifyStream(source, {
    contentType: TEXT_CONTENT_TYPE,
    maxBytes: request.verifyMaxBytes,
  });
  let body;
  try {
    body = await unlessAborted(prefetch(verified, request.windowBytes), signal, () => {});
  } catch (error) {
    signal.removeEventListener("abort", onAbort);
    throw error;
  }
  const trailer = mtime === null ? "" : mtimeFamily(module.name, path, mtime.getTime());
  async function* withTrailer(): AsyncGenerator<Uint8Array> {
    let last = 10;
    try {
      for await (const chunk of body!.body) {
        if (chunk.byteLength > 0) last = chunk[chunk.byteLength - 1]!;
        yield chunk;
      }
    } finally {
      signal.removeEventListener("abort", onAbort);
    }
    if (trailer !== "") {
      yield new TextEncoder().encode(last === 10 ? trailer : `\n${trailer}`);
    }
  }
  const headers = [{ name: "content-type", value: TEXT_CONTENT_TYPE }];
  if (acceptsGzip(request.headers)) {
    headers.push({ name: "content-encoding", value: "gzip" });
    return { status: 200, headers, error: "", body: gzipBody(withTrailer()) };
  }
  return { status: 200, headers, error: "", body: withTrailer() };
}
