/**
 * Many idle clients in one light process: opens Poll streams to the proxy
 * over raw HTTP/1.1 Connect streaming requests (one TCP connection each),
 * each registering its own fqdn, and reads whatever the proxy sends (the
 * registration, then heartbeats) without answering scrapes.
 *
 * - `--mode=hold`: opens `--count` streams, at most `--concurrency`
 *   registering at once, then holds them until SIGTERM.
 * - `--mode=churn`: `--count` cycles of connect, register, disconnect, at
 *   most `--concurrency` at once, fqdns drawn from a pool of `--fqdn-pool`.
 *
 * Reports JSON lines on stdout: `progress` while connecting, `ready`
 * (hold) or `done` (churn), and `closed` when stopped.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { openFileLimit } from "./proc.ts";
import { exitWithParent } from "./process.ts";
import { errorMessage } from "../lib/error_message.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
/** Where streams read heartbeats into once registered; never inspected. */
const DISCARD = new Uint8Array(16 * 1024);

/**
 * Encodes a Connect streaming request envelope holding a PollRequest with
 * `fqdn` (field 1) and `version` (field 3).
 *
 * @param fqdn The client's fqdn, shorter than 128 bytes.
 * @returns The enveloped message.
 */
export function pollEnvelope(fqdn: string): Uint8Array {
  const name = encoder.encode(fqdn);
  const version = encoder.encode("bench-holder");
  if (name.byteLength > 127) {
    throw new RangeError(`Cannot encode fqdn "${fqdn}": longer than 127 bytes`);
  }
  const length = 2 + name.byteLength + 2 + version.byteLength;
  const out = new Uint8Array(5 + length);
  const view = new DataView(out.buffer);
  out[0] = 0; // flags: an uncompressed message
  view.setUint32(1, length);
  let at = 5;
  out[at++] = 0x0a; // field 1, length-delimited
  out[at++] = name.byteLength;
  out.set(name, at);
  at += name.byteLength;
  out[at++] = 0x1a; // field 3, length-delimited
  out[at++] = version.byteLength;
  out.set(version, at);
  return out;
}

function pollRequest(host: string, port: number, fqdn: string): Uint8Array {
  const body = pollEnvelope(fqdn);
  const head = encoder.encode(
    "POST /pushprox.v1.ClientService/Poll HTTP/1.1\r\n" +
      `Host: ${host}:${port}\r\n` +
      "Content-Type: application/connect+proto\r\n" +
      "Connect-Protocol-Version: 1\r\n" +
      "User-Agent: pushprox-bench-holder\r\n" +
      `Content-Length: ${body.byteLength}\r\n\r\n`,
  );
  const out = new Uint8Array(head.byteLength + body.byteLength);
  out.set(head);
  out.set(body, head.byteLength);
  return out;
}

/** An open, registered Poll stream. */
interface Stream {
  conn: Deno.TcpConn;
  closed: boolean;
  /** Resolves when the proxy ends the stream or we close it. */
  ended: Promise<void>;
}

/**
 * Opens one Poll stream and waits for the proxy's first message.
 *
 * @returns The stream, registered.
 * @throws {Error} When the proxy refuses or closes before registering.
 */
async function openStream(
  host: string,
  port: number,
  fqdn: string,
  onDrop: () => void,
): Promise<Stream> {
  const conn = await Deno.connect({ hostname: host, port });
  try {
    await writeAll(conn, pollRequest(host, port, fqdn));
    const buffer = new Uint8Array(1024);
    let filled = 0;
    for (;;) {
      const n = await conn.read(buffer.subarray(filled));
      if (n === null) throw new Error("the proxy closed before registering");
      filled += n;
      const text = decoder.decode(buffer.subarray(0, filled));
      const end = text.indexOf("\r\n\r\n");
      if (end < 0) {
        if (filled === buffer.byteLength) {
          throw new Error("response head longer than 1 KiB");
        }
        continue;
      }
      if (!text.startsWith("HTTP/1.1 200")) {
        throw new Error(`refused: ${text.slice(0, 200).replace(/\r\n/g, " | ")}`);
      }
      // Any body byte after the head is the start of the first message,
      // which is always `registered`.
      if (filled > end + 4) break;
      if (filled === buffer.byteLength) filled = 0;
    }
  } catch (error) {
    conn.close();
    throw error;
  }
  const stream: Stream = { conn, closed: false, ended: Promise.resolve() };
  stream.ended = (async () => {
    try {
      while ((await conn.read(DISCARD)) !== null) {
        // Heartbeats; nothing to do.
      }
    } catch {
      // Reset or closed by us.
    }
    if (!stream.closed) {
      stream.closed = true;
      conn.close();
      onDrop();
    }
  })();
  return stream;
}

async function writeAll(conn: Deno.Conn, data: Uint8Array): Promise<void> {
  let written = 0;
  while (written < data.byteLength) {
    written += await conn.write(data.subarray(written));
  }
}

function closeStream(stream: Stream): void {
  if (stream.closed) return;
  stream.closed = true;
  try {
    stream.conn.close();
  } catch {
    // Already closed.
  }
}

function report(event: string, fields: Record<string, unknown>): void {
  console.log(JSON.stringify({ event, ...fields }));
}

/** Runs `count` tasks, at most `concurrency` at once. */
async function pool(
  count: number,
  concurrency: number,
  task: (index: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, count) }, async () => {
      while (next < count) await task(next++);
    }),
  );
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      host: { type: "string", default: "127.0.0.1" },
      port: { type: "string" },
      mode: { type: "string", default: "hold" },
      count: { type: "string", default: "1000" },
      concurrency: { type: "string", default: "200" },
      "fqdn-prefix": { type: "string", default: "idle" },
      "fqdn-pool": { type: "string", default: "0" },
    },
  });
  if (values.port === undefined) {
    throw new TypeError("Cannot hold streams: --port is required");
  }
  exitWithParent();
  const host = values.host;
  const port = Number(values.port);
  const count = Number(values.count);
  const concurrency = Number(values.concurrency);
  const prefix = values["fqdn-prefix"];
  const fqdnPool = Number(values["fqdn-pool"]) || count;
  const fqdn = (i: number) => `${prefix}-${String(i % fqdnPool).padStart(6, "0")}.bench`;

  let registered = 0;
  let failed = 0;
  let dropped = 0;
  const failures: string[] = [];
  const fail = (error: unknown) => {
    failed++;
    if (failures.length < 5) failures.push(errorMessage(error));
  };
  const started = performance.now();
  const progress = setInterval(
    () => report("progress", { registered, failed, dropped }),
    500,
  );

  if (values.mode === "hold") {
    const limit = openFileLimit("self");
    if (count + 64 > limit) {
      report("error", {
        message: `Cannot hold ${count} streams: the open-file limit is ${limit}`,
      });
      Deno.exit(2);
    }
    const streams: Stream[] = [];
    await pool(count, concurrency, async (i) => {
      try {
        streams.push(await openStream(host, port, fqdn(i), () => dropped++));
        registered++;
      } catch (error) {
        fail(error);
      }
    });
    clearInterval(progress);
    report("ready", {
      registered,
      failed,
      failures,
      elapsedMs: Math.round(performance.now() - started),
    });
    const stop = Promise.withResolvers<void>();
    Deno.addSignalListener("SIGTERM", () => stop.resolve());
    const status = setInterval(
      () => report("progress", { registered, failed, dropped }),
      5000,
    );
    await stop.promise;
    clearInterval(status);
    const droppedWhileHeld = dropped;
    for (const stream of streams) closeStream(stream);
    report("closed", { registered, dropped: droppedWhileHeld });
    Deno.exit(0);
  } else if (values.mode === "churn") {
    await pool(count, concurrency, async (i) => {
      try {
        const stream = await openStream(host, port, fqdn(i), () => {});
        registered++;
        closeStream(stream);
        await stream.ended;
      } catch (error) {
        fail(error);
      }
    });
    clearInterval(progress);
    const elapsedMs = Math.round(performance.now() - started);
    report("done", {
      cycles: registered,
      failed,
      failures,
      elapsedMs,
      cyclesPerSecond: Math.round(registered / (elapsedMs / 1000)),
    });
  } else {
    throw new TypeError(`Cannot run mode "${values.mode}": use hold or churn`);
  }
}

if (import.meta.main) await main();
