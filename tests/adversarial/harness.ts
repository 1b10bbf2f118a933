/**
 * The adversarial suite's harness: the real proxy process (optionally under
 * a lowered `ulimit -n`, optionally with its gRPC port), a real client
 * process and a tiny target, raw-socket helpers, and the check run after
 * every scenario: the proxy is alive, its sockets are back to the baseline,
 * `/-/healthy` answers 200, a real scrape through it succeeds, and no error
 * went uncaught.
 *
 * @module
 */

import assert from "node:assert/strict";
import { createServer, request as httpRequest, type Server } from "node:http";
import { connect as connectHttp2 } from "node:http2";
import { connect, type Socket } from "node:net";
import type { AddressInfo } from "node:net";
import {
  DENO,
  denoEnv,
  proxiedGet,
  spawn,
  startClientProcess,
  type TestProcess,
  waitUntil,
} from "../support.ts";

/** Options for {@linkcode startAdversary}. */
export interface AdversaryOptions {
  /** Extra proxy flags. */
  args?: string[];
  /** Run the proxy under `ulimit -n` of this. */
  fdLimit?: number;
  /** Also listen on a gRPC port. */
  grpc?: boolean;
}

/** Resource use of the proxy process. */
export interface Usage {
  sockets: number;
  fds: number;
  rssKb: number;
}

/** A running proxy under attack, with a client and a target behind it. */
export interface Adversary {
  readonly proxy: TestProcess;
  readonly port: number;
  /** The gRPC port, 0 without one. */
  readonly grpcPort: number;
  readonly targetPort: number;
  /**
   * Resource use when the stack was idle, before any scenario; sockets
   * exclude connections of the real client.
   */
  readonly baseline: Usage;
  usage(): Usage;
  /** The proxy's counter value (summed over label sets matching `labels`), 0 when absent. */
  metric(name: string, labels?: string): Promise<number>;
  /** Asserts the proxy survived `scenario` and is back to its baseline. */
  checkAfter(scenario: string): Promise<void>;
  stop(): Promise<void>;
}

/** Socket inodes of a process. */
function socketInodes(pid: number): { inodes: Set<string>; fds: number } {
  const inodes = new Set<string>();
  let fds = 0;
  for (const entry of Deno.readDirSync(`/proc/${pid}/fd`)) {
    fds++;
    try {
      const link = Deno.readLinkSync(`/proc/${pid}/fd/${entry.name}`);
      if (link.startsWith("socket:[")) inodes.add(link.slice(8, -1));
    } catch { /* closed meanwhile */ }
  }
  return { inodes, fds };
}

/** TCP sockets of the machine by inode: local and remote port. */
function tcpTable(): Map<string, { local: number; remote: number }> {
  const table = new Map<string, { local: number; remote: number }>();
  for (const file of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    let text = "";
    try {
      text = Deno.readTextFileSync(file);
    } catch {
      continue;
    }
    for (const line of text.split("\n").slice(1)) {
      const fields = line.trim().split(/\s+/);
      if (fields.length < 10) continue;
      const port = (address: string) => parseInt(address.split(":")[1]!, 16);
      table.set(fields[9]!, { local: port(fields[1]!), remote: port(fields[2]!) });
    }
  }
  return table;
}

/**
 * Resource use of a process, from /proc. Sockets connected to `exceptPid`
 * (the real client, whose keep-alive pushes come and go) are not counted.
 */
export function usageOf(pid: number, exceptPid?: number): Usage {
  const own = socketInodes(pid);
  let sockets = own.inodes.size;
  if (exceptPid !== undefined) {
    const table = tcpTable();
    const theirs = new Set<number>();
    try {
      for (const inode of socketInodes(exceptPid).inodes) {
        const entry = table.get(inode);
        if (entry) theirs.add(entry.local);
      }
    } catch { /* gone */ }
    for (const inode of own.inodes) {
      const entry = table.get(inode);
      if (entry && theirs.has(entry.remote)) sockets--;
    }
  }
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const rssKb = Number(/^VmRSS:\s+(\d+)/m.exec(status)?.[1] ?? 0);
  return { sockets, fds: own.fds, rssKb };
}

/**
 * Starts target, proxy and client, and waits until a scrape works.
 *
 * @param options Proxy flags, fd limit, gRPC port.
 * @returns The stack.
 */
export async function startAdversary(options: AdversaryOptions = {}): Promise<Adversary> {
  const target: Server = createServer((_req, res) => res.end("up 1\n"));
  await new Promise<void>((resolve) => target.listen(0, "127.0.0.1", resolve));
  const targetPort = (target.address() as AddressInfo).port;
  const proxyArgs = [
    "run",
    "--allow-all",
    "proxy/main.ts",
    "--web.listen-address=127.0.0.1:0",
    ...(options.grpc ? ["--grpc.listen-address=127.0.0.1:0"] : []),
    ...(options.args ?? []),
  ];
  const proxy = options.fdLimit
    ? spawn("sh", ["-c", `ulimit -n ${options.fdLimit} && exec "$0" "$@"`, DENO, ...proxyArgs], {
      env: denoEnv(),
    })
    : spawn(DENO, proxyArgs, { env: denoEnv() });
  let exited = false;
  proxy.status.then(() => exited = true);
  let client: TestProcess | null = null;
  try {
    const port = Number(
      (await proxy.waitFor(/msg="Listening on" address=127\.0\.0\.1:(\d+) tls/))[1],
    );
    const grpcPort = options.grpc
      ? Number((await proxy.waitFor(/address=127\.0\.0\.1:(\d+) listener=grpc/))[1])
      : 0;
    client = startClientProcess([`--proxy-url=http://127.0.0.1:${port}`, "--fqdn=localhost"]);
    await client.waitFor(/Registered with the proxy/, 20_000);
    const scrape = async () => {
      const response = await withTimeout(
        proxiedGet(port, `http://localhost:${targetPort}/metrics`),
        10_000,
        "scrape",
      );
      return { status: response.status, body: new TextDecoder().decode(response.body) };
    };
    assert.deepEqual(await scrape(), { status: 200, body: "up 1\n" });
    // Idle: the scrape's connection closed, the client's stream open.
    await new Promise((resolve) => setTimeout(resolve, 300));
    const clientPid = client.pid;
    const baseline = usageOf(proxy.pid, clientPid);
    const usage = () => usageOf(proxy.pid, clientPid);
    const metric = async (name: string, labels = "") => {
      const { body: text } = await get(port, "/metrics");
      let sum = 0;
      for (const line of text.split("\n")) {
        if (line.startsWith(name) && line.includes(labels) && !line.startsWith("#")) {
          sum += Number(line.slice(line.lastIndexOf(" ") + 1));
        }
      }
      return sum;
    };
    const stopClient = client;
    return {
      proxy,
      port,
      grpcPort,
      targetPort,
      baseline,
      usage,
      metric,
      async checkAfter(scenario) {
        assert.ok(!exited, `${scenario}: the proxy exited:\n${proxy.output().slice(-3000)}`);
        const back = await waitUntil(
          () => {
            const now = usage();
            return now.sockets <= baseline.sockets ? now : undefined;
          },
          20_000,
          `${scenario}: the proxy's sockets back to ${baseline.sockets}`,
        ).catch(
          (error) => {
            throw new Error(`${error.message} (now ${JSON.stringify(usage())})`);
          },
        );
        assert.equal((await get(port, "/-/healthy")).status, 200, `${scenario}: /-/healthy`);
        assert.deepEqual(await scrape(), { status: 200, body: "up 1\n" }, `${scenario}: scrape`);
        if (grpcPort !== 0) {
          assert.equal(await grpcListClients(grpcPort), "200 0", `${scenario}: gRPC ListClients`);
        }
        assert.equal(
          await metric("pushprox_proxy_uncaught_errors_total"),
          0,
          `${scenario}: errors went uncaught:\n${proxy.output().slice(-3000)}`,
        );
        assert.ok(!exited, `${scenario}: the proxy exited`);
        console.log(
          `${scenario}: back to baseline, sockets ${back.sockets}/${baseline.sockets}, ` +
            `fds ${back.fds}/${baseline.fds}, RSS ${Math.round(back.rssKb / 1024)}/${
              Math.round(baseline.rssKb / 1024)
            } MiB`,
        );
      },
      async stop() {
        await stopClient.stop();
        await proxy.stop();
        await new Promise((resolve) => target.close(resolve));
      },
    };
  } catch (error) {
    await client?.stop();
    await proxy.stop();
    await new Promise((resolve) => target.close(resolve));
    throw error;
  }
}

/** Rejects when `promise` takes longer than `ms`. */
export function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`Timed out after ${ms}ms: ${what}`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** mulberry32: a tiny deterministic PRNG (lib/testing/random.ts). */
export { seededRandom as random } from "../../lib/testing/random.ts";

/** A Connect/gRPC envelope: flags, 4-byte length, message. */
export function envelope(flags: number, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(5 + payload.length);
  out[0] = flags;
  new DataView(out.buffer).setUint32(1, payload.length);
  out.set(payload, 5);
  return out;
}

/** Concatenates byte arrays. */
export function concat(...parts: (Uint8Array | string)[]): Uint8Array {
  const encoded = parts.map((p) => typeof p === "string" ? new TextEncoder().encode(p) : p);
  const out = new Uint8Array(encoded.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of encoded) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Protobuf of PollRequest{fqdn (1), version (3)}. */
export function pollRequest(fqdn: string, version = ""): Uint8Array {
  const field = (number: number, text: string): Uint8Array => {
    const bytes = new TextEncoder().encode(text);
    return concat(Uint8Array.from([(number << 3) | 2, ...varint(bytes.length)]), bytes);
  };
  return version === "" ? field(1, fqdn) : concat(field(1, fqdn), field(3, version));
}

function varint(n: number): number[] {
  const out: number[] = [];
  while (n > 0x7f) {
    out.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  out.push(n);
  return out;
}

/** Protobuf of PushRequest{head:{scrape_id:"x", status:200}}. */
export const PUSH_HEAD: Uint8Array = Uint8Array.from([0x0a, 6, 0x0a, 1, 0x78, 0x18, 0xc8, 0x01]);

/** How a raw connection ends. */
export type Ending = "close" | "reset";

/** Options for {@linkcode rawExchange}. */
export interface RawOptions {
  /** Source address (any 127.x.y.z on Linux). @default {"127.0.0.1"} */
  localAddress?: string;
  /** Longest wait for an answer or close. @default {2000} */
  timeoutMs?: number;
  /** Half-close after writing (FIN), so the server answers and closes. @default {true} */
  end?: boolean;
  /** Stop reading once this many bytes arrived. @default {65536} */
  maxBytes?: number;
  /** Stop reading once this holds for what arrived. */
  until?: (answer: string) => boolean;
}

/**
 * Connects, writes `bytes`, reads until the server closes, `maxBytes`
 * arrived or `timeoutMs` passed, then closes. Never rejects.
 *
 * @returns What came back and whether the server closed first.
 */
export function rawExchange(
  port: number,
  bytes: Uint8Array,
  options: RawOptions = {},
): Promise<{ answer: string; closedByServer: boolean; error: string | null }> {
  return new Promise((resolve) => {
    const socket = connect({ host: "127.0.0.1", port, localAddress: options.localAddress });
    let answer = "";
    let settled = false;
    let error: string | null = null;
    const done = (closedByServer: boolean) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({ answer, closedByServer, error });
    };
    const timer = setTimeout(() => done(false), options.timeoutMs ?? 2_000);
    socket.on("data", (chunk) => {
      answer += String(chunk);
      if (answer.length >= (options.maxBytes ?? 65_536) || options.until?.(answer)) done(false);
    });
    socket.on("error", (e: Error & { code?: string }) => {
      error = e.code ?? e.message;
      done(true);
    });
    socket.on("close", () => done(true));
    socket.write(bytes);
    if (options.end ?? true) socket.end();
  });
}

/**
 * Opens a connection and resolves once it is established (or failed).
 *
 * @returns The socket, or null when the connection failed.
 */
export function openSocket(port: number, localAddress = "127.0.0.1"): Promise<Socket | null> {
  return new Promise((resolve) => {
    const socket = connect({ host: "127.0.0.1", port, localAddress });
    socket.once("connect", () => resolve(socket));
    socket.once("error", () => resolve(null));
  });
}

/** Ends a socket by FIN or by RST (SO_LINGER 0). */
export function endSocket(socket: Socket, ending: Ending): void {
  socket.on("error", () => {});
  if (ending === "reset") socket.resetAndDestroy();
  else socket.destroy();
}

/** The status of every HTTP/1 answer in `text`. */
export function statuses(text: string): number[] {
  return [...text.matchAll(/HTTP\/1\.[01] (\d{3}) /g)].map((m) => Number(m[1]));
}

/**
 * Calls ListClients in the gRPC protocol on an h2c port.
 *
 * @returns The HTTP status and grpc-status, e.g. "200 0".
 */
export function grpcListClients(port: number): Promise<string> {
  return withTimeout(
    new Promise((resolve, reject) => {
      const session = connectHttp2(`http://127.0.0.1:${port}`);
      session.on("error", reject);
      const stream = session.request({
        ":method": "POST",
        ":path": "/pushprox.v1.RegistryService/ListClients",
        "content-type": "application/grpc",
        te: "trailers",
      });
      let status = "";
      stream.on("response", (headers) => status = String(headers[":status"]));
      stream.on("trailers", (trailers) => status += ` ${trailers["grpc-status"]}`);
      stream.on("data", () => {});
      stream.on("error", reject);
      stream.on("close", () => {
        session.close();
        resolve(status);
      });
      stream.end(envelope(0, new Uint8Array()));
    }),
    10_000,
    "gRPC ListClients",
  );
}

/**
 * GETs a path from the proxy on a connection of its own, closed after the
 * answer (fetch would keep one open in its pool, which counts as a socket).
 *
 * @returns Status (0 when it failed or timed out) and body.
 */
export function get(
  port: number,
  path: string,
  timeoutMs = 10_000,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve) => {
    const request = httpRequest({ host: "127.0.0.1", port, path, agent: false }, (response) => {
      let body = "";
      response.on("data", (chunk) => body += String(chunk));
      response.on("end", () => {
        clearTimeout(timer);
        resolve({ status: response.statusCode ?? 0, body });
      });
      response.on("error", () => resolve({ status: 0, body }));
    });
    const timer = setTimeout(() => {
      request.destroy();
      resolve({ status: 0, body: "" });
    }, timeoutMs);
    request.on("error", () => {
      clearTimeout(timer);
      resolve({ status: 0, body: "" });
    });
    request.end();
  });
}
