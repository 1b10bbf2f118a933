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
import { exitWithParent } from "./process.ts";

const CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";
/** The largest chunk of a `/chunked/` answer (Go's net/http writes 4 KiB or less at a time). */
const CHUNK_BYTES = 4096;

/** `bytes` as a stream of views of at most `size` bytes each (each one chunk on the wire). */
function inPieces(bytes: Uint8Array<ArrayBuffer>, size: number): ReadableStream<Uint8Array> {
  let at = 0;
  return new ReadableStream({
    pull(controller) {
      controller.enqueue(bytes.subarray(at, at + size));
      at += size;
      if (at >= bytes.byteLength) controller.close();
    },
  }, { highWaterMark: 0 });
}

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

  const server = Deno.serve({
    hostname: values.hostname,
    port: Number(values.port),
    onListen({ port }) {
      const summary: Record<string, { plain: number; gzip: number }> = {};
      for (const [size, body] of bodies) {
        summary[size] = {
          plain: body.plain.byteLength,
          gzip: body.gzip.byteLength,
        };
      }
      console.log(JSON.stringify({ event: "listening", port, bodies: summary }));
    },
  }, (request) => {
    const path = new URL(request.url).pathname;
    const match = path.match(/^\/(plain|gzip|chunked)\/(\d+)$/);
    const body = match ? bodies.get(Number(match[2])) : undefined;
    if (!match || !body) {
      return new Response(`No payload at ${path}\n`, { status: 404 });
    }
    if (
      match[1] === "gzip" && acceptsGzip(request.headers.get("accept-encoding"))
    ) {
      return new Response(body.gzip, {
        headers: {
          "content-type": CONTENT_TYPE,
          "content-encoding": "gzip",
          "vary": "Accept-Encoding",
        },
      });
    }
    if (match[1] === "chunked") {
      return new Response(inPieces(body.plain, CHUNK_BYTES), {
        headers: { "content-type": CONTENT_TYPE },
      });
    }
    return new Response(body.plain, {
      headers: { "content-type": CONTENT_TYPE },
    });
  });
  Deno.addSignalListener("SIGTERM", () => server.shutdown());
  await server.finished;
}

if (import.meta.main) await main();
