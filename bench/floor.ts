/**
 * The runtime's floor for a proxied scrape: the least CPU Deno itself needs
 * for the four socket transfers of one scrape through the proxy, with no
 * project code in the way.
 *
 * A "client" process keeps one connection to a target (keep-alive) and one to
 * a "proxy" process. For each scrape the proxy asks the client (a small
 * message), the client sends one request to the target, reads the response
 * as the runtime hands it over and writes every read, framed in place (a
 * 4-byte length before the bytes, one `write` per read, no copy), to the
 * proxy; the proxy reads the frames and writes their payloads to the
 * scraper (this parent process) after a Content-Length head. The target
 * and the scraper are this parent process, whose CPU is not counted: the
 * figure is utime+stime of the client and proxy processes over the scrapes,
 * read from /proc like the bench does. The JSON line it prints also has
 * the scrapes' latency (p50, p99, max; the target's work included): the tail
 * a relay with no project code sees on the machine at that time.
 *
 *     deno run -A bench/floor.ts [--size=BYTES] [--scrapes=N] [--warmup=N] [--perf-split]
 *
 * `--perf-split` runs both processes with V8's perf flags and measures one
 * more pass of the scrapes while Linux `perf` samples them, then prints a
 * table per process of where its CPU went, by layer (ms: shares of the
 * pass without perf), as `bench:alternate
 * --perf-split` does for the real programs (bench/perf_split.ts); "this
 * project's JS" is then this file's code. The JSON line gains `perfSplit`.
 * Exits 3 when `perf` cannot record here.
 *
 * @module
 */

import { parseArgs } from "node:util";
import {
  formatSplit,
  type LayerSplit,
  PERF_V8_FLAGS,
  perfProblem,
  splitRows,
  startPerf,
} from "./perf_split.ts";

const READ_BUFFER = 64 * 1024;
const HEAD_ROOM = 16;
const encoder = new TextEncoder();

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let done = 0;
  while (done < bytes.length) done += await conn.write(bytes.subarray(done));
}

/** Reads until `\r\n\r\n`; returns the bytes past it that arrived with the head. */
async function readHead(conn: Deno.Conn, buf: Uint8Array): Promise<Uint8Array | null> {
  let have = 0;
  for (;;) {
    const n = await conn.read(buf.subarray(have));
    if (n === null) return null;
    have += n;
    for (let i = 3; i < have; i++) {
      if (buf[i] === 10 && buf[i - 1] === 13 && buf[i - 2] === 10 && buf[i - 3] === 13) {
        return buf.subarray(i + 1, have);
      }
    }
  }
}

async function runClient(targetPort: number, proxyPort: number): Promise<void> {
  const target = await Deno.connect({ hostname: "127.0.0.1", port: targetPort });
  const proxy = await Deno.connect({ hostname: "127.0.0.1", port: proxyPort });
  target.setNoDelay(true);
  proxy.setNoDelay(true);
  const request = encoder.encode("GET /metrics HTTP/1.1\r\nHost: target\r\n\r\n");
  const ask = new Uint8Array(16);
  const buf = new Uint8Array(HEAD_ROOM + READ_BUFFER);
  const view = new DataView(buf.buffer);
  const end = new Uint8Array(4);
  for (;;) {
    if (await proxy.read(ask) === null) return;
    await writeAll(target, request);
    // The head: parse Content-Length, then frame what came with it.
    let headEnd = -1;
    let have = HEAD_ROOM;
    while (headEnd < 0) {
      const n = await target.read(buf.subarray(have));
      if (n === null) return;
      have += n;
      for (let i = HEAD_ROOM + 3; i < have; i++) {
        if (buf[i] === 10 && buf[i - 1] === 13 && buf[i - 2] === 10 && buf[i - 3] === 13) {
          headEnd = i + 1;
          break;
        }
      }
    }
    const head = new TextDecoder().decode(buf.subarray(HEAD_ROOM, headEnd));
    let left = Number(/content-length:\s*(\d+)/i.exec(head)![1]);
    let start = headEnd;
    for (;;) {
      const bytes = have - start;
      if (bytes > 0) {
        view.setUint32(start - 4, bytes);
        await writeAll(proxy, buf.subarray(start - 4, have));
        left -= bytes;
      }
      if (left <= 0) break;
      const n = await target.read(buf.subarray(HEAD_ROOM, HEAD_ROOM + Math.min(left, READ_BUFFER)));
      if (n === null) return;
      start = HEAD_ROOM;
      have = HEAD_ROOM + n;
    }
    await writeAll(proxy, end);
  }
}

async function runProxy(size: number, print: (line: string) => void): Promise<void> {
  const fromClient = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const fromScraper = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  print(JSON.stringify({ client: fromClient.addr.port, scraper: fromScraper.addr.port }));
  const client = await fromClient.accept();
  const scraper = await fromScraper.accept();
  client.setNoDelay(true);
  scraper.setNoDelay(true);
  const responseHead = encoder.encode(`HTTP/1.1 200 OK\r\nContent-Length: ${size}\r\n\r\n`);
  const ask = encoder.encode("scrape please\r\n");
  const buf = new Uint8Array(READ_BUFFER);
  const view = new DataView(buf.buffer);
  for (;;) {
    if (await readHead(scraper, buf) === null) return;
    await writeAll(client, ask);
    await writeAll(scraper, responseHead);
    // Frames: [u32 length][payload]; length 0 ends the scrape.
    let have = 0;
    let at = 0;
    let payloadLeft = 0;
    let finished = false;
    while (!finished) {
      if (at === have) {
        at = have = 0;
      } else if (payloadLeft === 0 && have - at < 4) {
        buf.copyWithin(0, at, have);
        have -= at;
        at = 0;
      }
      if (at === have || (payloadLeft === 0 && have - at < 4)) {
        const n = await client.read(buf.subarray(have));
        if (n === null) return;
        have += n;
        continue;
      }
      if (payloadLeft === 0) {
        payloadLeft = view.getUint32(at);
        at += 4;
        if (payloadLeft === 0) finished = true;
        continue;
      }
      const take = Math.min(payloadLeft, have - at);
      await writeAll(scraper, buf.subarray(at, at + take));
      at += take;
      payloadLeft -= take;
    }
  }
}

function cpuMs(pid: number): number {
  const { user, sys } = cpuSplitMs(pid);
  return user + sys;
}

/** utime and stime of a process in ms (100 Hz ticks). */
function cpuSplitMs(pid: number): { user: number; sys: number } {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return { user: Number(fields[11]) * 10, sys: Number(fields[12]) * 10 };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      role: { type: "string", default: "main" },
      size: { type: "string", default: String(57 * 1024) },
      scrapes: { type: "string" },
      warmup: { type: "string" },
      "target-port": { type: "string" },
      "proxy-port": { type: "string" },
      "perf-split": { type: "boolean", default: false },
    },
  });
  const size = Number(values.size);
  const print = (line: string) => console.log(line);
  if (values.role === "client") {
    return await runClient(Number(values["target-port"]), Number(values["proxy-port"]));
  }
  if (values.role === "proxy") return await runProxy(size, print);

  const perf = values["perf-split"];
  if (perf) {
    const problem = await perfProblem();
    if (problem) {
      console.error(`--perf-split: ${problem}`);
      Deno.exit(3);
    }
  }
  const scrapes = Number(values.scrapes ?? Math.max(20, Math.round(3000 * 57 * 1024 / size)));
  const warmup = Number(values.warmup ?? Math.max(5, Math.round(scrapes / 5)));
  // The target: one pre-built response, written whole.
  const body = new Uint8Array(size).fill(97);
  const head = encoder.encode(`HTTP/1.1 200 OK\r\nContent-Length: ${size}\r\n\r\n`);
  const response = new Uint8Array(head.length + size);
  response.set(head);
  response.set(body, head.length);
  const targetListener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  (async () => {
    for await (const conn of targetListener) {
      conn.setNoDelay(true);
      (async () => {
        const buf = new Uint8Array(4096);
        while (await readHead(conn, buf) !== null) await writeAll(conn, response);
      })().catch(() => {});
    }
  })().catch(() => {});

  const self = new URL(import.meta.url).pathname;
  const spawn = (args: string[]) =>
    new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        ...(perf ? [`--v8-flags=${PERF_V8_FLAGS.join(",")}`] : []),
        self,
        ...args,
      ],
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
  const proxy = spawn(["--role=proxy", `--size=${size}`]);
  const reader = proxy.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let line = "";
  while (!line.includes("\n")) line += (await reader.read()).value ?? "";
  const ports = JSON.parse(line.trim()) as { client: number; scraper: number };
  const client = spawn([
    "--role=client",
    `--target-port=${targetListener.addr.port}`,
    `--proxy-port=${ports.client}`,
  ]);
  const scraper = await Deno.connect({ hostname: "127.0.0.1", port: ports.scraper });
  scraper.setNoDelay(true);
  const request = encoder.encode("GET http://target/metrics HTTP/1.1\r\nHost: target\r\n\r\n");
  const buf = new Uint8Array(1024 * 1024);
  const scrape = async () => {
    await writeAll(scraper, request);
    const rest = await readHead(scraper, buf);
    let got = rest!.length;
    while (got < size) got += (await scraper.read(buf))!;
  };
  for (let i = 0; i < warmup; i++) await scrape();
  const before = cpuMs(proxy.pid) + cpuMs(client.pid);
  const beforeProxy = cpuMs(proxy.pid);
  const beforeSplit = [cpuSplitMs(proxy.pid), cpuSplitMs(client.pid)];
  // Each scrape's latency too: the tail a relay with no project code sees
  // on this machine (a paused vCPU, a busy neighbour).
  const latencies = new Float64Array(scrapes);
  const started = performance.now();
  for (let i = 0; i < scrapes; i++) {
    const start = performance.now();
    await scrape();
    latencies[i] = performance.now() - start;
  }
  const wallMs = performance.now() - started;
  latencies.sort();
  const percentile = (p: number) =>
    Math.round(latencies[Math.min(scrapes - 1, Math.ceil(p / 100 * scrapes) - 1)]! * 1000) / 1000;
  const proxyMs = cpuMs(proxy.pid) - beforeProxy;
  const bothMs = cpuMs(proxy.pid) + cpuMs(client.pid) - before;
  const afterSplit = [cpuSplitMs(proxy.pid), cpuSplitMs(client.pid)];
  // User time is the runtime's JavaScript and Rust; system time the kernel's.
  const userMs = afterSplit[0]!.user + afterSplit[1]!.user - beforeSplit[0]!.user -
    beforeSplit[1]!.user;
  const mib = size / (1024 * 1024);
  let perfSplit: Record<string, unknown> | undefined;
  if (perf) {
    // One more pass under perf, so the figures above stay perf's-cost free.
    const projectUrls = [new URL(import.meta.url).href];
    const recording = await startPerf([
      { pid: proxy.pid, projectUrls },
      { pid: client.pid, projectUrls },
    ]);
    const cpuBefore = [cpuMs(proxy.pid), cpuMs(client.pid)];
    for (let i = 0; i < scrapes; i++) await scrape();
    const underPerf = [proxy.pid, client.pid].map((pid, i) =>
      (cpuMs(pid) - cpuBefore[i]!) / scrapes
    );
    // Shares of the perf-free pass: sampling costs CPU its samples do not show.
    const cpuPerScrape = [proxyMs / scrapes, (bothMs - proxyMs) / scrapes];
    const splits = await recording.stop();
    perfSplit = {};
    for (const [i, name] of (["proxy", "client"] as const).entries()) {
      const split: LayerSplit = splits.get(i === 0 ? proxy.pid : client.pid)!;
      const ms = cpuPerScrape[i]!;
      const note = ` (without perf; ${underPerf[i]!.toFixed(3)} in the perf pass)`;
      console.log(formatSplit(`floor ${name}`, split, ms, note).join("\n") + "\n");
      perfSplit[name] = {
        msPerScrape: ms,
        msPerScrapeUnderPerf: underPerf[i]!,
        rows: splitRows(split).map((row) => ({ ...row, ms: row.share * ms })),
        split,
      };
    }
  }
  console.log(JSON.stringify({
    size,
    scrapes,
    rps: Math.round(scrapes / wallMs * 1000),
    latencyMs: { p50: percentile(50), p99: percentile(99), max: percentile(100) },
    msPerScrape: {
      proxy: proxyMs / scrapes,
      client: (bothMs - proxyMs) / scrapes,
      both: bothMs / scrapes,
      bothUser: userMs / scrapes,
      bothSys: (bothMs - userMs) / scrapes,
    },
    msPerMiB: { both: bothMs / scrapes / mib },
    ...(perfSplit ? { perfSplit } : {}),
  }));
  scraper.close();
  proxy.kill();
  client.kill();
  await Promise.allSettled([proxy.status, client.status]);
  targetListener.close();
}

if (import.meta.main) await main();
