/**
 * What the containment tests share: a raw-socket exchange with the proxy,
 * a metric reader, the check that the proxy still serves, and a proxy
 * process for one test.
 *
 * @module
 */

import assert from "node:assert/strict";
import { connect } from "node:net";
import { denoEnv, proxiedGet, startProxyProcess, type TestProcess } from "../support.ts";

/** What a raw connection got: the answer's bytes and when the proxy closed it. */
export interface Exchange {
  answer: string;
  /** Milliseconds from the first write to the proxy's close; null if still open at the limit. */
  closedAfterMs: number | null;
}

/**
 * Writes `head`, then `trickle` one byte every `trickleEveryMs`, and reads
 * until the proxy closes the connection or `limitMs` passes.
 */
export function exchange(
  port: number,
  head: string | Uint8Array,
  options: { limitMs: number; trickleEveryMs?: number; then?: Uint8Array } = { limitMs: 5_000 },
): Promise<Exchange> {
  return new Promise((resolve) => {
    const socket = connect(port, "127.0.0.1");
    const started = performance.now();
    let answer = "";
    let ticker: ReturnType<typeof setInterval> | undefined;
    const done = (closed: boolean) => {
      clearTimeout(limit);
      clearInterval(ticker);
      socket.destroy();
      resolve({ answer, closedAfterMs: closed ? performance.now() - started : null });
    };
    const limit = setTimeout(() => done(false), options.limitMs);
    socket.setEncoding("latin1");
    socket.on("data", (chunk: string) => answer += chunk);
    socket.on("error", () => {});
    socket.on("close", () => done(true));
    socket.write(head);
    if (options.then) socket.write(options.then);
    if (options.trickleEveryMs) {
      ticker = setInterval(() => {
        if (!socket.destroyed) socket.write("x");
      }, options.trickleEveryMs);
    }
  });
}

export async function metric(url: string, pattern: RegExp): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const match = text.match(pattern);
  return match ? Number(match[1]) : NaN;
}

/** The proxy is alive: `/-/healthy` answers 200 and a scrape for an unknown client 404. */
export async function stillServing(url: string, port: number): Promise<void> {
  const healthy = await fetch(`${url}/-/healthy`, { signal: AbortSignal.timeout(5_000) });
  assert.equal(healthy.status, 200);
  await healthy.body?.cancel();
  const scrape = await proxiedGet(port, "http://nobody.example:9100/metrics");
  assert.equal(scrape.status, 404);
  assert.match(new TextDecoder().decode(scrape.body), /Cannot scrape/);
}

export async function withProxy(
  args: string[],
  run: (proxy: { url: string; port: number; process: TestProcess }) => Promise<void>,
  env: Record<string, string> = {},
): Promise<void> {
  const proxy = await startProxyProcess(args, { env: { ...denoEnv(), ...env } });
  try {
    await run(proxy);
    assert.doesNotMatch(proxy.process.output(), /Uncaught|error: /);
  } finally {
    await proxy.process.stop();
  }
}
