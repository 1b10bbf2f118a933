/**
 * The benchmark's scrape target: serves fixed Prometheus text payloads built
 * once at start-up, like an exporter whose metrics do not change.
 *
 * - `GET /plain/<bytes>` always answers uncompressed, like an exporter with
 *   compression turned off.
 * - `GET /gzip/<bytes>` answers gzip-encoded when the request's
 *   `Accept-Encoding` allows gzip (Prometheus always sends it), as
 *   node_exporter does; uncompressed otherwise.
 * - `GET /chunked/<bytes>` answers uncompressed with no Content-Length, in
 *   chunks of at most 4 KiB, as Go's net/http frames an exporter's page
 *   that it did not buffer whole (node_exporter's, say): the proxy then
 *   relays it with chunked framing too.
 *
 * Usage: `deno run -A bench/target.ts --sizes=58368,1048576` (it reads /proc/self/stat for its CPU).
 * Prints one JSON line on stdout when listening:
 * `{"event":"listening","port":…,"bodies":{"58368":{"plain":58368,"gzip":…}}}`.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { gzipSync } from "node:zlib";
import { concatBytes } from "../lib/bytes.ts";
import { exitWithParent } from "./process.ts";

const CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";
/** The largest chunk of a `/chunked/` answer (Go's net/http writes 4 KiB or less at a time). */
const CHUNK_BYTES = 4096;
/** The longest request head read. */
const HEAD_LIMIT = 16 * 1024;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * Builds Prometheus text exposition of exactly `bytes` bytes: metric
 * families with HELP and TYPE lines and labelled samples, with values from a
 * fixed pseudo-random sequence so that gzip compresses it about as well as a
 * real node_exporter scrape. The last line is a comment padding to size.
 *
 * @param bytes The size wanted; at least 16.
 * @returns The payload.
 */
export function prometheusText(bytes: number): Uint8Array<ArrayBuffer> {
  if (!Number.isInteger(bytes) || bytes < 16) {
    throw new RangeError(`Cannot build a payload of ${bytes} bytes`);
  }
  const encoder = new TextEncoder();
  const out = new Uint8Array(bytes);
  let used = 0;
  let seed = 12345;
  const random = () => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed / 0x7fffffff;
  };
  const modes = ["idle", "iowait", "irq", "nice", "softirq", "steal", "system"];
  const devices = ["eth0", "eth1", "lo", "sda", "sdb", "nvme0n1", "dm-0"];
  let family = 0;
  for (;;) {
    const name = `node_bench_metric_${family}_total`;
    const lines = [
      `# HELP ${name} Seconds spent in family ${family} of the benchmark.`,
      `# TYPE ${name} counter`,
    ];
    const series = 4 + Math.floor(random() * 20);
    for (let i = 0; i < series; i++) {
      const value = (random() * 1e6).toFixed(2);
      lines.push(
        `${name}{cpu="${i % 8}",device="${devices[i % devices.length]}",` +
          `mode="${modes[i % modes.length]}"} ${value}`,
      );
    }
    const chunk = encoder.encode(lines.join("\n") + "\n");
    // Leave room for a padding comment of at least "#\n".
    if (used + chunk.byteLength > bytes - 2) break;
    out.set(chunk, used);
    used += chunk.byteLength;
    family++;
  }
  const left = bytes - used;
  out.set(encoder.encode("#" + " ".repeat(left - 2) + "\n"), used);
  return out;
}

interface Body {
  plain: Uint8Array<ArrayBuffer>;
  gzip: Uint8Array<ArrayBuffer>;
}

/** Every answer for one size, head and body in one buffer: one write each. */
interface Answers {
  readonly plain: Uint8Array;
  readonly gzip: Uint8Array;
  readonly chunked: Uint8Array;
}

function answer(head: string[], body: Uint8Array): Uint8Array {
  return concatBytes([encoder.encode(`HTTP/1.1 200 OK\r\n${head.join("\r\n")}\r\n\r\n`), body]);
}

/**
 * The answers for one payload: uncompressed with its length, gzip with its
 * length, and chunked in pieces of at most 4 KiB; each built on its first
 * request (a 256 MiB payload asked for one way holds one answer, not three).
 */
export function answersFor(body: Body): Answers {
  const type = `content-type: ${CONTENT_TYPE}`;
  let plain: Uint8Array | undefined, gzip: Uint8Array | undefined;
  let chunked: Uint8Array | undefined;
  return {
    get plain() {
      return plain ??= answer([type, `content-length: ${body.plain.byteLength}`], body.plain);
    },
    get gzip() {
      return gzip ??= answer([
        type,
        "content-encoding: gzip",
        "vary: Accept-Encoding",
        `content-length: ${body.gzip.byteLength}`,
      ], body.gzip);
    },
    get chunked() {
      if (chunked) return chunked;
      const parts: Uint8Array[] = [];
      for (let at = 0; at < body.plain.byteLength; at += CHUNK_BYTES) {
        const piece = body.plain.subarray(at, at + CHUNK_BYTES);
        parts.push(encoder.encode(`${piece.byteLength.toString(16)}\r\n`), piece, CRLF);
      }
      parts.push(encoder.encode("0\r\n\r\n"));
      return chunked = answer([type, "transfer-encoding: chunked"], concatBytes(parts));
    },
  };
}

const CRLF = new Uint8Array([13, 10]);

function acceptsGzip(header: string | null): boolean {
  if (header === null) return false;
  return header.split(",").some((part) => {
    const [coding, ...params] = part.trim().split(";");
    if (coding?.trim().toLowerCase() !== "gzip") return false;
    const q = params.map((p) => p.trim()).find((p) => p.startsWith("q="));
    return q === undefined || Number(q.slice(2)) > 0;
  });
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      sizes: { type: "string", default: "58368" },
      hostname: { type: "string", default: "127.0.0.1" },
      port: { type: "string", default: "0" },
    },
  });
  exitWithParent();
  const bodies = new Map<number, Body>();
  for (const text of values.sizes.split(",")) {
    const size = Number(text);
    const plain = prometheusText(size);
    bodies.set(size, { plain, gzip: new Uint8Array(gzipSync(plain)) });
  }

  const answers = new Map<number, Answers>();
  for (const [size, body] of bodies) answers.set(size, answersFor(body));
  const listener = Deno.listen({ hostname: values.hostname, port: Number(values.port) });
  const summary: Record<string, { plain: number; gzip: number }> = {};
  for (const [size, body] of bodies) {
    summary[size] = { plain: body.plain.byteLength, gzip: body.gzip.byteLength };
  }
  console.log(
    JSON.stringify({ event: "listening", port: listener.addr.port, bodies: summary }),
  );
  Deno.addSignalListener("SIGTERM", () => listener.close());
  for await (const conn of listener) {
    serve(conn, answers).catch(() => {});
  }
}

/**
 * Answers one connection's requests, keep-alive: a pre-built answer written
 * whole, so that the target costs the measured scrapes as little as it can
 * (the anchor figures used nginx; a target that copies and frames
 * each answer anew adds its own latency to every proxied scrape).
 */
export async function serve(conn: Deno.Conn, answers: Map<number, Answers>): Promise<void> {
  const buffer = new Uint8Array(HEAD_LIMIT);
  let have = 0;
  try {
    (conn as Deno.TcpConn).setNoDelay?.(true);
    for (;;) {
      const n = await conn.read(buffer.subarray(have));
      if (n === null) return;
      have += n;
      let end: number;
      while ((end = headEnd(buffer, have)) > 0) {
        const head = decoder.decode(buffer.subarray(0, end));
        buffer.copyWithin(0, end, have);
        have -= end;
        const { bytes, close } = respond(head, answers);
        for (let written = 0; written < bytes.byteLength;) {
          written += await conn.write(bytes.subarray(written));
        }
        if (close) return;
      }
      if (have === HEAD_LIMIT) return; // a head over 16 KiB: not a scraper's
    }
  } finally {
    conn.close();
  }
}

function headEnd(buffer: Uint8Array, have: number): number {
  for (let i = 3; i < have; i++) {
    if (buffer[i] === 10 && buffer[i - 1] === 13 && buffer[i - 2] === 10 && buffer[i - 3] === 13) {
      return i + 1;
    }
  }
  return -1;
}

/** The answer to one request head, and whether to close the connection after it. */
export function respond(
  head: string,
  answers: Map<number, Answers>,
): { bytes: Uint8Array; close: boolean } {
  const lines = head.split("\r\n");
  const [method, target = "", version] = lines[0]!.split(" ");
  const header = (name: string) =>
    lines.find((l) => l.toLowerCase().startsWith(`${name}:`))?.slice(name.length + 1).trim() ??
      null;
  const close = version !== "HTTP/1.1" || /(^|,)\s*close\s*(,|$)/i.test(header("connection") ?? "");
  const notFound = (text: string) => ({
    bytes: encoder.encode(
      `HTTP/1.1 404 Not Found\r\ncontent-type: text/plain\r\ncontent-length: ${
        encoder.encode(text).byteLength
      }\r\n\r\n${text}`,
    ),
    close,
  });
  const path = target.startsWith("/")
    ? target.split("?")[0]!
    : new URL(target, "http://x").pathname;
  const match = path.match(/^\/(plain|gzip|chunked)\/(\d+)$/);
  const found = match ? answers.get(Number(match[2])) : undefined;
  if (method !== "GET" || !match || !found) return notFound(`No payload at ${path}\n`);
  if (match[1] === "gzip" && acceptsGzip(header("accept-encoding"))) {
    return { bytes: found.gzip, close };
  }
  return { bytes: match[1] === "chunked" ? found.chunked : found.plain, close };
}

if (import.meta.main) await main();
